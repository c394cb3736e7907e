//! Passkeys in a real browser: Debian's Chromium with a CDP virtual authenticator, driven by
//! playwright-core, through a local account's enrollment link, passkey registration, sign-out,
//! sign-in with the passkey, refusal without user verification, and a cloned authenticator
//! (its sign count behind) refused and its credential locked. Every step is audited.
#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::path::Path;

use warden_testkit::{Backend, Journey, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn outcomes(server: &TestServer, action: &str) -> Vec<String> {
    server
        .audit(action)
        .iter()
        .map(|e| e["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_local_account_enrolls_a_passkey_and_signs_in_with_it_in_chromium() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://localhost:{port}");
    let config = format!("public_url = \"{base}\"\n[limits]\nper_source_rps = 0\n");
    let server = TestServer::start_on(bin(), Backend::Sqlite, &config, port).await;
    assert!(server.admin(&["user", "add", "carol"]).status.success());
    let out = server.admin(&["user", "enroll-link", "carol"]);
    assert!(out.status.success());
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(link.starts_with(&format!("{base}/enroll/wel_")), "{link}");

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots/passkeys");
    std::fs::create_dir_all(&shots).unwrap();
    let journey = Journey::run(
        "passkey-journey.mjs",
        &[&base, &link, "carol", shots.to_str().unwrap()],
    );
    journey.assert_no_error();
    let step = |name: &str| journey.step(name).clone();
    let steps = &journey.steps;
    assert_eq!(step("registered")["ok"], true, "{steps:?}");
    assert_eq!(step("signed-out")["ok"], true);
    assert_eq!(step("signed-in")["ok"], true);
    assert_eq!(step("no-user-verification")["ok"], true);
    let clone = step("clone-refused");
    assert_eq!(clone["ok"], true);
    assert_eq!(
        clone["detail"],
        "the sign count went backwards: the authenticator may have been cloned"
    );
    // Locked, the account is challenged like any name without a usable passkey: for a
    // stand-in credential no authenticator holds, so the browser's own refusal shows.
    assert_eq!(step("locked")["ok"], true, "{steps:?}");
    assert_ne!(step("locked")["detail"], "", "{steps:?}");
    assert!(shots.join("account.png").exists());

    // The trail: enrollment, registration, a passkey sign-in, the clone refused and locked.
    assert_eq!(outcomes(&server, "auth.enroll"), ["success"]);
    assert_eq!(outcomes(&server, "passkey.register"), ["success"]);
    assert!(
        outcomes(&server, "auth.passkey").is_empty(),
        "no identity provider here"
    );
    assert_eq!(outcomes(&server, "passkey.lock"), ["success"]);
    let logins = server.audit("auth.login");
    assert_eq!(logins[0]["outcome"], "success", "the passkey sign-in");
    assert_eq!(
        logins[0]["details"]["user_verified"], true,
        "Chromium's virtual authenticator verified the user: {logins:?}"
    );
    let reasons: Vec<&str> = logins.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(
        reasons.contains(&"the sign count went backwards: the authenticator may have been cloned"),
        "{logins:?}"
    );

    // The link worked once; a forged one is refused.
    let again = reqwest::get(&link).await.unwrap();
    assert_eq!(again.status(), 403);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("this enrollment link was already used; ask an admin for a new one")
    );
    let forged = reqwest::get(format!("{base}/enroll/nonsense"))
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    assert_eq!(
        outcomes(&server, "auth.enroll"),
        ["success", "failure", "failure"]
    );
}
