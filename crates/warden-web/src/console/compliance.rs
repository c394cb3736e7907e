//! The compliance page: a framework's controls and their tests over a period, each test's
//! exceptions and the population behind it, with a chart of each test over the period
//! (inline SVG made here). For readers of the audit log.
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
    framework: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// Drill down into this test.
    test: Option<String>,
}

/// Population rows shown in a drill-down; the bundle's CSV holds them all.
const SAMPLE: i32 = 100;

fn given(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// `GET /console/compliance[?framework=&from=&to=&test=]`.
pub(crate) async fn status(
    State(app): State<Web>,
    Query(filter): Query<Filter>,
    parts: Parts,
) -> Response {
    let framework = given(filter.framework.as_ref()).unwrap_or("soc2");
    let (from, to) = (given(filter.from.as_ref()), given(filter.to.as_ref()));
    let test = given(filter.test.as_ref());
    let q = "query($fw: String, $from: String, $to: String, $test: String!, $one: Boolean!, $first: Int!) {
      complianceControls(framework: $fw, from: $from, to: $to) { framework title catalogVersion from to
        controls { id title text status notEvidenced tests { id title passed population exceptionCount pending
          days { day population exceptions } } } }
      complianceTest(id: $test, from: $from, to: $to, first: $first) @include(if: $one) { id title passed population
        exceptionCount pending days { day population exceptions }
        exceptions { subject time events measureMs exception } items { subject time events measureMs exception } }
    }";
    let vars = json!({ "fw": framework, "from": from, "to": to, "test": test.unwrap_or(""),
        "one": test.is_some(), "first": SAMPLE });
    let (v, data) = match open(&app, parts, Section::Compliance, q, vars).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let empty = Vec::new();
    let report = &data["complianceControls"][0];
    let controls = report["controls"].as_array().unwrap_or(&empty);
    let mut tests: Vec<&Value> = Vec::new();
    for t in controls
        .iter()
        .flat_map(|c| c["tests"].as_array().unwrap_or(&empty))
    {
        if !tests.iter().any(|s| s["id"] == t["id"]) {
            tests.push(t);
        }
    }
    let link = |id: &Value| {
        let mut href = format!(
            "/console/compliance?framework={framework}&test={}",
            text(id)
        );
        for (k, val) in [("from", from), ("to", to)] {
            if let Some(val) = val {
                href.push_str(&format!("&{k}={val}"));
            }
        }
        href
    };
    let body = html! {
        form.filters method="get" action="/console/compliance" {
            label for="framework" { "Framework" }
            select #framework name="framework" {
                @for (value, name) in [("soc2", "SOC 2"), ("hipaa", "HIPAA")] {
                    option value=(value) selected[framework == value] { (name) }
                }
            }
            " "
            label for="from" { "From" }
            input #from name="from" type="text" placeholder="90 days ago" value=(from.unwrap_or("")) size="22";
            " "
            label for="to" { "to" }
            input #to name="to" type="text" placeholder="now" value=(to.unwrap_or("")) size="22";
            " "
            button type="submit" { "Show" }
        }
        p.muted {
            (text(&report["title"])) ", catalog " (text(&report["catalogVersion"])) ": "
            (when(&report["from"])) " to " (when(&report["to"])) ". "
            "An auditor's copy: " code { "warden compliance evidence --framework " (framework) " -o bundle.zip" } "."
        }
        @if let Some(t) = data.get("complianceTest").filter(|t| !t.is_null()) { (drill(t)) }
        section aria-labelledby="controls-h" {
            h2 #controls-h { "Controls" }
            div.scroll { table #controls {
                thead { tr { th scope="col" { "Control" } th scope="col" { "Status" } th scope="col" { "Tests" } th scope="col" { "Not evidenced by Warden" } } }
                tbody { @for c in controls {
                    tr {
                        td { strong { (text(&c["id"])) } br; (text(&c["title"])) }
                        td { (status_of(&text(&c["status"]))) }
                        td { @for t in c["tests"].as_array().unwrap_or(&empty) {
                            a href=(link(&t["id"])) { (text(&t["id"])) } " " (verdict(t)) br;
                        } }
                        td.muted { (text(&c["notEvidenced"])) }
                    }
                } }
            } }
        }
        section aria-labelledby="tests-h" {
            h2 #tests-h { "Tests" }
            div.scroll { table #tests {
                thead { tr { th scope="col" { "Test" } th scope="col" { "Result" } th scope="col" { "Tested" }
                    th scope="col" { "Exceptions" } th scope="col" { "Pending" } th scope="col" { "Over the period" } } }
                tbody { @for t in &tests {
                    tr {
                        td { a href=(link(&t["id"])) { code { (text(&t["id"])) } } br; span.muted { (text(&t["title"])) } }
                        td { (verdict(t)) }
                        td { (text(&t["population"])) }
                        td { (text(&t["exceptionCount"])) }
                        td { (text(&t["pending"])) }
                        td { (chart(t, 160, 28)) }
                    }
                } }
            } }
        }
    };
    v.ok(Section::Compliance, "Compliance", body)
}

fn status_of(status: &str) -> Markup {
    match status {
        "pass" => html! { span.status-pass { "pass" } },
        "fail" => html! { span.status-fail { "FAIL" } },
        other => html! { span.status-none { (other) } },
    }
}

fn verdict(t: &Value) -> Markup {
    if t["passed"].as_bool() == Some(true) {
        status_of("pass")
    } else {
        status_of("fail")
    }
}

/// The test's population per stretch of the period in grey, its exceptions in red (two
/// pixels at least, so one among thousands still shows).
fn chart(t: &Value, width: i64, height: i64) -> Markup {
    let empty = Vec::new();
    let days = t["days"].as_array().unwrap_or(&empty);
    let bars = 40usize;
    let stretch = days.len().div_ceil(bars).max(1);
    let sums: Vec<(i64, i64)> = days
        .chunks(stretch)
        .map(|c| {
            c.iter().fold((0, 0), |a, d| {
                (
                    a.0 + d["population"].as_i64().unwrap_or(0),
                    a.1 + d["exceptions"].as_i64().unwrap_or(0),
                )
            })
        })
        .collect();
    let most = sums.iter().map(|s| s.0).max().unwrap_or(0).max(1);
    let n = i64::try_from(sums.len()).unwrap_or(1).max(1);
    let w = (width / n).max(2);
    let scale = |v: i64, floor: i64| {
        if v == 0 {
            0
        } else {
            (v * height / most).max(floor)
        }
    };
    let label = format!(
        "{}: {} tested, {} exceptions",
        text(&t["id"]),
        text(&t["population"]),
        text(&t["exceptionCount"])
    );
    html! {
        svg.trend viewBox=(format!("0 0 {width} {height}")) width=(width) height=(height) role="img" aria-label=(label) {
            @for (i, (population, exceptions)) in sums.iter().enumerate() {
                @let x = i64::try_from(i).unwrap_or(0) * w;
                @let p = scale(*population, 1);
                @let e = scale(*exceptions, 2);
                rect.bar-population x=(x) y=(height - p) width=(w - 1) height=(p) {}
                @if e > 0 { rect.bar-exceptions x=(x) y=(height - e) width=(w - 1) height=(e) {} }
            }
        }
    }
}

fn item_rows(items: &[Value]) -> Markup {
    html! {
        @for i in items {
            tr {
                td { (when(&i["time"])) }
                td { (text(&i["subject"])) }
                td { @if i["exception"].is_null() { span.status-pass { "pass" } } @else { (text(&i["exception"])) } }
                td { @if let Some(ms) = i["measureMs"].as_i64() { (warden_compliance::human(ms)) } }
                td { @for s in i["events"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    a href={ "/console/audit?verify=" (text(s)) } { "#" (text(s)) } " "
                } }
            }
        }
    }
}

fn drill(t: &Value) -> Markup {
    let empty = Vec::new();
    let exceptions = t["exceptions"].as_array().unwrap_or(&empty);
    let items = t["items"].as_array().unwrap_or(&empty);
    html! {
        section #test aria-labelledby="test-h" {
            h2 #test-h { code { (text(&t["id"])) } " " (verdict(t)) }
            p { (text(&t["title"])) ". " (text(&t["population"])) " tested, " (super::count(t["exceptionCount"].as_u64().unwrap_or(0), "exception", "exceptions")) ", "
                (text(&t["pending"])) " pending at the end of the period." }
            figure.chart { figcaption { "Tested (grey) and exceptions (red) over the period" } (chart(t, 420, 90)) }
            h3 { "Exceptions" }
            @if exceptions.is_empty() { p.muted { "None." } } @else {
                div.scroll { table #exceptions {
                    thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Exception" } th scope="col" { "Measure" } th scope="col" { "Events" } } }
                    tbody { (item_rows(exceptions)) }
                } }
            }
            h3 { "Population (first " (items.len()) ")" }
            div.scroll { table #population {
                thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Result" } th scope="col" { "Measure" } th scope="col" { "Events" } } }
                tbody { (item_rows(items)) }
            } }
        }
    }
}
