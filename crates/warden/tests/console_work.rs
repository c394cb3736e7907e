//! The console does the work: each administrative and triage action taken in the browser's
//! way (a signed-in person with a passkey, a form with the session's CSRF token), by the
//! narrowest person the policy lets do it and by one it does not; checked afterwards in the
//! audit log and through the API, with the exact one-line error of each bad input shown
//! beside its field, the same as the CLI's, and nothing changed.
#![expect(
    clippy::too_many_lines,
    reason = "an end-to-end journey reads in order, one step after another"
)]
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers fail the test"
)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use warden_testkit::console::{alert, hidden, page, submit};
use warden_testkit::{Backend, TestServer, free_port};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn admin_ok(server: &TestServer, args: &[&str]) {
    let out = server.admin(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server whose public address is `localhost` (where passkeys work), and its base URL.
async fn console_server(backend: Backend) -> (TestServer, String) {
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let config = format!("public_url = \"{base}\"\n[limits]\nper_source_rps = 0\n");
    (
        TestServer::start_on(bin(), backend, &config, port).await,
        base,
    )
}

/// Applies the starter policy plus `extra` (as `extra.cedar`) with the admin token `admin`.
fn apply_policy(server: &TestServer, dir: &Path, admin: &str, extra: &str) {
    let policy = dir.join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    for (name, text) in warden_policy::STARTER {
        std::fs::write(policy.join(name), text).unwrap();
    }
    std::fs::write(policy.join("extra.cedar"), extra).unwrap();
    let out = server.remote(admin, &["policy", "apply", policy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../warden-vuln/tests/fixtures")
        .join(path)
}

/// The CLI's error for `args` run with `token`: its one line, without `error: `.
fn cli_error(server: &TestServer, token: &str, args: &[&str]) -> String {
    let out = server.remote(token, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    err.strip_prefix("error: ").unwrap_or(&err).to_owned()
}

async fn finding(server: &TestServer, token: &str, id: &str) -> Value {
    let (_, answer) = server
        .graphql(
            Some(token),
            "query($id: Int!) { vulnFinding(id: $id) { state severity acceptedUntil history { change actor } } }",
            json!({ "id": id.parse::<i64>().unwrap() }),
        )
        .await;
    answer["data"]["vulnFinding"].clone()
}

/// Triage through a finding's page: an `appsec` member (read and manage findings, nothing
/// else) re-rates, accepts and reopens; an auditor sees the page without its forms and a
/// forged decision is denied and recorded; each bad input is refused beside its field with
/// the CLI's message and changes nothing; a stale form is refused.
async fn triage(backend: Backend) {
    let (server, base) = console_server(backend).await;
    let root = tempfile::tempdir().unwrap();
    let ops = server.token("ops", "admin", None);
    for args in [
        &["group", "add", "appsec"][..],
        &["group", "add", "auditors"],
    ] {
        admin_ok(&server, args);
    }
    apply_policy(
        &server,
        root.path(),
        &ops,
        "@id(\"appsec-triage\")\npermit (principal in Warden::Group::\"appsec\", \
         action in [Warden::Action::\"read_vulns\", Warden::Action::\"manage_vulns\"], resource);\n",
    );
    let scan = fixture("trivy/scheme_2_many_vulns.json");
    let out = server.remote(
        &ops,
        &["vuln", "import", scan.to_str().unwrap(), "--asset", "web"],
    );
    assert!(out.status.success());
    let (erin, _, erin_csrf) = server.enroll_soft_passkey(&base, "erin").await;
    admin_ok(&server, &["group", "add-member", "appsec", "erin"]);
    let (carol, _, carol_csrf) = server.enroll_soft_passkey(&base, "carol").await;
    admin_ok(&server, &["group", "add-member", "auditors", "carol"]);

    // The list links each finding to its page.
    let (status, _, list) = page(&erin, &base, "/console/vulns?state=open").await;
    assert_eq!(status, 200, "{list}");
    let id = list
        .split("href=\"/console/vulns/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no finding linked: {list}"))
        .to_owned();
    let path = format!("/console/vulns/{id}");

    // An auditor reads the page but is offered no decision; a forged one is denied by the
    // policy and recorded.
    let (status, _, shown) = page(&carol, &base, &path).await;
    assert_eq!(status, 200, "{shown}");
    assert!(shown.contains("id=\"history\"") || shown.contains("No change since"));
    assert!(!shown.contains("<form id=\"accept\""), "{shown}");
    let (status, body) = submit(
        &carol,
        &base,
        &path,
        &[
            ("csrf", carol_csrf.as_str()),
            ("decision", "false_positive"),
            ("reason", "not ours"),
            ("seen", "0"),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(alert(&body).starts_with("permission denied: "), "{body}");
    assert!(
        server
            .audit("vuln.manage")
            .iter()
            .any(|e| e["outcome"] == "denied"
                && e["actor"] == "user:carol"
                && e["target"] == format!("finding:{id}")),
        "the denial is recorded"
    );

    // The appsec member is offered every decision on an open finding.
    let (status, _, shown) = page(&erin, &base, &path).await;
    assert_eq!(status, 200);
    for form in ["rate", "accept", "false_positive"] {
        assert_eq!(hidden(&shown, form, "csrf"), erin_csrf, "{form}");
    }
    let seen = hidden(&shown, "accept", "seen");
    let before = finding(&server, &ops, &id).await;

    // Bad input: the CLI's one-line message, beside the field it is about; nothing changes.
    let far = "400d";
    for (decision, extra, cli) in [
        (
            "rate",
            [("severity", "severe"), ("reason", "x")],
            vec!["rate", &id, "--severity", "severe", "--reason", "x"],
        ),
        (
            "rate",
            [("severity", "low"), ("reason", "  ")],
            vec!["rate", &id, "--severity", "low", "--reason", "  "],
        ),
        (
            "accept",
            [("until", far), ("reason", "vendor fix in Q3")],
            vec![
                "accept",
                &id,
                "--until",
                far,
                "--reason",
                "vendor fix in Q3",
            ],
        ),
        (
            "accept",
            [("until", "2020-01-01"), ("reason", "x")],
            vec!["accept", &id, "--until", "2020-01-01", "--reason", "x"],
        ),
        (
            "false_positive",
            [("reason", ""), ("until", "")],
            vec!["false-positive", &id, "--reason", ""],
        ),
    ] {
        let mut fields = vec![
            ("csrf", erin_csrf.as_str()),
            ("decision", decision),
            ("seen", seen.as_str()),
        ];
        fields.extend(extra);
        let (status, body) = submit(&erin, &base, &path, &fields).await;
        let mut args = vec!["vuln"];
        args.extend(cli.iter().copied());
        let expected = cli_error(&server, &ops, &args);
        assert_eq!(
            (status, alert(&body)),
            (400, expected),
            "{decision} {extra:?}"
        );
        assert!(
            body.contains(&format!("id=\"{decision}-error\"")),
            "the error sits beside the {decision} form"
        );
        assert!(body.contains(&format!("aria-describedby=\"{decision}-error\"")));
    }
    let (status, body) = submit(
        &erin,
        &base,
        &path,
        &[
            ("csrf", erin_csrf.as_str()),
            ("decision", "shrug"),
            ("seen", seen.as_str()),
        ],
    )
    .await;
    assert_eq!(
        (status, alert(&body).as_str()),
        (
            400,
            "unknown decision `shrug`: rate, accept, false_positive or reopen"
        )
    );
    let (status, body) = submit(
        &erin,
        &base,
        "/console/vulns/99999",
        &[
            ("csrf", erin_csrf.as_str()),
            ("decision", "reopen"),
            ("reason", "x"),
            ("seen", "0"),
        ],
    )
    .await;
    assert_eq!(
        (status, alert(&body)),
        (
            404,
            cli_error(&server, &ops, &["vuln", "reopen", "99999", "--reason", "x"])
        )
    );
    let (status, _, body) = page(&erin, &base, "/console/vulns/x1").await;
    assert_eq!(
        (status, alert(&body).as_str()),
        (404, "no finding `x1`: the Vulnerabilities page lists them")
    );
    assert_eq!(finding(&server, &ops, &id).await, before, "nothing changed");

    // Re-rated, then accepted: each through the API as erin, recorded, on the page.
    let (status, body) = submit(
        &erin,
        &base,
        &path,
        &[
            ("csrf", erin_csrf.as_str()),
            ("decision", "rate"),
            ("severity", "low"),
            ("reason", "internal only"),
            ("seen", seen.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, shown) = page(&erin, &base, &format!("{path}?done=triaged")).await;
    assert!(shown.contains("Decided. The finding"), "{shown}");
    assert!(
        shown.contains("re-rated by user:erin"),
        "the effective rating names who: {shown}"
    );
    // The accept form still carries the count from before the re-rating: stale.
    let (status, body) = submit(
        &erin,
        &base,
        &path,
        &[
            ("csrf", erin_csrf.as_str()),
            ("decision", "accept"),
            ("until", "30d"),
            ("reason", "vendor fix due"),
            ("seen", seen.as_str()),
        ],
    )
    .await;
    assert_eq!(
        (status, alert(&body)),
        (
            409,
            format!("finding {id} changed since this form was shown: read it again, then decide")
        )
    );
    let fresh = hidden(&shown, "accept", "seen");
    let (status, _) = submit(
        &erin,
        &base,
        &path,
        &[
            ("csrf", erin_csrf.as_str()),
            ("decision", "accept"),
            ("until", "30d"),
            ("reason", "vendor fix due"),
            ("seen", fresh.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (_, _, shown) = page(&erin, &base, &path).await;
    assert!(!shown.contains("<form id=\"accept\""), "accepted: {shown}");
    let seen = hidden(&shown, "reopen", "seen");
    let (status, _) = submit(
        &erin,
        &base,
        &path,
        &[
            ("csrf", erin_csrf.as_str()),
            ("decision", "reopen"),
            ("reason", "fix slipped"),
            ("seen", seen.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 303);

    // The API and the audit log agree with the page.
    let after = finding(&server, &ops, &id).await;
    assert_eq!(after["severity"], "low", "{after}");
    assert_eq!(after["state"], "open", "{after}");
    let changes: Vec<(String, String)> = after["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap().to_owned(),
                c["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let erin_said: Vec<&str> = changes
        .iter()
        .filter(|(_, actor)| actor == "user:erin")
        .map(|(change, _)| change.as_str())
        .collect();
    assert_eq!(erin_said, ["rated", "accepted", "reopened"], "{changes:?}");
    for action in ["vuln.rate", "vuln.accept", "vuln.reopen"] {
        assert!(
            server
                .audit(action)
                .iter()
                .any(|e| e["outcome"] == "success"
                    && e["actor"] == "user:erin"
                    && e["target"] == format!("finding:{id}")),
            "{action}: {:?}",
            server.audit(action)
        );
    }
}

#[tokio::test]
async fn triage_a_finding_from_its_page_sqlite() {
    triage(Backend::Sqlite).await;
}

#[tokio::test]
async fn triage_a_finding_from_its_page_postgres() {
    triage(Backend::Postgres).await;
}
