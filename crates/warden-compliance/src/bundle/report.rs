//! The bundle's report for people: one printable HTML page with each control, each test's
//! verdict and a chart of its population and exceptions over the period, and the exceptions.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use warden_model::Timestamp;

use super::Manifest;
use crate::report::TestResult;
use crate::report::human;
use crate::test_id::TestId;

/// Exceptions listed per test in the page; the CSV holds them all.
const SHOWN: usize = 200;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#111}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{text-align:left;padding:.25em .5em;border-bottom:1px solid #eee;vertical-align:top}\
td.n{text-align:right;white-space:nowrap}time{white-space:nowrap}.pass{color:#1a7f37}.fail{color:#b42318;font-weight:600}.none{color:#666}\
svg{display:block;margin:.25em 0}@media print{h2{break-before:auto}section{break-inside:avoid}}";

fn time(ms: i64) -> String {
    Timestamp::from_millis(ms).rfc3339_millis()
}

/// A bar per stretch of the period: the population in grey, exceptions in red, the red at
/// least two pixels tall when there is one, however large the population.
fn chart(result: &TestResult) -> Markup {
    const BARS: usize = 52;
    let days: Vec<(i64, (u64, u64))> = result.days.iter().map(|(d, c)| (*d, *c)).collect();
    if days.is_empty() {
        return html! { p.none { "Nothing to test in the period." } };
    }
    let stretch = days.len().div_ceil(BARS);
    let bars: Vec<(u64, u64)> = days
        .chunks(stretch)
        .map(|c| c.iter().fold((0, 0), |a, (_, (p, e))| (a.0 + p, a.1 + e)))
        .collect();
    let most = bars.iter().map(|b| b.0).max().unwrap_or(1).max(1);
    let (height, width) = (60u64, 10u64);
    let scale = |v: u64, floor: u64| {
        if v == 0 {
            0
        } else {
            (v * height / most).max(floor)
        }
    };
    let mut svg = String::new();
    for (i, (population, exceptions)) in bars.iter().enumerate() {
        let x = i as u64 * (width + 2);
        let h = scale(*population, 1);
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"{width}\" height=\"{h}\" fill=\"#c8ccd2\"/>",
            height - h
        ));
        let e = scale(*exceptions, 2);
        if e > 0 {
            svg.push_str(&format!(
                "<rect x=\"{x}\" y=\"{}\" width=\"{width}\" height=\"{e}\" fill=\"#b42318\"/>",
                height - e
            ));
        }
    }
    let total = bars.len() as u64 * (width + 2);
    html! {
        svg width=(total) height=(height) viewBox=(format!("0 0 {total} {height}")) role="img"
            aria-label=(format!("{}: {} tested, {} exceptions, by stretches of {} day(s)", result.id, result.population, result.exception_count, stretch)) {
            (PreEscaped(svg))
        }
    }
}

fn verdict(r: &TestResult) -> Markup {
    if r.passed() {
        html! { span.pass { "pass" } }
    } else {
        html! { span.fail { "FAIL" } }
    }
}

/// The page.
pub(crate) fn html(manifest: &Manifest, results: &[TestResult]) -> String {
    let catalog = manifest.framework.catalog();
    let result = |id: &TestId| results.iter().find(|r| r.id == *id);
    let from = time(manifest.period.from().as_millis());
    let to = time(manifest.period.to().as_millis());
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (catalog.title) ", " (from) " to " (to) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (catalog.title) }
                p {
                    "Automated tests over the audit log of " code { (manifest.origin) }
                    " from " time { (from) } " to " time { (to) } " (catalog " (catalog.version) ")."
                    " Recompute every result offline with " code { "warden compliance verify BUNDLE --key KEY" } "."
                }
                h2 { "Controls" }
                table {
                    tr { th { "Control" } th { "Tests" } th { "Not evidenced by Warden" } }
                    @for c in &catalog.controls {
                        tr {
                            td { strong { (c.id) } br; (c.title) }
                            td {
                                @if c.tests.is_empty() { span.none { "none" } }
                                @for t in &c.tests {
                                    @if let Some(r) = result(t) { code { (t) } " " (verdict(r)) br; }
                                }
                            }
                            td { (c.not_evidenced) }
                        }
                    }
                }
                @for r in results {
                    section {
                        h2 { code { (r.id) } " " (verdict(r)) }
                        p { (r.id.title()) "." }
                        p {
                            (r.population) " tested, " (r.exception_count)
                            @if r.exception_count == 1 { " exception" } @else { " exceptions" }
                            @if r.pending > 0 { ", " (r.pending) " pending at the end of the period" }
                            ". Population: " code { "population/" (r.id) ".csv" } "."
                        }
                        (chart(r))
                        @if !r.exceptions.is_empty() {
                            table {
                                tr { th { "When" } th { "What" } th { "Exception" } th { "Events" } }
                                @for e in r.exceptions.iter().take(SHOWN) {
                                    tr {
                                        td { time { (time(e.time)) } }
                                        td { (e.subject) }
                                        td {
                                            (e.exception.as_deref().unwrap_or(""))
                                            @if let Some(m) = e.measure { " (" (human(m)) ")" }
                                        }
                                        td.n { @for s in &e.events { "#" (s) " " } }
                                    }
                                }
                            }
                            @if r.exceptions.len() > SHOWN {
                                p.none { (r.exceptions.len() - SHOWN) " more in the CSV." }
                            }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}
