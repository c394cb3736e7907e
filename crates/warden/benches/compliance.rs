//! Compliance benchmark over the real server (issue 23): a log of N events shaped like a
//! company's (sign-ins with their passkey step, SSH sessions with certificates, host
//! certificates) recorded through the store's write path, then `warden compliance status`
//! (every test of both frameworks) and `warden compliance evidence` for the whole log, timed
//! end to end over HTTP against a release server, and the bundle's offline `verify`.
//!
//! Run: `cargo bench -p warden --bench compliance -- [sqlite|postgres|both] [events]`
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::indexing_slicing,
    reason = "a benchmark"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};
use warden_model::{Actor, Timestamp};
use warden_store::{AuditContext, DatabaseLocation, Outcome, Store};
use warden_testkit::{Backend, TestServer};

/// A year, in milliseconds.
const YEAR_MS: i64 = 365 * 24 * 3600 * 1000;

fn ctx(actor: Actor, n: usize, at: Timestamp) -> AuditContext {
    AuditContext {
        actor,
        request_id: format!("seed-{n}"),
        source: Some(format!("10.0.{}.{}", n % 200, n % 250)),
        now: at,
    }
}

/// One unit of the mix (7 events): a sign-in and its passkey step, an SSH session with its
/// certificate, a host certificate.
async fn unit(store: &Store, n: usize, at: Timestamp) {
    let person = || Actor::User {
        name: warden_model::UserName::new(format!("p{}", n % 1000)).unwrap(),
        token_id: format!("session:s{n}"),
        role: None,
    };
    let sid = format!("s{n}");
    let rows: [(Actor, &str, String, Value); 7] = [
        (
            Actor::Anonymous,
            "auth.login",
            format!("idp:okta:{}", n % 1000),
            json!({"method": "oidc:okta", "session": sid}),
        ),
        (
            person(),
            "auth.passkey",
            format!("passkey:c{}", n % 1000),
            json!({"session": sid}),
        ),
        (
            person(),
            "ssh.issue",
            format!("ssh-cert:{n}"),
            json!({"kind": "user", "key_id": format!("session:{sid}")}),
        ),
        (
            person(),
            "ssh.session.start",
            "host:db".into(),
            json!({"session": sid, "login": "deploy"}),
        ),
        (
            Actor::System,
            "ssh.session.end",
            "host:db".into(),
            json!({"session": sid, "principal": format!("user:p{}", n % 1000), "recordings": [], "recording_failures": []}),
        ),
        (Actor::System, "x509.issue", format!("x509:{n}"), json!({})),
        (
            person(),
            "api.read_audit",
            "audit".into(),
            json!({"policy_version": 1}),
        ),
    ];
    for (i, (actor, action, target, details)) in rows.into_iter().enumerate() {
        store
            .record(
                &ctx(actor, n * 7 + i, at),
                action,
                &target,
                details,
                Outcome::Success,
                None,
            )
            .await
            .unwrap();
    }
}

/// Writes `events` events through the store at `url`: at the time they are written, or with
/// `year`, spread evenly over the year before now (for a store no server has written to yet).
async fn seed(location: &DatabaseLocation, events: usize, year: bool) -> f64 {
    let store = Arc::new(Store::open(location).await.unwrap());
    store.migrate().await.unwrap();
    let started = Instant::now();
    let units = events / 7;
    let now = Timestamp::from_system(SystemTime::now()).as_millis();
    let step = YEAR_MS / i64::try_from(units.max(1)).unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n = t;
                while n < units {
                    let at = if year {
                        Timestamp::from_millis(now - YEAR_MS + i64::try_from(n).unwrap() * step)
                    } else {
                        Timestamp::from_system(SystemTime::now())
                    };
                    unit(&store, n, at).await;
                    n += 64;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

async fn measure(backend: Backend, events: usize) {
    let bin = Path::new(env!("CARGO_BIN_EXE_warden"));
    // Requests may take minutes here: a chosen period over millions of events reads them all.
    let config = "[limits]\nper_source_rps = 0\nper_token_rps = 0\nrequest_timeout = \"900s\"\n[audit]\ncheckpoint_interval = \"1s\"\n[compliance]\nmonitor_every = \"60s\"\n";
    // On SQLite the log is written before the server first starts, spread over the year
    // before now, so the default period (the last 90 days) is a quarter of it. On PostgreSQL
    // (a database the harness makes as it starts) the events are written at the time, after.
    let (server, seeded) = if matches!(backend, Backend::Sqlite) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let location = DatabaseLocation::in_data_dir(&dir.path().join("data"));
        let seeded = seed(&location, events, true).await;
        let began = Instant::now();
        let server = TestServer::start_prepared(bin, dir, config).await;
        println!(
            "{backend:?}: first start on the seeded log (every event checked: none is under a checkpoint yet): {:.1} s",
            began.elapsed().as_secs_f64()
        );
        (server, seeded)
    } else {
        let server = TestServer::start(bin, backend, config).await;
        let location = DatabaseLocation::parse(&server.database_url()).unwrap();
        let seeded = seed(&location, events, false).await;
        (server, seeded)
    };
    // Let the signer cover the log.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let auditor = server.token("audrey", "auditor", None);
    let size = server.audit("ssh.session.start").len();
    println!(
        "{backend:?}: {events} events seeded in {seeded:.1} s ({size} sessions shown by the first page of a query)"
    );
    let seeded_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    // The server builds its kept evaluator of the default period from the log as it starts
    // (the first fresh status waits for it); each later one reads only what was written since (here 700 events, a
    // hundred of the mix, written between rounds as a busy company would).
    let location = DatabaseLocation::parse(&server.database_url()).unwrap();
    let mut rounds = Vec::new();
    for round in 0..6 {
        if round > 0 {
            seed(&location, 700, false).await;
        }
        let began = Instant::now();
        let out = server.remote(&auditor, &["compliance", "status", "--json", "--fresh"]);
        let took = began.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
        let sessions = reports[0]["controls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["tests"].as_array().unwrap())
            .find(|t| t["id"] == "ssh-recorded")
            .map(|t| t["population"].clone())
            .unwrap_or(Value::Null);
        println!(
            "{backend:?} round {round}: `warden compliance status --fresh` (both frameworks, every test, computed now) over {events} events{}: {took:.2} s (ssh-recorded population {sessions})",
            if round == 0 {
                ", the first (it waits for the kept evaluator the server builds as it starts)"
            } else {
                ", 700 more written since the round before"
            }
        );
        if round > 0 {
            rounds.push(took);
        }
    }
    rounds.sort_by(f64::total_cmp);
    println!(
        "{backend:?}: `warden compliance status --fresh` kept up to date, rounds 1-5: median {:.3} s, max {:.3} s",
        rounds[2], rounds[4]
    );
    // The whole log, fresh: every event read (on SQLite a year; the default period above
    // reads its last 121 days and the rare kinds before).
    if matches!(backend, Backend::Sqlite) {
        let from = humantime::format_rfc3339_seconds(
            SystemTime::now() - std::time::Duration::from_secs(364 * 24 * 3600),
        )
        .to_string();
        let began = Instant::now();
        let out = server.remote(
            &auditor,
            &["compliance", "status", "--json", "--fresh", "--from", &from],
        );
        let took = began.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "{backend:?}: `warden compliance status --fresh --from` (364 days: every event read) over {events} events: {took:.2} s ({:.0} events/s)",
            events as f64 / took
        );
    }
    // What people run: status without a period, answered from the monitor's latest run
    // (every 60 s here, hourly by default). Wait for a run that began after the seeding.
    let waited = Instant::now();
    loop {
        let out = server.remote(&auditor, &["compliance", "status", "--json"]);
        let reports: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let fresh_enough = reports[0]["source"] == "monitor"
            && reports[0]["computedAt"]
                .as_str()
                .is_some_and(|t| t > seeded_at.as_str());
        if fresh_enough {
            break;
        }
        assert!(
            waited.elapsed().as_secs() < 600,
            "no monitor run after the seeding: {reports}"
        );
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    let mut times: Vec<f64> = (0..20)
        .map(|_| {
            let began = Instant::now();
            let out = server.remote(&auditor, &["compliance", "status", "--json"]);
            assert!(out.status.success());
            began.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{backend:?}: `warden compliance status` (the monitor's latest run) over {events} events, 20 runs of the CLI: median {:.3} s, max {:.3} s",
        times[10], times[19]
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("soc2.zip");
    let began = Instant::now();
    let out = server.remote(
        &auditor,
        &[
            "compliance",
            "evidence",
            "--framework",
            "soc2",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    let took = began.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::metadata(&file).unwrap().len();
    println!(
        "{backend:?}: `warden compliance evidence --framework soc2` over the default period: {took:.2} s, {:.1} MB",
        bytes as f64 / 1e6
    );
    let key = String::from_utf8(server.remote(&auditor, &["audit", "key"]).stdout).unwrap();
    let began = Instant::now();
    let out = std::process::Command::new(bin)
        .args([
            "compliance",
            "verify",
            file.to_str().unwrap(),
            "--key",
            key.trim(),
        ])
        .output()
        .expect("warden runs");
    let took = began.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{backend:?}: `warden compliance verify` offline: {took:.2} s");
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let which = args.first().map_or("sqlite", String::as_str);
    let events = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(350_000);
    for backend in Backend::ALL {
        let wanted = match which {
            "both" => true,
            "postgres" => matches!(backend, Backend::Postgres),
            _ => matches!(backend, Backend::Sqlite),
        };
        if wanted {
            measure(backend, events).await;
        }
    }
}
