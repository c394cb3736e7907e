//! Access that ends: open sessions cut when a grant or a person goes, idle sessions closed,
//! service tokens, and a standalone proxy that shares the server's database and kills.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use warden_testkit::{
    Backend, LabOptions, SshLab, run_cli, through_proxy as proxied, through_proxy_at,
};

use crate::{
    apply_policy, bin, first_open_session, listed_sessions, setup, ssh, starter_policy, text,
};

/// Access ends while a session is open: an admin ends it, or the person is disabled. Either
/// way the session closes within about a second and the user is told why.
#[tokio::test]
async fn open_sessions_end_when_access_ends() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, _sshd, _) = setup(d).await;
    let data = server.data_dir.to_str().unwrap().to_owned();
    let active = || -> Vec<String> {
        listed_sessions(&server, true)
            .iter()
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect()
    };
    let open = |d: &Path| {
        proxied("ssh", &server, d)
            .args(["-l", "root", "db-1", "sleep 60"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_open = async |seen: &[String]| {
        for _ in 0..200 {
            if let Some(id) = active().into_iter().find(|id| !seen.contains(id)) {
                return id;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no session opened");
    };

    // An admin ends it.
    let session = open(d);
    let killed = wait_open(&[]).await;
    let out = run_cli(bin(), &["sessions", "--data-dir", &data, "kill", &killed]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = session.wait_with_output().unwrap();
    assert!(
        text(&out.stderr).contains("session ended by operator"),
        "{}",
        text(&out.stderr)
    );

    // The policy changes under an open session: it ends, naming the policy.
    let session = open(d);
    let cut = wait_open(std::slice::from_ref(&killed)).await;
    let policy = starter_policy(d);
    let starter_ssh = std::fs::read_to_string(policy.join("ssh.cedar")).unwrap();
    std::fs::write(
        policy.join("ssh.cedar"),
        "@id(\"no-root\")\nforbid (principal, action == Warden::Action::\"ssh\", resource) when { context.login == \"root\" };\n",
    )
    .unwrap();
    apply_policy(&server, &policy);
    let out = session.wait_with_output().unwrap();
    assert!(
        text(&out.stderr).contains("warden: access ended: login `root` on `db-1`: policy v2: `ssh` forbidden by ssh.cedar:no-root"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(policy.join("ssh.cedar"), starter_ssh).unwrap();
    apply_policy(&server, &policy);

    // alice is disabled: her open session ends within about a second.
    let session = open(d);
    let id = wait_open(&[killed, cut]).await;
    let disabled = std::time::Instant::now();
    assert!(server.admin(&["user", "disable", "alice"]).status.success());
    let out = session.wait_with_output().unwrap();
    let took = disabled.elapsed();
    assert!(
        text(&out.stderr).contains("warden: access ended: user `alice` is unknown or disabled"),
        "{}",
        text(&out.stderr)
    );
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    println!("a disabled user's session ended {took:?} after the change");
    // The same transaction revoked her tokens and certificates (hers and the sessions').
    let offboarded = &server.audit("user.disable")[0]["details"];
    assert!(
        offboarded["tokens_revoked"].as_u64() >= Some(1),
        "{offboarded}"
    );
    assert!(
        offboarded["ssh_certificates_revoked"].as_u64() >= Some(2),
        "{offboarded}"
    );
    assert_eq!(offboarded["web_sessions_ended"], 0, "{offboarded}");
    let mut reason = Value::Null;
    for _ in 0..100 {
        if let Some(s) = listed_sessions(&server, false)
            .iter()
            .find(|s| s["id"] == id.as_str() && !s["endReason"].is_null())
        {
            reason = s["endReason"].clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(reason, "access ended: user `alice` is unknown or disabled");
}

/// A session with nothing going on ends at `ssh.idle_timeout`; one that keeps printing does not.
#[tokio::test]
async fn idle_sessions_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lab = SshLab::start_with(bin(), d, "idle_timeout = \"2s\"\n").await;
    let server = &lab.server;
    let chatty = proxied("ssh", server, d)
        .args([
            "-l",
            "root",
            "db-1",
            "for n in 1 2 3 4 5 6 7 8; do echo tick-$n; sleep 0.5; done",
        ])
        .output();
    let quiet = proxied("ssh", server, d)
        .args(["-l", "root", "db-1", "sleep 30; echo never"])
        .output();
    let started = std::time::Instant::now();
    let (chatty, quiet) = (chatty.unwrap(), quiet.unwrap());
    assert!(
        text(&chatty.stdout).contains("tick-8"),
        "{}",
        text(&chatty.stderr)
    );
    assert!(!text(&quiet.stdout).contains("never"));
    assert!(
        text(&quiet.stderr).contains("warden: idle for 2s"),
        "{}",
        text(&quiet.stderr)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[tokio::test]
async fn services_and_api_tokens_ssh_with_warden_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, _sshd, _) = setup(d).await;
    let scratch = d.join("tmp");
    std::fs::create_dir_all(&scratch).unwrap();
    let warden_ssh = |token: &str, args: &[&str]| {
        Command::new(bin())
            .args([
                "ssh",
                "--server",
                &server.url,
                "--proxy",
                &server.ssh_proxy_addr,
            ])
            .args(args)
            .env("WARDEN_TOKEN", token)
            .env("WARDEN_CONFIG_DIR", d.join("no-login"))
            .env("TMPDIR", &scratch)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let deploy = server.token("deploy", "member", None);

    // A service token names its login; no policy lets it in yet.
    let out = warden_ssh(&deploy, &["db-1", "true"]);
    assert_eq!(
        text(&out.stderr).trim(),
        "error: a service token has no login of its own: name it, `warden ssh LOGIN@HOST`"
    );
    let out = warden_ssh(&deploy, &["root@db-1", "true"]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr).trim(),
        "error: permission denied: login `root` is not allowed for service `deploy`: no policy permits it on any host"
    );

    // The policy lets the service in as root on ops hosts.
    let policy = starter_policy(d);
    let ssh_cedar = std::fs::read_to_string(policy.join("ssh.cedar")).unwrap();
    std::fs::write(
        policy.join("ssh.cedar"),
        ssh_cedar.replace(
            "unless { principal in Warden::Group::\"ops\" };",
            "unless { principal in Warden::Group::\"ops\" || principal == Warden::Service::\"deploy\" };",
        ),
    )
    .unwrap();
    std::fs::write(
        policy.join("services.cedar"),
        "@id(\"deploy-as-root-on-ops\")\npermit (principal == Warden::Service::\"deploy\", action == Warden::Action::\"ssh\", resource)\nwhen { resource.hasTag(\"team\") && resource.getTag(\"team\") == \"ops\" && context.login == \"root\" };\n",
    )
    .unwrap();
    apply_policy(&server, &policy);
    let out = warden_ssh(&deploy, &["root@db-1", "echo", "via-service-token"]);
    assert_eq!(
        text(&out.stdout).trim(),
        "via-service-token",
        "{}",
        text(&out.stderr)
    );
    // The ephemeral key and certificate are gone once ssh exits.
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);

    // A person's API token works the same way, as that person.
    let alice = server.token("alice-ci", "member", Some("alice"));
    let out = warden_ssh(&alice, &["root@db-1", "echo", "via-user-token"]);
    assert_eq!(
        text(&out.stdout).trim(),
        "via-user-token",
        "{}",
        text(&out.stderr)
    );
    let sessions = Value::Array(listed_sessions(&server, false));
    let principals: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["principal"].as_str())
        .collect();
    assert!(principals.contains(&"service:deploy"), "{sessions}");
    assert!(principals.contains(&"user:alice"), "{sessions}");

    // Revoking the token ends what its certificates gave: the next login is refused.
    let out = server.admin(&["token", "revoke", "deploy"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = warden_ssh(&deploy, &["root@db-1", "true"]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr).trim(),
        "error: authentication required: send a valid API token as `Authorization: Bearer <token>`"
    );
    // A certificate already issued stops working with its token: alice's lab certificate was
    // issued to her token `alice`.
    let out = server.admin(&["token", "revoke", "alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = ssh(&server, d, "root", "db-1", "echo should-not-run");
    assert!(!text(&out.stdout).contains("should-not-run"));
    assert!(
        text(&out.stderr).contains("warden: access denied: the token behind certificate ")
            && text(&out.stderr).contains(" was revoked or has expired: sign in again"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_standalone_proxy_shares_the_servers_database_and_their_kills() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lab = SshLab::start_opts(
        bin(),
        d,
        &LabOptions {
            backend: Backend::Postgres,
            // Short, so a dead proxy's sessions end within the test.
            ssh: "proxy_lease = \"2s\"\n",
            ..LabOptions::default()
        },
    )
    .await;
    let server = lab.server;
    let proxy = server.standalone_proxy();
    let data = server.data_dir.to_str().unwrap().to_owned();

    // A session through `warden proxy`: the server lists it and plays its recording.
    let out = through_proxy_at("ssh", &server, &proxy.addr, d)
        .args(["-l", "root", "db-1", "echo via-standalone-proxy"])
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout).trim(),
        "via-standalone-proxy",
        "{}",
        text(&out.stderr)
    );
    let mut ended = None;
    for _ in 0..100 {
        ended = listed_sessions(&server, false)
            .iter()
            .find(|s| !s["endedAt"].is_null())
            .and_then(|s| s["id"].as_str().map(str::to_owned));
        if ended.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ended = ended.expect("the session is recorded as ended");
    let out = run_cli(bin(), &["play", "--data-dir", &data, &ended]);
    assert!(
        text(&out.stdout).contains("via-standalone-proxy"),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // An administrator ends, through the server, a session the standalone proxy holds.
    let mut session = through_proxy_at("ssh", &server, &proxy.addr, d)
        .args(["-l", "root", "db-1", "sleep 60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let open = first_open_session(&server).await;
    let asked = std::time::Instant::now();
    let out = run_cli(bin(), &["sessions", "--data-dir", &data, "kill", &open]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = session.wait().unwrap();
    let took = asked.elapsed();
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(session.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("warden: access ended: session ended by operator"),
        "{stderr}"
    );
    println!("a session on a standalone proxy ended {took:?} after the kill");
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");

    // Bad input: a session already ended, and one that never was.
    let out = run_cli(bin(), &["sessions", "--data-dir", &data, "kill", &ended]);
    assert_eq!(
        text(&out.stderr).trim(),
        format!("error: ssh session `{ended}` has already ended")
    );
    let out = run_cli(
        bin(),
        &["sessions", "--data-dir", &data, "kill", "no-such-session"],
    );
    assert_eq!(
        text(&out.stderr).trim(),
        "error: ssh session `no-such-session` not found"
    );
    let kills = server.audit("ssh.session.kill");
    let outcomes: Vec<&str> = kills.iter().filter_map(|e| e["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["success", "failure", "failure"], "{kills:?}");

    // A proxy killed with its session open cannot end it: the session ends on the record when
    // the proxy's lease runs out, saying why, instead of staying open forever.
    let doomed = server.standalone_proxy();
    let mut client = through_proxy_at("ssh", &server, &doomed.addr, d)
        .args(["-l", "root", "db-1", "sleep 60"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let orphan = first_open_session(&server).await;
    drop(doomed);
    let _ = client.kill();
    let _ = client.wait();
    let died = std::time::Instant::now();
    let mut record = None;
    for _ in 0..200 {
        record = listed_sessions(&server, false)
            .into_iter()
            .find(|s| s["id"] == orphan.as_str() && !s["endedAt"].is_null());
        if record.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let record = record.expect("the dead proxy's session ends on the record");
    println!(
        "a dead proxy's session ended on the record {:?} after the proxy died",
        died.elapsed()
    );
    let reason = record["endReason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("its proxy (warden proxy on ")
            && reason.contains(") stopped: its lease ran out at "),
        "{reason}"
    );
    let ends = server.audit("ssh.session.end");
    let end = ends
        .iter()
        .find(|e| e["details"]["session"] == orphan.as_str())
        .expect("the end is audited");
    assert_eq!(end["actor"], "system", "{end}");
    assert_eq!(end["details"]["reason"], reason, "{end}");
}
