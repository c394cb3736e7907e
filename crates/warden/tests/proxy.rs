//! The recording SSH proxy with real OpenSSH on both ends: stock `ssh` (through `warden ssh
//! --stdio` as its ProxyCommand) to the proxy, the proxy to a stock sshd configured by the
//! Warden agent. Exec with its exit status, the recording and its hash in the audit log, a
//! login the policy refuses shown to the ssh user and audited, an unknown host, and a host
//! whose certificate is not Warden's refused.
#![expect(
    clippy::too_many_lines,
    reason = "an end-to-end journey reads in order, one step after another"
)]
#![expect(clippy::expect_used, reason = "test helpers outside #[test] functions")]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use sha2::Digest;
use warden_testkit::{
    Backend, LabOptions, S3Server, SshLab, Sshd, TestServer, free_port, run_cli,
    ssh_keygen_ed25519, through_proxy as proxied, through_proxy_at,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

/// Stock ssh through the proxy.
fn ssh(server: &TestServer, dir: &Path, login: &str, host: &str, command: &str) -> Output {
    proxied("ssh", server, dir)
        .args(["-l", login, host, command])
        .output()
        .expect("ssh (./scripts/test.sh installs openssh-client)")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `warden sessions list [--active] --json` over `server`'s admin socket.
fn listed_sessions(server: &TestServer, active: bool) -> Vec<Value> {
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

/// The starter policy in `d/policy` without its tests, for a test to change.
fn starter_policy(d: &Path) -> std::path::PathBuf {
    let policy = d.join("policy");
    let out = run_cli(bin(), &["policy", "init", policy.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::remove_file(policy.join("tests.toml")).expect("starter tests");
    policy
}

/// Applies the policy in `dir` through `server`'s admin socket.
fn apply_policy(server: &TestServer, dir: &Path) {
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
async fn recording_text(server: &TestServer, file: &str, clear: &str) -> String {
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
async fn setup(d: &Path) -> (TestServer, Sshd, u16) {
    let lab = SshLab::start(bin(), d).await;
    (lab.server, lab.sshd, lab.port)
}

#[tokio::test]
async fn stock_ssh_through_the_recording_proxy_to_stock_sshd() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, _sshd, port) = setup(d).await;
    // Exec through the proxy: output and exit status come back.
    let out = ssh(
        &server,
        d,
        "root",
        "db-1",
        "echo hello from $(hostname -s 2>/dev/null || echo db); exit 3",
    );
    assert!(
        text(&out.stdout).starts_with("hello from"),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // The session was recorded; its hash is in the audit log.
    let mut ends = Vec::new();
    for _ in 0..100 {
        ends = server.audit("ssh.session.end");
        if !ends.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ends.len(), 1, "{ends:?}");
    let recording = &ends[0]["details"]["recordings"][0];
    assert_eq!(recording["kind"], "exec");
    let file = server
        .data_dir
        .join("recordings")
        .join(recording["file"].as_str().unwrap());
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(
        recording["sha256"],
        format!("{:x}", sha2::Sha256::digest(&bytes))
    );
    let cast = recording_text(&server, recording["file"].as_str().unwrap(), "hello from").await;
    let header: Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert!(
        header["command"]
            .as_str()
            .unwrap()
            .starts_with("echo hello"),
        "{header}"
    );
    assert_eq!(header["warden"]["login"], "root");
    assert!(cast.contains("hello from"), "{cast}");
    let starts = server.audit("ssh.session.start");
    assert_eq!(starts[0]["outcome"], "success");
    assert_eq!(
        starts[0]["details"]["determining_policies"],
        json!(["ssh.cedar:ops-as-root-or-deploy"])
    );

    // An interactive shell on a pty, typed into: what was typed and what came back are in
    // the recording.
    let mut shell = proxied("ssh", &server, d)
        .args(["-tt", "-l", "root", "db-1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = shell.stdin.take().unwrap();
        stdin.write_all(b"echo typed-$((6 * 7))\nexit 0\n").unwrap();
    }
    let out = shell.wait_with_output().unwrap();
    assert!(
        text(&out.stdout).contains("typed-42"),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // sftp (a subsystem) up and down through the proxy.
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(d.join("up.bin"), &payload).unwrap();
    std::fs::write(
        d.join("batch"),
        format!(
            "put {} /tmp/warden-proxy-test-{port}.bin\nget /tmp/warden-proxy-test-{port}.bin {}\nrm /tmp/warden-proxy-test-{port}.bin\n",
            d.join("up.bin").display(),
            d.join("down.bin").display()
        ),
    )
    .unwrap();
    let out = proxied("sftp", &server, d)
        .arg("-b")
        .arg(d.join("batch"))
        .arg("root@db-1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(d.join("down.bin")).unwrap(), payload);

    let mut ends = Vec::new();
    for _ in 0..100 {
        ends = server.audit("ssh.session.end");
        if ends.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ends.len(), 3, "{ends:?}");
    let shell = &ends[1]["details"]["recordings"][0];
    assert_eq!(shell["kind"], "shell");
    let cast = recording_text(&server, shell["file"].as_str().unwrap(), "typed-42").await;
    assert!(
        cast.contains(",\"i\",\"") && cast.contains("typed-$((6 * 7))"),
        "the typed input is recorded: {cast}"
    );
    assert!(cast.contains("typed-42"), "{cast}");
    let sftp = &ends[2]["details"]["recordings"][0];
    assert_eq!(sftp["kind"], "subsystem");
    assert_eq!(sftp["command"], "sftp");
    assert!(sftp["input_bytes"].as_u64().unwrap() > 300_000, "{sftp}");
    assert!(sftp["output_bytes"].as_u64().unwrap() > 300_000, "{sftp}");

    // `warden ssh` with a `warden login` credential (as `warden login` leaves it), and
    // `warden ssh config` for stock ssh.
    let home = d.join("home");
    std::fs::create_dir_all(home.join("ssh")).unwrap();
    for f in ["id_ed25519", "id_ed25519-cert.pub"] {
        std::fs::copy(d.join(f), home.join("ssh").join(f)).unwrap();
    }
    let token = server.token("alice-cli", "member", Some("alice"));
    std::fs::write(
        home.join("credentials.json"),
        json!({ "server": server.url, "token": token, "user": "alice", "expires_at": "-" })
            .to_string(),
    )
    .unwrap();
    let warden_ssh = |args: &[&str]| {
        Command::new(bin())
            .args(["ssh", "--proxy", &server.ssh_proxy_addr])
            .args(args)
            .env("WARDEN_CONFIG_DIR", &home)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = warden_ssh(&["root@db-1", "echo", "via-warden-ssh"]);
    assert_eq!(
        text(&out.stdout).trim(),
        "via-warden-ssh",
        "{}",
        text(&out.stderr)
    );
    let out = warden_ssh(&["config", "db-*"]);
    let config = text(&out.stdout);
    assert!(config.contains("Host db-*\n"), "{config}");
    assert!(
        config.contains(&format!(
            "ProxyCommand {} ssh --proxy {} --stdio %h",
            bin().display(),
            server.ssh_proxy_addr
        )),
        "{config}"
    );
    std::fs::write(d.join("ssh_config"), &config).unwrap();
    let out = Command::new("ssh")
        .args([
            "-F",
            d.join("ssh_config").to_str().unwrap(),
            "-o",
            "BatchMode=yes",
            "-l",
            "root",
            "db-1",
            "echo via-ssh-config",
        ])
        .env("WARDEN_CONFIG_DIR", &home)
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout).trim(),
        "via-ssh-config",
        "{}",
        text(&out.stderr)
    );

    // The sessions, and playing one back; a damaged recording is reported.
    let data = server.data_dir.to_str().unwrap().to_owned();
    let sessions = Value::Array(listed_sessions(&server, false));
    assert_eq!(sessions.as_array().unwrap().len(), 5, "{sessions}");
    let exec_session = sessions[4]["id"].as_str().unwrap().to_owned();
    assert_eq!(sessions[4]["login"], "root");
    assert_eq!(sessions[4]["host"], "db-1");
    // Transcripts: what the terminal showed, searchable.
    let out = run_cli(
        bin(),
        &[
            "sessions",
            "--data-dir",
            &data,
            "search",
            "TYPED-42",
            "--json",
        ],
    );
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shell_session = sessions[3]["id"].as_str().unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["session"]["id"], shell_session);
    assert!(
        found[0]["lines"][0].as_str().unwrap().contains("typed-42"),
        "{found}"
    );
    // The transcript is sealed too; search read it, with the escapes rendered away.
    let transcript = shell["transcript"]["file"].as_str().unwrap();
    assert_eq!(
        transcript,
        shell["file"].as_str().unwrap().replace(".rec", ".text.rec")
    );
    let sealed = std::fs::read(server.data_dir.join("recordings").join(transcript)).unwrap();
    assert!(sealed.starts_with(b"warden-recording v1\n"));
    assert!(!sealed.windows(8).any(|w| w == b"typed-42"));
    assert!(
        found[0]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| !l.as_str().unwrap().contains('\u{1b}')),
        "{found}"
    );
    let out = run_cli(
        bin(),
        &["play", "--data-dir", &data, &exec_session, "--speed", "50"],
    );
    assert!(
        text(&out.stdout).contains("hello from"),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let shell_file = shell["file"].as_str().unwrap().to_owned();
    let path = server.data_dir.join("recordings").join(&shell_file);
    let mut damaged = std::fs::read(&path).unwrap();
    damaged.extend_from_slice(b"[9.9, \"o\", \"forged\"]\n");
    std::fs::write(&path, damaged).unwrap();
    let out = run_cli(bin(), &["play", "--data-dir", &data, &shell_file]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).starts_with(&format!(
            "error: recording `{shell_file}` is damaged: its SHA-256 is "
        )),
        "{}",
        text(&out.stderr)
    );

    // The policy refuses root on web-1: ssh shows why, and it is audited.
    let out = ssh(&server, d, "root", "web-1", "true");
    assert_ne!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warden: access denied: login `root` on `web-1`: policy v1: no policy permits `ssh` (default deny)"),
        "{stderr}"
    );
    let starts = server.audit("ssh.session.start");
    assert!(
        starts
            .iter()
            .any(|e| e["outcome"] == "denied" && e["target"] == "host:web-1"),
        "{starts:?}"
    );

    // A host Warden does not know: the ProxyCommand says so.
    let out = ssh(&server, d, "root", "nowhere", "true");
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains(
            "error: unknown host `nowhere`: `warden admin host list` shows the hosts that joined"
        ),
        "{}",
        text(&out.stderr)
    );

    // A login the certificate does not carry: refused with the reason, and audited.
    let out = ssh(&server, d, "bob", "db-1", "echo should-not-run");
    assert!(!text(&out.stdout).contains("should-not-run"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warden: access denied: certificate ")
            && stderr.contains(" does not allow login `bob`; it allows: alice, root"),
        "{stderr}"
    );
    let starts = server.audit("ssh.session.start");
    assert!(
        starts.iter().any(|e| e["outcome"] == "denied"
            && e["details"]["login"] == "bob"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("does not allow login `bob`"))),
        "{starts:?}"
    );

    // A revoked certificate is refused, with the reason.
    let listing = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(d.join("id_ed25519-cert.pub"))
        .output()
        .unwrap();
    let serial = text(&listing.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Serial: ").map(str::to_owned))
        .unwrap();
    let admin = server.token("root", "admin", None);
    let q = "mutation($s: String!) { revokeSshCertificate(serial: $s) }";
    let (_, body) = server
        .graphql(Some(&admin), q, json!({ "s": serial }))
        .await;
    assert_eq!(body["data"]["revokeSshCertificate"], true, "{body}");
    let out = ssh(&server, d, "root", "db-1", "echo should-not-run");
    assert!(!text(&out.stdout).contains("should-not-run"));
    assert!(
        text(&out.stderr).contains(&format!(
            "warden: access denied: certificate {serial} is revoked or unknown: run `warden login` again"
        )),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_host_without_a_warden_host_certificate_is_refused() {
    let server = TestServer::start(bin(), Backend::Sqlite, "[limits]\nper_source_rps = 0\n").await;
    for args in [
        &["user", "add", "alice"][..],
        &["group", "add", "ops"],
        &["group", "add-member", "ops", "alice"],
    ] {
        assert!(server.admin(args).status.success());
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The inventory says db-2's sshd is at PORT, but what listens there has a host
    // certificate from some other CA: a man in the middle, as far as Warden can tell.
    let port = free_port();
    server.join_host_at(d, "db-2", &["team=ops"], &format!("127.0.0.1:{port}"));
    let rogue = d.join("rogue_ca");
    ssh_keygen_ed25519(&rogue);
    let host_key = d.join("rogue_host");
    ssh_keygen_ed25519(&host_key);
    let signed = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&rogue)
        .args(["-I", "rogue", "-h", "-n", "db-2", "-V", "-5m:+1h"])
        .arg(host_key.with_extension("pub"))
        .output()
        .unwrap();
    assert!(signed.status.success(), "{}", text(&signed.stderr));
    let sshd_dir = d.join("sshd-rogue");
    std::fs::create_dir_all(&sshd_dir).unwrap();
    let _sshd = Sshd::start_on(
        &sshd_dir,
        port,
        &format!(
            "HostKey {}\nHostCertificate {}\nTrustedUserCAKeys {}\n",
            host_key.display(),
            d.join("rogue_host-cert.pub").display(),
            d.join("agent-db-2/user_ca.pub").display()
        ),
    );
    let public = ssh_keygen_ed25519(&d.join("id_ed25519"));
    let alice = server.token("alice", "member", Some("alice"));
    let q = "mutation($k: String!) { issueSshUserCertificate(publicKey: $k, ttl: \"1h\", principals: [\"root\"]) { certificate } }";
    let (_, body) = server
        .graphql(Some(&alice), q, json!({ "k": public }))
        .await;
    std::fs::write(
        d.join("id_ed25519-cert.pub"),
        body["data"]["issueSshUserCertificate"]["certificate"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let (_, _, host_ca) = server.get("/v1/ssh/host_ca.pub").await;
    std::fs::write(
        d.join("known_hosts"),
        format!("@cert-authority * {}", host_ca.trim()),
    )
    .unwrap();
    let out = ssh(&server, d, "root", "db-2", "echo should-not-run");
    assert_ne!(out.status.code(), Some(0));
    assert!(!text(&out.stdout).contains("should-not-run"));
    assert!(
        text(&out.stderr).contains(&format!(
            "warden: access denied: host `db-2` at 127.0.0.1:{port} did not present a valid Warden host certificate"
        )),
        "{}",
        text(&out.stderr)
    );
}

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
    let mut open = None;
    for _ in 0..200 {
        open = listed_sessions(&server, true)
            .first()
            .and_then(|s| s["id"].as_str().map(str::to_owned));
        if open.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let open = open.expect("the session opens");
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
}

#[tokio::test]
async fn recordings_go_to_an_s3_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s3 = S3Server::start("recordings");
    let mut env = s3.env();
    env.push(("WARDEN_SSH_RECORDINGS", "s3://recordings/warden".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let lab = SshLab::start_opts(
        bin(),
        d,
        &LabOptions {
            env: &env,
            ..LabOptions::default()
        },
    )
    .await;
    let mut server = lab.server;
    let data = server.data_dir.to_str().unwrap().to_owned();

    let out = ssh(&server, d, "root", "db-1", "echo to-the-bucket");
    assert_eq!(
        text(&out.stdout).trim(),
        "to-the-bucket",
        "{}",
        text(&out.stderr)
    );
    let mut ends = Vec::new();
    for _ in 0..100 {
        ends = server.audit("ssh.session.end");
        if !ends.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert!(ends[0]["details"]["reason"].is_null(), "{ends:?}");
    let recording = &ends[0]["details"]["recordings"][0];
    let file = recording["file"].as_str().unwrap();
    let object = s3
        .get(&format!("warden/{file}"))
        .expect("the recording is in the bucket");
    let sha: String = sha2::Sha256::digest(&object)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(recording["sha256"], sha.as_str());
    assert!(object.starts_with(b"warden-recording v1\n"));
    assert!(
        !object.windows(13).any(|w| w == b"to-the-bucket"),
        "the bucket holds the recording sealed"
    );
    // Uploaded files leave the local spool.
    let spool = server.data_dir.join("recordings-spool");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    let session = ends[0]["details"]["session"].as_str().unwrap();
    let out = run_cli(bin(), &["play", "--data-dir", &data, session]);
    assert!(
        text(&out.stdout).contains("to-the-bucket"),
        "{}",
        text(&out.stderr)
    );

    // Damaged in the bucket: playback says so.
    let mut damaged = object.clone();
    damaged.extend_from_slice(b"[9.9, \"o\", \"forged\"]\n");
    s3.put(&format!("warden/{file}"), &damaged);
    let out = run_cli(bin(), &["play", "--data-dir", &data, session]);
    assert!(
        text(&out.stderr).starts_with(&format!(
            "error: recording `{file}` is damaged: its SHA-256 is "
        )),
        "{}",
        text(&out.stderr)
    );

    // What a crashed server left in its spool goes up when it starts again.
    std::fs::write(spool.join("leftover-0.cast"), b"{\"version\": 2}\n").unwrap();
    server.crash_and_restart();
    assert_eq!(
        s3.get("warden/leftover-0.cast").as_deref(),
        Some(&b"{\"version\": 2}\n"[..])
    );
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);

    // A bucket that cannot be reached: the proxy does not start (fail closed).
    let mut env = s3.env();
    env.push(("WARDEN_SSH_RECORDINGS", "s3://no-such-bucket/x".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let closed = TestServer::start_env(bin(), Backend::Sqlite, "", 0, &env).await;
    assert!(
        closed
            .ssh_proxy_addr
            .starts_with("off: cannot reach the recordings bucket s3://no-such-bucket/x: "),
        "{}",
        closed.ssh_proxy_addr
    );
    let log = std::fs::read_to_string(&closed.log_path).unwrap();
    assert!(
        log.contains("cannot reach the recordings bucket s3://no-such-bucket/x"),
        "{log}"
    );
}

#[tokio::test]
async fn input_that_outruns_the_host_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, _sshd, _) = setup(d).await;
    // `sleep` never reads its input: sshd's window closes and the user's bytes pile up in the
    // proxy until it ends the session instead of holding them all.
    let started = std::time::Instant::now();
    let out = proxied("ssh", &server, d)
        .args(["-l", "root", "db-1", "sleep 60"])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The client usually prints the proxy's reason; while it is still writing it may see the
    // closed connection first ("Broken pipe") and print only that. Either way the proxy must
    // have ended the session for this reason, which its log says.
    let stderr = text(&out.stderr);
    let told =
        stderr.contains("warden: input arrives faster than the host takes it (64 MiB waiting)");
    let mut logged = false;
    for _ in 0..50 {
        logged = server
            .log()
            .contains("input outruns the host; ending the session");
        if logged {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        logged,
        "the proxy did not end the session for its input: {stderr}"
    );
    assert!(told || stderr.contains("Broken pipe"), "{stderr}");
    println!("ended after {:?}", started.elapsed());
    assert!(started.elapsed() < std::time::Duration::from_secs(50));
}

/// A TCP echo service on the host's loopback (the test machine is the host).
async fn echo_service() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// Sends `ping` through the local end of a forward; what came back, if anything.
async fn ping(local: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", local)).await {
            socket = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut socket = socket.expect("ssh -L listens");
    socket.write_all(b"ping").await.ok()?;
    let mut buf = [0u8; 4];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        socket.read_exact(&mut buf),
    )
    .await;
    match read {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&buf).into_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn port_forwards_follow_the_connect_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, _sshd, _) = setup(d).await;
    let service = echo_service().await;
    let forward = |to: &str| {
        let local = free_port();
        let child = proxied("ssh", &server, d)
            .args([
                "-N",
                "-L",
                &format!("{local}:{to}:{service}"),
                "-l",
                "root",
                "db-1",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        (local, child)
    };
    let forwards = |server: &TestServer| server.audit("ssh.forward");

    // Denied by default: the local end opens, but nothing goes through.
    let (local, mut child) = forward("127.0.0.1");
    assert_eq!(ping(local).await, None);
    let denied = forwards(&server);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["outcome"], "denied");
    assert_eq!(
        denied[0]["reason"],
        format!(
            "forwarding port {service} on `db-1`: policy v1: no policy permits `connect` (default deny)"
        )
    );
    child.kill().unwrap();
    let _ = child.wait();

    // The policy allows ops to reach that port on ops hosts: the forward carries bytes.
    let policy = starter_policy(d);
    std::fs::write(
        policy.join("forward.cedar"),
        format!(
            "@id(\"ops-echo\")\npermit (principal in Warden::Group::\"ops\", action == Warden::Action::\"connect\", resource)\nwhen {{ resource.hasTag(\"team\") && resource.getTag(\"team\") == \"ops\" && context.protocol == \"tcp\" && context.port == {service} }};\n"
        ),
    )
    .unwrap();
    apply_policy(&server, &policy);
    let (local, mut child) = forward("127.0.0.1");
    assert_eq!(ping(local).await.as_deref(), Some("ping"));
    let allowed = forwards(&server);
    assert_eq!(allowed.len(), 2, "{allowed:?}");
    assert_eq!(allowed[1]["outcome"], "success");
    assert_eq!(
        allowed[1]["details"]["determining_policies"],
        json!(["forward.cedar:ops-echo"])
    );

    // Only the host's own ports: another address is refused, whatever the policy says.
    let (other, mut other_child) = forward("10.255.255.1");
    assert_eq!(ping(other).await, None);
    let last = forwards(&server);
    assert_eq!(
        last[2]["reason"],
        "forwarding to `10.255.255.1` through `db-1`: only the host's own ports (localhost) may be forwarded"
    );
    for c in [&mut child, &mut other_child] {
        c.kill().unwrap();
        let _ = c.wait();
    }
    // The forward was counted in the session's recordings.
    let mut kinds = Vec::new();
    for _ in 0..100 {
        kinds = server
            .audit("ssh.session.end")
            .iter()
            .flat_map(|e| {
                e["details"]["recordings"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|r| r["kind"].as_str().map(str::to_owned))
            .collect();
        if kinds.iter().any(|k| k == "forward") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(kinds.iter().any(|k| k == "forward"), "{kinds:?}");
}
