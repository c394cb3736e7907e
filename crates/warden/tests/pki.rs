//! Certificate authorities end to end with the real tools: a host joins through `warden agent`
//! (one-time token), stock sshd serves the host certificate the agent keeps, stock `ssh`
//! verifies it through `@cert-authority`; `openssl verify` accepts workload certificates;
//! `curl` reaches the mutual-TLS listener only with a valid client certificate; rotation keeps
//! old keys trusted for the overlap; bad input is refused and audited.
#![expect(
    clippy::too_many_lines,
    reason = "an end-to-end journey reads in order, one step after another"
)]
#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_testkit::{Backend, Sshd, TestServer, run_cli, ssh_keygen_ed25519, tool};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn join_token(server: &TestServer, host: &str) -> String {
    let out = server.admin(&[
        "join-token",
        "create",
        "--host",
        host,
        "--label",
        "env=prod",
        "--label",
        "team=ops",
        "--address",
        "127.0.0.1",
        "--ttl",
        "10m",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn agent(server: &TestServer, dir: &Path, token: Option<&str>, extra: &[&str]) -> Output {
    let data = dir.join("agent");
    let conf = dir.join("sshd.d");
    let spool = dir.join("break-glass");
    let mut args = vec![
        "agent",
        "--server",
        &server.url,
        "--data-dir",
        data.to_str().unwrap(),
        "--sshd-config-dir",
        conf.to_str().unwrap(),
        "--sshd-addr",
        "127.0.0.1:22",
        "--break-glass-spool",
        spool.to_str().unwrap(),
    ];
    if let Some(token) = token {
        args.extend_from_slice(&["--join-token", token]);
    }
    args.extend_from_slice(extra);
    run_cli(bin(), &args)
}

/// A user key with a Warden certificate for `root`.
async fn user_key(server: &TestServer, dir: &Path) -> (PathBuf, PathBuf) {
    assert!(server.admin(&["user", "add", "alice"]).status.success());
    assert!(server.admin(&["group", "add", "ops"]).status.success());
    assert!(
        server
            .admin(&["group", "add-member", "ops", "alice"])
            .status
            .success()
    );
    let alice = server.token("alice", "member", Some("alice"));
    let key = dir.join("id_ed25519");
    let public = ssh_keygen_ed25519(&key);
    let q = "mutation($k: String!) { issueSshUserCertificate(publicKey: $k, ttl: \"1h\") { certificate } }";
    let (_, body) = server
        .graphql(Some(&alice), q, json!({ "k": public }))
        .await;
    let cert = dir.join("id_ed25519-cert.pub");
    std::fs::write(
        &cert,
        body["data"]["issueSshUserCertificate"]["certificate"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}")),
    )
    .unwrap();
    (key, cert)
}

/// Stock ssh, trusting host keys only through `@cert-authority` lines in `known_hosts`.
fn ssh(known_hosts: &Path, key: &Path, cert: &Path, port: u16) -> Output {
    Command::new("ssh")
        .args(["-F", "none", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .arg("-i")
        .arg(key)
        .arg("-o")
        .arg(format!("CertificateFile={}", cert.display()))
        .args([
            "-p",
            &port.to_string(),
            "root@127.0.0.1",
            "echo",
            "logged-in",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("ssh (apt-get install openssh-client)")
}

const CONFIG: &str = "[limits]\nper_source_rps = 0\n[ssh.group_logins]\nops = [\"root\"]\n";

#[tokio::test]
async fn an_agent_joins_and_stock_ssh_verifies_its_host_certificate() {
    let server = TestServer::start(bin(), Backend::Sqlite, CONFIG).await;
    let dir = tempfile::tempdir().unwrap();
    let token = join_token(&server, "web-1");
    let out = agent(&server, dir.path(), Some(&token), &["--once"]);
    assert!(out.status.success(), "{}", text(&out));

    // The agent made its keys locally; the private ones are private.
    let data = dir.path().join("agent");
    for private in ["ssh_host_ed25519_key", "agent.key"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(data.join(private)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{private}");
    }
    let host_cert = data.join("ssh_host_ed25519_key-cert.pub");
    let listing = text(&tool(
        "ssh-keygen",
        &["-L", "-f", host_cert.to_str().unwrap()],
    ));
    assert!(listing.contains("host certificate"), "{listing}");
    assert!(listing.contains("Key ID: \"host:web-1\""), "{listing}");
    assert!(
        listing.contains("web-1\n") && listing.contains("127.0.0.1\n"),
        "{listing}"
    );
    let conf = std::fs::read_to_string(dir.path().join("sshd.d/warden.conf")).unwrap();
    for directive in [
        "HostKey ",
        "HostCertificate ",
        "TrustedUserCAKeys ",
        "RevokedKeys ",
    ] {
        assert!(conf.contains(directive), "{conf}");
    }

    // The join token works once; reuse is refused and audited.
    let again = agent(
        &server,
        &dir.path().join("second"),
        Some(&token),
        &["--once"],
    );
    assert!(!again.status.success());
    assert!(
        text(&again).contains(
            "join refused: join token already used: create a new one with `warden admin join-token create`"
        ),
        "{}",
        text(&again)
    );
    let joins = server.audit("host.join");
    assert_eq!(joins.len(), 2, "{joins:?}");
    assert_eq!(joins[1]["outcome"], "failure");

    // Stock sshd serves the host certificate; stock ssh accepts it through @cert-authority
    // and refuses the host when known_hosts names another CA. A person's own certificate is
    // then refused by sshd: only the proxy's session certificates (principal
    // `warden-proxy:web-1`) get in, so nobody bypasses the recording proxy.
    let conf = dir.path().join("sshd.d/warden.conf");
    let sshd = Sshd::start(dir.path(), &format!("Include {}\n", conf.display()));
    let (key, cert) = user_key(&server, dir.path()).await;
    let (_, _, host_ca) = server.get("/v1/ssh/host_ca.pub").await;
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, format!("@cert-authority * {host_ca}")).unwrap();
    let out = ssh(&known, &key, &cert, sshd.port);
    assert!(
        !out.status.success() && text(&out).contains("Permission denied (publickey)"),
        "{}\nsshd: {}",
        text(&out),
        sshd.log()
    );
    assert!(
        sshd.log()
            .contains("Certificate does not contain an authorized principal"),
        "{}",
        sshd.log()
    );
    let conf = std::fs::read_to_string(dir.path().join("sshd.d/warden.conf")).unwrap();
    assert!(
        conf.contains(&format!(
            "AuthorizedPrincipalsCommand {} break-glass principals --host-principal warden-proxy:web-1 --spool {}\nAuthorizedPrincipalsCommandUser nobody\nExposeAuthInfo yes\n",
            bin().display(),
            dir.path().join("break-glass").display()
        )),
        "{conf}"
    );
    let other_ca = ssh_keygen_ed25519(&dir.path().join("other_ca"));
    let wrong = dir.path().join("known_hosts_wrong");
    std::fs::write(&wrong, format!("@cert-authority * {other_ca}")).unwrap();
    let out = ssh(&wrong, &key, &cert, sshd.port);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Host key verification failed"),
        "{}",
        text(&out)
    );

    // The inventory lists the host; removing it stops its agent from renewing.
    let listed = text(&server.admin(&["host", "list"]));
    assert!(
        listed.contains("web-1") && listed.contains("env=prod") && listed.contains("127.0.0.1:22"),
        "{listed}"
    );
    let renew = |data: &Path| {
        tool(
            "curl",
            &[
                "-sS",
                "-X",
                "POST",
                "-d",
                "{}",
                "--cacert",
                data.join("bundle.pem").to_str().unwrap(),
                "--cert",
                data.join("agent.crt").to_str().unwrap(),
                "--key",
                data.join("agent.key").to_str().unwrap(),
                &format!("https://{}/v1/agent/renew", server.mtls_addr),
            ],
        )
    };
    let before = String::from_utf8_lossy(&renew(&data).stdout).into_owned();
    assert!(
        before.contains("invalid JSON body: missing field `ssh_host_key`"),
        "{before}"
    );
    let out = server.admin(&["host", "remove", "web-1"]);
    assert!(out.status.success(), "{}", text(&out));
    let after = String::from_utf8_lossy(&renew(&data).stdout).into_owned();
    assert!(
        after.contains("permission denied: client certificate")
            && after.contains("is revoked or unknown"),
        "{after}"
    );
    let out = server.admin(&["host", "remove", "web-1"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: host `web-1` not found"
    );
    let renewals = server.audit("host.renew");
    assert_eq!(
        renewals.last().unwrap()["outcome"],
        "denied",
        "{renewals:?}"
    );
}

#[tokio::test]
async fn agents_renew_at_two_thirds_and_must_rejoin_once_expired() {
    let config = format!("{CONFIG}[agent]\nclient_cert_ttl = \"6s\"\n");
    let server = TestServer::start(bin(), Backend::Postgres, &config).await;
    let dir = tempfile::tempdir().unwrap();
    let token = join_token(&server, "db-1");
    let data = dir.path().join("agent");
    let conf = dir.path().join("sshd.d");
    let mut running = Command::new(bin())
        .args(["agent", "--server", &server.url, "--join-token", &token])
        .arg("--data-dir")
        .arg(&data)
        .arg("--sshd-config-dir")
        .arg(&conf)
        .arg("--break-glass-spool")
        .arg(dir.path().join("break-glass"))
        .args(["--refresh", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Renewed at 4 s of a 6 s life: by 9 s at least two renewals over mutual TLS.
    let start = Instant::now();
    let renewals = loop {
        let renewals = server
            .audit("x509.issue")
            .into_iter()
            .filter(|e| e["actor"] == "host:db-1" && e["auth"] == "mutual_tls")
            .count();
        if renewals >= 2 || start.elapsed() > Duration::from_secs(20) {
            break renewals;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let _ = running.kill();
    let _ = running.wait();
    assert!(renewals >= 2, "renewals: {renewals}");
    let issued = server.audit("ssh.issue");
    assert!(
        issued
            .iter()
            .filter(|e| e["details"]["key_id"] == "host:db-1")
            .count()
            >= 3,
        "{issued:?}"
    );

    // Stopped past its certificate's life, the agent cannot renew: it must join again.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let out = agent(&server, dir.path(), None, &["--once"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the agent's certificate expired at")
            && text(&out).contains("join again with a new --join-token"),
        "{}",
        text(&out)
    );
    let fresh = join_token(&server, "db-1");
    let out = agent(&server, dir.path(), Some(&fresh), &["--once"]);
    assert!(out.status.success(), "{}", text(&out));
}

fn curl(server: &TestServer, bundle: &Path, cert: Option<(&Path, &Path)>, path: &str) -> Output {
    let mut args = vec![
        "-sS".to_owned(),
        "--fail-with-body".to_owned(),
        "--cacert".to_owned(),
        bundle.display().to_string(),
    ];
    if let Some((cert, key)) = cert {
        args.extend([
            "--cert".to_owned(),
            cert.display().to_string(),
            "--key".to_owned(),
            key.display().to_string(),
        ]);
    }
    args.push(format!("https://{}{path}", server.mtls_addr));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("curl", &args)
}

fn cert_issue(server: &TestServer, args: &[&str]) -> Output {
    let mut full = vec![
        "cert",
        "--data-dir",
        server.data_dir.to_str().unwrap(),
        "issue",
    ];
    full.extend_from_slice(args);
    run_cli(bin(), &full)
}

#[tokio::test]
async fn workload_certificates_verify_with_openssl_and_open_the_mtls_listener() {
    let server = TestServer::start(bin(), Backend::Sqlite, CONFIG).await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("api");
    let out = cert_issue(
        &server,
        &[
            "--spiffe-id",
            "spiffe://localhost/ns/prod/sa/api",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let f = |name: &str| out_dir.join(name);
    let verify = tool(
        "openssl",
        &[
            "verify",
            "-CAfile",
            f("bundle.pem").to_str().unwrap(),
            "-untrusted",
            f("chain.pem").to_str().unwrap(),
            f("cert.pem").to_str().unwrap(),
        ],
    );
    assert!(verify.status.success(), "{}", text(&verify));
    let shown = text(&tool(
        "openssl",
        &[
            "x509",
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage",
            "-in",
            f("cert.pem").to_str().unwrap(),
        ],
    ));
    assert!(
        shown.contains("URI:spiffe://localhost/ns/prod/sa/api"),
        "{shown}"
    );
    assert!(shown.contains("TLS Web Client Authentication"), "{shown}");
    let (_, _, bundle) = server.get("/v1/x509/bundle.pem").await;
    assert_eq!(bundle, std::fs::read_to_string(f("bundle.pem")).unwrap());

    // With a CSR made by openssl, only a certificate comes back (the key stays with openssl).
    let csr_dir = dir.path().join("csr");
    std::fs::create_dir_all(&csr_dir).unwrap();
    let key = csr_dir.join("key.pem");
    let csr = csr_dir.join("req.csr");
    let made = tool(
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
            "-subj",
            "/CN=ignored",
        ],
    );
    assert!(made.status.success(), "{}", text(&made));
    let out = cert_issue(
        &server,
        &[
            "--spiffe-id",
            "spiffe://localhost/svc/db",
            "--csr",
            csr.to_str().unwrap(),
            "--out",
            csr_dir.to_str().unwrap(),
            "--ttl",
            "2s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("key.pem"),
        "no key is made when a CSR is given: {}",
        text(&out)
    );

    // The mutual-TLS listener: a Warden certificate gets in, none or a stranger's does not.
    let ok = curl(
        &server,
        &f("bundle.pem"),
        Some((&f("fullchain.pem"), &f("key.pem"))),
        "/healthz",
    );
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"status\":\"ok\""));
    let none = curl(&server, &f("bundle.pem"), None, "/healthz");
    assert!(!none.status.success(), "{}", text(&none));
    let self_signed = dir.path().join("self");
    std::fs::create_dir_all(&self_signed).unwrap();
    let made = tool(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            self_signed.join("key.pem").to_str().unwrap(),
            "-out",
            self_signed.join("cert.pem").to_str().unwrap(),
            "-subj",
            "/CN=stranger",
            "-days",
            "1",
            "-addext",
            "subjectAltName=URI:spiffe://localhost/host/web-1",
        ],
    );
    assert!(made.status.success(), "{}", text(&made));
    let stranger = curl(
        &server,
        &f("bundle.pem"),
        Some((&self_signed.join("cert.pem"), &self_signed.join("key.pem"))),
        "/healthz",
    );
    assert!(!stranger.status.success(), "{}", text(&stranger));
    // A workload certificate is not an agent's: the agent API refuses it, and says so.
    let renew = tool(
        "curl",
        &[
            "-sS",
            "-X",
            "POST",
            "-d",
            "{}",
            "--cacert",
            f("bundle.pem").to_str().unwrap(),
            "--cert",
            f("fullchain.pem").to_str().unwrap(),
            "--key",
            f("key.pem").to_str().unwrap(),
            &format!("https://{}/v1/agent/renew", server.mtls_addr),
        ],
    );
    assert!(
        String::from_utf8_lossy(&renew.stdout).contains(
            "permission denied: `spiffe://localhost/ns/prod/sa/api` is not a host agent's id"
        ),
        "{}",
        text(&renew)
    );
    // An expired certificate is refused at the handshake.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let full = csr_dir.join("fullchain.pem");
    let expired = curl(&server, &f("bundle.pem"), Some((&full, &key)), "/healthz");
    assert!(!expired.status.success(), "{}", text(&expired));
    // The server logs the refused handshake from its connection task: give it a moment.
    let start = std::time::Instant::now();
    while !server.log().contains("certificate expired") && start.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server.log().contains("certificate expired"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_clear_errors_and_audited() {
    let server = TestServer::start(bin(), Backend::Sqlite, CONFIG).await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("x");
    let bad_csr = dir.path().join("bad.csr");
    std::fs::write(&bad_csr, "hello").unwrap();
    for (args, error) in [
        (
            vec![
                "--spiffe-id",
                "spiffe://localhost/svc/a",
                "--csr",
                bad_csr.to_str().unwrap(),
            ],
            "error: invalid CSR: not PEM (expected -----BEGIN CERTIFICATE REQUEST-----)",
        ),
        (
            vec!["--spiffe-id", "https://localhost/svc/a"],
            "error: invalid SPIFFE id `https://localhost/svc/a`: must start with spiffe://",
        ),
        (
            vec!["--spiffe-id", "spiffe://other.org/svc/a"],
            "error: SPIFFE id `spiffe://other.org/svc/a` is outside this server's trust domain `localhost`",
        ),
        (
            vec!["--spiffe-id", "spiffe://localhost/host/web-1"],
            "error: permission denied: SPIFFE id `spiffe://localhost/host/web-1` is reserved: /host/ ids go to joined agents and /warden/ ids to Warden itself",
        ),
        (
            vec!["--spiffe-id", "spiffe://localhost/svc/a", "--ttl", "30d"],
            "error: ttl exceeds x509.max_ttl (7days)",
        ),
    ] {
        let mut full = args.clone();
        full.extend_from_slice(&["--out", out_dir.to_str().unwrap()]);
        let out = cert_issue(&server, &full);
        assert!(!out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), error);
    }
    assert!(
        !out_dir.join("cert.pem").exists(),
        "nothing written on error"
    );
    let denied = server.audit("x509.issue");
    assert_eq!(
        denied.len(),
        2,
        "the listener's own and the denial: {denied:?}"
    );
    assert_eq!(denied[1]["outcome"], "denied");

    // Join: malformed public halves are 400 and spend nothing; bad tokens are 401/403.
    let admin = server.token("root", "admin", None);
    let q = "mutation { createJoinToken(host: \"web-2\", ttl: \"1s\") { token } }";
    let (_, body) = server.graphql(Some(&admin), q, json!({})).await;
    let short = body["data"]["createJoinToken"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = join_token(&server, "web-3");
    let ssh_key = ssh_keygen_ed25519(&dir.path().join("k"));
    let csr = warden_pki::x509::LocalKey::generate()
        .unwrap()
        .csr_pem()
        .unwrap();
    let join = |token: String, body: Value| {
        let server = &server;
        async move {
            let resp = reqwest::Client::new()
                .post(format!("{}/v1/agent/join", server.url))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let body = |key: &str, csr: &str| json!({ "ssh_host_key": key, "csr": csr, "sshd_addr": "127.0.0.1:22" });
    let (status, reply) = join(token.clone(), body("ssh-ed25519 nope", &csr)).await;
    assert_eq!(
        (status, reply["error"].as_str().unwrap()),
        (
            400,
            "invalid SSH public key: Base64 encoding error: invalid Base64 length"
        )
    );
    let (status, reply) = join(
        token.clone(),
        body(
            &ssh_key,
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        ),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid CSR: "),
        "{reply}"
    );
    let (status, _) = join(token.clone(), body(&ssh_key, &csr)).await;
    assert_eq!(status, 200, "bad requests did not spend the token");
    let (status, reply) = join("wjt_nope".to_owned(), body(&ssh_key, &csr)).await;
    assert_eq!(
        (status, reply["error"].as_str().unwrap()),
        (
            401,
            "malformed join token: expected wjt_<32 hex digits>_<43 base64url characters>"
        )
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, reply) = join(short, body(&ssh_key, &csr)).await;
    assert_eq!(
        (status, reply["error"].as_str().unwrap()),
        (
            403,
            "join token expired: create a new one with `warden admin join-token create`"
        )
    );
    let joins = server.audit("host.join");
    let outcomes: Vec<&str> = joins
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["success", "denied", "failure"], "{joins:?}");

    // A login no policy gives the user: 403 and audited. (The starter policy lets members
    // of ops log in as themselves, root and deploy on hosts labelled team=ops.)
    for args in [
        &["user", "add", "bob"][..],
        &["group", "add", "ops"],
        &["group", "add-member", "ops", "bob"],
    ] {
        assert!(server.admin(args).status.success());
    }
    let bob = server.token("bob", "member", Some("bob"));
    let q = "mutation($k: String!) { issueSshUserCertificate(publicKey: $k, principals: [\"postgres\"]) { principals } }";
    let (_, body) = server.graphql(Some(&bob), q, json!({ "k": ssh_key })).await;
    assert_eq!(
        body["errors"][0]["message"],
        "permission denied: login `postgres` is not allowed for user `bob`: no policy permits it on any host"
    );
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let q = "mutation($k: String!) { issueSshUserCertificate(publicKey: $k, principals: [\"bob\"]) { principals certificate } }";
    let (_, body) = server.graphql(Some(&bob), q, json!({ "k": ssh_key })).await;
    assert_eq!(
        body["data"]["issueSshUserCertificate"]["principals"],
        json!(["bob"]),
        "{body}"
    );
    // Revoking the certificate's key id (all of one token's certificates) puts it in the KRL.
    let cert_path = dir.path().join("bob-cert.pub");
    std::fs::write(
        &cert_path,
        body["data"]["issueSshUserCertificate"]["certificate"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let listing = text(&tool(
        "ssh-keygen",
        &["-L", "-f", cert_path.to_str().unwrap()],
    ));
    assert!(
        !listing.contains("permit-port-forwarding"),
        "bob is in no port-forwarding group: {listing}"
    );
    let key_id = listing
        .lines()
        .find_map(|l| l.trim().strip_prefix("Key ID: "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    assert!(key_id.starts_with("user:bob token:"), "{listing}");
    let q = "mutation($id: String!) { revokeSshKeyId(keyId: $id) }";
    let (_, body) = server
        .graphql(Some(&admin), q, json!({ "id": key_id }))
        .await;
    assert_eq!(body["data"]["revokeSshKeyId"], true, "{body}");
    let (_, body) = server
        .graphql(Some(&admin), q, json!({ "id": key_id }))
        .await;
    assert_eq!(
        body["errors"][0]["message"],
        format!("key id `{key_id}` is already revoked")
    );
    let (_, body) = server
        .graphql(Some(&admin), q, json!({ "id": "user:nobody token:x" }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    let krl = reqwest::get(format!("{}/v1/ssh/krl", server.url))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let krl_path = dir.path().join("krl");
    std::fs::write(&krl_path, &krl).unwrap();
    let checked = tool(
        "ssh-keygen",
        &[
            "-Q",
            "-f",
            krl_path.to_str().unwrap(),
            cert_path.to_str().unwrap(),
        ],
    );
    assert_eq!(checked.status.code(), Some(1), "{}", text(&checked));
    assert!(text(&checked).contains("REVOKED"), "{}", text(&checked));

    let issued = server.audit("ssh.issue");
    assert!(
        issued.iter().any(|e| e["outcome"] == "denied"
            && e["reason"] == "login `postgres` is not allowed for user `bob`: no policy permits it on any host"),
        "{issued:?}"
    );

    // Rotation of an unknown kind is refused.
    let out = run_cli(
        bin(),
        &[
            "ca",
            "--data-dir",
            server.data_dir.to_str().unwrap(),
            "rotate",
            "--kind",
            "pgp",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: unknown CA kind `pgp`: use ssh-user, ssh-host or x509"
    );
}

#[tokio::test]
async fn rotation_keeps_old_keys_trusted_for_the_overlap() {
    let server = TestServer::start(bin(), Backend::Postgres, CONFIG).await;
    let dir = tempfile::tempdir().unwrap();
    let token = join_token(&server, "web-1");
    assert!(
        agent(&server, dir.path(), Some(&token), &["--once"])
            .status
            .success()
    );
    let rotate = |kind: &str, overlap: &str| {
        run_cli(
            bin(),
            &[
                "ca",
                "--data-dir",
                server.data_dir.to_str().unwrap(),
                "rotate",
                "--kind",
                kind,
                "--overlap",
                overlap,
            ],
        )
    };
    let (_, _, user_before) = server.get("/v1/ssh/user_ca.pub").await;
    for kind in ["ssh-user", "ssh-host", "x509"] {
        let out = rotate(kind, "1h");
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains(&format!(
            "rotated the {kind} CA; the old key stays trusted until"
        )));
    }
    let (_, _, user_after) = server.get("/v1/ssh/user_ca.pub").await;
    assert_eq!(user_after.lines().count(), 2);
    assert_eq!(
        user_after.lines().nth(1),
        user_before.lines().next(),
        "the old key is still listed, after the new one"
    );
    let (_, _, host_after) = server.get("/v1/ssh/host_ca.pub").await;
    assert_eq!(host_after.lines().count(), 2);
    let (_, _, bundle) = server.get("/v1/x509/bundle.pem").await;
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);

    // The agent still reaches the listener, picks up the new root and, seeing the host CA
    // rotated, renews its host certificate under the new key.
    let out = agent(&server, dir.path(), None, &["--once"]);
    assert!(out.status.success(), "{}", text(&out));
    let data = dir.path().join("agent");
    assert_eq!(
        std::fs::read_to_string(data.join("bundle.pem"))
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    let listing = text(&tool(
        "ssh-keygen",
        &[
            "-L",
            "-f",
            data.join("ssh_host_ed25519_key-cert.pub").to_str().unwrap(),
        ],
    ));
    let new_host_ca = dir.path().join("new_host_ca.pub");
    std::fs::write(&new_host_ca, host_after.lines().next().unwrap()).unwrap();
    let fingerprint = text(&tool("ssh-keygen", &["-lf", new_host_ca.to_str().unwrap()]));
    let fp = fingerprint.split_whitespace().nth(1).unwrap();
    assert!(
        listing.contains(&format!("Signing CA: ED25519 {fp}")),
        "{listing}\n{fingerprint}"
    );
    let rotations = server.audit("ca.rotate");
    assert_eq!(rotations.len(), 3);
    assert_eq!(rotations[0]["target"], "ca:ssh-user");

    // Bad overlap: a clear error, nothing rotated.
    let out = rotate("ssh-user", "soon");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: invalid duration `soon` for `overlap`: use a number and a unit, like 90s, 12h or 7d"
    );
    assert_eq!(server.audit("ca.rotate").len(), 3);
}

#[tokio::test]
async fn agents_and_the_cli_reach_warden_behind_a_tls_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let warden_port = warden_testkit::free_port();
    let proxy_port = warden_testkit::free_port();
    let public = format!("https://localhost:{proxy_port}");
    let config = format!("public_url = \"{public}\"\n{CONFIG}");
    let server = TestServer::start_on(bin(), Backend::Sqlite, &config, warden_port).await;
    let proxy = warden_testkit::TlsProxy::start(dir.path(), proxy_port, warden_port);
    let run = |args: &[&str], trust: bool| {
        let mut cmd = Command::new(bin());
        cmd.args(args).stdin(Stdio::null());
        if trust {
            cmd.env("WARDEN_CA_FILE", &proxy.ca_file);
        }
        cmd.output().unwrap()
    };
    let data = dir.path().join("agent");
    let conf = dir.path().join("sshd.d");
    let agent_args = |token: &str| -> Vec<String> {
        vec![
            "agent".into(),
            "--server".into(),
            public.clone(),
            "--join-token".into(),
            token.into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--sshd-config-dir".into(),
            conf.display().to_string(),
            "--once".into(),
        ]
    };

    // Without trusting the proxy's CA the agent refuses to talk, and spends nothing.
    let token = join_token(&server, "web-9");
    let args = agent_args(&token);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, false);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!(
            "error: TLS with https://localhost:{proxy_port} failed: invalid peer certificate: UnknownIssuer"
        )),
        "{}",
        text(&out)
    );
    let out = run(&args, true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(data.join("ssh_host_ed25519_key-cert.pub").exists());

    // The CLI too: https with an API token.
    let admin = server.token("ops", "admin", None);
    let out = Command::new(bin())
        .args(["audit", "--server", &public, "key"])
        .env("WARDEN_TOKEN", &admin)
        .env("WARDEN_CA_FILE", &proxy.ca_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("localhost/audit+"),
        "{}",
        text(&out)
    );
}
