//! Audit export sinks against real destinations: rotating JSONL files, and a real rsyslogd
//! over TCP and TLS that goes down and comes back.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use warden_audit::AuditEvent;
use warden_testkit::{Backend, Rsyslog, TestServer, TlsFiles};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn add_users(server: &TestServer, prefix: &str, n: usize) {
    for i in 0..n {
        let out = server.admin(&["user", "add", &format!("{prefix}{i}")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Parses sink output lines into events, checking each is the event's exact canonical form.
/// Checkpoints (`{"size": N, "note": …}`), which sinks also receive, are not events.
fn events(lines: &[String]) -> Vec<AuditEvent> {
    lines
        .iter()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).map_or(true, |v| v.get("note").is_none())
        })
        .map(|l| {
            let e: AuditEvent =
                serde_json::from_str(l).unwrap_or_else(|err| panic!("not an event ({err}): {l}"));
            assert_eq!(&e.canonical(), l, "lines are canonical events");
            e
        })
        .collect()
}

/// Writes a collector's PEM files into `dir`.
fn tls_files(dir: &Path, ca: &str, cert: &str, key: &str) -> TlsFiles {
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.ca, ca).unwrap();
    std::fs::write(&files.cert, cert).unwrap();
    std::fs::write(&files.key, key).unwrap();
    files
}

/// A TLS syslog sink for the collector on `port`, trusting `ca`.
fn tls_sink(port: u16, ca: &Path) -> String {
    format!(
        "[[audit.sink]]\nkind = \"syslog\"\nname = \"siem-tls\"\naddress = \"127.0.0.1:{port}\"\ntls = true\n\
         ca_file = \"{}\"\nserver_name = \"localhost\"\n",
        ca.display()
    )
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn jsonl_lines(dir: &Path) -> (usize, Vec<String>) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let lines = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    (files.len(), lines)
}

/// These tests count events from the first start (the three CAs and the mTLS listener's
/// certificate); without the starter policy set, activating it adds no fifth event.
fn no_starter(config: &str) -> String {
    format!("{config}[policy]\nstarter = false\n")
}

#[tokio::test]
async fn jsonl_files_rotate_and_resume_after_a_crash_without_gaps_or_repeats() {
    for backend in Backend::ALL {
        let out = tempfile::tempdir().unwrap();
        let config = format!(
            "[[audit.sink]]\nkind = \"jsonl\"\nname = \"files\"\ndir = \"{}\"\nmax_bytes = 1500\n",
            out.path().display()
        );
        let mut server = TestServer::start(bin(), backend, &no_starter(&config)).await;
        add_users(&server, "a", 8);
        // Four events come first: the three CAs made at first start and the certificate of
        // the mutual-TLS listener (issued again at every start).
        wait_for("12 events in files", || {
            jsonl_lines(out.path()).1.len() >= 12
        })
        .await;
        let (files, lines) = jsonl_lines(out.path());
        assert!(
            files >= 2,
            "{backend:?}: expected rotation, got {files} file(s)"
        );
        let seqs: Vec<u64> = events(&lines).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=12).collect::<Vec<_>>());

        server.crash_and_restart();
        add_users(&server, "b", 4);
        wait_for("17 events in files", || {
            jsonl_lines(out.path()).1.len() >= 17
        })
        .await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let seqs: Vec<u64> = events(&jsonl_lines(out.path()).1)
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=17).collect::<Vec<_>>(), "{backend:?}");
    }
}

#[tokio::test]
async fn syslog_catches_up_after_the_collector_was_down_and_never_blocks_writers() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Rsyslog::start(dir.path(), None);
    let config = format!(
        "[[audit.sink]]\nkind = \"syslog\"\nname = \"siem\"\naddress = \"127.0.0.1:{}\"\n",
        collector.port
    );
    let server = TestServer::start(bin(), Backend::Sqlite, &no_starter(&config)).await;
    add_users(&server, "s", 5);
    wait_for("9 messages", || collector.messages().len() >= 9).await;
    let first: Vec<u64> = events(&collector.messages())
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(first, (1..=9).collect::<Vec<_>>());

    collector.stop();
    let started = Instant::now();
    add_users(&server, "t", 5);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "writers were held up by a dead sink"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, _, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains("warden_audit_sink_errors_total{sink=\"siem\"}"),
        "{metrics}"
    );

    collector.restart();
    wait_for("all 14 events after the outage", || {
        let seqs: BTreeSet<u64> = events(&collector.messages())
            .iter()
            .map(|e| e.seq)
            .collect();
        (1..=14).all(|s| seqs.contains(&s))
    })
    .await;
    // The collector also holds signed checkpoints of the events it has: a copy outside the
    // database that proves a later truncation.
    wait_for("a checkpoint", || {
        collector.messages().iter().any(|m| {
            serde_json::from_str::<serde_json::Value>(m).is_ok_and(|v| {
                v["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("localhost/audit"))
            })
        })
    })
    .await;
}

#[tokio::test]
async fn syslog_over_tls_checks_the_collector_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Warden test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let files = tls_files(dir.path(), &ca.pem(), &cert.pem(), &key.serialize_pem());
    let collector = Rsyslog::start(dir.path(), Some(files.clone()));

    let config = tls_sink(collector.port, &files.ca);
    let server = TestServer::start(bin(), Backend::Sqlite, &no_starter(&config)).await;
    add_users(&server, "u", 3);
    // Four startup events (the CAs and the mTLS listener's certificate), then the users.
    wait_for("7 messages over TLS", || collector.messages().len() >= 7).await;
    let targets: Vec<String> = events(&collector.messages())
        .into_iter()
        .filter(|e| e.action == "user.create")
        .map(|e| e.target)
        .collect();
    assert_eq!(targets, ["user:u0", "user:u1", "user:u2"]);

    // A collector whose certificate the CA did not sign gets nothing.
    let other_dir = tempfile::tempdir().unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    let other_files = tls_files(
        other_dir.path(),
        &other.pem(),
        &other.pem(),
        &other_key.serialize_pem(),
    );
    let impostor = Rsyslog::start(other_dir.path(), Some(other_files));
    let config = tls_sink(impostor.port, &files.ca);
    let server = TestServer::start(bin(), Backend::Sqlite, &no_starter(&config)).await;
    add_users(&server, "v", 2);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(impostor.messages().is_empty());
    assert!(
        server.log().contains("TLS handshake with 127.0.0.1"),
        "{}",
        server.log()
    );
}

#[test]
fn bad_sink_configuration_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    let data = dir.path().join("data");
    let cases = [
        (
            "[[audit.sink]]\nkind = \"syslog\"\nname = \"x\"\naddress = \"nowhere\"\n",
            "invalid address `nowhere` for audit sink `x`: use HOST:PORT",
        ),
        (
            "[[audit.sink]]\nkind = \"syslog\"\nname = \"x\"\naddress = \"127.0.0.1:1\"\ntls = true\n",
            "audit sink `x` uses TLS and needs `ca_file`",
        ),
        (
            "[[audit.sink]]\nkind = \"jsonl\"\nname = \"a\"\ndir = \"/tmp/a\"\n[[audit.sink]]\nkind = \"jsonl\"\nname = \"a\"\ndir = \"/tmp/b\"\n",
            "two audit sinks are named `a`",
        ),
        (
            "[[audit.sink]]\nkind = \"webhook\"\nname = \"w\"\nurl = \"https://hooks.example/x\"\nformat = \"teams\"\n",
            "audit sink `w`: unknown webhook format `teams`: use json or slack",
        ),
        (
            "[[audit.sink]]\nkind = \"webhook\"\nname = \"w\"\nurl = \"ftp://hooks.example/x\"\n",
            "audit sink `w`: invalid webhook URL: use http:// or https://",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&config, text).unwrap();
        let out = warden_testkit::run_cli(
            bin(),
            &[
                "server",
                "--config",
                config.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
        );
        assert!(!out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            format!("error: {expected}")
        );
    }
    std::fs::write(&config, "[[audit.sink]]\nkind = \"kafka\"\nname = \"k\"\n").unwrap();
    let out = warden_testkit::run_cli(
        bin(),
        &[
            "server",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "error: config file {} line 2: key `audit.sink[0].kind`: unknown variant `kafka`, expected one of `jsonl`, `syslog`, `webhook`, `otlp`",
            config.display()
        )
    );
}

#[tokio::test]
async fn otlp_logs_reach_a_receiver_that_decodes_them_with_the_official_schema() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = warden_testkit::OtlpReceiver::start(dir.path());
    let config = format!(
        "[[audit.sink]]\nkind = \"otlp\"\nname = \"otel\"\nendpoint = \"http://127.0.0.1:{}/v1/logs\"\n",
        receiver.port
    );
    let server = TestServer::start(bin(), Backend::Sqlite, &no_starter(&config)).await;
    add_users(&server, "o", 3);
    assert!(!server.admin(&["user", "add", "o0"]).status.success());
    wait_for("8 OTLP records", || receiver.records().len() >= 8).await;
    // The first four are the CAs made at first start and the mTLS listener's certificate.
    let records: Vec<_> = receiver.records().into_iter().skip(4).collect();
    let first = &records[0];
    assert_eq!(first["resource"]["service.name"], "warden");
    assert_eq!(first["scope"], "warden.audit");
    assert_eq!(first["event_name"], "user.create");
    assert_eq!(first["attributes"]["warden.audit.seq"], 5);
    assert_eq!(first["attributes"]["warden.audit.target"], "user:o0");
    assert_eq!(first["severity"], "INFO");
    let body: AuditEvent = serde_json::from_str(first["body"].as_str().unwrap()).unwrap();
    assert_eq!(body.seq, 5);
    assert_eq!(
        u64::try_from(body.time).unwrap() * 1_000_000,
        first["time"].as_u64().unwrap()
    );
    assert_eq!(records[3]["attributes"]["warden.audit.outcome"], "failure");
}
