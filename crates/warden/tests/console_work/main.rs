//! The console does the work: each administrative and triage action taken in the browser's
//! way (a signed-in person with a passkey, a form with the session's CSRF token), by the
//! narrowest person the policy lets do it and by one it does not; checked afterwards in the
//! audit log and through the API, with the exact one-line error of each bad input shown
//! beside its field, the same as the CLI's, and nothing changed. The helpers every case
//! shares are here; the cases are in `vulns` (triage), `directory` (people, groups, hosts
//! and their health), `sessions` (ending one, filters, a person's page), `reviews`,
//! `policy` (the editor) and `setup` (the getting-started checklist, the audit export).
#![expect(
    clippy::too_many_lines,
    reason = "an end-to-end journey reads in order, one step after another"
)]
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers fail the test"
)]

mod browser;
mod directory;
mod policy;
mod reviews;
mod sessions;
mod setup;
mod vulns;

use std::path::{Path, PathBuf};

use serde_json::Value;
use warden_testkit::{Backend, TestServer, free_port};

pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

/// alice's session on db-1 of `server`'s lab (keys in `d`) through the recording proxy, open
/// until someone ends it, and its id once the API lists it as open (read with `token`).
pub(crate) async fn alice_on_db1(
    server: &TestServer,
    d: &Path,
    token: &str,
) -> (std::process::Child, String) {
    let mut ssh = warden_testkit::through_proxy("ssh", server, d)
        .args(["-tt", "-l", "root", "db-1", "echo ready; sleep 60"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        let (_, live) = server
            .graphql(
                Some(token),
                "{ sshSessions(active: true) { id } }",
                serde_json::json!({}),
            )
            .await;
        if let Some(id) = live["data"]["sshSessions"][0]["id"].as_str() {
            return (ssh, id.to_owned());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = ssh.kill();
    let _ = ssh.wait();
    panic!("alice's session never opened");
}

/// The agent with `args` (the join, and where it keeps its state), its sshd drop-in and
/// break-glass spool under `d`, refreshing every 500 ms so a test can watch it.
pub(crate) fn run_agent(args: &[String], d: &Path) -> std::process::Child {
    std::process::Command::new(bin())
        .args(args)
        .args([
            "--sshd-config-dir",
            d.join("sshd.d").to_str().unwrap(),
            "--break-glass-spool",
            d.join("spool").to_str().unwrap(),
            "--refresh",
            "500ms",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A server whose public address is `localhost` (where passkeys work), and its base URL.
pub(crate) async fn console_server(backend: Backend) -> (TestServer, String) {
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let config = format!("public_url = \"{base}\"\n[limits]\nper_source_rps = 0\n");
    (
        TestServer::start_on(bin(), backend, &config, port).await,
        base,
    )
}

/// Applies the starter policy plus `extra` (as `extra.cedar`) with the admin token `admin`.
pub(crate) fn apply_policy(server: &TestServer, dir: &Path, admin: &str, extra: &str) {
    let policy = dir.join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    for (name, text) in warden_policy::STARTER {
        std::fs::write(policy.join(name), text).unwrap();
    }
    std::fs::write(policy.join("extra.cedar"), extra).unwrap();
    let out = server.remote(admin, &["policy", "apply", policy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../warden-vuln/tests/fixtures")
        .join(path)
}

/// The CLI's error for `args` run with `token`: its one line, without `error: `.
pub(crate) fn cli_error(server: &TestServer, token: &str, args: &[&str]) -> String {
    let out = server.remote(token, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    err.strip_prefix("error: ").unwrap_or(&err).to_owned()
}

/// The message the API gives `token` for `query`: what the CLI prints after `error: `.
pub(crate) async fn api_error(
    server: &TestServer,
    token: &str,
    query: &str,
    vars: Value,
) -> String {
    let (_, answer) = server.graphql(Some(token), query, vars).await;
    answer["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {answer}"))
        .to_owned()
}

/// The value of the read-only field `id` on a page (what is shown once).
pub(crate) fn shown(body: &str, id: &str) -> String {
    let rest = body
        .split(&format!("id=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no #{id}: {body}"));
    let value = rest
        .split("value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    value.replace("&amp;", "&")
}
