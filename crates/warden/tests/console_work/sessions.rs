//! Ending a live SSH session, the sessions' filters, and a person's page.

use serde_json::{Value, json};
use warden_testkit::console::{alert, page, submit};
use warden_testkit::free_port;

use crate::{alice_on_db1, apply_policy, bin};

/// Ending a live SSH session from the console: an `oncall` member (the audit log and the
/// hosts, nothing else) ends alice's session on a real sshd through the recording proxy,
/// with a reason alice's terminal shows; an auditor sees the session without the form and
/// a forged end is denied and recorded; an empty reason is refused beside the field with
/// the CLI's message and the session stays open. The request form offers the groups a
/// person may ask for.
#[tokio::test]
async fn end_a_live_session_from_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let top = format!("public_url = \"{base}\"\n");
    let lab = warden_testkit::SshLab::start_opts(
        bin(),
        d,
        &warden_testkit::LabOptions {
            top: &top,
            port,
            ..warden_testkit::LabOptions::default()
        },
    )
    .await;
    let server = &lab.server;
    let ops = server.token("ops-root", "admin", None);
    for group in ["oncall", "auditors"] {
        server.admin_ok(&["group", "add", group]);
    }
    apply_policy(
        server,
        d,
        &ops,
        "@id(\"oncall-ends-sessions\")\npermit (principal in Warden::Group::\"oncall\", \
         action in [Warden::Action::\"read_audit\", Warden::Action::\"manage_hosts\"], resource);\n",
    );
    let (dana, _, dana_csrf) = server.enroll_soft_passkey(&base, "dana").await;
    server.admin_ok(&["group", "add-member", "oncall", "dana"]);
    let (carol, _, carol_csrf) = server.enroll_soft_passkey(&base, "carol").await;
    server.admin_ok(&["group", "add-member", "auditors", "carol"]);

    // The request form offers the groups carol is not in, by name, with their descriptions.
    let (_, _, mine) = page(&carol, &base, "/console").await;
    assert!(
        mine.contains("<option value=\"oncall\">oncall</option>"),
        "{mine}"
    );
    assert!(!mine.contains("<option value=\"auditors\""), "{mine}");

    // alice's session, open on db-1.
    let (mut ssh, id) = alice_on_db1(server, d, &ops).await;
    let path = format!("/console/sessions/{id}");
    let end = format!("{path}/end");

    // An auditor reads it but is offered no end; a forged one is denied and recorded.
    let (status, _, body) = page(&carol, &base, &path).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("<form id=\"end\""), "{body}");
    let (status, body) = submit(
        &carol,
        &base,
        &end,
        &[("csrf", carol_csrf.as_str()), ("reason", "curious")],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        server
            .audit("host.manage")
            .iter()
            .any(|e| e["outcome"] == "denied" && e["actor"] == "user:carol"),
        "carol's denial is recorded"
    );

    // An empty reason: the CLI's message, beside the field; the session stays open.
    let (status, _, body) = page(&dana, &base, &path).await;
    assert_eq!(status, 200);
    assert!(body.contains("<form id=\"end\""), "{body}");
    let (status, body) = submit(
        &dana,
        &base,
        &end,
        &[("csrf", dana_csrf.as_str()), ("reason", "  ")],
    )
    .await;
    let out = server.remote(&ops, &["sessions", "kill", &id, "--reason", "  "]);
    let cli = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(
        (status, format!("error: {}", alert(&body))),
        (400, cli.clone())
    );
    assert_eq!(cli, "error: give a reason: one line of at most 500 bytes");
    assert!(body.contains("id=\"end-error\""), "{body}");
    assert!(
        ssh.try_wait().unwrap().is_none(),
        "the session is still open"
    );

    // Ended, with the reason alice sees.
    let (status, body) = submit(
        &dana,
        &base,
        &end,
        &[
            ("csrf", dana_csrf.as_str()),
            ("reason", "INC-7: rotating the root password"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let mut ended = false;
    for _ in 0..100 {
        if ssh.try_wait().unwrap().is_some() {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ended, "the session did not end");
    let out = ssh.wait_with_output().unwrap();
    let seen = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        seen.contains("session ended by user:dana: INC-7: rotating the root password"),
        "{seen}"
    );
    let (_, _, body) = page(&dana, &base, &format!("{path}?done=ended")).await;
    assert!(body.contains("Ending the session"), "{body}");
    let killed = server.audit("ssh.session.kill");
    assert!(
        killed
            .iter()
            .any(|e| e["outcome"] == "success" && e["actor"] == "user:dana"),
        "{killed:?}"
    );
    let mut reason = Value::Null;
    for _ in 0..100 {
        let (_, answer) = server
            .graphql(
                Some(&ops),
                "query($id: String!) { sshSession(id: $id) { endReason } }",
                json!({ "id": id }),
            )
            .await;
        reason = answer["data"]["sshSession"]["endReason"].clone();
        if !reason.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The proxy that ends it at once records the reason as is; one that learns of it from
    // the request in the store records it as `access ended: …`. Either way, dana's words.
    assert!(
        reason.as_str().is_some_and(
            |r| r.ends_with("session ended by user:dana: INC-7: rotating the root password")
        ),
        "{reason}"
    );

    // Sessions filtered by person, host and day, as the auditor reads them.
    let link = format!("href=\"/console/sessions/{id}\"");
    let (_, started) = server
        .graphql(
            Some(&ops),
            "query($id: String!) { sshSession(id: $id) { startedAt } }",
            json!({ "id": id }),
        )
        .await;
    let today = &started["data"]["sshSession"]["startedAt"].as_str().unwrap()[..10];
    for (query, found) in [
        ("?person=alice".to_owned(), true),
        ("?person=user%3Aalice&host=db-1".to_owned(), true),
        (format!("?from={today}&to={today}"), true),
        ("?person=bob".to_owned(), false),
        ("?host=web-9".to_owned(), false),
        ("?from=2000-01-01&to=2000-01-02".to_owned(), false),
        ("?person=alice&active=1".to_owned(), false),
    ] {
        let (status, _, body) = page(&carol, &base, &format!("/console/sessions{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        let listed = body.split("id=\"past-h\"").nth(1).unwrap_or_default();
        assert_eq!(listed.contains(&link), found, "{query}: {listed}");
        if !found {
            assert!(listed.contains("No session matches."), "{query}");
        }
    }
    let (status, _, body) = page(&carol, &base, "/console/sessions?from=yesterday").await;
    let (_, answer) = server
        .graphql(
            Some(&ops),
            "{ sshSessions(since: \"yesterday\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, alert(&body)),
        (
            400,
            answer["errors"][0]["message"].as_str().unwrap().to_owned()
        )
    );

    // alice's page: her groups, her session, what she did; refused to dana, who may not
    // read the directory (recorded).
    let (status, _, body) = page(&carol, &base, "/console/people/alice").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<code>ops</code>"), "{body}");
    assert!(body.contains(&link), "{body}");
    assert!(body.contains("id=\"person-events\""), "{body}");
    let (status, _, body) = page(&carol, &base, "/console/people/nobody").await;
    assert_eq!(
        (status, alert(&body).as_str()),
        (404, "user `nobody` not found")
    );
    let (status, _, _) = page(&dana, &base, "/console/people/alice").await;
    assert_eq!(status, 403);
    assert!(
        server
            .audit("api.read_directory")
            .iter()
            .any(|e| e["outcome"] == "denied" && e["actor"] == "user:dana")
    );
}
