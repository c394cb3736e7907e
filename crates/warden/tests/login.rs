//! `warden login`: the loopback flow (RFC 8252) with PKCE. A person signed in with a passkey
//! authorizes the CLI in their browser; the CLI gets a 12-hour credential (saved 0600) and an
//! SSH certificate for a key it made. The browser here is reqwest with a cookie jar and the
//! testkit's software authenticator; Chromium drives the same pages in passkeys.rs.
#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use warden_testkit::{Backend, SoftPasskey, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

/// A browser signed in as `user` with a (software) passkey.
async fn signed_in(server: &TestServer, base: &str, user: &str) -> reqwest::Client {
    server.enroll_soft_passkey(base, user).await.0
}

async fn post(b: &reqwest::Client, url: String, csrf: &str, body: Value) -> (u16, Value) {
    let resp = b
        .post(url)
        .header("x-warden-csrf", csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_passkey_is_removed_only_with_another_one() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://localhost:{port}");
    let config = format!("public_url = \"{base}\"\n[limits]\nper_source_rps = 0\n");
    let server = TestServer::start_on(bin(), Backend::Postgres, &config, port).await;
    let (b, _laptop, csrf) = server.enroll_soft_passkey(&base, "erin").await;

    // A second passkey, added while signed in.
    let (status, options) = post(
        &b,
        format!("{base}/webauthn/register/start"),
        &csrf,
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let mut phone = SoftPasskey::new("localhost", &base);
    let credential = phone.register(&options);
    let (status, _) = post(
        &b,
        format!("{base}/webauthn/register/finish"),
        &csrf,
        json!({ "name": "phone", "credential": credential }),
    )
    .await;
    assert_eq!(status, 200);
    let page = b
        .get(format!("{base}/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ids: Vec<String> = page
        .split("data-passkey=\"")
        .skip(1)
        .map(|r| r.split('"').next().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{page}");

    // Removing the laptop's passkey takes the phone's assertion.
    let (status, options) = post(
        &b,
        format!("{base}/webauthn/remove/start"),
        &csrf,
        json!({ "passkey": ids[0] }),
    )
    .await;
    assert_eq!(status, 200, "{options}");
    let allowed = options["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(allowed, 1, "only the other passkey may approve");
    let assertion = phone.assert(&options);
    let (status, body) = post(
        &b,
        format!("{base}/webauthn/remove/finish"),
        &csrf,
        json!({ "credential": assertion }),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The last one cannot go this way.
    let (status, body) = post(
        &b,
        format!("{base}/webauthn/remove/start"),
        &csrf,
        json!({ "passkey": ids[1] }),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (
            409,
            "this is your only usable passkey: add another before removing it (or ask an admin to reset)"
        )
    );
    let (status, body) = post(
        &b,
        format!("{base}/webauthn/remove/start"),
        "forged",
        json!({ "passkey": ids[1] }),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (403, "CSRF token mismatch")
    );
    let removed = Value::from(server.audit("passkey.remove"));
    assert_eq!(removed[0]["outcome"], "success");
    assert_eq!(removed[0]["actor"], "user:erin");
}

#[tokio::test]
async fn warden_login_gets_a_credential_and_an_ssh_certificate() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://localhost:{port}");
    let config = format!("public_url = \"{base}\"\n[limits]\nper_source_rps = 0\n");
    let server = TestServer::start_on(bin(), Backend::Sqlite, &config, port).await;
    let b = signed_in(&server, &base, "dave").await;
    let home = tempfile::tempdir().unwrap();
    // The starter policy lets dave log in as himself to hosts labelled with his group.
    for args in [
        &["group", "add", "web"][..],
        &["group", "add-member", "web", "dave"],
    ] {
        assert!(server.admin(args).status.success());
    }
    server.join_host(home.path(), "web-1", &["team=web"]);

    // Given the server's loopback address, as the README's first steps do: the browser is
    // still sent to its public address, the one origin passkeys work at (RFC 8414 metadata),
    // and the code is traded at the address given.
    let given = format!("http://127.0.0.1:{port}");
    let (status, metadata) = {
        let r = reqwest::get(format!("{given}/.well-known/oauth-authorization-server"))
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200);
    assert_eq!(metadata["issuer"], base.as_str(), "{metadata}");
    assert_eq!(
        metadata["authorization_endpoint"],
        format!("{base}/auth/cli"),
        "{metadata}"
    );
    let mut login = Command::new(bin())
        .args(["login", "--server", &given, "--no-browser"])
        .env("WARDEN_CONFIG_DIR", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(login.stdout.take().unwrap()).lines();
    let mut said = Vec::new();
    let url = loop {
        let line = lines.next().unwrap().unwrap();
        if line.starts_with(&format!("{base}/auth/cli?")) {
            break line;
        }
        said.push(line);
    };
    assert_eq!(
        said.first().map(String::as_str),
        Some(
            format!("Passkeys work at this server's public address, {base}: sign in there.")
                .as_str()
        ),
        "{said:?}"
    );
    let consent = b.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        consent.contains("asks to act as <strong>dave</strong> for 12 hours"),
        "{consent}"
    );
    let form: Vec<(String, String)> = ["csrf", "redirect_uri", "state", "code_challenge"]
        .iter()
        .map(|k| {
            let v = consent
                .split(&format!("name=\"{k}\" value=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap()
                .replace("&amp;", "&");
            ((*k).to_owned(), v)
        })
        .collect();
    let redirect = b
        .post(format!("{base}/auth/cli"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 303);
    let back = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with("http://127.0.0.1:"), "{back}");
    let answer = reqwest::get(&back).await.unwrap().text().await.unwrap();
    assert!(answer.contains("The Warden CLI is signed in"));
    let status = login.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(status.success(), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.starts_with("signed in as dave until ")),
        "{rest:?}"
    );

    let saved = home.path().join("credentials.json");
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    let token = saved["token"].as_str().unwrap();
    let (_, viewer) = server
        .graphql(Some(token), "{ viewer { name kind } }", Value::Null)
        .await;
    assert_eq!(viewer["data"]["viewer"]["name"], "dave", "{viewer}");
    let cert = home.path().join("ssh/id_ed25519-cert.pub");
    let listing = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(&cert)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("Key ID: \"user:dave token:"), "{listing}");
    let key_mode = std::fs::metadata(home.path().join("ssh/id_ed25519"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    // The code worked once; a wrong PKCE verifier or a foreign redirect is refused.
    let challenge_for = |verifier: &str| {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
    };
    let verifier = "v".repeat(43);
    let mut form: Vec<(String, String)> = form.into_iter().filter(|(k, _)| k == "csrf").collect();
    form.push(("redirect_uri".into(), "http://127.0.0.1:9/cb".into()));
    form.push(("state".into(), "s1".into()));
    form.push(("code_challenge".into(), challenge_for(&verifier)));
    let redirect = b
        .post(format!("{base}/auth/cli"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(redirect.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let redeem = |verifier: String, redirect: &str| {
        let body = json!({ "code": code, "code_verifier": verifier, "redirect_uri": redirect });
        let base = base.clone();
        async move {
            let resp = reqwest::Client::new()
                .post(format!("{base}/auth/cli/token"))
                .json(&body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = redeem("w".repeat(43), "http://127.0.0.1:9/cb").await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "the PKCE verifier does not match the challenge")
    );
    let (status, body) = redeem(verifier.clone(), "http://127.0.0.1:10/cb").await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "redirect_uri does not match the one authorized")
    );
    let (status, _) = redeem(verifier.clone(), "http://127.0.0.1:9/cb").await;
    assert_eq!(status, 200);
    let (status, body) = redeem(verifier, "http://127.0.0.1:9/cb").await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "this login code was already used")
    );

    let bad = b
        .get(format!("{base}/auth/cli?redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=s&code_challenge={}", challenge_for("x")))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("is not a loopback address")
    );
    let stranger = reqwest::get(&url).await.unwrap();
    assert_eq!(stranger.status(), 401, "not signed in in that browser");
}

/// One passkey sign-in for fred from a fresh browser, with `tamper` applied to the answer.
async fn attempt(
    base: &str,
    soft: &mut SoftPasskey,
    tamper: impl FnOnce(&mut Value),
) -> (u16, Value) {
    let b = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let options: Value = b
        .post(format!("{base}/auth/passkey/start"))
        .json(&json!({ "user": "fred" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut credential = soft.assert(&options);
    tamper(&mut credential);
    let resp = b
        .post(format!("{base}/auth/passkey/finish"))
        .json(&json!({ "credential": credential }))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
}

#[tokio::test]
async fn forged_assertions_and_stale_links_are_refused_and_audited() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://localhost:{port}");
    let config = format!(
        "public_url = \"{base}\"\n[limits]\nper_source_rps = 0\n[identity]\nenrollment_link_ttl = \"1s\"\n"
    );
    let server = TestServer::start_on(bin(), Backend::Sqlite, &config, port).await;
    let (_, mut genuine, _) = server.enroll_soft_passkey(&base, "fred").await;

    let mut stranger = SoftPasskey::new("localhost", &base);
    let (status, body) = attempt(&base, &mut stranger, |_| {}).await;
    assert_eq!(status, 403, "a key never registered: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("the passkey did not verify"),
        "{body}"
    );
    let (status, body) = attempt(&base, &mut genuine, |c| {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut sig = engine
            .decode(c["response"]["signature"].as_str().unwrap())
            .unwrap();
        let last = sig.len() - 1;
        sig[last] ^= 1;
        c["response"]["signature"] = Value::String(engine.encode(sig));
    })
    .await;
    assert_eq!(status, 403, "a broken signature: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("the passkey did not verify"),
        "{body}"
    );
    genuine.set_user_verified(false);
    let (status, body) = attempt(&base, &mut genuine, |_| {}).await;
    assert_eq!(status, 403, "no user verification: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("the passkey did not verify"),
        "{body}"
    );
    genuine.set_user_verified(true);
    let (status, body) = attempt(&base, &mut genuine, |_| {}).await;
    assert_eq!(status, 200, "the genuine key still works: {body}");
    let logins = Value::from(server.audit("auth.login"));
    let failures = logins
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "failure")
        .count();
    assert_eq!(failures, 3, "{logins}");

    // An enrollment link past its life.
    assert!(server.admin(&["user", "add", "gina"]).status.success());
    let link = String::from_utf8(server.admin(&["user", "enroll-link", "gina"]).stdout).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let resp = reqwest::get(link.trim()).await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("this enrollment link has expired; ask an admin for a new one")
    );
}

#[tokio::test]
async fn only_allowed_authenticator_models_register_when_an_allow_list_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let vendor = warden_testkit::AttestationVendor::new("Acme Keys Root");
    let stranger = warden_testkit::AttestationVendor::new("Other Vendor Root");
    let ca = dir.path().join("acme.pem");
    std::fs::write(&ca, vendor.pem()).unwrap();
    let allowed = [0x11u8; 16];
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://localhost:{port}");
    let config = format!(
        "public_url = \"{base}\"\n[limits]\nper_source_rps = 0\n\
         [[identity.authenticator]]\nname = \"Acme Key\"\naaguid = \"11111111-1111-1111-1111-111111111111\"\nca_file = \"{}\"\n",
        ca.display()
    );
    let server = TestServer::start_on(bin(), Backend::Sqlite, &config, port).await;
    let key = |vendor: Option<(&warden_testkit::AttestationVendor, [u8; 16])>| {
        let soft = SoftPasskey::new("localhost", &base);
        match vendor {
            Some((v, aaguid)) => soft.attested_by(v, aaguid),
            None => soft,
        }
    };

    let (status, body, _) = server
        .try_enroll(&base, "ann", key(Some((&vendor, allowed))))
        .await;
    assert_eq!(status, 200, "an allowed model registers: {body}");
    for (user, soft, what) in [
        (
            "ben",
            key(Some((&vendor, [0x22; 16]))),
            "another model of the same vendor",
        ),
        (
            "cid",
            key(Some((&stranger, allowed))),
            "the right AAGUID from another CA",
        ),
        ("dot", key(None), "no attestation at all"),
    ] {
        let (status, body, _) = server.try_enroll(&base, user, soft).await;
        assert_eq!(status, 403, "{what}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with(
                "the passkey did not verify: this authenticator is not an allowed model"
            ),
            "{what}: {body}"
        );
    }
    let registered = server.audit("passkey.register");
    let outcomes: Vec<&str> = registered
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["success", "failure", "failure", "failure"]);
}
