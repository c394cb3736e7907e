//! SARIF 2.1.0 (CodeQL, Semgrep, SpotBugs, ShellCheck, njsscan, …): each failing result becomes
//! a finding of its rule at its location. Suppressed results, results that are not failures
//! (`kind` pass, review, …) and results absent from the current run are left out.
//!
//! The disclosed rating is the rule's or the result's `security-severity` (a CVSS-like score,
//! GitHub's convention), else the tool's own severity word in the result's or rule's
//! properties (`issue_severity`, `severity`); else unrated. SARIF's `level` says how sure the
//! tool is that something is wrong, not how bad it would be, so it is never taken as a rating.
//!
//! Identity: the rule and the result's `fingerprints`, else its `primaryLocationLineHash`
//! partial fingerprint (both survive lines moving), else its location.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::format::read;
use crate::{ImportedFinding, ParseError, Severity, one_line};

#[derive(Debug, Deserialize)]
struct Log {
    version: String,
    runs: Vec<Run>,
}

#[derive(Debug, Deserialize)]
struct Run {
    tool: Tool,
    #[serde(default)]
    results: Vec<SarifResult>,
}

#[derive(Debug, Deserialize)]
struct Tool {
    driver: Driver,
}

#[derive(Debug, Deserialize)]
struct Driver {
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    id: String,
    short_description: Option<Message>,
    #[serde(default)]
    properties: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct Message {
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    rule_id: Option<String>,
    rule_index: Option<usize>,
    rule: Option<RuleReference>,
    kind: Option<String>,
    message: Option<Message>,
    #[serde(default)]
    locations: Vec<ResultLocation>,
    #[serde(default)]
    fingerprints: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    partial_fingerprints: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    suppressions: Vec<Suppression>,
    baseline_state: Option<String>,
    #[serde(default)]
    properties: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct RuleReference {
    id: Option<String>,
    index: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultLocation {
    physical_location: Option<PhysicalLocation>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: Option<ArtifactLocation>,
    region: Option<Region>,
}

#[derive(Debug, Deserialize)]
struct ArtifactLocation {
    uri: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Suppression {
    status: Option<String>,
}

/// A rating from SARIF properties: `security-severity` as a score, else a severity word.
fn rating(properties: &Map<String, Value>) -> Option<Severity> {
    if let Some(score) = properties.get("security-severity") {
        let score = match score {
            Value::String(s) => s.trim().parse::<f64>().ok(),
            Value::Number(n) => n.as_f64(),
            _ => None,
        };
        if let Some(score) = score.filter(|s| (0.0..=10.0).contains(s)) {
            return Some(Severity::from_score(score));
        }
    }
    ["issue_severity", "severity"]
        .iter()
        .filter_map(|k| properties.get(*k)?.as_str())
        .find_map(Severity::from_scanner)
}

/// The findings in a SARIF log.
pub fn parse(file: &str, text: &str) -> Result<Vec<ImportedFinding>, ParseError> {
    let log: Log = read(file, "a SARIF log", text)?;
    if log.version != "2.1.0" {
        return Err(ParseError(format!(
            "{file}: SARIF version `{}` is not supported: only 2.1.0",
            log.version.chars().take(20).collect::<String>()
        )));
    }
    let mut out = Vec::new();
    for (run_at, run) in log.runs.into_iter().enumerate() {
        let rules = &run.tool.driver.rules;
        for (at, r) in run.results.into_iter().enumerate() {
            let failing = r.kind.as_deref().is_none_or(|k| k == "fail");
            // A suppression without a status is in effect (SARIF 3.35.3).
            let suppressed = r
                .suppressions
                .iter()
                .any(|s| s.status.as_deref().is_none_or(|st| st == "accepted"));
            let absent = r.baseline_state.as_deref() == Some("absent");
            if !failing || suppressed || absent {
                continue;
            }
            let index = r.rule_index.or(r.rule.as_ref().and_then(|x| x.index));
            let rule = index.and_then(|i| rules.get(i));
            let id = r
                .rule_id
                .clone()
                .or_else(|| r.rule.as_ref().and_then(|x| x.id.clone()))
                .or_else(|| rule.map(|x| x.id.clone()))
                .ok_or_else(|| {
                    ParseError(format!(
                        "{file}: runs[{run_at}].results[{at}] names no rule (ruleId, rule or ruleIndex)"
                    ))
                })?;
            let rule = rule
                .filter(|x| x.id == id)
                .or_else(|| rules.iter().find(|x| x.id == id));
            let disclosed =
                rating(&r.properties).or_else(|| rule.and_then(|x| rating(&x.properties)));
            let title = r
                .message
                .as_ref()
                .and_then(|m| m.text.as_deref())
                .filter(|t| !t.trim().is_empty())
                .or_else(|| rule?.short_description.as_ref()?.text.as_deref())
                .unwrap_or(&id);
            let physical = r
                .locations
                .iter()
                .find_map(|l| l.physical_location.as_ref());
            let uri = physical
                .and_then(|p| p.artifact_location.as_ref()?.uri.as_deref())
                .map(|u| u.strip_prefix("file://").unwrap_or(u));
            let line = physical.and_then(|p| p.region.as_ref()?.start_line);
            let location = match (uri, line) {
                (Some(u), Some(l)) => Some(format!("{u}:{l}")),
                (Some(u), None) => Some(u.to_owned()),
                _ => None,
            };
            // A result's own fingerprint, else GitHub's line hash, with the file: a moved line
            // keeps its identity. Other partial fingerprints (a whole file's hash, say) do not
            // tell results apart, so the location does.
            let fingerprint = r
                .fingerprints
                .iter()
                .next()
                .or_else(|| {
                    r.partial_fingerprints
                        .get_key_value("primaryLocationLineHash")
                })
                .map(|(k, v)| format!("{}:{k}={v}", uri.unwrap_or_default()));
            out.push(ImportedFinding {
                advisory: format!("{}/{id}", run.tool.driver.name),
                aliases: Vec::new(),
                package: None,
                location,
                fingerprint,
                fixed_in: None,
                title: one_line(title),
                disclosed,
                cvss: None,
            });
        }
    }
    Ok(out)
}
