//! The SSH CA on the real server, checked by the real OpenSSH tools: keys sealed under the KEK
//! and refused with a wrong one, user certificates read by `ssh-keygen -L`, accepted by a real
//! sshd through `TrustedUserCAKeys`, and refused by it once revoked through the KRL.
#![expect(clippy::expect_used, reason = "test helpers outside #[test] functions")]

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use warden_testkit::{Backend, Sshd, TestServer, run_cli, ssh_keygen_ed25519};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn ssh_keygen(args: &[&str]) -> std::process::Output {
    Command::new("ssh-keygen")
        .args(args)
        .output()
        .expect("ssh-keygen (apt-get install openssh-client)")
}

const CONFIG: &str = "[limits]\nper_source_rps = 0\n[ssh]\nport_forwarding_groups = [\"ops\"]\n[ssh.group_logins]\nops = [\"root\"]\n";

async fn issue(server: &TestServer, token: &str, public: &str) -> (u16, Value) {
    let q = "mutation($k: String!) { issueSshUserCertificate(publicKey: $k, ttl: \"1h\") { serial certificate principals validBefore } }";
    server.graphql(Some(token), q, json!({ "k": public })).await
}

#[tokio::test]
async fn user_certificates_work_with_real_sshd_until_revoked() {
    let server = TestServer::start(bin(), Backend::Sqlite, CONFIG).await;
    for args in [
        &["user", "add", "alice"][..],
        &["group", "add", "ops"],
        &["group", "add-member", "ops", "alice"],
    ] {
        assert!(server.admin(args).status.success());
    }
    let alice = server.token("alice", "member", Some("alice"));
    let admin = server.token("root", "admin", None);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    let public = ssh_keygen_ed25519(&key);

    // No host yet: no policy can give alice a login anywhere.
    let (_, body) = issue(&server, &alice, &public).await;
    assert_eq!(
        body["errors"][0]["message"],
        "permission denied: login `alice` is not allowed for user `alice`: no host has joined yet"
    );
    server.join_host(dir.path(), "ops-1", &["team=ops"]);
    let (status, body) = issue(&server, &alice, &public).await;
    assert_eq!(status, 200, "{body}");
    let cert = &body["data"]["issueSshUserCertificate"];
    assert_eq!(cert["principals"], json!(["alice", "root"]));
    let cert_path = dir.path().join("id_ed25519-cert.pub");
    std::fs::write(&cert_path, cert["certificate"].as_str().unwrap()).unwrap();
    let listing =
        String::from_utf8_lossy(&ssh_keygen(&["-L", "-f", cert_path.to_str().unwrap()]).stdout)
            .into_owned();
    assert!(listing.contains("user certificate"), "{listing}");
    assert!(listing.contains("Key ID: \"user:alice token:"), "{listing}");
    assert!(listing.contains("permit-pty"), "{listing}");
    assert!(
        listing.contains("permit-port-forwarding"),
        "ops may forward ports: {listing}"
    );

    // A real sshd trusting Warden's user CA and reading its KRL.
    let (_, _, ca) = server.get("/v1/ssh/user_ca.pub").await;
    std::fs::write(dir.path().join("user_ca.pub"), &ca).unwrap();
    let krl_path = dir.path().join("revoked.krl");
    let fetch_krl = async || {
        let bytes = reqwest::get(format!("{}/v1/ssh/krl", server.url))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        std::fs::write(&krl_path, &bytes).unwrap();
    };
    fetch_krl().await;
    let host_key = dir.path().join("host_key");
    ssh_keygen_ed25519(&host_key);
    let sshd = Sshd::start(
        dir.path(),
        &format!(
            "HostKey {}\nTrustedUserCAKeys {}\nRevokedKeys {}\n",
            host_key.display(),
            dir.path().join("user_ca.pub").display(),
            krl_path.display(),
        ),
    );
    let port = sshd.port;
    let login = || {
        Command::new("ssh")
            .args([
                "-F",
                "none",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
            ])
            .args([
                "-i",
                key.to_str().unwrap(),
                "-o",
                &format!("CertificateFile={}", cert_path.display()),
            ])
            .args([
                "-p",
                &port.to_string(),
                "root@127.0.0.1",
                "echo",
                "logged-in",
            ])
            .output()
            .expect("ssh")
    };
    let out = login();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "logged-in",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Revoke: the KRL changes (new ETag), sshd reads it at the next login and refuses.
    let etag = reqwest::get(format!("{}/v1/ssh/krl", server.url))
        .await
        .unwrap()
        .headers()["etag"]
        .clone();
    let q = "mutation($s: String!) { revokeSshCertificate(serial: $s) }";
    let (_, body) = server
        .graphql(Some(&admin), q, json!({ "s": cert["serial"] }))
        .await;
    assert_eq!(body["data"]["revokeSshCertificate"], true, "{body}");
    let (_, body) = server
        .graphql(Some(&alice), q, json!({ "s": cert["serial"] }))
        .await;
    assert_eq!(
        body["errors"][0]["message"],
        "permission denied: policy v1: no policy permits `manage_cas` (default deny)"
    );
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{}/v1/ssh/krl", server.url))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the KRL changed");
    let new_etag = resp.headers()["etag"].clone();
    assert_ne!(new_etag, etag);
    let resp = client
        .get(format!("{}/v1/ssh/krl", server.url))
        .header("if-none-match", new_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    fetch_krl().await;
    let out = ssh_keygen(&[
        "-Q",
        "-f",
        krl_path.to_str().unwrap(),
        cert_path.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "ssh-keygen sees the certificate revoked"
    );
    let out = login();
    assert!(
        !out.status.success(),
        "a revoked certificate still logged in"
    );
    let log = sshd.log();
    drop(sshd);
    assert!(log.contains("revoked"), "{log}");

    // Issuance is audited.
    let issued = Value::from(server.audit("ssh.issue"));
    let issued = issued
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["outcome"] == "success" && e["details"]["kind"] == "user")
        .unwrap();
    assert_eq!(issued["details"]["principals"], json!(["alice", "root"]));
    // With the policy decisions that chose each login.
    assert_eq!(
        issued["details"]["policy"]["root"],
        json!({ "host": "ops-1", "policy_version": 1, "determining_policies": ["ssh.cedar:ops-as-root-or-deploy"] })
    );
    assert_eq!(
        issued["details"]["policy"]["alice"]["determining_policies"],
        json!(["ssh.cedar:team-members-as-themselves"])
    );
}

#[tokio::test]
async fn bad_requests_and_the_key_encryption_key() {
    let mut server = TestServer::start(bin(), Backend::Sqlite, CONFIG).await;
    assert!(server.admin(&["user", "add", "bob"]).status.success());
    let bob = server.token("bob", "member", Some("bob"));
    let service = server.token("svc", "admin", None);
    let (_, body) = issue(&server, &bob, "ssh-ed25519 garbage").await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid SSH public key: "),
        "{body}"
    );
    let key_dir = tempfile::tempdir().unwrap();
    let public = ssh_keygen_ed25519(&key_dir.path().join("id_ed25519"));
    let (_, body) = issue(&server, &service, &public).await;
    assert_eq!(
        body["errors"][0]["message"],
        "service `svc` must name the logins it needs (principals)"
    );
    let q = "mutation($k: String!) { issueSshUserCertificate(publicKey: $k, principals: [\"warden-proxy:db-1\"]) { serial } }";
    let (_, body) = server
        .graphql(Some(&service), q, json!({ "k": public }))
        .await;
    assert_eq!(
        body["errors"][0]["message"],
        "login `warden-proxy:db-1` is invalid: use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
    );
    let q = "mutation { issueSshUserCertificate(publicKey: \"x\", ttl: \"9h\") { serial } }";
    let (_, body) = server.graphql(Some(&bob), q, Value::Null).await;
    assert_eq!(body["errors"][0]["message"], "ttl exceeds ssh.max_ttl (8h)");

    // The CAs survive a restart with the same KEK, and a wrong KEK stops the server.
    let (_, _, before) = server.get("/v1/ssh/user_ca.pub").await;
    server.crash_and_restart();
    let (_, _, after) = server.get("/v1/ssh/user_ca.pub").await;
    assert_eq!(before, after);
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-kek");
    std::fs::write(&wrong, "ab".repeat(32)).unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(&config, format!("kek_file = \"{}\"\n", wrong.display())).unwrap();
    let db = server.database_url();
    let (stopped, _) = server.stop();
    assert!(stopped.success());
    let data = server.data_dir.clone();
    let out = run_cli(
        bin(),
        &[
            "server",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            &db,
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "error: cannot open the ssh-user CA key with the key-encryption key in {}: wrong key or tampered data; \
             Warden will not create new CAs over existing ones",
            wrong.display()
        )
    );
    let out = run_cli(
        bin(),
        &[
            "server",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .trim()
            .starts_with("error: `kek_file` is required"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
