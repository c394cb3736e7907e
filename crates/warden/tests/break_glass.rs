//! Break-glass end to end, with stock OpenSSH and the real agent: the operator makes a
//! credential split 2 of 3 on the admin socket (a token cannot, and the refusal is recorded);
//! two holders open it offline; the host refuses it while Warden answers, accepts it once the
//! agent has not reached Warden for a while, and records the session on the host; when Warden
//! is back the agent stops trusting it and reports the use with its recording, which opens an
//! after-action review that the `emergency-access` compliance test counts as an exception
//! until it is closed. Revoking the credential makes hosts drop it. On SQLite and PostgreSQL.
#![expect(
    clippy::too_many_lines,
    reason = "an end-to-end journey reads in order, one step after another"
)]
#![expect(clippy::unwrap_used, reason = "test helpers fail the test")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_testkit::{Backend, LabOptions, SshLab, webhook_receiver};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "{}", text(&out.stdout));
    text(&out.stderr).trim().to_owned()
}

/// Waits up to 20 s for `check`; the agent's log in `d` tells why not.
fn until(d: &Path, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting: {what}\nagent: {}",
            file(&d.join("agent-db-1.log"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stock ssh straight to db-1's sshd (not through the proxy) with the break-glass key.
fn ssh(d: &Path, port: u16, key: &Path, command: &str) -> Output {
    Command::new("ssh")
        .args([
            "-F",
            "none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            d.join("known_hosts").display()
        ))
        .args(["-o", "HostKeyAlias=db-1", "-o", "IdentitiesOnly=yes", "-i"])
        .arg(key)
        .arg("-o")
        .arg(format!(
            "CertificateFile={}",
            key.with_file_name("id_ed25519-cert.pub").display()
        ))
        .args(["-p", &port.to_string(), "root@127.0.0.1", command])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// db-1's agent, running: refreshing each second, trusting break-glass after 2 s cut off.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_agent(lab: &SshLab, d: &Path) -> Agent {
    let log = std::fs::File::create(d.join("agent-db-1.log")).unwrap();
    let child = Command::new(bin())
        .args(["agent", "--server", &lab.server.url])
        .arg("--data-dir")
        .arg(d.join("agent-db-1"))
        .arg("--sshd-config-dir")
        .arg(d.join("sshd-db-1.d"))
        .arg("--sshd-addr")
        .arg(format!("127.0.0.1:{}", lab.port))
        .arg("--break-glass-spool")
        .arg(d.join("break-glass-db-1"))
        .args(["--refresh", "1s", "--break-glass-after", "2s"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Agent(child)
}

fn file(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find(&path, name) {
                return Some(found);
            }
        } else if path.file_name().and_then(|n| n.to_str()) == Some(name) {
            return Some(path);
        }
    }
    None
}

// The webhook receiver runs on the runtime while the test blocks between its steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_works_only_while_warden_is_down_and_every_use_is_reviewed() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (port, chat) = webhook_receiver().await;
        let sink = format!(
            "[[audit.sink]]\nkind = \"webhook\"\nname = \"oncall\"\nurl = \"http://127.0.0.1:{port}/slack\"\nformat = \"slack\"\nactions = [\"break_glass.*\"]\n"
        );
        let mut lab = SshLab::start_opts(
            bin(),
            d,
            &LabOptions {
                backend,
                top: &sink,
                ..LabOptions::default()
            },
        )
        .await;
        let _agent = run_agent(&lab, d);
        let admin = lab.server.token("ci", "admin", None);
        let auditor = lab.server.token("audrey", "auditor", None);

        // Only the admin socket makes credentials; an admin token is refused, on the record.
        let (_, body) = lab
            .server
            .graphql(
                Some(&admin),
                "mutation { createBreakGlass(ttl: \"1d\", reason: \"x\") { shares } }",
                json!({}),
            )
            .await;
        assert_eq!(
            body["errors"][0]["message"],
            "permission denied: break-glass credentials are made on the admin socket only",
            "{body}"
        );
        let denied = lab.server.audit("break_glass.create");
        assert_eq!(denied[0]["outcome"], "denied", "{denied:?}");
        let shares = d.join("shares");
        for (args, want) in [
            (
                &["--threshold", "4", "--shares", "3"][..],
                "error: the threshold must be 1 to the number of shares (3), not 4",
            ),
            (
                &["--ttl", "400d"],
                "error: duration `400d` is too long: the maximum is 366d",
            ),
        ] {
            let mut full = vec!["break-glass", "create", "--reason", "drill", "-o"];
            full.push(shares.to_str().unwrap());
            full.extend_from_slice(args);
            assert_eq!(err(&lab.server.admin(&full)), want, "{args:?}");
        }
        let made = ok(&lab.server.admin(&[
            "--json",
            "break-glass",
            "create",
            "--ttl",
            "1d",
            "--shares",
            "3",
            "--threshold",
            "2",
            "--reason",
            "database outage drill",
            "-o",
            shares.to_str().unwrap(),
        ]));
        let made: Value = serde_json::from_str(&made).unwrap();
        let id = made["credential"]["id"].as_str().unwrap().to_owned();
        let files: Vec<String> = made["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(files.len(), 3);
        let created = lab.server.audit("break_glass.create");
        let created = created.iter().find(|e| e["outcome"] == "success").unwrap();
        assert_eq!(created["details"]["threshold"], 2);
        assert!(
            !created.to_string().contains("PRIVATE KEY"),
            "the key must not be in the log"
        );

        // Two holders open it with no server; one share alone does not.
        let key_dir = d.join("opened");
        let out = Command::new(bin())
            .args(["break-glass", "open", &files[1], "-o"])
            .arg(&key_dir)
            .output()
            .unwrap();
        assert_eq!(
            err(&out),
            format!("error: 1 different share given; credential `{id}` needs 2 of its 3")
        );
        let out = Command::new(bin())
            .args(["break-glass", "open", &files[0], &files[2], "-o"])
            .arg(&key_dir)
            .output()
            .unwrap();
        assert!(ok(&out).contains(&format!("opened break-glass credential {id}")));
        let key = key_dir.join("id_ed25519");

        // While Warden answers, the host does not trust it.
        let agent_dir = d.join("agent-db-1");
        let ca = made["credential"]["caPublicKey"]
            .as_str()
            .unwrap()
            .to_owned();
        until(d, "the agent fetched the break-glass CA", || {
            file(&agent_dir.join("break_glass_ca.pub")).contains(&ca)
        });
        let out = ssh(d, lab.port, &key, "echo emergency");
        assert!(
            !out.status.success() && text(&out.stderr).contains("Permission denied"),
            "{}",
            text(&out.stderr)
        );

        // Warden goes down: after 2 s the agent trusts the credential, and the session runs,
        // recorded on the host.
        lab.server.stop();
        until(d, "the agent trusts break-glass", || {
            file(&agent_dir.join("user_ca.pub")).contains(&ca)
        });
        let out = ssh(d, lab.port, &key, "echo emergency; id -un");
        assert!(
            out.status.success(),
            "{}\nsshd: {}\nagent: {}",
            text(&out.stderr),
            lab.sshd.log(),
            file(&d.join("agent-db-1.log"))
        );
        assert!(
            text(&out.stdout).contains("emergency"),
            "{}",
            text(&out.stdout)
        );
        assert!(text(&out.stdout).contains("root"), "{}", text(&out.stdout));
        // sshd logged which credential it was.
        assert!(lab.sshd.log().contains(&format!("break-glass:{id}")));

        // Warden is back: the agent stops trusting it at once and reports the use.
        lab.server.restart_in_place();
        until(d, "the agent stopped trusting break-glass", || {
            !file(&agent_dir.join("user_ca.pub")).contains(&ca)
        });
        let mut uses = Value::Null;
        until(d, "the use is reported", || {
            let out = lab.server.admin(&["--json", "break-glass", "uses"]);
            uses = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            uses.as_array().is_some_and(|u| !u.is_empty())
        });
        let used = &uses[0];
        assert_eq!(
            (&used["credential"], &used["host"], &used["login"]),
            (&json!(id), &json!("db-1"), &json!("root")),
            "{uses}"
        );
        assert!(used["closedAt"].is_null());
        let use_id = used["id"].as_str().unwrap().to_owned();
        // Kept sealed under the KEK like the proxy's; an auditor plays it back, checked.
        let name = used["recording"].as_str().unwrap();
        let stored = std::fs::read(find(&lab.server.data_dir, name).unwrap()).unwrap();
        assert!(!String::from_utf8_lossy(&stored).contains("emergency"));
        let cast = lab.server.recording_as_auditor(name).await;
        let header: Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
        assert_eq!(header["version"], 2, "{cast}");
        assert!(cast.contains("emergency"), "{cast}");
        let event = lab.server.audit("break_glass.use");
        let sha: String = <sha2::Sha256 as sha2::Digest>::digest(&stored)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(event[0]["details"]["recording_sha256"], sha);
        assert_eq!(event[0]["actor"], "host:db-1");
        let out = ssh(d, lab.port, &key, "echo again");
        assert!(!out.status.success(), "trusted with Warden back");
        // The on-call channel hears of it.
        let alert = format!(
            "EMERGENCY ACCESS: break-glass credential `{id}` was used on `db-1` as `root` from "
        );
        until(d, "the webhook alert", || {
            chat.lock()
                .unwrap()
                .iter()
                .any(|(_, b)| b["text"].as_str().is_some_and(|t| t.contains(&alert)))
        });

        // The open review is a compliance exception until it is closed with a summary.
        let status = |server: &warden_testkit::TestServer| {
            let out = server.remote(
                &auditor,
                &[
                    "compliance",
                    "status",
                    "--json",
                    "--test",
                    "emergency-access",
                ],
            );
            serde_json::from_slice::<Value>(&out.stdout).unwrap()
        };
        let drill = status(&lab.server);
        assert_eq!(
            drill["exceptions"][0]["exception"],
            "emergency access to `db-1` as `root` has no closed after-action review",
            "{drill}"
        );
        assert_eq!(
            err(&lab
                .server
                .admin(&["break-glass", "close-review", &use_id, "--summary", " "])),
            "error: an after-action review needs a summary of what was done and why"
        );
        ok(&lab.server.admin(&[
            "break-glass",
            "close-review",
            &use_id,
            "--summary",
            "restarted postgres during the drill; nothing else touched",
        ]));
        let drill = status(&lab.server);
        assert_eq!(drill["exceptions"], json!([]), "{drill}");
        assert_eq!(drill["passed"], true, "{drill}");

        // Revoked: the agent drops it at its next contact.
        ok(&lab.server.admin(&["break-glass", "revoke", &id]));
        until(d, "the agent dropped the revoked CA", || {
            !file(&agent_dir.join("break_glass_ca.pub")).contains(&ca)
        });
        assert_eq!(
            err(&lab.server.admin(&["break-glass", "revoke", &id])),
            format!("error: break-glass credential `{id}` is already revoked")
        );
    }
}
