//! Console benchmark (issues 11 and 24): every page of the web console, rendered by the real
//! server (release build) for a signed-in admin over HTTP on loopback, with 10,000 users, 20
//! groups of 500, a review of 500 items and 20 pending access requests; and either 100,000
//! audit events, 2,000 findings and no host (`small`), or the scale (`full`):
//! 5,000,000 audit events, 1,000,000 findings and 1,000 joined hosts. Prints p50/p99/max per
//! page on each backend.
//!
//! Run: `cargo bench -p warden --bench console -- [sqlite|postgres|both] [requests per page] [small|full]`
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use warden_model::{Actor, GroupName, Timestamp, UserName};
use warden_store::{AuditContext, DatabaseLocation, NewUser, Outcome, Store};
use warden_testkit::{Backend, TestServer, free_port, ms, percentile};

#[path = "support/findings.rs"]
mod findings;

const USERS: usize = 10_000;
const GROUPS: usize = 20;
const PER_GROUP: usize = 500;

/// How much is in the database besides the people.
#[derive(Debug, Clone, Copy)]
struct Scale {
    events: usize,
    findings: usize,
    hosts: usize,
}

const SMALL: Scale = Scale {
    events: 100_000,
    findings: 2_000,
    hosts: 0,
};

/// The scale issue 24 names.
const FULL: Scale = Scale {
    events: 5_000_000,
    findings: 1_000_000,
    hosts: 1_000,
};

fn ctx(n: usize) -> AuditContext {
    AuditContext {
        actor: Actor::Operator,
        request_id: format!("seed-{n}"),
        source: None,
        now: Timestamp::from_system(SystemTime::now()),
    }
}

/// Runs `work(i)` for `0..n` on 64 tasks at once (the store's group commit batches them).
async fn spread<F, Fut>(n: usize, work: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let work = Arc::new(work);
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let work = work.clone();
            tokio::spawn(async move {
                let mut i = t;
                while i < n {
                    work(i).await;
                    i += 64;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Users, groups, memberships and hosts through the store's audited path, then denials up
/// to `scale.events` events in all.
async fn seed(url: &str, scale: Scale) -> Duration {
    let store = Arc::new(
        Store::open(&DatabaseLocation::parse(url).unwrap())
            .await
            .unwrap(),
    );
    let started = Instant::now();
    let s = store.clone();
    spread(USERS, move |i| {
        let s = s.clone();
        async move {
            let new = NewUser {
                name: UserName::new(format!("user{i:05}")).unwrap(),
                display_name: Some(format!("User {i}")),
                email: Some(format!("user{i:05}@example.com")),
            };
            s.create_user(&ctx(i), new).await.unwrap();
        }
    })
    .await;
    for g in 0..GROUPS {
        store
            .create_group(
                &ctx(g),
                GroupName::new(format!("team-{g:02}")).unwrap(),
                format!("Team {g}"),
            )
            .await
            .unwrap();
    }
    let s = store.clone();
    spread(GROUPS * PER_GROUP, move |i| {
        let s = s.clone();
        async move {
            let group = GroupName::new(format!("team-{:02}", i / PER_GROUP)).unwrap();
            let user = UserName::new(format!("user{:05}", i % USERS)).unwrap();
            s.add_group_member(&ctx(i), &group, &user).await.unwrap();
        }
    })
    .await;
    seed_hosts(&store, scale.hosts).await;
    let done = usize::try_from(store.audit_size().await.unwrap()).unwrap();
    let s = store.clone();
    spread(scale.events.saturating_sub(done + 200), move |i| {
        let s = s.clone();
        async move {
            s.record(
                &ctx(i),
                "api.read_audit",
                "audit",
                json!({ "policy_version": 1 }),
                Outcome::Denied,
                Some("policy v1: no policy permits `read_audit` (default deny)"),
            )
            .await
            .unwrap();
        }
    })
    .await;
    started.elapsed()
}

/// Joins `n` hosts through the store's audited path (a join token each, then the join), as
/// agents would.
async fn seed_hosts(store: &Arc<Store>, n: usize) {
    let s = store.clone();
    spread(n, move |i| {
        let s = s.clone();
        async move {
            let id = format!("bench{i:05}");
            let token = warden_store::NewJoinToken {
                id: id.clone(),
                secret_hash: "00".repeat(32),
                host: format!("host-{i:04}"),
                labels: [("team".to_owned(), format!("team-{:02}", i % GROUPS))]
                    .into_iter()
                    .collect(),
                addresses: Vec::new(),
                expires_at: Timestamp::from_system(SystemTime::now() + Duration::from_secs(3600)),
            };
            s.create_join_token(&ctx(i), &token).await.unwrap();
            s.join_host(&ctx(i), &id, "127.0.0.1:22", |_| true)
                .await
                .unwrap();
        }
    })
    .await;
}

fn trivy_report(n: usize) -> String {
    const SEVERITIES: [&str; 5] = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"];
    let vulns: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "VulnerabilityID": format!("CVE-2025-{i:06}"),
                "PkgName": format!("lib{}", i % 500),
                "PkgIdentifier": { "PURL": format!("pkg:deb/debian/lib{}@1.{}", i % 500, i % 7) },
                "InstalledVersion": format!("1.{}", i % 7),
                "Title": format!("lib{}: heap overflow in parser {i}", i % 500),
                "Severity": SEVERITIES[i % 5],
            })
        })
        .collect();
    json!({ "SchemaVersion": 2, "ArtifactName": "app", "ArtifactType": "container_image",
        "Results": [{ "Target": "app (debian 12)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": vulns }] })
    .to_string()
}

/// The server's configuration. SLAs of a second: every imported finding is overdue when the
/// dashboard is read. With WARDEN_BENCH_LOG=DIR (`traced`) the server logs its timers' passes
/// too, and its log is kept there (`server-sqlite.log`): a slow answer can be set beside what
/// the server was doing.
fn config(base: &str, traced: bool) -> String {
    let level = if traced {
        "[log]\nlevel = \"info,warden_runtime=debug,warden_vuln_store=debug\"\n"
    } else {
        ""
    };
    format!(
        "public_url = \"{base}\"\n{level}[limits]\nper_source_rps = 0\nper_token_rps = 0\n[vuln.sla.default]\ncritical = \"1s\"\nhigh = \"1s\"\nmedium = \"1s\"\n"
    )
}
/// The pages measured, in order: every console page, with the filters people use on the
/// large ones.
fn pages(review: &str, cursor: &str, finding: &Value) -> [String; 36] {
    [
        "/console".to_owned(),
        "/console/approvals".to_owned(),
        "/console/reviews".to_owned(),
        format!("/console/reviews/{review}"),
        "/console/sessions".to_owned(),
        "/console/sessions?q=deploy".to_owned(),
        "/console/audit".to_owned(),
        "/console/audit?outcome=success".to_owned(),
        "/console/audit?action=group.add_member&actor=operator".to_owned(),
        "/console/audit?before=50000".to_owned(),
        "/console/audit?verify=12345".to_owned(),
        "/console/people".to_owned(),
        format!("/console/people?after={cursor}"),
        "/console/groups".to_owned(),
        "/console/hosts".to_owned(),
        "/console/policy".to_owned(),
        "/console/policy?principal=user%3Auser00001&action=ssh&resource=api%3Ausers".to_owned(),
        "/console/vulns".to_owned(),
        "/console/vulns?severity=high".to_owned(),
        "/console/vulns?sort=severity".to_owned(),
        "/console/vulns?sort=due&state=open".to_owned(),
        "/console/vulns?q=mod42%3A&asset=service-01".to_owned(),
        // The last asset imported, alone and with a rare text; a rare text on every asset;
        // a text every finding has.
        "/console/vulns?asset=service-09".to_owned(),
        "/console/vulns?q=mod42%3A&asset=service-09".to_owned(),
        "/console/vulns?q=mod42%3A".to_owned(),
        "/console/vulns?q=prototype".to_owned(),
        // A text one finding in 27 has (3,700 distinct texts), on every asset and on the last.
        "/console/vulns?q=mod4".to_owned(),
        "/console/vulns?q=mod4&asset=service-09".to_owned(),
        format!("/console/vulns/{finding}"),
        "/console/groups/team-00".to_owned(),
        "/console/people/invite".to_owned(),
        "/console/hosts/join".to_owned(),
        "/console/reviews/new".to_owned(),
        "/console/policy/edit?file=ssh.cedar".to_owned(),
        "/console/policy?from=1&to=1".to_owned(),
        "/console/settings".to_owned(),
    ]
}

async fn measure(backend: Backend, requests: usize, scale: Scale) {
    let bin = Path::new(env!("CARGO_BIN_EXE_warden"));
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let keep_log = std::env::var_os("WARDEN_BENCH_LOG").map(std::path::PathBuf::from);
    let config = config(&base, keep_log.is_some());
    let server = TestServer::start_on(bin, backend, &config, port).await;
    let seeded = seed(&server.database_url(), scale).await;
    let admin = server.token("ci", "admin", None);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("trivy.json");
    // The findings beyond the first report's 2,000 come through the store's import path.
    let imported = scale.findings.min(2_000);
    let more = findings::seed(&server.database_url(), scale.findings - imported).await;
    // PostgreSQL plans from table statistics, which autovacuum gathers some time after a bulk
    // load. Measured before that, a page can be planned as if the tables were empty (the
    // audit log filtered by action and actor took 410 ms instead of under 10): gather them now,
    // as the server's steady state would have them.
    if backend == Backend::Postgres {
        let store = Store::open(&DatabaseLocation::parse(&server.database_url()).unwrap())
            .await
            .unwrap();
        sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();
    }
    std::fs::write(&report, trivy_report(imported)).unwrap();
    let out = server.remote(
        &admin,
        &["vuln", "import", report.to_str().unwrap(), "--asset", "app"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The person reading: an admin signed in with a passkey.
    let (browser, _, _) = server.enroll_soft_passkey(&base, "boss").await;
    assert!(server.admin(&["group", "add", "admins"]).status.success());
    assert!(
        server
            .admin(&["group", "add-member", "admins", "boss"])
            .status
            .success()
    );
    let (_, review) = server
        .graphql(
            Some(&admin),
            "mutation { createAccessReview(groups: [\"team-00\"], reviewer: \"boss\", due: \"7d\") { id } }",
            json!({}),
        )
        .await;
    let review = review["data"]["createAccessReview"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..20 {
        let name = format!("user{i:05}");
        let token = server.token(&format!("t{i}"), "member", Some(&name));
        let (_, r) = server
            .graphql(
                Some(&token),
                "mutation { requestAccess(group: \"team-19\", reason: \"INC-7: on call\", duration: \"4h\") { id } }",
                json!({}),
            )
            .await;
        assert!(r["errors"].is_null(), "{r}");
    }
    let (_, size) = server
        .graphql(Some(&admin), "{ auditCheckpoint { size } }", json!({}))
        .await;
    let (_, page) = server
        .graphql(
            Some(&admin),
            "{ users(first: 50, after: null) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let cursor = page["data"]["users"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, first) = server
        .graphql(
            Some(&admin),
            "{ vulnFindings(first: 1) { total findings { id } } }",
            json!({}),
        )
        .await;
    let finding = first["data"]["vulnFindings"]["findings"][0]["id"].clone();
    println!(
        "{backend:?}: seeded {USERS} users, {GROUPS} groups of {PER_GROUP}, {} hosts and denials in {:.1} s, \
         {} more findings in {:.1} s; the audit log holds {} events, {} live findings",
        scale.hosts,
        seeded.as_secs_f64(),
        scale.findings - imported,
        more.as_secs_f64(),
        size["data"]["auditCheckpoint"]["size"],
        first["data"]["vulnFindings"]["total"]
    );
    // The dashboard's figures are kept by the server's timer; a page read before its first
    // pass would measure the pass. Wait for figures that include the seeding.
    let seeded_at = Timestamp::from_system(SystemTime::now()).rfc3339_millis();
    let started = Instant::now();
    let kept = loop {
        let (_, kept) = server
            .graphql(
                Some(&admin),
                "{ vulnFigures { computedAt upToDate tookMs } }",
                json!({}),
            )
            .await;
        let kept = kept["data"]["vulnFigures"].clone();
        let after_seeding = kept["computedAt"]
            .as_str()
            .is_some_and(|at| at > seeded_at.as_str());
        if after_seeding || started.elapsed() > Duration::from_secs(600) {
            break kept;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    println!(
        "kept vulnerability figures: a pass over every finding took {} ms (up to date: {})",
        kept["tookMs"], kept["upToDate"]
    );
    let pages = pages(&review, &cursor, &finding);
    println!(
        "{:<58} {:>8} {:>8} {:>8} {:>9}",
        "page", "p50 ms", "p99 ms", "max ms", "KiB"
    );
    for path in &pages {
        let url = format!("{base}{path}");
        let mut times = Vec::with_capacity(requests);
        let mut bytes = 0;
        for i in 0..requests + 10 {
            let started = Instant::now();
            let response = browser.get(&url).send().await.unwrap();
            let status = response.status();
            let body = response.bytes().await.unwrap();
            let took = started.elapsed();
            assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
            bytes = body.len();
            if i >= 10 {
                times.push(took);
            }
        }
        times.sort();
        println!(
            "{:<58} {:>8.2} {:>8.2} {:>8.2} {:>9.1}",
            path.get(..58).unwrap_or(path),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap()),
            bytes as f64 / 1024.0
        );
    }
    let (_, kept) = server
        .graphql(
            Some(&admin),
            "{ vulnFigures { computedAt upToDate tookMs } }",
            json!({}),
        )
        .await;
    println!(
        "kept vulnerability figures after the run: as of {}, the pass took {} ms (up to date: {})",
        kept["data"]["vulnFigures"]["computedAt"],
        kept["data"]["vulnFigures"]["tookMs"],
        kept["data"]["vulnFigures"]["upToDate"]
    );
    selection_export(&server, &admin).await;
    if let Some(dir) = keep_log {
        let file = dir.join(format!("server-{backend:?}.log").to_lowercase());
        std::fs::write(&file, server.log()).unwrap();
        println!("the server's log is in {}", file.display());
    }
}

/// A selection export of the seeding's memberships (`action=group.add_member`, 10,000 events
/// among all), each with its inclusion proof: how long the server takes to write it, read to
/// the end.
async fn selection_export(server: &TestServer, admin: &str) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let response = client
        .get(format!(
            "{}/v1/audit/export?action=group.add_member",
            server.url
        ))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let took = started.elapsed();
    // A header, a checkpoint, then one line per event.
    let events = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
        - 2;
    println!(
        "a selection export (action=group.add_member): {events} events with their proofs, {:.1} MB, in {:.2} s",
        body.len() as f64 / 1e6,
        took.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let which = args.first().map_or("both", String::as_str);
    let requests = args
        .get(1)
        .map_or(200, |n| n.parse().expect("requests per page"));
    let backends: &[Backend] = match which {
        "sqlite" => &[Backend::Sqlite],
        "postgres" => &[Backend::Postgres],
        _ => &[Backend::Sqlite, Backend::Postgres],
    };
    let scale = match args.get(2).map(String::as_str) {
        Some("full") => FULL,
        _ => SMALL,
    };
    println!("scale: {scale:?}");
    for backend in backends {
        measure(*backend, requests, scale).await;
    }
}
