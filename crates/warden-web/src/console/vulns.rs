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
    /// One state, or every unresolved one (open, in triage, waiting for a fix) when absent.
    state: Option<String>,
    /// Only findings past their SLA.
    overdue: Option<String>,
    /// Advisory, title or package text.
    q: Option<String>,
    /// `number`, `due` or `severity`.
    sort: Option<String>,
    /// The page after this cursor.
    after: Option<String>,
}

/// The orders offered, as the API names them, with their labels.
const SORTS: [(&str, &str); 3] = [
    ("number", "oldest first"),
    ("due", "soonest due first"),
    ("severity", "most severe first"),
];

pub(crate) const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "informational"];

/// The states a finding can be in, as the API names them, with their labels.
const STATES: [(&str, &str); 6] = [
    ("open", "open"),
    ("triage", "in triage"),
    ("no_fix", "waiting for a fix"),
    ("accepted", "accepted"),
    ("false_positive", "false positive"),
    ("fixed", "fixed"),
];

/// Findings a page.
const PAGE: u32 = 50;

/// The table's total is counted up to this many; past it the page says "more than".
const COUNT_UP_TO: u32 = 10_000;
/// The same for a text search. A text common enough to match more is counted text by text,
/// each of its findings read: counting 1,000 of them took 2–7 ms on PostgreSQL at a million
/// findings, 10,000 took 16–33 ms.
const SEARCH_COUNT_UP_TO: u32 = 1_000;

/// A count with thousands separated: 10,000.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn given(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// `GET /console/vulns[?asset=&severity=&state=&overdue=1&q=&sort=&after=]`: the figures and
/// charts, then the findings that match, a page at a time, filtered by the server.
pub(crate) async fn dashboard(
    State(app): State<Web>,
    Query(filter): Query<Filter>,
    parts: Parts,
) -> Response {
    let asset = given(filter.asset.as_ref());
    let severity = given(filter.severity.as_ref());
    let state = given(filter.state.as_ref());
    let overdue = given(filter.overdue.as_ref()).is_some();
    let search = given(filter.q.as_ref());
    let sort = given(filter.sort.as_ref());
    let states: Vec<&str> = match state {
        Some(s) => vec![s],
        None => vec!["open", "triage", "no_fix"],
    };
    // The figures and charts are the server's kept ones (a million findings are not
    // counted per view); the table is read live, its total counted up to a bound.
    let q = "query($asset: String, $scoped: Boolean!, $severity: String, $states: [String!]!, $overdue: Boolean!, $text: String, $sort: String, $after: String, $first: Int!, $bound: Int!) {
      figures: vulnFigures(asset: $asset) { computedAt upToDate
        stats { open { severity count } triage noFix overdue accepted compliance dueFixed dueFixedOnTime }
        burndown { at open overdue }
        assets @skip(if: $scoped) { name tier } }
      all: vulnFigures @include(if: $scoped) { assets { name tier } }
      list: vulnFindings(asset: $asset, severity: $severity, states: $states, overdue: $overdue, text: $text, sort: $sort, first: $first, after: $after, countUpTo: $bound) { total totalCapped next
        findings { id asset advisory title package severity state dueAt secondsRemaining overdue } }
    }";
    let vars = json!({ "asset": asset, "scoped": asset.is_some(), "bound": if search.is_some() { SEARCH_COUNT_UP_TO } else { COUNT_UP_TO }, "severity": severity, "states": states, "overdue": overdue, "text": search, "sort": sort,
        "after": given(filter.after.as_ref()), "first": PAGE });
    let (v, data) = match open(&app, parts, Section::Vulns, q, vars).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let empty = Vec::new();
    let figures = &data["figures"];
    let stats = &figures["stats"];
    let open = stats["open"].as_array().unwrap_or(&empty);
    let assets = if asset.is_some() {
        &data["all"]["assets"]
    } else {
        &figures["assets"]
    };
    let list = data["list"]["findings"].as_array().unwrap_or(&empty);
    let total = data["list"]["total"].as_u64().unwrap_or(0);
    let counted = if data["list"]["totalCapped"].as_bool() == Some(true) {
        format!("More than {} findings", grouped(total))
    } else {
        super::count(total, "finding", "findings")
    };
    let next = data["list"]["next"].as_str().map(|after| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("asset", asset),
            ("severity", severity),
            ("state", state),
            ("q", search),
            ("sort", sort),
        ] {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
        if overdue {
            query.append_pair("overdue", "1");
        }
        query.append_pair("after", after);
        format!("/console/vulns?{}", query.finish())
    });
    let body = html! {
        form.filters method="get" action="/console/vulns" {
            label for="asset" { "Asset" }
            select #asset name="asset" {
                option value="" { "all" }
                @for a in assets.as_array().unwrap_or(&empty) {
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
            label for="state" { "State" }
            select #state name="state" {
                option value="" { "unresolved" }
                @for (s, label) in STATES { option value=(s) selected[state == Some(s)] { (label) } }
            }
            " "
            label { input #overdue type="checkbox" name="overdue" value="1" checked[overdue]; " overdue only" }
            " "
            label for="q" { "Text" }
            input #q type="search" name="q" value=(search.unwrap_or("")) maxlength="200" size="18" placeholder="CVE-2024-…, openssl";
            " "
            label for="sort" { "Order" }
            select #sort name="sort" {
                @for (s, label) in SORTS { option value=(s) selected[sort == Some(s)] { (label) } }
            }
            " "
            button type="submit" { "Show" }
        }
        @if figures.is_null() {
            p.muted #figures-as-of { "No figures for this asset yet." }
        } @else {
            p.muted #figures-as-of {
                "Figures as of " (when(&figures["computedAt"]))
                @if figures["upToDate"].as_bool() == Some(false) { "; findings changed since, and are counted at the next pass (within a minute)" }
                "."
            }
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
                (burndown(figures["burndown"].as_array().unwrap_or(&empty)))
            }
        }
        section aria-labelledby="findings-h" {
            h2 #findings-h { (counted)
                @if overdue { ", overdue, most overdue first" } @else { ", " (SORTS.iter().find(|(s, _)| Some(*s) == sort).map_or("oldest first", |(_, label)| label)) } }
            @if list.is_empty() { p.muted { "No finding matches." } } @else {
                div.scroll { table #findings {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Asset" } th scope="col" { "Severity" } th scope="col" { "State" } th scope="col" { "Advisory" }
                        th scope="col" { "Title" } th scope="col" { "Package" } th scope="col" { "Due" } th scope="col" { "SLA" } } }
                    tbody { @for f in list {
                        tr {
                            td { a href={ "/console/vulns/" (text(&f["id"])) } { (text(&f["id"])) } }
                            td { (text(&f["asset"])) }
                            td { span class={ "sev-" (text(&f["severity"])) } { (text(&f["severity"])) } }
                            td { (state_label(&text(&f["state"]))) }
                            td { code { (text(&f["advisory"])) } }
                            td { (text(&f["title"])) }
                            td { (text(&f["package"])) }
                            td { @if f["dueAt"].is_null() { "—" } @else { (when(&f["dueAt"])) } }
                            @if f["overdue"].as_bool() == Some(true) {
                                td.overdue { "late by " (late(&f["secondsRemaining"])) }
                            } @else if f["secondsRemaining"].is_null() {
                                td { "—" }
                            } @else {
                                td { (late(&f["secondsRemaining"])) " left" }
                            }
                        }
                    } }
                } }
                @if let Some(next) = &next { p { a #next rel="next" href=(next) { "Next " (PAGE) " →" } } }
            }
        }
    };
    v.ok(Section::Vulns, "Vulnerabilities", body)
}

/// A state's label, as the filter names it.
pub(crate) fn state_label(state: &str) -> String {
    STATES
        .iter()
        .find(|(s, _)| *s == state)
        .map_or(state, |(_, label)| label)
        .to_owned()
}

fn late(remaining: &Value) -> String {
    let s = remaining.as_i64().unwrap_or(0).unsigned_abs();
    super::spoken(std::time::Duration::from_secs(s))
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
    use super::{bar_width, grouped};

    #[test]
    fn one_critical_among_hundreds_still_shows() {
        assert_eq!(bar_width(1, 700), 4);
        assert_eq!(bar_width(0, 700), 0);
        assert_eq!(bar_width(700, 700), 280);
        assert_eq!(bar_width(350, 700), 140);
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(10_000), "10,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
