//! The getting-started checklist and the audit log's export.

use warden_testkit::console::{alert, page};
use warden_testkit::{Backend, TestServer, free_port};

use crate::{apply_policy, bin, console_server, fixture};

/// Whether step `id` of the getting-started checklist on `body` is ticked.
fn ticked(body: &str, id: &str) -> bool {
    let li = body
        .split(&format!("<li id=\"{id}\" class=\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no step {id}: {body}"));
    li.starts_with("done")
}

/// The getting-started checklist ticks itself off from real state: a SCIM token, a joined
/// host, a policy applied by a person or token, an import, and (on a server configured with
/// one) an identity provider. A member never sees it; once every step is done it goes.
#[tokio::test]
async fn the_getting_started_checklist_ticks_itself_off() {
    let (server, base) = console_server(Backend::Sqlite).await;
    let root = tempfile::tempdir().unwrap();
    let ops = server.token("ops-root", "admin", None);
    server.admin_ok(&["group", "add", "admins"]);
    let (dave, _, _) = server.enroll_soft_passkey(&base, "dave").await;
    server.admin_ok(&["group", "add-member", "admins", "dave"]);
    let (carol, _, _) = server.enroll_soft_passkey(&base, "carol").await;
    let steps = [
        "identity-provider",
        "scim",
        "first-host",
        "policy",
        "first-import",
    ];

    let (_, _, first) = page(&dave, &base, "/console").await;
    assert!(first.contains("Getting started: 0 of 5 done"), "{first}");
    assert!(steps.iter().all(|s| !ticked(&first, s)));
    let (_, _, theirs) = page(&carol, &base, "/console").await;
    assert!(
        !theirs.contains("getting-started"),
        "a member is not asked to set Warden up"
    );

    server.token("idp", "scim", None);
    server.join_host(root.path(), "web-1", &["team=web"]);
    let scan = fixture("trivy/scheme_2_many_vulns.json");
    let out = server.remote(
        &ops,
        &["vuln", "import", scan.to_str().unwrap(), "--asset", "web"],
    );
    assert!(out.status.success());
    apply_policy(&server, root.path(), &ops, "// ours now\n");
    let (_, _, later) = page(&dave, &base, "/console").await;
    assert!(later.contains("Getting started: 4 of 5 done"), "{later}");
    for step in ["scim", "first-host", "policy", "first-import"] {
        assert!(ticked(&later, step), "{step}");
    }
    assert!(!ticked(&later, "identity-provider"));

    // With an identity provider configured (found at sign-in, not at start), that step too.
    let port = free_port();
    let other = format!("http://localhost:{port}");
    let config = format!(
        "public_url = \"{other}\"\n[limits]\nper_source_rps = 0\n[[identity.oidc]]\nname = \"corp\"\nissuer = \"http://127.0.0.1:{}\"\nclient_id = \"warden\"\n",
        free_port()
    );
    let with_idp = TestServer::start_on(bin(), Backend::Sqlite, &config, port).await;
    with_idp.admin_ok(&["group", "add", "admins"]);
    let (erin, _, _) = with_idp.enroll_soft_passkey(&other, "erin").await;
    with_idp.admin_ok(&["group", "add-member", "admins", "erin"]);
    let (_, _, shown) = page(&erin, &other, "/console").await;
    assert!(ticked(&shown, "identity-provider"), "{shown}");
    assert!(shown.contains("Getting started: 1 of 5 done"), "{shown}");
    // Every step done: the checklist is gone.
    let admin = with_idp.token("ops-root", "admin", None);
    with_idp.token("idp", "scim", None);
    with_idp.join_host(root.path(), "db-1", &["team=ops"]);
    let out = with_idp.remote(
        &admin,
        &["vuln", "import", scan.to_str().unwrap(), "--asset", "db"],
    );
    assert!(out.status.success());
    apply_policy(&with_idp, root.path(), &admin, "// ours too\n");
    let (_, _, shown) = page(&erin, &other, "/console").await;
    assert!(!shown.contains("getting-started"), "{shown}");
}

/// The audit log exported from the console: an auditor downloads a period as a file that
/// `warden audit verify` checks offline; the download is itself recorded; a member is
/// refused (recorded); a bad time gets the API's message, as a page in a browser.
#[tokio::test]
async fn the_audit_log_is_exported_from_the_console() {
    let (server, base) = console_server(Backend::Sqlite).await;
    server.admin_ok(&["group", "add", "auditors"]);
    let (carol, _, _) = server.enroll_soft_passkey(&base, "carol").await;
    server.admin_ok(&["group", "add-member", "auditors", "carol"]);
    let (mallory, _, _) = server.enroll_soft_passkey(&base, "mallory").await;

    let (_, _, audit_page) = page(&carol, &base, "/console/audit").await;
    assert!(
        audit_page.contains("action=\"/console/audit/export\""),
        "{audit_page}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let data = server.data_dir.to_string_lossy().into_owned();
    let key = warden_testkit::run_cli(bin(), &["audit", "--data-dir", &data, "key"]);
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    // Checkpoints are signed on a timer: until one covers the export, verify says so; ask
    // again a moment later.
    let mut said = String::new();
    for _ in 0..40 {
        let r = carol
            .get(format!("{base}/console/audit/export?since=&until="))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-disposition"],
            "attachment; filename=\"warden-audit.jsonl\""
        );
        std::fs::write(&file, r.text().await.unwrap()).unwrap();
        let out = warden_testkit::run_cli(
            bin(),
            &["audit", "verify", file.to_str().unwrap(), "--key", &key],
        );
        said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && said.starts_with("ok: events 1 to ") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(said.starts_with("ok: events 1 to "), "{said}");
    assert!(
        server
            .audit("audit.export")
            .iter()
            .any(|e| e["outcome"] == "success" && e["actor"] == "user:carol"),
        "the export is recorded as carol's"
    );

    // A member: refused and recorded. A bad time: the API's words, a page for a browser.
    let r = mallory
        .get(format!("{base}/console/audit/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        server
            .audit("api.read_audit")
            .iter()
            .any(|e| e["outcome"] == "denied" && e["actor"] == "user:mallory")
    );
    let r = carol
        .get(format!("{base}/console/audit/export?since=yesterday"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let page_shown = r.text().await.unwrap();
    assert_eq!(
        alert(&page_shown),
        "invalid `since` time `yesterday`: use RFC 3339, like 2026-11-29T10:00:00Z"
    );
    // A browser's own datetime field (no seconds, no zone) is read as UTC.
    let r = carol
        .get(format!(
            "{base}/console/audit/export?since=2026-01-01T00%3A00&until="
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Filtered, the page's export carries the filter: the file holds the matching events
    // only, each with its proof, and says so when verified.
    let (_, _, filtered) = page(
        &carol,
        &base,
        "/console/audit?actor=user%3Amallory&outcome=denied",
    )
    .await;
    assert!(
        filtered.contains("<input type=\"hidden\" name=\"actor\" value=\"user:mallory\">")
            && filtered.contains("<input type=\"hidden\" name=\"outcome\" value=\"denied\">"),
        "{filtered}"
    );
    assert!(
        filtered.contains("match the filter (actor user:mallory, outcome denied)"),
        "{filtered}"
    );
    let r = carol
        .get(format!(
            "{base}/console/audit/export?actor=user%3Amallory&outcome=denied&since=&until="
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    std::fs::write(&file, &text).unwrap();
    let out = warden_testkit::run_cli(
        bin(),
        &["audit", "verify", file.to_str().unwrap(), "--key", &key],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with(
            "ok: 1 event selected by actor=user:mallory outcome=denied among events 1 to "
        ),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = carol
        .get(format!("{base}/console/audit/export?outcome=maybe"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        alert(&r.text().await.unwrap()),
        "unknown outcome `maybe`: success, failure or denied"
    );
}
