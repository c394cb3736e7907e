//! The vulnerabilities dashboard: open findings by severity, overdue, the SLA burn-down over
//! time (charts as inline SVG made here: no script, no chart library), the overdue list and a
//! finding's detail.
#![expect(
    clippy::indexing_slicing,
    reason = "reading serde_json::Value by key or position gives Null when absent; it never panics"
)]

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Parts, Section, open, text, when};
use crate::Web;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filter {
    asset: Option<String>,
    severity: Option<String>,
    /// Show this finding.
    finding: Option<i64>,
}

const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "informational"];

/// `GET /console/vulns[?asset=&severity=&finding=]`.
pub(crate) async fn dashboard(
    State(app): State<Web>,
    Query(filter): Query<Filter>,
    parts: Parts,
) -> Response {
    let asset = filter
        .asset
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let severity = filter
        .severity
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let q = "query($asset: String, $severity: String, $finding: Int!, $one: Boolean!) {
      vulnAssets { name tier open overdue }
      vulnStats(asset: $asset) { open { severity count } triage noFix overdue accepted compliance dueFixed dueFixedOnTime }
      vulnBurndown(asset: $asset) { at open overdue }
      overdue: vulnFindings(asset: $asset, severity: $severity, overdue: true, first: 50) { total
        findings { id asset advisory title package severity dueAt secondsRemaining } }
      finding: vulnFinding(id: $finding) @include(if: $one) { id asset advisory aliases package location fixedIn noFix fixSeenAt title details
        source severity state firstSeen dueAt overdue scanners decidedBy decisionReason }
    }";
    let vars = json!({ "asset": asset, "severity": severity,
        "finding": filter.finding.unwrap_or(0), "one": filter.finding.is_some() });
    let (v, data) = match open(&app, parts, Section::Vulns, q, vars).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let empty = Vec::new();
    let stats = &data["vulnStats"];
    let open = stats["open"].as_array().unwrap_or(&empty);
    let overdue = data["overdue"]["findings"].as_array().unwrap_or(&empty);
    let body = html! {
        form.filters method="get" action="/console/vulns" {
            label for="asset" { "Asset" }
            select #asset name="asset" {
                option value="" { "all" }
                @for a in data["vulnAssets"].as_array().unwrap_or(&empty) {
                    @let name = text(&a["name"]);
                    option value=(name) selected[asset == Some(name.as_str())] { (name) " (" (text(&a["tier"])) ")" }
                }
            }
            " "
            label for="severity" { "At least" }
            select #severity name="severity" {
                option value="" { "any severity" }
                @for s in SEVERITIES { option value=(s) selected[severity == Some(s)] { (s) } }
            }
            " "
            button type="submit" { "Show" }
        }
        @if let Some(f) = data.get("finding").filter(|f| !f.is_null()) { (finding(f)) }
        div.cards {
            @for s in open {
                div.card { span class={ "sev-" (text(&s["severity"])) } { (text(&s["severity"])) } strong { (text(&s["count"])) } }
            }
            div.card { "in triage" strong { (text(&stats["triage"])) } }
            div.card { "waiting for a fix" strong { (text(&stats["noFix"])) } }
            div.card { span.overdue { "overdue" } strong #overdue-count { (text(&stats["overdue"])) } }
            div.card { "accepted" strong { (text(&stats["accepted"])) } }
            div.card { "fixed on time (30 d)" strong { @if let Some(c) = stats["compliance"].as_f64() { (format!("{:.0} %", c * 100.0)) } @else { "—" } } }
        }
        div.charts {
            (bars(open))
            (burndown(data["vulnBurndown"].as_array().unwrap_or(&empty)))
        }
        section aria-labelledby="overdue-h" {
            h2 #overdue-h { "Overdue (" (text(&data["overdue"]["total"])) "), most overdue first" }
            @if overdue.is_empty() { p.muted { "Nothing is past its SLA." } } @else {
                div.scroll { table #overdue {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Asset" } th scope="col" { "Severity" } th scope="col" { "Advisory" }
                        th scope="col" { "Title" } th scope="col" { "Package" } th scope="col" { "Due" } th scope="col" { "Late by" } } }
                    tbody { @for f in overdue {
                        tr {
                            td { a href={ "/console/vulns?finding=" (text(&f["id"])) } { (text(&f["id"])) } }
                            td { (text(&f["asset"])) }
                            td { span class={ "sev-" (text(&f["severity"])) } { (text(&f["severity"])) } }
                            td { code { (text(&f["advisory"])) } }
                            td { (text(&f["title"])) }
                            td { (text(&f["package"])) }
                            td { (when(&f["dueAt"])) }
                            td.overdue { (late(&f["secondsRemaining"])) }
                        }
                    } }
                } }
            }
        }
    };
    v.ok(Section::Vulns, "Vulnerabilities", body)
}

fn late(remaining: &Value) -> String {
    let s = remaining.as_i64().unwrap_or(0).unsigned_abs();
    super::spoken(std::time::Duration::from_secs(s))
}

fn finding(f: &Value) -> Markup {
    let empty = Vec::new();
    html! {
        section #finding aria-labelledby="finding-h" {
            h2 #finding-h { "Finding " (text(&f["id"])) ": " (text(&f["title"])) }
            dl {
                dt { "Advisory" } dd { code { (text(&f["advisory"])) } @for a in f["aliases"].as_array().unwrap_or(&empty) { " " code { (text(a)) } } }
                dt { "Asset" } dd { (text(&f["asset"])) }
                dt { "Where" } dd { (text(&f["package"])) (text(&f["location"])) @if let Some(fix) = f["fixedIn"].as_str() { " (fixed in " (fix) ")" } }
                dt { "Severity" } dd { span class={ "sev-" (text(&f["severity"])) } { (text(&f["severity"])) } }
                dt { "State" } dd { (text(&f["state"])) @if f["overdue"] == true { " " span.overdue { "overdue" } } }
                dt { "First seen" } dd { (when(&f["firstSeen"])) }
                dt { "Due" } dd {
                    @if f["noFix"] == true { "none until a fix is published" } @else { (when(&f["dueAt"])) }
                    @if !f["fixSeenAt"].is_null() { br; span.muted { "clock from the fix, seen " (when(&f["fixSeenAt"])) } }
                }
                dt { "Seen by" } dd { @for s in f["scanners"].as_array().unwrap_or(&empty) { (text(s)) " " } }
            }
            @if let Some(d) = f["details"].as_str() { p { (d) } }
        }
    }
}

/// A bar's width for `count` of `max`, in 280 units: proportional, but never thinner than
/// 4 for a count above zero, so one Critical among hundreds of Lows still shows.
fn bar_width(count: i64, max: i64) -> i64 {
    if count <= 0 {
        0
    } else {
        (count * 280 / max.max(1)).clamp(4, 280)
    }
}

/// Open findings by severity as horizontal bars.
fn bars(open: &[Value]) -> Markup {
    let max = open
        .iter()
        .filter_map(|s| s["count"].as_i64())
        .max()
        .unwrap_or(0)
        .max(1);
    let summary: Vec<String> = open
        .iter()
        .map(|s| format!("{} {}", text(&s["count"]), text(&s["severity"])))
        .collect();
    html! {
        figure.chart {
            figcaption { "Open findings by severity" }
            svg #chart-severity viewBox="0 0 420 150" role="img" aria-label={ "Open findings: " (summary.join(", ")) } {
                @for (i, s) in open.iter().enumerate() {
                    @let y = 8 + i * 28;
                    @let count = s["count"].as_i64().unwrap_or(0);
                    @let width = bar_width(count, max);
                    text x="0" y=(y + 14) { (text(&s["severity"])) }
                    rect class={ "bar-" (text(&s["severity"])) } x="100" y=(y) width=(width) height="18" {}
                    text x=(104 + width) y=(y + 14) { (count) }
                }
            }
        }
    }
}

/// Open and overdue findings over the period, as two lines.
fn burndown(points: &[Value]) -> Markup {
    let (w, h, left, bottom) = (420i64, 170i64, 36i64, 20i64);
    let max = points
        .iter()
        .filter_map(|p| p["open"].as_i64())
        .max()
        .unwrap_or(0)
        .max(1);
    let n = i64::try_from(points.len()).unwrap_or(1).max(2) - 1;
    let line = |key: &str| -> String {
        points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let i = i64::try_from(i).unwrap_or(0);
                let x = left + i * (w - left - 4) / n;
                let y = h - bottom - p[key].as_i64().unwrap_or(0) * (h - bottom - 8) / max;
                format!("{x},{y}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let first = points.first().map(|p| text(&p["at"])).unwrap_or_default();
    let last = points.last();
    html! {
        figure.chart {
            figcaption { "SLA burn-down, last 30 days: " span.legend-open { "open" } " and " span.legend-overdue { "overdue (dashed)" } }
            svg #chart-burndown viewBox={ "0 0 " (w) " " (h) } role="img"
                aria-label={ "Open findings went from " (points.first().map_or(0, |p| p["open"].as_i64().unwrap_or(0)))
                    " to " (last.map_or(0, |p| p["open"].as_i64().unwrap_or(0))) "; overdue now "
                    (last.map_or(0, |p| p["overdue"].as_i64().unwrap_or(0))) } {
                line.axis x1=(left) y1=(h - bottom) x2=(w) y2=(h - bottom) {}
                line.axis x1=(left) y1="4" x2=(left) y2=(h - bottom) {}
                text x="0" y="14" { (max) }
                text x="0" y=(h - bottom) { "0" }
                text x=(left) y=(h - 4) { (first.get(..10).unwrap_or("")) }
                text x=(w - 70) y=(h - 4) { "now" }
                polyline.line-open points=(line("open")) {}
                polyline.line-overdue points=(line("overdue")) {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bar_width;

    #[test]
    fn one_critical_among_hundreds_still_shows() {
        assert_eq!(bar_width(1, 700), 4);
        assert_eq!(bar_width(0, 700), 0);
        assert_eq!(bar_width(700, 700), 280);
        assert_eq!(bar_width(350, 700), 140);
    }
}
