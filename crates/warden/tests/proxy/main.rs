//! The recording SSH proxy with real OpenSSH on both ends: stock `ssh` (through `warden ssh
//! --stdio` as its ProxyCommand) to the proxy, the proxy to a stock sshd configured by the
//! Warden agent. The helpers every case shares are here; the cases are in `recording`
//! (sessions and their sealed recordings, refused hosts, S3), `access` (sessions cut when access
//! ends, idle sessions, service tokens, a standalone proxy) and `forwards` (port forwards and
//! the `connect` policy).
#![expect(
    clippy::too_many_lines,
    reason = "an end-to-end journey reads in order, one step after another"
)]
#![expect(clippy::expect_used, reason = "test helpers outside #[test] functions")]

mod access;
mod forwards;
mod recording;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use warden_testkit::{SshLab, Sshd, TestServer, run_cli, through_proxy as proxied};

pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

/// Stock ssh through the proxy.
pub(crate) fn ssh(
    server: &TestServer,
    dir: &Path,
    login: &str,
    host: &str,
    command: &str,
) -> Output {
    proxied("ssh", server, dir)
        .args(["-l", login, host, command])
        .output()
        .expect("ssh (./scripts/test.sh installs openssh-client)")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `warden sessions list [--active] --json` over `server`'s admin socket.
pub(crate) fn listed_sessions(server: &TestServer, active: bool) -> Vec<Value> {
    let data = server.data_dir.to_str().expect("path");
    let mut args = vec!["sessions", "--data-dir", data, "list", "--json"];
    if active {
        args.push("--active");
    }
    let out = run_cli(bin(), &args);
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// The id of the newest open session, once one opens (within 10 s).
pub(crate) async fn first_open_session(server: &TestServer) -> String {
    let mut open = None;
    for _ in 0..200 {
        open = listed_sessions(server, true)
            .first()
            .and_then(|s| s["id"].as_str().map(str::to_owned));
        if open.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    open.expect("a session opens within 10 s")
}

/// The starter policy in `d/policy` without its tests, for a test to change.
pub(crate) fn starter_policy(d: &Path) -> std::path::PathBuf {
    let policy = d.join("policy");
    let out = run_cli(bin(), &["policy", "init", policy.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::remove_file(policy.join("tests.toml")).expect("starter tests");
    policy
}

/// Applies the policy in `dir` through `server`'s admin socket.
pub(crate) fn apply_policy(server: &TestServer, dir: &Path) {
    let data = server.data_dir.to_str().expect("path");
    let out = run_cli(
        bin(),
        &[
            "policy",
            "--data-dir",
            data,
            "apply",
            dir.to_str().expect("path"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A recording as an auditor reads it: through the API, which checks its hash against the
/// audit log and opens it under the KEK. Its file on disk holds none of `clear` in the clear.
pub(crate) async fn recording_text(server: &TestServer, file: &str, clear: &str) -> String {
    let raw = std::fs::read(server.data_dir.join("recordings").join(file)).expect("recording");
    assert!(raw.starts_with(b"warden-recording v1\n"), "{file}");
    assert!(
        !raw.windows(clear.len()).any(|w| w == clear.as_bytes()),
        "`{clear}` is in the clear in {file}"
    );
    server.recording_as_auditor(file).await
}

/// A server; alice in ops; db-1 (team=ops, env=prod) with a stock sshd set up by the agent;
/// web-1 (team=web) in the inventory only; alice's key with a Warden certificate for `alice`
/// and `root`, and Warden's host CA as the only trust for hosts, all in `d`.
pub(crate) async fn setup(d: &Path) -> (TestServer, Sshd, u16) {
    let lab = SshLab::start(bin(), d).await;
    (lab.server, lab.sshd, lab.port)
}
