//! Vulnerability benchmark (issue 9), on SQLite and PostgreSQL:
//! - import: `warden vuln import` of a Trivy JSON report with 100,000 findings into a real
//!   server (read, upload, parse, identity, SLA clocks, one transaction with its audit event),
//!   then the same file again (all unchanged), then one with a tenth gone (fixed);
//! - overdue: the overdue query (`vulnFindings(overdue: true)`: the count and the first page
//!   of 100, most overdue first) over 1,000,000 findings, over HTTP, and the figures
//!   (`vulnStats`) and a gate over the same.
//!
//! Run: `cargo bench -p warden --bench vuln -- [findings] [total]`
#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "a benchmark")]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_testkit::{Backend, TestServer, ms, percentile};

#[path = "support/findings.rs"]
mod findings;

const SEVERITIES: [&str; 5] = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"];

/// A Trivy schema-2 report with `n` distinct findings over 10 targets, each with the fields
/// Trivy writes (title, description, CVSS, references). `skip` leaves out every finding whose
/// number is a multiple of it (0: none).
fn trivy_report(n: usize, skip: usize) -> String {
    let per = n.div_ceil(10);
    let results: Vec<Value> = (0..10)
        .map(|t| {
            let vulns: Vec<Value> = (t * per..((t + 1) * per).min(n))
                .filter(|i| skip == 0 || i % skip != 0)
                .map(|i| {
                    json!({
                        "VulnerabilityID": format!("CVE-2025-{i:06}"),
                        "PkgID": format!("lib{}@1.{}.{}", i % 5000, i % 7, i % 3),
                        "PkgName": format!("lib{}", i % 5000),
                        "PkgIdentifier": { "PURL": format!("pkg:deb/debian/lib{}@1.{}.{}?arch=amd64&distro=debian-12", i % 5000, i % 7, i % 3) },
                        "InstalledVersion": format!("1.{}.{}", i % 7, i % 3),
                        "FixedVersion": format!("1.{}.{}", i % 7, i % 3 + 1),
                        "Status": "fixed",
                        "SeveritySource": "nvd",
                        "PrimaryURL": format!("https://avd.aquasec.com/nvd/cve-2025-{i:06}"),
                        "Title": format!("lib{}: heap overflow in parser {i}", i % 5000),
                        "Description": "A crafted input makes the parser write past the end of a heap buffer, which may let a remote attacker crash the process or run code.",
                        "Severity": SEVERITIES[i % 5],
                        "CweIDs": ["CWE-787"],
                        "CVSS": { "nvd": { "V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H", "V3Score": 6.5 } },
                        "References": [format!("https://nvd.nist.gov/vuln/detail/CVE-2025-{i:06}"), "https://security-tracker.debian.org/tracker/"],
                        "PublishedDate": "2025-03-01T10:15:00Z",
                        "LastModifiedDate": "2025-04-01T10:15:00Z"
                    })
                })
                .collect();
            json!({ "Target": format!("registry.example.com/app{t}:1.0 (debian 12.5)"), "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": vulns })
        })
        .collect();
    json!({ "SchemaVersion": 2, "ArtifactName": "registry.example.com/app:1.0", "ArtifactType": "container_image", "Results": results }).to_string()
}

fn import(server: &TestServer, token: &str, file: &Path, asset: &str) -> (Duration, String) {
    let started = Instant::now();
    let out = server.remote(
        token,
        &["vuln", "import", file.to_str().unwrap(), "--asset", asset],
    );
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (took, String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn timed_graphql(
    server: &TestServer,
    token: &str,
    query: &str,
    rounds: usize,
) -> (Vec<Duration>, Value) {
    let mut times = Vec::with_capacity(rounds);
    let mut last = Value::Null;
    for _ in 0..rounds {
        let started = Instant::now();
        let (status, body) = server.graphql(Some(token), query, Value::Null).await;
        times.push(started.elapsed());
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        last = body;
    }
    times.sort();
    (times, last)
}

async fn measure(backend: Backend, n: usize, total: usize) {
    let bin = Path::new(env!("CARGO_BIN_EXE_warden"));
    let server = TestServer::start(
        bin,
        backend,
        "[limits]\nper_source_rps = 0\nper_token_rps = 0\n",
    )
    .await;
    let token = server.token("ci", "admin", None);
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("trivy-full.json");
    let fewer = dir.path().join("trivy-fewer.json");
    std::fs::write(&full, trivy_report(n, 0)).unwrap();
    std::fs::write(&fewer, trivy_report(n, 10)).unwrap();
    let size = std::fs::metadata(&full).unwrap().len();
    println!(
        "{backend:?}: Trivy report with {n} findings, {:.1} MB",
        size as f64 / 1e6
    );
    for (what, file) in [
        ("first import (all new)", &full),
        ("re-import (all unchanged)", &full),
        ("re-import, a tenth gone (fixed)", &fewer),
        ("re-import, the tenth back (reopened)", &full),
    ] {
        let (took, said) = import(&server, &token, file, "app");
        println!(
            "{backend:?}: {what}: {:.2} s ({:.0} findings/s)\n    {said}",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        );
    }

    let seeded = findings::seed(&server.database_url(), total - n).await;
    println!(
        "{backend:?}: seeded {} more findings in {:.1} s; {total} in all",
        total - n,
        seeded.as_secs_f64()
    );
    let queries = [
        (
            "overdue, count + first 100",
            "{ vulnFindings(overdue: true, first: 100) { total next findings { id advisory severity dueAt secondsRemaining asset package } } }",
        ),
        (
            "overdue critical+high, count + first 100",
            "{ vulnFindings(overdue: true, severity: \"high\", first: 100) { total findings { id dueAt } } }",
        ),
        (
            "overdue on one asset, count + first 100",
            "{ vulnFindings(overdue: true, asset: \"service-05\", first: 100) { total findings { id dueAt } } }",
        ),
        (
            "gate on one asset (overdue, high)",
            "{ vulnGate(asset: \"service-05\", failOn: [\"overdue\", \"high\"]) { pass reasons } }",
        ),
        (
            "stats over 30 days",
            "{ vulnStats(since: \"30d\") { overdue triage open { severity count } compliance } }",
        ),
    ];
    for round in ["just after the bulk load", "after VACUUM ANALYZE"] {
        if backend == Backend::Postgres && round.starts_with("after") {
            // What autovacuum does after a bulk insert: the visibility map lets counts read
            // the indexes alone.
            let out = std::process::Command::new("psql")
                .arg(server.database_url())
                .args(["-q", "-c", "VACUUM ANALYZE"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else if backend == Backend::Sqlite && round.starts_with("after") {
            continue;
        }
        for (what, query) in queries {
            let (times, last) = timed_graphql(&server, &token, query, 30).await;
            let total_found = last["data"]["vulnFindings"]["total"]
                .as_i64()
                .map_or_else(String::new, |t| format!(", {t} match"));
            println!(
                "{backend:?} ({round}): {what} over {total}: p50 {:.1} ms, p99 {:.1} ms{total_found}",
                ms(percentile(&times, 0.5)),
                ms(percentile(&times, 0.99))
            );
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(100_000);
    let total = args.get(1).copied().unwrap_or(1_000_000).max(n);
    for backend in Backend::ALL {
        measure(backend, n, total).await;
    }
}
