//! `warden vuln …`: scan imports (the file goes to `POST /v1/vuln/import` as it is), findings,
//! judgement, figures and the CI gate, through the GraphQL API.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cli::{VulnArgs, VulnCommand};
use crate::client::AdminClient;
use crate::output::{cell, table};
use crate::pki::connect;

const FIELDS: &str = "id asset advisory aliases package location fixedIn noFix fixSeenAt title source \
     disclosedSeverity cvss severity state firstSeen clockStart dueAt secondsRemaining overdue \
     fixedAt acceptedUntil decidedBy decidedAt decisionReason ratedBy ratedAt ratingReason";

/// Files above this size get a progress bar while they are read.
const BAR_FROM: u64 = 1024 * 1024;

pub async fn run(args: VulnArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    let json_out = args.json;
    match args.command {
        VulnCommand::Import {
            file,
            asset,
            format,
            scanner,
        } => {
            import(
                &client,
                json_out,
                &file,
                &asset,
                &format,
                scanner.as_deref(),
            )
            .await
        }
        VulnCommand::List(args) => list(&client, json_out, args).await,
        VulnCommand::Show { id } => {
            let query = format!(
                "query($i: Int!) {{ vulnFinding(id: $i) {{ {FIELDS} details scanners history {{ at actor change detail }} }} }}"
            );
            let data = client.graphql(&query, json!({ "i": id })).await?;
            let f = data.get("vulnFinding").cloned().unwrap_or(Value::Null);
            if f.is_null() {
                bail!("finding {id} not found");
            }
            if json_out {
                crate::output::json(&f);
            } else {
                print_finding(&f);
            }
            Ok(())
        }
        VulnCommand::Rate {
            id,
            severity,
            reason,
        } => {
            change(
                &client,
                json_out,
                "rateFinding(id: $i, severity: $s, reason: $r)",
                "$i: Int!, $s: String!, $r: String!",
                json!({ "i": id, "s": severity, "r": reason }),
            )
            .await
        }
        VulnCommand::Accept { id, until, reason } => {
            change(
                &client,
                json_out,
                "acceptFindingRisk(id: $i, until: $u, reason: $r)",
                "$i: Int!, $u: String!, $r: String!",
                json!({ "i": id, "u": until, "r": reason }),
            )
            .await
        }
        VulnCommand::FalsePositive { id, reason } => {
            change(
                &client,
                json_out,
                "markFindingFalsePositive(id: $i, reason: $r)",
                "$i: Int!, $r: String!",
                json!({ "i": id, "r": reason }),
            )
            .await
        }
        VulnCommand::Reopen { id, reason } => {
            change(
                &client,
                json_out,
                "reopenFinding(id: $i, reason: $r)",
                "$i: Int!, $r: String!",
                json!({ "i": id, "r": reason }),
            )
            .await
        }
        VulnCommand::Stats { since, asset } => stats(&client, json_out, &since, asset).await,
        VulnCommand::Gate { asset, fail_on } => gate(&client, json_out, &asset, &fail_on).await,
        VulnCommand::Asset { name, tier } => assets(&client, json_out, name, tier).await,
        VulnCommand::Report {
            asset,
            title,
            details,
            severity,
        } => {
            let text = if details.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("cannot read the report from stdin")?;
                s
            } else {
                std::fs::read_to_string(&details)
                    .with_context(|| format!("cannot read {}", details.display()))?
            };
            change(
                &client,
                json_out,
                "reportVulnerability(asset: $a, title: $t, details: $d, severity: $s)",
                "$a: String!, $t: String!, $d: String!, $s: String",
                json!({ "a": asset, "t": title, "d": text, "s": severity }),
            )
            .await
        }
    }
}

/// `warden vuln list`.
async fn list(
    client: &AdminClient,
    json_out: bool,
    args: crate::cli::VulnListArgs,
) -> anyhow::Result<()> {
    let query = format!(
        "query($a: String, $s: String, $st: [String!], $o: Boolean, $t: String, $so: String, $f: Int) {{ vulnFindings(asset: $a, severity: $s, states: $st, overdue: $o, text: $t, sort: $so, first: $f) {{ total next findings {{ {FIELDS} }} }} }}"
    );
    let data = client
        .graphql(
            &query,
            json!({ "a": args.asset, "s": args.severity, "st": args.state, "o": args.overdue,
                "t": args.text, "so": args.sort, "f": args.limit }),
        )
        .await?;
    let page = data.get("vulnFindings").cloned().unwrap_or(Value::Null);
    if json_out {
        crate::output::json(&page);
        return Ok(());
    }
    let list = page
        .get("findings")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    print_findings(&list);
    let total = page.get("total").and_then(Value::as_i64).unwrap_or(0);
    if total > i64::try_from(list.len()).unwrap_or(i64::MAX) {
        outln!("({} of {total} shown; raise --limit)", list.len());
    }
    Ok(())
}

/// `warden vuln gate`: exits non-zero when the asset has open findings at the given severities.
async fn gate(
    client: &AdminClient,
    json_out: bool,
    asset: &str,
    fail_on: &[String],
) -> anyhow::Result<()> {
    let query = format!(
        "query($a: String!, $f: [String!]!) {{ vulnGate(asset: $a, failOn: $f) {{ pass reasons findings {{ {FIELDS} }} }} }}"
    );
    let data = client
        .graphql(&query, json!({ "a": asset, "f": fail_on }))
        .await?;
    let gate = data.get("vulnGate").cloned().unwrap_or(Value::Null);
    let pass = gate.get("pass").and_then(Value::as_bool).unwrap_or(false);
    if json_out {
        crate::output::json(&gate);
    } else if pass {
        outln!(
            "gate passed for `{asset}`: nothing open on {}",
            fail_on.join(", ")
        );
    } else if let Some(list) = gate.get("findings").and_then(Value::as_array) {
        print_findings(list);
    }
    if pass {
        return Ok(());
    }
    let reasons: Vec<String> = gate
        .get("reasons")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    bail!("gate failed for `{asset}`: {}", reasons.join("; "))
}

/// `warden vuln asset [NAME TIER]`: lists assets, or sets one's tier.
async fn assets(
    client: &AdminClient,
    json_out: bool,
    name: Option<String>,
    tier: Option<String>,
) -> anyhow::Result<()> {
    let (query, vars, field) = match (name, tier) {
        (Some(asset), Some(tier)) => (
            "mutation($a: String!, $t: String!) { setAssetTier(asset: $a, tier: $t) { name tier open overdue } }",
            json!({ "a": asset, "t": tier }),
            "setAssetTier",
        ),
        _ => (
            "query { vulnAssets { name tier open overdue } }",
            json!({}),
            "vulnAssets",
        ),
    };
    let data = client.graphql(query, vars).await?;
    let found = data.get(field).cloned().unwrap_or(Value::Null);
    if json_out {
        crate::output::json(&found);
        return Ok(());
    }
    let list = match found {
        Value::Array(list) => list,
        one => vec![one],
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            ["name", "tier", "open", "overdue"]
                .iter()
                .map(|f| cell(a, f))
                .collect()
        })
        .collect();
    table(&["ASSET", "TIER", "OPEN", "OVERDUE"], &rows);
    Ok(())
}

/// Reads the file (with a progress bar when it is large and stderr is a terminal), sends it,
/// and says what the import did.
async fn import(
    client: &AdminClient,
    json_out: bool,
    file: &std::path::Path,
    asset: &str,
    format: &str,
    scanner: Option<&str>,
) -> anyhow::Result<()> {
    let shown = file.display().to_string();
    let mut f = std::fs::File::open(file).with_context(|| format!("cannot read {shown}"))?;
    let size = f
        .metadata()
        .with_context(|| format!("cannot read {shown}"))?
        .len();
    let bar = if size >= BAR_FROM {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
                .map_err(|e| anyhow!("{e}"))?
                .progress_chars("=> "),
        );
        bar.set_message(format!("reading {shown}"));
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut chunk = vec![0; 1024 * 1024];
    loop {
        let n = f
            .read(&mut chunk)
            .with_context(|| format!("cannot read {shown}"))?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(chunk.get(..n).unwrap_or_default());
        bar.inc(n as u64);
    }
    if size >= BAR_FROM {
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .map_err(|e| anyhow!("{e}"))?,
        );
        bar.set_message(format!("importing {shown} into `{asset}`"));
        bar.enable_steady_tick(Duration::from_millis(120));
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| shown.clone());
    let mut url = url::Url::parse("http://warden/v1/vuln/import").map_err(|e| anyhow!("{e}"))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("asset", asset)
            .append_pair("format", format)
            .append_pair("file", &name);
        if let Some(s) = scanner {
            q.append_pair("scanner", s);
        }
    }
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let answer = client.post(&path, body).await;
    bar.finish_and_clear();
    let answer = answer?;
    if json_out {
        crate::output::json(&answer);
        return Ok(());
    }
    let n = |k: &str| answer.get(k).and_then(Value::as_u64).unwrap_or(0);
    outln!(
        "imported {shown} ({}) into `{asset}`: {}: {} new, {} reopened, {} fixed, {} unchanged (import {})",
        cell(&answer, "format"),
        warden_model::count(n("findings"), "finding", "findings"),
        n("opened"),
        n("reopened"),
        n("fixed"),
        n("unchanged"),
        cell(&answer, "import"),
    );
    match n("fix_available") {
        0 => {}
        1 => outln!("1 finding waited for a fix and now shows one: its SLA clock starts now"),
        k => outln!("{k} findings waited for a fix and now show one: their SLA clocks start now"),
    }
    Ok(())
}

/// Runs one finding mutation and prints the finding.
async fn change(
    client: &AdminClient,
    json_out: bool,
    call: &str,
    params: &str,
    variables: Value,
) -> anyhow::Result<()> {
    let field = call.split('(').next().unwrap_or_default();
    let query = format!(
        "mutation({params}) {{ {call} {{ {FIELDS} details scanners history {{ at actor change detail }} }} }}"
    );
    let data = client.graphql(&query, variables).await?;
    let f = data.get(field).cloned().unwrap_or(Value::Null);
    if json_out {
        crate::output::json(&f);
    } else {
        print_finding(&f);
    }
    Ok(())
}

async fn stats(
    client: &AdminClient,
    json_out: bool,
    since: &str,
    asset: Option<String>,
) -> anyhow::Result<()> {
    let query = "query($s: String!, $a: String) { vulnStats(since: $s, asset: $a) { since until open { severity count } triage noFix overdue accepted remediated { severity fixed meanSeconds } dueFixed dueFixedOnTime dueMissedOpen compliance } }";
    let data = client
        .graphql(query, json!({ "s": since, "a": asset }))
        .await?;
    let s = data.get("vulnStats").cloned().unwrap_or(Value::Null);
    if json_out {
        crate::output::json(&s);
        return Ok(());
    }
    outln!("period:     {} to {}", cell(&s, "since"), cell(&s, "until"));
    let empty = Vec::new();
    let open = s.get("open").and_then(Value::as_array).unwrap_or(&empty);
    let fixed = s
        .get("remediated")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let rows: Vec<Vec<String>> = open
        .iter()
        .map(|o| {
            let sev = cell(o, "severity");
            let done = fixed.iter().find(|f| cell(f, "severity") == sev);
            vec![
                sev,
                cell(o, "count"),
                done.map_or_else(|| "0".to_owned(), |f| cell(f, "fixed")),
                done.and_then(|f| f.get("meanSeconds").and_then(Value::as_f64))
                    .map_or_else(|| "-".to_owned(), |secs| span(whole_seconds(secs))),
            ]
        })
        .collect();
    table(
        &["SEVERITY", "OPEN", "FIXED", "MEAN TIME TO REMEDIATE"],
        &rows,
    );
    outln!("triage:     {} unrated", cell(&s, "triage"));
    outln!(
        "no fix:     {} waiting for a fix to be published (no clock runs)",
        cell(&s, "noFix")
    );
    outln!("overdue:    {}", cell(&s, "overdue"));
    outln!("accepted:   {}", cell(&s, "accepted"));
    let compliance = match s.get("compliance").and_then(Value::as_f64) {
        Some(c) => format!(
            "{:.1} % ({} of {} due in the period met: {} fixed on time, {} fixed late, {} still open)",
            c * 100.0,
            cell(&s, "dueFixedOnTime"),
            s.get("dueFixed").and_then(Value::as_i64).unwrap_or(0)
                + s.get("dueMissedOpen").and_then(Value::as_i64).unwrap_or(0),
            cell(&s, "dueFixedOnTime"),
            s.get("dueFixed").and_then(Value::as_i64).unwrap_or(0)
                - s.get("dueFixedOnTime").and_then(Value::as_i64).unwrap_or(0),
            cell(&s, "dueMissedOpen"),
        ),
        None => "- (nothing was due in the period)".to_owned(),
    };
    outln!("compliance: {compliance}");
    Ok(())
}

/// A span of seconds as people read it: `3d 4h`, `5h 2m`, `40s`.
fn span(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", s % 60)
    } else {
        format!("{s}s")
    }
}

/// When a finding is due, relative to now.
fn due(f: &Value) -> String {
    match f.get("secondsRemaining").and_then(Value::as_i64) {
        Some(s) if s < 0 => format!("overdue {}", span(s)),
        Some(s) => format!("in {}", span(s)),
        None => "-".to_owned(),
    }
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

fn print_findings(list: &[Value]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|f| {
            let on = match cell(f, "package").as_str() {
                "-" => cell(f, "location"),
                p => p.to_owned(),
            };
            vec![
                cell(f, "id"),
                match cell(f, "severity").as_str() {
                    "-" => "unrated".to_owned(),
                    s => s.to_owned(),
                },
                cell(f, "state"),
                due(f),
                cell(f, "asset"),
                cell(f, "advisory"),
                short(&on, 48),
                short(&cell(f, "title"), 60),
            ]
        })
        .collect();
    table(
        &[
            "ID", "SEVERITY", "STATE", "DUE", "ASSET", "ADVISORY", "ON", "TITLE",
        ],
        &rows,
    );
}

fn print_finding(f: &Value) {
    let line = |label: &str, value: String| {
        if value != "-" {
            outln!("{label:<16}{value}");
        }
    };
    line("finding:", cell(f, "id"));
    line("asset:", cell(f, "asset"));
    line("advisory:", cell(f, "advisory"));
    line("aliases:", cell(f, "aliases"));
    line("title:", cell(f, "title"));
    line("package:", cell(f, "package"));
    line("location:", cell(f, "location"));
    line("fixed in:", cell(f, "fixedIn"));
    if f.get("noFix").and_then(Value::as_bool) == Some(true) {
        line(
            "fix:",
            "none published yet: no SLA clock runs until an import shows one".to_owned(),
        );
    }
    line("fix seen:", cell(f, "fixSeenAt"));
    line("state:", cell(f, "state"));
    line(
        "severity:",
        match (
            cell(f, "severity").as_str(),
            cell(f, "disclosedSeverity").as_str(),
        ) {
            ("-", _) => "unrated (in triage)".to_owned(),
            (s, d) if s == d => format!("{s} (as disclosed)"),
            (s, "-") => format!("{s} (disclosed unrated)"),
            (s, d) => format!("{s} (disclosed {d})"),
        },
    );
    line("cvss:", cell(f, "cvss"));
    line("first seen:", cell(f, "firstSeen"));
    line("clock from:", cell(f, "clockStart"));
    line(
        "due:",
        match cell(f, "dueAt").as_str() {
            "-" if f.get("noFix").and_then(Value::as_bool) == Some(true) => {
                "none until a fix is published".to_owned()
            }
            "-" => "no deadline".to_owned(),
            at => format!("{at} ({})", due(f)),
        },
    );
    line("fixed:", cell(f, "fixedAt"));
    line("accepted until:", cell(f, "acceptedUntil"));
    line("decided by:", cell(f, "decidedBy"));
    line("decision:", cell(f, "decisionReason"));
    line("rated by:", cell(f, "ratedBy"));
    line("rating reason:", cell(f, "ratingReason"));
    line("scanners:", cell(f, "scanners"));
    if let Some(details) = f.get("details").and_then(Value::as_str) {
        outln!("details:\n{details}");
    }
    if let Some(history) = f.get("history").and_then(Value::as_array)
        && !history.is_empty()
    {
        outln!("history:");
        for h in history {
            outln!(
                "  {}  {}  {}  {}",
                cell(h, "at"),
                cell(h, "actor"),
                cell(h, "change"),
                cell(h, "detail")
            );
        }
    }
}

/// A mean in seconds as the server sends it, to whole seconds for display.
#[expect(
    clippy::cast_possible_truncation,
    reason = "a mean time to fix, in seconds, is far inside i64; `as` saturates beyond"
)]
fn whole_seconds(secs: f64) -> i64 {
    secs.round() as i64
}
