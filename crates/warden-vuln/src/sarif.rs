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
//!
//! The rule is the result's `ruleId`, else its `rule.id`, else the id of the rule its
//! `ruleIndex` or `rule.index` points at (in the tool component `rule.toolComponent` names,
//! else the driver; `-1` is SARIF's "no index"). A result that names no rule that way
//! (gitleaks before 8 writes none) is still a finding, never dropped: its advisory is
//! `<driver>/sarif:<key>`, the key being the 64-bit FNV-1a hash of its message as 16 lowercase
//! hex digits (`text`, else `markdown`, else the message string `id`, trimmed; the empty text
//! when there is none, `cbf29ce484222325`). With the location in the identity, re-importing the
//! same file gives the same findings.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::document::read;
use crate::{ImportedFinding, ParseError, Severity, one_line, text_key};

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
    #[serde(default)]
    extensions: Vec<Extension>,
}

#[derive(Debug, Deserialize)]
struct Driver {
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

/// A plugin's rules (CodeQL query packs, SpotBugs plugins).
#[derive(Debug, Deserialize)]
struct Extension {
    name: Option<String>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    id: Option<String>,
    short_description: Option<Message>,
    #[serde(default)]
    properties: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct Message {
    text: Option<String>,
    markdown: Option<String>,
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    rule_id: Option<String>,
    rule_index: Option<i64>,
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
#[serde(rename_all = "camelCase")]
struct RuleReference {
    id: Option<String>,
    index: Option<i64>,
    tool_component: Option<ComponentReference>,
}

#[derive(Debug, Deserialize)]
struct ComponentReference {
    name: Option<String>,
    index: Option<i64>,
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
    for run in log.runs {
        let tool = &run.tool;
        for r in run.results {
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
            out.push(finding(tool, r));
        }
    }
    Ok(out)
}

/// A failing result as a finding of its rule at its place.
fn finding(tool: &Tool, r: SarifResult) -> ImportedFinding {
    let reference = r.rule.as_ref();
    let rules = component_rules(tool, reference);
    let indexed = r
        .rule_index
        .and_then(array_index)
        .or_else(|| reference?.index.and_then(array_index))
        .and_then(|i| rules.get(i));
    let id = named(r.rule_id.as_deref())
        .or_else(|| named(reference?.id.as_deref()))
        .or_else(|| named(indexed?.id.as_deref()));
    let rule = id.and_then(|id| {
        indexed
            .filter(|x| x.id.as_deref() == Some(id))
            .or_else(|| rules.iter().find(|x| x.id.as_deref() == Some(id)))
    });
    let message = r.message.as_ref();
    let advisory = match id {
        Some(id) => format!("{}/{id}", tool.driver.name),
        None => format!(
            "{}/sarif:{}",
            tool.driver.name,
            text_key(message_key(message))
        ),
    };
    let disclosed = rating(&r.properties).or_else(|| rule.and_then(|x| rating(&x.properties)));
    let title = message
        .and_then(|m| m.text.as_deref())
        .filter(|t| !t.trim().is_empty())
        .or_else(|| rule?.short_description.as_ref()?.text.as_deref())
        .or(id)
        .unwrap_or_default();
    let physical = r
        .locations
        .iter()
        .find_map(|l| l.physical_location.as_ref());
    let uri = physical
        .and_then(|p| p.artifact_location.as_ref()?.uri.as_deref())
        .map(|u| u.strip_prefix("file://").unwrap_or(u))
        .filter(|u| !u.is_empty());
    let line = physical.and_then(|p| p.region.as_ref()?.start_line);
    let location = match (uri, line) {
        (Some(u), Some(l)) => Some(format!("{u}:{l}")),
        (Some(u), None) => Some(u.to_owned()),
        _ => None,
    };
    // A result's own fingerprint, else GitHub's line hash, with the file: a moved line keeps
    // its identity. Other partial fingerprints (a whole file's hash, say) do not tell results
    // apart, so the location does.
    let fingerprint = r
        .fingerprints
        .iter()
        .next()
        .or_else(|| {
            r.partial_fingerprints
                .get_key_value("primaryLocationLineHash")
        })
        .map(|(k, v)| format!("{}:{k}={v}", uri.unwrap_or_default()));
    ImportedFinding {
        advisory,
        aliases: Vec::new(),
        package: None,
        location,
        fingerprint,
        fixed_in: None,
        no_fix: false,
        title: one_line(title),
        disclosed,
        cvss: None,
    }
}

/// The rules a result's rule index points into: those of the tool component its `rule` names
/// (an extension by index or name, or the driver by name), else the driver's. A component
/// that is not in the log has no rules.
fn component_rules<'a>(tool: &'a Tool, reference: Option<&RuleReference>) -> &'a [Rule] {
    let Some(component) = reference.and_then(|x| x.tool_component.as_ref()) else {
        return &tool.driver.rules;
    };
    let extension = match (component.index, component.name.as_deref()) {
        (Some(i), _) => array_index(i).and_then(|i| tool.extensions.get(i)),
        (None, Some(name)) if name == tool.driver.name => return &tool.driver.rules,
        (None, Some(name)) => tool
            .extensions
            .iter()
            .find(|e| e.name.as_deref() == Some(name)),
        (None, None) => return &tool.driver.rules,
    };
    extension.map(|e| e.rules.as_slice()).unwrap_or_default()
}

/// A SARIF array index; `-1` (SARIF's default) and other negatives are no index.
fn array_index(i: i64) -> Option<usize> {
    usize::try_from(i).ok()
}

/// A rule id as written, unless empty (gitleaks 8 writes `"ruleId": ""` for a rule without id).
fn named(id: Option<&str>) -> Option<&str> {
    id.filter(|id| !id.trim().is_empty())
}

/// The text a result without a rule is known by: its message's text, else its markdown, else
/// the id of its message string, trimmed.
fn message_key(message: Option<&Message>) -> &str {
    message
        .and_then(|m| {
            [&m.text, &m.markdown, &m.id]
                .into_iter()
                .find_map(|t| t.as_deref().map(str::trim).filter(|t| !t.is_empty()))
        })
        .unwrap_or_default()
}
