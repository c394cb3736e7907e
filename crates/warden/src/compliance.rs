//! `warden compliance`: SOC 2 and HIPAA controls and their tests over a period.

use std::path::Path;

use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use warden_audit::VerifierKey;
use warden_compliance::bundle;

use crate::cli::{ComplianceArgs, ComplianceCommand};
use crate::output::{cell, json as print_json, table};

const TEST_FIELDS: &str =
    "id title passed population exceptionCount pending days { day population exceptions }";
const ITEM_FIELDS: &str = "subject time events measureMs exception";

pub async fn run(args: ComplianceArgs) -> anyhow::Result<()> {
    match args.command {
        ComplianceCommand::Verify { file, key } => verify(&file, &key, args.json),
        ComplianceCommand::Evidence {
            framework,
            from,
            to,
            output,
        } => {
            let client = crate::pki::client_for(args.server.as_deref(), args.data_dir.as_deref())?;
            let mut query = vec![format!("framework={}", encode(&framework))];
            for (name, value) in [("from", from), ("to", to)] {
                if let Some(v) = value {
                    query.push(format!("{name}={}", encode(&v)));
                }
            }
            let body = client
                .get(&format!("/v1/compliance/evidence?{}", query.join("&")))
                .await?;
            std::fs::write(&output, &body)
                .with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!(
                "wrote the {framework} evidence bundle ({} bytes) to {}",
                body.len(),
                output.display()
            );
            Ok(())
        }
        ComplianceCommand::Status {
            framework,
            from,
            to,
            test,
            fresh,
        } => {
            let client = crate::pki::client_for(args.server.as_deref(), args.data_dir.as_deref())?;
            let period = Asked { from, to, fresh };
            status(&client, framework, period, test, args.json).await
        }
    }
}

/// A query-string value, percent-encoded.
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn verify(file: &Path, key: &str, json_out: bool) -> anyhow::Result<()> {
    let key: VerifierKey = key.parse()?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let verified = bundle::from_zip(&bytes)
        .and_then(|files| bundle::verify(&files, &key))
        .map_err(|e| anyhow!("verification failed: {e}"))?;
    let m = &verified.manifest;
    let failing: Vec<String> = verified
        .results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{} ({})", r.id, r.exception_count))
        .collect();
    if json_out {
        print_json(&json!({
            "ok": true,
            "framework": m.framework.as_str(),
            "catalog_version": m.catalog_version,
            "from": m.period.from().rfc3339_millis(),
            "to": m.period.to().rfc3339_millis(),
            "events": verified.events,
            "context_events": verified.context,
            "checkpoints": verified.checkpoints,
            "tests": verified.results.iter().map(|r| json!({
                "id": r.id.as_str(), "passed": r.passed(), "population": r.population,
                "exceptions": r.exception_count, "pending": r.pending,
            })).collect::<Vec<_>>(),
        }));
    } else {
        outln!(
            "ok: {} evidence from {} to {}: {} events under {} signed checkpoint(s) and {} earlier event(s) proven; {} tests recomputed, {}",
            m.framework,
            m.period.from().rfc3339_millis(),
            m.period.to().rfc3339_millis(),
            verified.events,
            verified.checkpoints,
            verified.context,
            verified.results.len(),
            if failing.is_empty() {
                "all pass".to_owned()
            } else {
                format!("failing: {}", failing.join(", "))
            }
        );
    }
    Ok(())
}

/// The period `status` asks for, and whether to compute it now.
struct Asked {
    from: Option<String>,
    to: Option<String>,
    fresh: bool,
}

async fn status(
    client: &crate::client::AdminClient,
    framework: Option<String>,
    period: Asked,
    test: Option<String>,
    json_out: bool,
) -> anyhow::Result<()> {
    let Asked { from, to, .. } = &period;
    if let Some(test) = test {
        let q = format!(
            "query($id: String!, $f: String, $t: String) {{ complianceTest(id: $id, from: $f, to: $t) {{ {TEST_FIELDS} exceptions {{ {ITEM_FIELDS} }} items {{ {ITEM_FIELDS} }} }} }}"
        );
        let data = client
            .graphql(&q, json!({ "id": test, "f": from, "t": to }))
            .await?;
        let result = data.get("complianceTest").cloned().unwrap_or(Value::Null);
        if json_out {
            print_json(&result);
            return Ok(());
        }
        outln!("{}: {}", cell(&result, "id"), cell(&result, "title"));
        outln!("{}", summary(&result));
        let rows: Vec<Vec<String>> = items(&result, "exceptions")
            .iter()
            .map(|i| {
                vec![
                    cell(i, "time"),
                    cell(i, "subject"),
                    cell(i, "exception"),
                    events(i),
                ]
            })
            .collect();
        if !rows.is_empty() {
            outln!();
            table(&["TIME", "SUBJECT", "EXCEPTION", "EVENTS"], &rows);
        }
        return Ok(());
    }
    let q = format!(
        "query($fw: String, $f: String, $t: String, $fresh: Boolean!) {{ complianceControls(framework: $fw, from: $f, to: $t, fresh: $fresh) {{ framework title catalogVersion from to computedAt source controls {{ id title status notEvidenced tests {{ {TEST_FIELDS} }} }} }} }}"
    );
    let data = client
        .graphql(
            &q,
            json!({ "fw": framework, "f": period.from, "t": period.to, "fresh": period.fresh }),
        )
        .await?;
    let reports = data
        .get("complianceControls")
        .cloned()
        .unwrap_or(Value::Null);
    if json_out {
        print_json(&reports);
        return Ok(());
    }
    for (n, report) in items(&reports, "").iter().enumerate() {
        if n > 0 {
            outln!();
        }
        print_report(report);
    }
    Ok(())
}

/// The elements of an array field, or of the value itself when `field` is empty.
fn items<'v>(value: &'v Value, field: &str) -> &'v [Value] {
    let v = if field.is_empty() {
        Some(value)
    } else {
        value.get(field)
    };
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn count(value: &Value, field: &str) -> u64 {
    value.get(field).and_then(Value::as_u64).unwrap_or(0)
}

fn summary(test: &Value) -> String {
    let population = count(test, "population");
    let exceptions = count(test, "exceptionCount");
    let pending = count(test, "pending");
    let verdict = if exceptions == 0 { "pass" } else { "FAIL" };
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut line = format!(
        "{verdict}: {} tested, {}",
        population,
        plural(exceptions, "exception", "exceptions")
    );
    if pending > 0 {
        line.push_str(&format!(", {pending} pending"));
    }
    line
}

fn events(item: &Value) -> String {
    items(item, "events")
        .iter()
        .filter_map(Value::as_u64)
        .map(|s| format!("#{s}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Exceptions per stretch of the period, as a bar per stretch (at most 12).
fn trend(test: &Value) -> String {
    let days = items(test, "days");
    if days.is_empty() {
        return "-".to_owned();
    }
    let stretch = days.len().div_ceil(12);
    let counts: Vec<u64> = days
        .chunks(stretch)
        .map(|c| c.iter().map(|d| count(d, "exceptions")).sum())
        .collect();
    let most = counts.iter().copied().max().unwrap_or(0);
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    counts
        .iter()
        .map(|&c| {
            if c == 0 || most == 0 {
                '·'
            } else {
                // One exception among many still shows as a bar.
                let step = (c * 7).div_ceil(most).clamp(1, 7);
                BARS.get(usize::try_from(step).unwrap_or(7))
                    .copied()
                    .unwrap_or('█')
            }
        })
        .collect()
}

fn print_report(report: &Value) {
    outln!(
        "{} (catalog {}), {} to {}",
        cell(report, "title"),
        cell(report, "catalogVersion"),
        cell(report, "from"),
        cell(report, "to")
    );
    if cell(report, "source") == "monitor" {
        outln!(
            "as of {}: the compliance monitor's latest run (--fresh computes now)",
            cell(report, "computedAt")
        );
    }
    outln!();
    let controls = items(report, "controls");
    let rows: Vec<Vec<String>> = controls
        .iter()
        .map(|c| {
            let failing: Vec<String> = items(c, "tests")
                .iter()
                .filter(|t| t.get("passed") == Some(&Value::Bool(false)))
                .map(|t| format!("{} ({})", cell(t, "id"), count(t, "exceptionCount")))
                .collect();
            vec![
                cell(c, "id"),
                cell(c, "status"),
                cell(c, "title"),
                if failing.is_empty() {
                    "-".to_owned()
                } else {
                    failing.join(", ")
                },
            ]
        })
        .collect();
    table(&["CONTROL", "STATUS", "TITLE", "FAILING TESTS"], &rows);
    let mut seen: Vec<&Value> = Vec::new();
    for t in controls.iter().flat_map(|c| items(c, "tests")) {
        if !seen.iter().any(|s| s.get("id") == t.get("id")) {
            seen.push(t);
        }
    }
    let rows: Vec<Vec<String>> = seen
        .iter()
        .map(|t| {
            vec![
                cell(t, "id"),
                if count(t, "exceptionCount") > 0 {
                    "FAIL".to_owned()
                } else if count(t, "population") == 0 {
                    // Nothing to test in the period: no exception, and no evidence either.
                    "n/a".to_owned()
                } else {
                    "pass".to_owned()
                },
                count(t, "population").to_string(),
                count(t, "exceptionCount").to_string(),
                count(t, "pending").to_string(),
                trend(t),
            ]
        })
        .collect();
    outln!();
    table(
        &["TEST", "RESULT", "TESTED", "EXCEPTIONS", "PENDING", "TREND"],
        &rows,
    );
}
