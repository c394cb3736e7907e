//! Sessions and their recordings: exec, shells and terminals recorded and sealed, hosts
//! refused, the host outrun by its input, and recordings kept in an S3 bucket.

use std::process::Command;

use serde_json::{Value, json};
use sha2::Digest;
use warden_testkit::{
    Backend, LabOptions, S3Server, SshLab, Sshd, TestServer, free_port, run_cli,
    ssh_keygen_ed25519, through_proxy as proxied,
};

use crate::{bin, listed_sessions, recording_text, setup, ssh, text};

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
    let sshd = Sshd::start_on(
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

    // Admitted, so on the record as started, but it never reached the host: it is on the
    // record as ended, with why, not left open; and killing it says it already ended.
    let open = listed_sessions(&server, true);
    assert!(open.is_empty(), "{open:?}");
    let all = listed_sessions(&server, false);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0]["endedAt"].is_string(), "{all:?}");
    assert_eq!(
        all[0]["endReason"].as_str().unwrap_or_default(),
        format!(
            "the session never reached its host: host `db-2` at 127.0.0.1:{port} did not present a valid Warden host certificate"
        )
    );
    let id = all[0]["id"].as_str().unwrap();
    let data = server.data_dir.to_str().unwrap();
    let out = run_cli(bin(), &["sessions", "--data-dir", data, "kill", id]);
    assert_eq!(
        text(&out.stderr).trim(),
        format!("error: ssh session `{id}` has already ended")
    );

    // The same when nothing listens at the host's address any more.
    drop(sshd);
    let out = ssh(&server, d, "root", "db-2", "echo should-not-run");
    assert_ne!(out.status.code(), Some(0));
    let open = listed_sessions(&server, true);
    assert!(open.is_empty(), "{open:?}");
    let all = listed_sessions(&server, false);
    let reasons: Vec<&str> = all.iter().filter_map(|s| s["endReason"].as_str()).collect();
    assert_eq!(reasons.len(), 2, "{all:?}");
    assert!(
        reasons.iter().any(|r| r.starts_with(&format!(
            "the session never reached its host: cannot reach host `db-2` at 127.0.0.1:{port}: "
        ))),
        "{reasons:?}"
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
