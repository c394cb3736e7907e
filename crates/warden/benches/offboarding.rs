//! Offboarding propagation benchmark (issue 8's first part): a person with a live SSH session
//! through the recording proxy is disabled (`disableUser`); measured from the call returning
//! to the session closed (the ssh client exited), and whether the KRL already lists their
//! certificate then (`ssh-keygen -Q`). N runs, each with a fresh person; p50, p90, p99, max.
//! Two setups: one process on SQLite, and PostgreSQL with the session held by a separate
//! `warden proxy` (the change crosses processes through LISTEN/NOTIFY).
//!
//! Run: `cargo bench -p warden --bench offboarding -- [runs]`
#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "a benchmark")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use warden_testkit::{
    Backend, LabOptions, SshLab, StandaloneProxy, TestServer, run_cli, ssh_keygen_ed25519,
    through_proxy_at,
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Whether `krl` revokes the certificate at `cert`.
fn revoked(krl: &[u8], dir: &Path, cert: &Path) -> bool {
    let path = dir.join("krl");
    std::fs::write(&path, krl).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(&path)
        .arg(cert)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("REVOKED")
}

/// One person: made, in ops, certified, in a session through `proxy`; then disabled.
/// Returns the time from the call returning to the session closed, and whether the KRL
/// revoked the certificate by then.
async fn run(
    server: &TestServer,
    proxy: &str,
    d: &Path,
    admin: &str,
    n: usize,
) -> (Duration, bool) {
    let name = format!("leaver{n}");
    let dir = d.join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(d.join("known_hosts"), dir.join("known_hosts")).unwrap();
    for args in [
        &["user", "add", &name][..],
        &["group", "add-member", "ops", &name],
    ] {
        assert!(server.admin(args).status.success());
    }
    let token = server.token(&format!("{name}-cli"), "member", Some(&name));
    let public = ssh_keygen_ed25519(&dir.join("id_ed25519"));
    let q = "mutation($k: String!) { issueSshUserCertificate(publicKey: $k, ttl: \"1h\", principals: [\"root\"]) { certificate } }";
    let (_, body) = server
        .graphql(Some(&token), q, json!({ "k": public }))
        .await;
    let cert = dir.join("id_ed25519-cert.pub");
    std::fs::write(
        &cert,
        body["data"]["issueSshUserCertificate"]["certificate"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let mut session = through_proxy_at("ssh", server, proxy, &dir)
        .args(["-l", "root", "db-1", "sleep 60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let data = server.data_dir.to_str().unwrap().to_owned();
    let mut open = false;
    for _ in 0..400 {
        let out = run_cli(
            server.bin.as_path(),
            &[
                "sessions",
                "--data-dir",
                &data,
                "list",
                "--active",
                "--json",
            ],
        );
        if String::from_utf8_lossy(&out.stdout).contains(&format!("\"user:{name}\"")) {
            open = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(open, "{name}'s session did not open");
    // Let the proxy finish taking the session in (it rechecks once as it opens).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let q = "mutation($n: String!) { disableUser(name: $n) { name } }";
    let (status, body) = server.graphql(Some(admin), q, json!({ "n": name })).await;
    let returned = Instant::now();
    assert_eq!(status, 200, "{body}");
    let krl = reqwest::get(format!("{}/v1/ssh/krl", server.url))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let in_krl = revoked(&krl, &dir, &cert);
    loop {
        if session.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            returned.elapsed() < Duration::from_secs(30),
            "{name}'s session stayed open"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    (returned.elapsed(), in_krl)
}

async fn measure(label: &str, server: &TestServer, proxy: &str, d: &Path, runs: usize) {
    let admin = server.token("bench-admin", "admin", None);
    let mut times = Vec::new();
    let mut krl_ok = 0;
    for n in 0..runs {
        let (took, in_krl) = run(server, proxy, d, &admin, n).await;
        times.push(took);
        krl_ok += usize::from(in_krl);
    }
    times.sort();
    println!(
        "{label}: {runs} leavers, call returned -> live session closed: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 under 1 s); KRL listed the certificate when the call returned: {krl_ok}/{runs}",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.9)),
        ms(percentile(&times, 0.99)),
        ms(times[times.len() - 1]),
    );
}

#[tokio::main]
async fn main() {
    let runs = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50);
    let bin = Path::new(env!("CARGO_BIN_EXE_warden"));

    let dir = tempfile::tempdir().unwrap();
    let lab = SshLab::start(bin, dir.path()).await;
    measure(
        "SQLite, proxy in the server",
        &lab.server,
        &lab.server.ssh_proxy_addr,
        dir.path(),
        runs,
    )
    .await;
    drop(lab);

    let dir = tempfile::tempdir().unwrap();
    let lab = SshLab::start_opts(
        bin,
        dir.path(),
        &LabOptions {
            backend: Backend::Postgres,
            ..LabOptions::default()
        },
    )
    .await;
    let proxy: StandaloneProxy = lab.server.standalone_proxy();
    measure(
        "PostgreSQL, session on a separate `warden proxy`",
        &lab.server,
        &proxy.addr,
        dir.path(),
        runs,
    )
    .await;
}
