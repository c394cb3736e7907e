//! Sign-in through a real OpenID Provider (the certified npm `oidc-provider`): the code flow
//! with PKCE, state and nonce, just-in-time users, IdP groups mapped to Warden groups, a
//! server-side session cookie, CSRF-protected logout, and every refusal audited.
#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::path::Path;

use serde_json::{Value, json};
use warden_testkit::{Backend, Journey, OidcProvider, TestServer, free_port, run_cli};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

struct Setup {
    server: TestServer,
    _idp: OidcProvider,
    base: String,
    _dir: tempfile::TempDir,
}

/// A provider with alice (groups ops and strangers) and bob, and a Warden trusting it.
async fn setup(backend: Backend, extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let idp = OidcProvider::start(
        dir.path(),
        &json!({
            "clients": [{
                "client_id": "warden",
                "client_secret": "s3cret",
                "redirect_uris": [format!("{base}/auth/oidc/corp/callback")],
            }],
            "accounts": {
                "alice": { "email": "alice@example.com", "email_verified": true, "name": "Alice A", "groups": ["ops", "strangers"] },
                "bob": { "email": "bob@other.org", "email_verified": true },
            },
        }),
    );
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let config = format!(
        "public_url = \"{base}\"\n[limits]\nper_source_rps = 0\n\
         [[identity.oidc]]\nname = \"corp\"\nissuer = \"{}\"\nclient_id = \"warden\"\n\
         client_secret_file = \"{}\"\nscopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n{extra}",
        idp.issuer,
        secret.display()
    );
    let server = TestServer::start_on(bin(), backend, &config, port).await;
    Setup {
        server,
        _idp: idp,
        base,
        _dir: dir,
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// Starts a sign-in and stops at the provider's login form; returns the form's address.
async fn to_login_form(b: &reqwest::Client, base: &str) -> String {
    let resp = b
        .get(format!("{base}/auth/oidc/corp/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.url().path().starts_with("/interaction/"),
        "{}",
        resp.url()
    );
    resp.url().to_string()
}

/// Signs in at the provider (unless its session still holds) and follows back to Warden.
async fn sign_in(b: &reqwest::Client, base: &str, login: &str) -> (u16, String) {
    let resp = b
        .get(format!("{base}/auth/oidc/corp/login"))
        .send()
        .await
        .unwrap();
    let resp = if resp.url().path().starts_with("/interaction/") {
        let form = resp.url().to_string();
        b.post(&form)
            .form(&[("prompt", "login"), ("login", login), ("password", "x")])
            .send()
            .await
            .unwrap()
    } else {
        resp
    };
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_person_signs_in_through_the_identity_provider() {
    for backend in Backend::ALL {
        let s = setup(backend, "").await;
        assert!(s.server.admin(&["group", "add", "ops"]).status.success());
        let b = browser();
        let (status, page) = sign_in(&b, &s.base, "alice").await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Signed in"), "{page}");

        // The session cookie opens the account page, at the passkey step.
        let resp = b.get(format!("{}/account", s.base)).send().await.unwrap();
        assert_eq!(
            resp.headers()["content-security-policy"],
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );
        assert_eq!(resp.headers()["x-frame-options"], "DENY");
        let account = resp.text().await.unwrap();
        assert!(
            account.contains("Signed in as <strong>alice</strong> (Alice A) through oidc:corp."),
            "{account}"
        );
        assert!(
            account.contains("Register a passkey or security key to continue"),
            "{account}"
        );

        // Just-in-time user; the provider's group that exists here is granted, others ignored.
        let users = String::from_utf8(s.server.admin(&["user", "list"]).stdout).unwrap();
        assert!(
            users.contains("alice") && users.contains("alice@example.com"),
            "{users}"
        );
        let groups = String::from_utf8(s.server.admin(&["group", "list"]).stdout).unwrap();
        assert!(
            groups
                .lines()
                .any(|l| l.starts_with("ops") && l.contains("alice")),
            "{groups}"
        );
        let logins = s.server.audit("auth.login");
        assert_eq!(logins.len(), 1, "{logins:?}");
        assert_eq!(logins[0]["outcome"], "success");
        assert_eq!(logins[0]["target"], "idp:corp:alice");
        assert_eq!(logins[0]["details"]["groups"], json!(["ops", "strangers"]));

        // Logout needs the form's CSRF token.
        let forged = b
            .post(format!("{}/auth/logout", s.base))
            .form(&[("csrf", "0".repeat(64))])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);
        assert!(forged.text().await.unwrap().contains("CSRF token mismatch"));
        let out = b
            .post(format!("{}/auth/logout", s.base))
            .form(&[("csrf", csrf_of(&account))])
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), 200);
        let after = b.get(format!("{}/account", s.base)).send().await.unwrap();
        assert_eq!(
            after.url().path(),
            "/",
            "signed out: back to the sign-in page"
        );
        let ends = s.server.audit("session.end");
        let outcomes: Vec<&str> = ends
            .iter()
            .map(|e| e["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["denied", "success"], "{ends:?}");

        // Signing in again finds the same user (linked by the provider's subject).
        let (status, _) = sign_in(&b, &s.base, "alice").await;
        assert_eq!(status, 200);
        let users = String::from_utf8(s.server.admin(&["user", "list", "--json"]).stdout).unwrap();
        let users: Value = serde_json::from_str(&users).unwrap();
        assert_eq!(users.as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn refused_sign_ins_change_nothing_and_are_audited() {
    let s = setup(
        Backend::Sqlite,
        "allowed_email_domains = [\"example.com\"]\n",
    )
    .await;
    let b = browser();
    let base = &s.base;
    let get = |path: String| {
        let b = b.clone();
        async move {
            let resp = b.get(path).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };

    // An email domain not allowed.
    let (status, page) = sign_in(&b, base, "bob").await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("email domain `other.org` is not allowed"),
        "{page}"
    );

    // No sign-in cookie, no state, an error from the provider, a foreign issuer.
    let fresh = browser();
    let resp = fresh
        .get(format!("{base}/auth/oidc/corp/callback?code=x&state=y"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("no sign-in is in progress in this browser (no sign-in cookie)")
    );
    let (status, page) = get(format!("{base}/auth/oidc/corp/callback?code=x")).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("the callback has no code or no state"),
        "{page}"
    );
    let (status, page) = get(format!(
        "{base}/auth/oidc/corp/callback?error=access_denied&error_description=user+said+no"
    ))
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("the identity provider answered `access_denied`: user said no"),
        "{page}"
    );
    let (status, page) = get(format!(
        "{base}/auth/oidc/corp/callback?code=x&state=y&iss=https%3A%2F%2Fevil.example"
    ))
    .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("the callback names issuer `https://evil.example`, not this provider's"),
        "{page}"
    );

    // A state that is not this browser's sign-in's.
    let other = browser();
    to_login_form(&other, base).await;
    let resp = other
        .get(format!(
            "{base}/auth/oidc/corp/callback?code=x&state=forged"
        ))
        .send()
        .await
        .unwrap();
    let (status, page) = (resp.status().as_u16(), resp.text().await.unwrap());
    assert_eq!(status, 400);
    assert!(page.contains("state mismatch"), "{page}");

    // A replayed callback: the second use finds no sign-in in progress (the cookie is spent).
    let alice = browser();
    let form = to_login_form(&alice, base).await;
    let resp = alice
        .post(&form)
        .form(&[("prompt", "login"), ("login", "alice"), ("password", "x")])
        .send()
        .await
        .unwrap();
    let callback = resp.url().to_string();
    assert_eq!(resp.status(), 200);
    let replay = alice.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    assert!(
        replay
            .text()
            .await
            .unwrap()
            .contains("no sign-in is in progress")
    );
    let unknown = get(format!("{base}/auth/oidc/nope/login")).await;
    assert_eq!(unknown.0, 404);

    let refusals = s.server.audit("auth.login");
    let reasons: Vec<&str> = refusals
        .iter()
        .filter(|e| e["outcome"] == "failure")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 7, "{reasons:?}");
    assert!(reasons[0].contains("email domain `other.org` is not allowed"));
    let users: Value =
        serde_json::from_slice(&s.server.admin(&["user", "list", "--json"]).stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1, "only alice was created");

    // A disabled user cannot sign in; nor can a provider identity whose name is taken.
    assert!(
        s.server
            .admin(&["user", "disable", "alice"])
            .status
            .success()
    );
    let (status, page) = sign_in(&browser(), base, "alice").await;
    assert_eq!(status, 403);
    assert!(page.contains("user `alice` is disabled"), "{page}");
}

#[tokio::test]
async fn scim_only_provisioning_refuses_unknown_people() {
    let s = setup(Backend::Sqlite, "provisioning = \"scim\"\n").await;
    let (status, page) = sign_in(&browser(), &s.base, "alice").await;
    assert_eq!(status, 403);
    assert!(
        page.contains("no user is provisioned for this corp identity; provisioning is SCIM-only"),
        "{page}"
    );
    // Once the provider has provisioned her through SCIM, her first sign-in links to that
    // user by the userName the provider gave (here her email, in another case).
    let okta = s.server.token("okta", "scim", None);
    let body =
        json!({ "userName": "Alice@Example.com", "emails": [{ "value": "alice@example.com" }] });
    let (status, _, _) = s
        .server
        .request(
            "POST",
            "/scim/v2/Users",
            Some(&okta),
            Some(&body.to_string()),
            &[],
        )
        .await;
    assert_eq!(status, 201);
    let (status, page) = sign_in(&browser(), &s.base, "alice").await;
    assert_eq!(status, 200, "{page}");
    let logins = s.server.audit("auth.login");
    assert_eq!(logins.last().unwrap()["outcome"], "success", "{logins:?}");
    let users: Value =
        serde_json::from_slice(&s.server.admin(&["user", "list", "--json"]).stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["name"], "alice-example.com");
    // A local user with the same name is not taken over by the provider's identity.
    let s = setup(Backend::Sqlite, "").await;
    assert!(s.server.admin(&["user", "add", "alice"]).status.success());
    let (status, page) = sign_in(&browser(), &s.base, "alice").await;
    assert_eq!(status, 403);
    assert!(
        page.contains(
            "user `alice` already exists and is not linked to corp; an admin must resolve it"
        ),
        "{page}"
    );
    let failures = s.server.audit("auth.login");
    assert_eq!(failures[0]["outcome"], "failure");
}

#[tokio::test]
async fn after_the_identity_provider_a_passkey_is_mandatory_in_chromium() {
    let s = setup(Backend::Sqlite, "").await;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots/oidc");
    std::fs::create_dir_all(&shots).unwrap();
    // `warden login` waits on its loopback for the browser's answer.
    let home = tempfile::tempdir().unwrap();
    // alice's IdP group `ops` is what the starter policy matches against this host's label.
    assert!(s.server.admin(&["group", "add", "ops"]).status.success());
    s.server.join_host(home.path(), "ops-1", &["team=ops"]);
    let mut login = std::process::Command::new(bin())
        .args(["login", "--server", &s.base, "--no-browser"])
        .env("WARDEN_CONFIG_DIR", home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(login.stdout.take().unwrap()));
    let cli_url = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with(&format!("{}/auth/cli?", s.base)))
        .unwrap();
    let journey = Journey::run(
        "oidc-passkey-journey.mjs",
        &[&s.base, "alice", shots.to_str().unwrap(), &cli_url],
    );
    let steps = &journey.steps;
    let names: Vec<(&str, bool)> = steps
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["ok"] == true))
        .collect();
    assert_eq!(
        names,
        [
            ("idp-first", true),
            ("registered", true),
            ("idp-again", true),
            ("confirmed", true),
            ("cli", true)
        ],
        "{steps:?} {}",
        journey.stderr
    );
    assert!(login.wait().unwrap().success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .any(|l| l.starts_with("signed in as alice until ")),
        "{rest:?}"
    );
    assert!(home.path().join("ssh/id_ed25519-cert.pub").exists());
    let logins = s.server.audit("auth.login");
    assert_eq!(logins.len(), 3);
    assert!(logins.iter().all(|e| e["outcome"] == "success"));
    let passkey = s.server.audit("auth.passkey");
    assert_eq!(passkey.len(), 2);
    assert_eq!(passkey[0]["actor"], "user:alice");
    assert_eq!(
        passkey[0]["details"]["user_verified"], true,
        "the log says the authenticator verified the user: {passkey:?}"
    );
    assert_eq!(s.server.audit("auth.cli.token")[0]["outcome"], "success");
}

async fn account_path(b: &reqwest::Client, base: &str) -> String {
    let resp = b.get(format!("{base}/account")).send().await.unwrap();
    resp.url().path().to_owned()
}

#[tokio::test]
async fn sessions_end_when_idle_disabled_tampered_or_ended_by_an_admin() {
    let s = setup(Backend::Postgres, "[identity]\nidle_timeout = \"2s\"\n").await;
    let base = &s.base;

    // An admin lists open sessions and ends one.
    let b1 = browser();
    assert_eq!(sign_in(&b1, base, "alice").await.0, 200);
    assert_eq!(account_path(&b1, base).await, "/account");
    let listed: Value =
        serde_json::from_slice(&s.server.admin(&["session", "list", "--json"]).stdout).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["user"], "alice");
    assert_eq!(listed[0]["stage"], "passkey_enrollment");
    assert!(s.server.admin(&["session", "end", &id]).status.success());
    assert_eq!(account_path(&b1, base).await, "/", "ended by the admin");
    let out = s.server.admin(&["session", "end", &id]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("error: open session `{id}` not found")
    );

    // A tampered session cookie opens nothing.
    let b2 = browser();
    assert_eq!(sign_in(&b2, base, "alice").await.0, 200);
    let listed: Value =
        serde_json::from_slice(&s.server.admin(&["session", "list", "--json"]).stdout).unwrap();
    let live = listed[0]["id"].as_str().unwrap().to_owned();
    let forged = format!("warden_session=wss_{live}_{}", "A".repeat(43));
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/account"))
        .header("cookie", forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/");

    // Disabling the person ends their live session at its next request.
    assert!(
        s.server
            .admin(&["user", "disable", "alice"])
            .status
            .success()
    );
    assert_eq!(account_path(&b2, base).await, "/");
    assert!(
        s.server
            .admin(&["user", "enable", "alice"])
            .status
            .success()
    );

    // A request every half second keeps a session open past the idle timeout: activity is
    // noted (at most once a step of 66 ms at this timeout).
    let b4 = browser();
    assert_eq!(sign_in(&b4, base, "alice").await.0, 200);
    for _ in 0..7 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(account_path(&b4, base).await, "/account");
    }

    // Two seconds without a request: the session is over (automatic logoff).
    let b3 = browser();
    assert_eq!(sign_in(&b3, base, "alice").await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(account_path(&b3, base).await, "/");

    let ends = s.server.audit("session.end");
    let reasons: Vec<&str> = ends
        .iter()
        .filter(|e| e["outcome"] == "success")
        .map(|e| e["details"]["reason"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(reasons, ["admin", "idle"], "{ends:?}");
    // Disabling ended b2's session in its own transaction, counted in its event.
    let disabled = s.server.audit("user.disable");
    assert_eq!(
        disabled[0]["details"]["web_sessions_ended"], 1,
        "{disabled:?}"
    );

    let out = s.server.admin(&["user", "reset-passkeys", "alice"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("removed 0 passkey(s) of alice and ended their sessions"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.server.audit("passkey.reset").len(), 1);
}

#[test]
fn bad_identity_configuration_stops_the_server_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    let data = dir.path().join("data");
    let provider = |extra: &str| {
        format!(
            "[[identity.oidc]]\nname = \"corp\"\nissuer = \"https://idp.example.com\"\nclient_id = \"warden\"\n{extra}"
        )
    };
    let missing = dir.path().join("nope");
    let cases = [
        (
            provider("algorithms = [\"HS256\"]\n"),
            "algorithm `HS256` is not accepted for identity provider `corp`: use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA (never none or HMAC)".to_owned(),
        ),
        (
            provider(&format!("client_secret_file = \"{}\"\n", missing.display())),
            format!(
                "identity provider `corp`: cannot read client_secret_file {}: No such file or directory",
                missing.display()
            ),
        ),
        (
            provider("provisioning = \"manual\"\n"),
            "invalid provisioning `manual` for identity provider `corp`: use jit or scim".to_owned(),
        ),
        (
            "[[identity.oidc]]\nname = \"corp\"\nissuer = \"http://idp.example.com\"\nclient_id = \"w\"\n".to_owned(),
            "invalid issuer `http://idp.example.com` for identity provider `corp`: use an https:// URL".to_owned(),
        ),
        (
            "[identity]\nidle_timeout = \"soon\"\n".to_owned(),
            "invalid duration `soon` for `identity.idle_timeout`: at least 1s, like 30m or 12h".to_owned(),
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&config, text).unwrap();
        let out = run_cli(
            bin(),
            &[
                "server",
                "--config",
                config.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
            ],
        );
        assert!(!out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            format!("error: {expected}")
        );
        assert!(!data.exists(), "a refused config changes nothing");
    }
}

#[tokio::test]
async fn an_unreachable_identity_provider_is_a_clear_error() {
    let port = free_port();
    let dead = free_port();
    let base = format!("http://localhost:{port}");
    let config = format!(
        "public_url = \"{base}\"\n[[identity.oidc]]\nname = \"down\"\nissuer = \"http://127.0.0.1:{dead}\"\nclient_id = \"warden\"\n"
    );
    let server = TestServer::start_on(bin(), Backend::Sqlite, &config, port).await;
    let resp = browser()
        .get(format!("{base}/auth/oidc/down/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("identity provider `down` is unavailable: discovery failed"),
        "{page}"
    );
    assert_eq!(server.audit("auth.login")[0]["outcome"], "failure");
}
