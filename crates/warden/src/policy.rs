//! `warden policy`: policy as code. `schema`, `init`, `check` and `test` work offline;
//! `apply`, `show`, `history` and `explain` talk to the server.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use warden_policy::{PolicyFile, TESTS_FILE, check_set, load};

use crate::cli::{PolicyArgs, PolicyCommand, ServerConnection};
use crate::output::{cell, table};
use crate::pki::connect;

/// The `*.cedar` files and `tests.toml` of `dir`, by name.
fn read_dir(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow!("cannot read policy directory {}: {e}", dir.display()))?;
    let mut files = BTreeMap::new();
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !(name.ends_with(".cedar") || name == TESTS_FILE) || !path.is_file() {
            continue;
        }
        let bytes =
            std::fs::read(&path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
        let text =
            String::from_utf8(bytes).map_err(|_| anyhow!("{}: not UTF-8 text", path.display()))?;
        files.insert(name.to_owned(), text);
    }
    if !files.keys().any(|n| n.ends_with(".cedar")) {
        bail!("no *.cedar files in {}", dir.display());
    }
    Ok(files)
}

/// A field of a JSON answer, null when absent.
fn at<'a>(value: &'a Value, field: &str) -> &'a Value {
    value.get(field).unwrap_or(&Value::Null)
}

fn word(allow: bool) -> &'static str {
    if allow { "allow" } else { "deny" }
}

/// The pass/fail table; returns how many failed.
fn print_tests(rows: &[(bool, String, String, String, Vec<String>)]) -> usize {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(passed, name, expected, got, by)| {
            vec![
                if *passed { "pass" } else { "FAIL" }.to_owned(),
                name.clone(),
                expected.clone(),
                got.clone(),
                if by.is_empty() {
                    "(no policy: default deny)".to_owned()
                } else {
                    by.join(", ")
                },
            ]
        })
        .collect();
    table(
        &["RESULT", "TEST", "EXPECTED", "GOT", "DETERMINED BY"],
        &rows,
    );
    rows.iter()
        .filter(|r| r.first().is_some_and(|c| c == "FAIL"))
        .count()
}

pub async fn run(args: PolicyArgs) -> anyhow::Result<()> {
    match args.command {
        PolicyCommand::Schema => {
            out!("{}", warden_policy::SCHEMA);
            Ok(())
        }
        PolicyCommand::Init { dir } => init(&dir),
        PolicyCommand::Check { dir } => {
            let files = read_dir(&dir)?;
            let cedar: Vec<PolicyFile> = files
                .iter()
                .filter(|(n, _)| n.ends_with(".cedar"))
                .map(|(name, text)| PolicyFile {
                    name: name.clone(),
                    text: text.clone(),
                })
                .collect();
            let policies = load(&cedar).map_err(|e| anyhow!("{e}"))?;
            outln!(
                "ok: {} policies in {} files match the schema",
                policies.len(),
                cedar.len()
            );
            Ok(())
        }
        PolicyCommand::Test { dir } => test(&dir),
        PolicyCommand::Apply {
            dir,
            dry_run,
            if_version,
        } => {
            let files = read_dir(&dir)?;
            let list: Vec<Value> = files
                .iter()
                .map(|(name, text)| json!({ "name": name, "text": text }))
                .collect();
            let client = connect(&args.connection)?;
            let q = "mutation($files: [PolicyFileInput!]!, $dry: Boolean, $expected: Int) { \
                     applyPolicy(files: $files, dryRun: $dry, expectedVersion: $expected) \
                     { version hash unchanged diff policies tests { name passed expected got determinedBy } } }";
            let vars = json!({ "files": list, "dry": dry_run, "expected": if_version });
            let data = client.graphql(q, vars).await?;
            let applied = data
                .get("applyPolicy")
                .ok_or_else(|| anyhow!("the server's answer has no result"))?;
            if args.json {
                crate::output::json(applied);
                return Ok(());
            }
            out!("{}", at(applied, "diff").as_str().unwrap_or_default());
            let rows: Vec<_> = at(applied, "tests")
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    (
                        at(t, "passed").as_bool().unwrap_or(false),
                        cell(t, "name"),
                        cell(t, "expected"),
                        cell(t, "got"),
                        at(t, "determinedBy")
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_owned)
                                    .collect()
                            })
                            .unwrap_or_default(),
                    )
                })
                .collect();
            if !rows.is_empty() {
                print_tests(&rows);
            }
            let (policies, hash) = (cell(applied, "policies"), cell(applied, "hash"));
            if at(applied, "unchanged").as_bool() == Some(true) {
                eprintln!("unchanged: the active policy set is already this one (sha256 {hash})");
            } else if dry_run {
                eprintln!(
                    "dry run: {policies} policies and {} tests pass; nothing was activated (sha256 {hash})",
                    rows.len()
                );
            } else {
                eprintln!(
                    "applied policy version {} ({policies} policies, {} tests passed, sha256 {hash})",
                    cell(applied, "version"),
                    rows.len()
                );
            }
            Ok(())
        }
        PolicyCommand::Show { version } => show(&args.connection, args.json, version).await,
        PolicyCommand::History => history(&args.connection, args.json).await,
        PolicyCommand::Explain {
            principal,
            action,
            resource,
            context,
        } => {
            let client = connect(&args.connection)?;
            let q = "query($p: String!, $a: String!, $r: String!, $c: String) { explainPolicy(principal: $p, action: $a, resource: $r, context: $c) \
                     { decision policyVersion reason errors principal principalGroups resource resourceLabels { key value } \
                       determining { id file text } considered { id file text } } }";
            let data = client
                .graphql(
                    q,
                    json!({ "p": principal, "a": action, "r": resource, "c": context }),
                )
                .await?;
            let e = data
                .get("explainPolicy")
                .ok_or_else(|| anyhow!("the server's answer has no explanation"))?;
            if args.json {
                crate::output::json(e);
            } else {
                out!("{}", render_explanation(e));
            }
            Ok(())
        }
    }
}

/// `warden policy test DIR`: the tests in `DIR` run against its policies, offline.
fn test(dir: &Path) -> anyhow::Result<()> {
    let files = read_dir(dir)?;
    if !files.contains_key(TESTS_FILE) {
        bail!("no {TESTS_FILE} in {}", dir.display());
    }
    let checked = check_set(&files).map_err(|e| anyhow!("{e}"))?;
    let rows: Vec<_> = checked
        .results
        .iter()
        .map(|r| {
            (
                r.passed,
                r.name.clone(),
                word(r.expected).to_owned(),
                word(r.decided.allow).to_owned(),
                r.decided.reasons.clone(),
            )
        })
        .collect();
    let failed = print_tests(&rows);
    if failed > 0 {
        bail!("{failed} of {} tests failed", rows.len());
    }
    Ok(())
}

/// `warden policy show [VERSION]`.
async fn show(
    connection: &ServerConnection,
    json_out: bool,
    version: Option<i64>,
) -> anyhow::Result<()> {
    let client = connect(connection)?;
    let q = "query($v: Int) { policy(version: $v) { version hash active policies tests appliedBy appliedAt files { name text } } }";
    let data = client.graphql(q, json!({ "v": version })).await?;
    let set = data.get("policy").cloned().unwrap_or(Value::Null);
    if json_out {
        crate::output::json(&set);
        return Ok(());
    }
    if set.is_null() {
        bail!(
            "no policy is active: everything is denied (apply one with `warden policy apply DIR`)"
        );
    }
    outln!(
        "# policy version {}{} (sha256 {}), applied by {} at {}",
        cell(&set, "version"),
        if at(&set, "active").as_bool() == Some(true) {
            ", active"
        } else {
            ""
        },
        cell(&set, "hash"),
        cell(&set, "appliedBy"),
        cell(&set, "appliedAt")
    );
    for file in at(&set, "files")
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        outln!("\n# ==> {} <==", cell(file, "name"));
        out!("{}", at(file, "text").as_str().unwrap_or_default());
    }
    Ok(())
}

/// `warden policy history`.
async fn history(connection: &ServerConnection, json_out: bool) -> anyhow::Result<()> {
    let client = connect(connection)?;
    let q = "{ policyHistory { version hash active policies tests appliedBy appliedAt } }";
    let data = client.graphql(q, json!({})).await?;
    let history = data.get("policyHistory").cloned().unwrap_or(Value::Null);
    if json_out {
        crate::output::json(&history);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = history
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|v| {
            vec![
                cell(v, "version"),
                if at(v, "active").as_bool() == Some(true) {
                    "active".to_owned()
                } else {
                    String::new()
                },
                cell(v, "hash").chars().take(16).collect(),
                cell(v, "policies"),
                cell(v, "tests"),
                cell(v, "appliedBy"),
                cell(v, "appliedAt"),
            ]
        })
        .collect();
    table(
        &[
            "VERSION",
            "STATE",
            "SHA256",
            "POLICIES",
            "TESTS",
            "APPLIED BY",
            "APPLIED AT",
        ],
        &rows,
    );
    Ok(())
}

fn init(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, _) in warden_policy::STARTER {
        if dir.join(name).exists() {
            bail!(
                "{} exists: init writes only into a directory without the starter's files",
                dir.join(name).display()
            );
        }
    }
    for (name, text) in warden_policy::STARTER {
        std::fs::write(dir.join(name), text)
            .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
    }
    eprintln!(
        "wrote the starter policy set to {}; edit it, then `warden policy test {0}` and `warden policy apply {0}`",
        dir.display()
    );
    Ok(())
}

/// An explanation as people read it.
fn render_explanation(e: &Value) -> String {
    use std::fmt::Write;
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let groups = list(at(e, "principalGroups"));
    let labels: Vec<String> = at(e, "resourceLabels")
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|l| format!("{}={}", cell(l, "key"), cell(l, "value")))
        .collect();
    let none = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "decision:   {}", cell(e, "decision"));
    let _ = writeln!(out, "why:        {}", cell(e, "reason"));
    let _ = writeln!(
        out,
        "principal:  {} (groups: {})",
        cell(e, "principal"),
        none(&groups)
    );
    let _ = writeln!(
        out,
        "resource:   {} (labels: {})",
        cell(e, "resource"),
        none(&labels)
    );
    let policies = |out: &mut String, title: &str, v: &Value| {
        let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
        if items.is_empty() {
            return;
        }
        let _ = writeln!(out, "{title}");
        for p in items {
            let _ = writeln!(out, "  {}", cell(p, "id"));
            for line in at(p, "text").as_str().unwrap_or_default().lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    };
    policies(&mut out, "determined by:", at(e, "determining"));
    policies(
        &mut out,
        "also in scope (their conditions did not hold):",
        at(e, "considered"),
    );
    for err in list(at(e, "errors")) {
        let _ = writeln!(out, "error: {err}");
    }
    out
}
