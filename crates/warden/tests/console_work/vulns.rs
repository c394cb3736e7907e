//! Triage through a finding's page, and the sorted and searched findings lists.

use serde_json::{Value, json};
use warden_testkit::console::{alert, hidden, page, submit};
use warden_testkit::{Backend, TestServer};

use crate::{apply_policy, cli_error, console_server, fixture};

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
        server.admin_ok(args);
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
    server.admin_ok(&["group", "add-member", "appsec", "erin"]);
    let (carol, _, carol_csrf) = server.enroll_soft_passkey(&base, "carol").await;
    server.admin_ok(&["group", "add-member", "auditors", "carol"]);

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
    for query in [
        "?state=open&sort=due",
        "?sort=severity",
        "?q=CVE&sort=number",
    ] {
        let (status, _, sorted) = page(&erin, &base, &format!("/console/vulns{query}")).await;
        assert_eq!(status, 200);
        assert!(
            sorted.contains("href=\"/console/vulns/"),
            "{query}: {sorted}"
        );
    }

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
        for (name, typed) in extra {
            if !typed.trim().is_empty() && name != "severity" {
                assert!(
                    body.contains(&format!("value=\"{typed}\"")),
                    "{name} {typed} is kept"
                );
            }
        }
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
    let read: u64 = seen.parse().unwrap();
    let changes = if read == 1 { "change" } else { "changes" };
    let stale = format!(
        "finding {id} changed since it was read ({read} {changes} then, {} now): read it again, then decide",
        read + 1
    );
    assert_eq!((status, alert(&body)), (409, stale.clone()));
    assert!(
        body.contains("id=\"accept-error\""),
        "beside the form: {body}"
    );
    // The API takes the same check as `seenChanges`, with an admin token (carol's auditor
    // token is refused before it); a count below zero is bad input.
    let accept = "mutation($id: Int!, $seen: Int) { acceptFindingRisk(id: $id, until: \"30d\", \
                  reason: \"vendor fix due\", seenChanges: $seen) { state } }";
    let vars = json!({ "id": id.parse::<i64>().unwrap(), "seen": read });
    let (_, answer) = server.graphql(Some(&ops), accept, vars.clone()).await;
    assert_eq!(
        (
            &answer["errors"][0]["message"],
            &answer["errors"][0]["extensions"]["code"]
        ),
        (&json!(stale), &json!("STALE")),
        "{answer}"
    );
    let carol_token = server.token("carol-api", "auditor", Some("carol"));
    let (_, answer) = server.graphql(Some(&carol_token), accept, vars).await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{answer}"
    );
    let negative = json!({ "id": id.parse::<i64>().unwrap(), "seen": -1 });
    let (_, answer) = server.graphql(Some(&ops), accept, negative).await;
    assert_eq!(
        answer["errors"][0]["message"],
        "seenChanges counts the changes in the finding's history, so it is never negative, not -1",
        "{answer}"
    );
    // The store refused both stale decisions in their own transactions: each is in the log
    // as a failure, with the count its caller had read.
    let refused: Vec<_> = server
        .audit("vuln.accept")
        .into_iter()
        .filter(|e| e["outcome"] == "failure" && e["reason"] == json!(stale))
        .map(|e| (e["actor"].clone(), e["details"]["seen_changes"].clone()))
        .collect();
    assert_eq!(
        refused,
        [
            (json!("user:erin"), json!(read)),
            (json!("token:ops"), json!(read))
        ]
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
    // The dashboard's figures count the acceptance at once: on an installation this small
    // they are recomputed by the reader who finds them out of date.
    let (_, _, dashboard) = page(&erin, &base, "/console/vulns").await;
    assert!(dashboard.contains("Figures as of <time"), "{dashboard}");
    assert!(!dashboard.contains("changed since"), "{dashboard}");
    assert!(
        dashboard.contains("accepted<strong>1</strong>"),
        "{dashboard}"
    );
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
