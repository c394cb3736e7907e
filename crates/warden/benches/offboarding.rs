//! Offboarding propagation benchmark (issue 8): a person provisioned through SCIM, with a live
//! SSH session through the recording proxy, is deactivated as Okta does it (SCIM PATCH
//! `{"op": "replace", "value": {"active": false}}`); measured from the call returning to the
//! session closed (the ssh client exited), and whether the KRL already lists their
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
    Backend, LabOptions, SshLab, StandaloneProxy, TestServer, ms, percentile, run_cli,
    ssh_keygen_ed25519, through_proxy_at,
};

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

/// One person: provisioned, pushed into ops, certified, in a session through `proxy`; then
/// deactivated.
/// Returns the time from the call returning to the session closed, and whether the KRL
/// revoked the certificate by then.
async fn run(
    server: &TestServer,
    proxy: &str,
    d: &Path,
    scim: &Scim,
    n: usize,
) -> (Duration, bool) {
    let dir = d.join(format!("leaver{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(d.join("known_hosts"), dir.join("known_hosts")).unwrap();
    let user = json!({ "userName": format!("leaver{n}@example.com"), "active": true });
    let (status, _, body) = scim.call(server, "POST", "/Users", user).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let name = format!("leaver{n}-example.com");
    let add =
        json!({ "Operations": [{ "op": "add", "path": "members", "value": [{ "value": id }] }] });
    let (status, _, body) = scim.call(server, "PATCH", &scim.ops, add).await;
    assert_eq!(status, 200, "{body}");
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
    let off = json!({ "Operations": [{ "op": "replace", "value": { "active": false } }] });
    let (status, _, body) = scim
        .call(server, "PATCH", &format!("/Users/{id}"), off)
        .await;
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

/// The identity provider's side: its SCIM token and the pushed `ops` group.
struct Scim {
    token: String,
    ops: String,
}

impl Scim {
    async fn call(
        &self,
        server: &TestServer,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let path = format!("/scim/v2{path}");
        let body = body.to_string();
        server
            .request(method, &path, Some(&self.token), Some(&body), &[])
            .await
    }
}

async fn measure(label: &str, server: &TestServer, proxy: &str, d: &Path, runs: usize) {
    let token = server.token("okta", "scim", None);
    let mut scim = Scim {
        token,
        ops: String::new(),
    };
    // The lab's `ops` group, adopted by the identity provider.
    let (status, _, body) = scim
        .call(server, "POST", "/Groups", json!({ "displayName": "ops" }))
        .await;
    assert_eq!(status, 201, "{body}");
    scim.ops = format!("/Groups/{}", body["id"].as_str().unwrap());
    let mut times = Vec::new();
    let mut krl_ok = 0;
    for n in 0..runs {
        let (took, in_krl) = run(server, proxy, d, &scim, n).await;
        times.push(took);
        krl_ok += usize::from(in_krl);
    }
    times.sort();
    println!(
        "{label}: {runs} leavers deactivated by SCIM PATCH, call returned -> live session closed: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 under 1 s); KRL listed the certificate when the call returned: {krl_ok}/{runs}",
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

    // The lab's `ops` group exists before the identity provider pushes it: the operator lets
    // SCIM adopt it.
    let adopt = "[scim]\nadopt_groups = [\"ops\"]\n";
    let dir = tempfile::tempdir().unwrap();
    let lab = SshLab::start_opts(
        bin,
        dir.path(),
        &LabOptions {
            top: adopt,
            ..LabOptions::default()
        },
    )
    .await;
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
            top: adopt,
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
