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

/// The message the API gives `token` for `query`: what the CLI prints after `error: `.
async fn api_error(server: &TestServer, token: &str, query: &str, vars: Value) -> String {
    let (_, answer) = server.graphql(Some(token), query, vars).await;
    answer["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {answer}"))
        .to_owned()
}

/// The value of the read-only field `id` on a page (what is shown once).
fn shown(body: &str, id: &str) -> String {
    let rest = body
        .split(&format!("id=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no #{id}: {body}"));
    let value = rest
        .split("value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    value.replace("&amp;", "&")
}

/// People, groups and hosts changed in the console: a `people` member (users and groups,
/// nothing else) invites a person whose link enrolls a passkey, makes a group, adds and
/// removes members and sets its owner; a `fleet` member (hosts only) makes a join token
/// whose command joins a real agent, then removes the host. Each is refused to the other,
/// recorded; each bad input is refused beside its form with the API's message, what was
/// typed kept, and nothing changed.
async fn directory_and_fleet(backend: Backend) {
    let (server, base) = console_server(backend).await;
    let root = tempfile::tempdir().unwrap();
    let ops = server.token("ops", "admin", None);
    for group in ["people", "fleet"] {
        admin_ok(&server, &["group", "add", group]);
    }
    apply_policy(
        &server,
        root.path(),
        &ops,
        "@id(\"people-team\")\npermit (principal in Warden::Group::\"people\", \
         action in [Warden::Action::\"read_directory\", Warden::Action::\"manage_users\", Warden::Action::\"manage_groups\"], resource);\n\
         @id(\"fleet-team\")\npermit (principal in Warden::Group::\"fleet\", \
         action in [Warden::Action::\"read_directory\", Warden::Action::\"manage_hosts\"], resource);\n",
    );
    let (pat, _, pat_csrf) = server.enroll_soft_passkey(&base, "pat").await;
    admin_ok(&server, &["group", "add-member", "people", "pat"]);
    let (fran, _, fran_csrf) = server.enroll_soft_passkey(&base, "fran").await;
    admin_ok(&server, &["group", "add-member", "fleet", "fran"]);

    // Invite: offered to pat, not to fran; fran's forged invitation is denied and recorded.
    let (_, _, people) = page(&pat, &base, "/console/people").await;
    assert!(
        people.contains("href=\"/console/people/invite\""),
        "{people}"
    );
    let (_, _, people) = page(&fran, &base, "/console/people").await;
    assert!(!people.contains("href=\"/console/people/invite\""));
    let (status, body) = submit(
        &fran,
        &base,
        "/console/people/invite",
        &[("csrf", fran_csrf.as_str()), ("name", "sneaky")],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(alert(&body).starts_with("permission denied: "), "{body}");
    assert!(
        server
            .audit("api.manage_users")
            .iter()
            .any(|e| e["outcome"] == "denied" && e["actor"] == "user:fran"),
        "fran's denial is recorded"
    );
    let create =
        "mutation($n: String!, $e: String) { createUser(input: { name: $n, email: $e }) { name } }";
    for (name, email, vars) in [
        ("Not Valid", "", json!({ "n": "Not Valid" })),
        (
            "newbie",
            "newbie.example.com",
            json!({ "n": "newbie", "e": "newbie.example.com" }),
        ),
        ("pat", "", json!({ "n": "pat" })),
    ] {
        let (status, body) = submit(
            &pat,
            &base,
            "/console/people/invite",
            &[
                ("csrf", pat_csrf.as_str()),
                ("name", name),
                ("email", email),
            ],
        )
        .await;
        let expected = api_error(&server, &ops, create, vars).await;
        assert_eq!((status, alert(&body)), (400, expected), "{name}");
        assert!(body.contains("id=\"invite-error\""), "{body}");
        assert!(
            body.contains(&format!("value=\"{email}\"")),
            "what was typed is kept"
        );
    }
    assert_eq!(
        server.users_json().as_array().unwrap().len(),
        2,
        "nobody was added"
    );
    let (status, body) = submit(
        &pat,
        &base,
        "/console/people/invite",
        &[
            ("csrf", pat_csrf.as_str()),
            ("name", "newbie"),
            ("display_name", "New Bie"),
            ("email", "newbie@example.com"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let link = shown(&body, "enrollment-link");
    assert!(link.starts_with(&format!("{base}/enroll/")), "{link}");
    let (status, answer, (newbie, _, _)) = warden_testkit::enroll_by_link(
        &base,
        &link,
        warden_testkit::SoftPasskey::new("localhost", &base),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, _, mine) = page(&newbie, &base, "/console").await;
    assert_eq!(
        status, 200,
        "the invited person signs in with their passkey: {mine}"
    );
    assert!(
        server
            .audit("user.create")
            .iter()
            .any(|e| e["outcome"] == "success"
                && e["actor"] == "user:pat"
                && e["target"] == "user:newbie")
    );

    // Groups: made, a member added and removed, an owner set, through pat's session.
    let (status, body) = submit(
        &pat,
        &base,
        "/console/groups/new",
        &[
            ("csrf", pat_csrf.as_str()),
            ("name", "Bad Group"),
            ("description", "kept"),
        ],
    )
    .await;
    let expected = api_error(
        &server,
        &ops,
        "mutation { createGroup(name: \"Bad Group\") { name } }",
        json!({}),
    )
    .await;
    assert_eq!((status, alert(&body)), (400, expected));
    assert!(body.contains("value=\"kept\""), "{body}");
    let (status, _) = submit(
        &pat,
        &base,
        "/console/groups/new",
        &[
            ("csrf", pat_csrf.as_str()),
            ("name", "oncall"),
            ("description", "who answers pages"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let group = "/console/groups/oncall";
    for (change, user, expected) in [
        (
            "add",
            "nobody",
            "mutation { addGroupMember(group: \"oncall\", user: \"nobody\") { name } }",
        ),
        (
            "owner",
            "nobody",
            "mutation { setGroupOwner(group: \"oncall\", user: \"nobody\") { name } }",
        ),
        (
            "remove",
            "newbie",
            "mutation { removeGroupMember(group: \"oncall\", user: \"newbie\") { name } }",
        ),
    ] {
        let (status, body) = submit(
            &pat,
            &base,
            group,
            &[
                ("csrf", pat_csrf.as_str()),
                ("change", change),
                ("user", user),
            ],
        )
        .await;
        let expected = api_error(&server, &ops, expected, json!({})).await;
        assert_eq!((status, alert(&body)), (400, expected), "{change} {user}");
        assert!(body.contains(&format!("id=\"{change}-error\"")), "{body}");
    }
    for (change, user) in [
        ("add", "newbie"),
        ("add", "fran"),
        ("owner", "newbie"),
        ("remove", "fran"),
    ] {
        let (status, body) = submit(
            &pat,
            &base,
            group,
            &[
                ("csrf", pat_csrf.as_str()),
                ("change", change),
                ("user", user),
            ],
        )
        .await;
        assert_eq!(status, 303, "{change} {user}: {body}");
    }
    let (_, _, shown_group) = page(&pat, &base, group).await;
    assert!(
        shown_group.contains("<dd id=\"owner\">newbie</dd>"),
        "{shown_group}"
    );
    let (_, answer) = server
        .graphql(
            Some(&ops),
            "{ group(name: \"oncall\") { owner members(first: 10) description } }",
            json!({}),
        )
        .await;
    assert_eq!(
        answer["data"]["group"],
        json!({ "owner": "newbie", "members": ["newbie"], "description": "who answers pages" })
    );
    for action in [
        "group.create",
        "group.add_member",
        "group.remove_member",
        "group.set_owner",
    ] {
        assert!(
            server
                .audit(action)
                .iter()
                .any(|e| e["outcome"] == "success" && e["actor"] == "user:pat"),
            "{action}: {:?}",
            server.audit(action)
        );
    }
    // Fran may read the group but not change it.
    let (status, _, body) = page(&fran, &base, group).await;
    assert_eq!(status, 200);
    assert!(!body.contains("<form id=\"add\""), "{body}");
    let (status, _) = submit(
        &fran,
        &base,
        group,
        &[
            ("csrf", fran_csrf.as_str()),
            ("change", "add"),
            ("user", "fran"),
        ],
    )
    .await;
    assert_eq!(status, 403);

    // Hosts: a join token from fran, whose command joins a real agent; then removed.
    let (status, body) = submit(
        &pat,
        &base,
        "/console/hosts/join",
        &[("csrf", pat_csrf.as_str()), ("host", "web-1")],
    )
    .await;
    assert_eq!(status, 403, "pat may not admit hosts: {body}");
    for (host, labels, ttl) in [
        ("web_1!", "", "1h"),
        ("web-1", "role", "1h"),
        ("web-1", "", "forever"),
    ] {
        let (status, body) = submit(
            &fran,
            &base,
            "/console/hosts/join",
            &[
                ("csrf", fran_csrf.as_str()),
                ("host", host),
                ("labels", labels),
                ("ttl", ttl),
            ],
        )
        .await;
        let labels: Vec<&str> = labels.split_whitespace().collect();
        let expected = api_error(
            &server,
            &ops,
            "mutation($h: String!, $l: [String!]!, $t: String) { createJoinToken(host: $h, labels: $l, ttl: $t) { host } }",
            json!({ "h": host, "l": labels, "t": ttl }),
        )
        .await;
        assert_eq!(
            (status, alert(&body)),
            (400, expected),
            "{host} {labels:?} {ttl}"
        );
        assert!(body.contains(&format!("value=\"{ttl}\"")), "{body}");
    }
    let (status, body) = submit(
        &fran,
        &base,
        "/console/hosts/join",
        &[
            ("csrf", fran_csrf.as_str()),
            ("host", "web-1"),
            ("labels", "role=web env=prod"),
            ("ttl", "10m"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let command = shown(&body, "agent-command");
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(&words[..3], ["warden", "agent", "--server"], "{command}");
    let data = root.path().join("agent");
    let conf = root.path().join("sshd.d");
    let mut args: Vec<&str> = words[1..]
        .iter()
        .copied()
        .filter(|w| *w != "/var/lib/warden-agent")
        .collect();
    args.retain(|w| *w != "--data-dir");
    args.extend([
        "--data-dir",
        data.to_str().unwrap(),
        "--sshd-config-dir",
        conf.to_str().unwrap(),
        "--once",
    ]);
    let out = warden_testkit::run_cli(bin(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, _, hosts) = page(&fran, &base, "/console/hosts").await;
    assert!(hosts.contains("<td>web-1</td>"), "{hosts}");
    assert!(hosts.contains("<code>role=web</code>"), "{hosts}");
    let (status, _) = submit(
        &pat,
        &base,
        "/console/hosts/web-1/remove",
        &[("csrf", pat_csrf.as_str())],
    )
    .await;
    assert_eq!(status, 403, "pat may not remove hosts");
    let (status, _) = submit(
        &fran,
        &base,
        "/console/hosts/web-1/remove",
        &[("csrf", fran_csrf.as_str())],
    )
    .await;
    assert_eq!(status, 303);
    let (_, answer) = server
        .graphql(Some(&ops), "{ hosts { name } }", json!({}))
        .await;
    assert_eq!(answer["data"]["hosts"], json!([]), "{answer}");
    let (status, body) = submit(
        &fran,
        &base,
        "/console/hosts/web-1/remove",
        &[("csrf", fran_csrf.as_str())],
    )
    .await;
    let expected = api_error(
        &server,
        &ops,
        "mutation { removeHost(name: \"web-1\") }",
        json!({}),
    )
    .await;
    assert_eq!((status, alert(&body)), (400, expected));
    for action in ["host.join_token.create", "host.remove"] {
        assert!(
            server
                .audit(action)
                .iter()
                .any(|e| e["outcome"] == "success" && e["actor"] == "user:fran"),
            "{action}: {:?}",
            server.audit(action)
        );
    }
}

#[tokio::test]
async fn directory_and_fleet_from_the_console_sqlite() {
    directory_and_fleet(Backend::Sqlite).await;
}

#[tokio::test]
async fn directory_and_fleet_from_the_console_postgres() {
    directory_and_fleet(Backend::Postgres).await;
}

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
        admin_ok(server, &["group", "add", group]);
    }
    apply_policy(
        server,
        d,
        &ops,
        "@id(\"oncall-ends-sessions\")\npermit (principal in Warden::Group::\"oncall\", \
         action in [Warden::Action::\"read_audit\", Warden::Action::\"manage_hosts\"], resource);\n",
    );
    let (dana, _, dana_csrf) = server.enroll_soft_passkey(&base, "dana").await;
    admin_ok(server, &["group", "add-member", "oncall", "dana"]);
    let (carol, _, carol_csrf) = server.enroll_soft_passkey(&base, "carol").await;
    admin_ok(server, &["group", "add-member", "auditors", "carol"]);

    // The request form offers the groups carol is not in, by name, with their descriptions.
    let (_, _, mine) = page(&carol, &base, "/console").await;
    assert!(
        mine.contains("<option value=\"oncall\">oncall</option>"),
        "{mine}"
    );
    assert!(!mine.contains("<option value=\"auditors\""), "{mine}");

    // alice's session, open on db-1.
    let mut ssh = warden_testkit::through_proxy("ssh", server, d)
        .args(["-tt", "-l", "root", "db-1", "echo ready; sleep 60"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = String::new();
    for _ in 0..200 {
        let (_, live) = server
            .graphql(
                Some(&ops),
                "{ sshSessions(active: true) { id } }",
                json!({}),
            )
            .await;
        if let Some(found) = live["data"]["sshSessions"][0]["id"].as_str() {
            id = found.to_owned();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!id.is_empty(), "the session never opened");
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

/// Access reviews run from the console: a `grc` member (who may start and close reviews,
/// nothing else) starts a named campaign over `ops`; its reviewer keeps both items in one
/// bulk decision with one justification; the campaign is closed. A member may not open the
/// form (the denial recorded); each bad input gets the CLI's message beside the form, with
/// what was typed kept, and starts nothing.
async fn reviews(backend: Backend) {
    let (server, base) = console_server(backend).await;
    let root = tempfile::tempdir().unwrap();
    let ops = server.token("ops-root", "admin", None);
    for args in [
        &["group", "add", "grc"][..],
        &["group", "add", "ops"],
        &["user", "add", "alice"],
        &["user", "add", "erin"],
        &["group", "add-member", "ops", "alice"],
        &["group", "add-member", "ops", "erin"],
        &["user", "add", "frank"],
        &["group", "add-member", "ops", "frank"],
    ] {
        admin_ok(&server, args);
    }
    apply_policy(
        &server,
        root.path(),
        &ops,
        "@id(\"grc-reviews\")\npermit (principal in Warden::Group::\"grc\", \
         action == Warden::Action::\"review\", resource);\n",
    );
    let (rita, _, rita_csrf) = server.enroll_soft_passkey(&base, "rita").await;
    admin_ok(&server, &["group", "add-member", "grc", "rita"]);
    let (bob, _, bob_csrf) = server.enroll_soft_passkey(&base, "bob").await;

    // bob may not start one: no link, and the form's page is refused and recorded.
    let (_, _, list) = page(&bob, &base, "/console/reviews").await;
    assert!(!list.contains("href=\"/console/reviews/new\""), "{list}");
    let (status, _, body) = page(&bob, &base, "/console/reviews/new").await;
    assert_eq!(status, 403, "{body}");
    assert!(alert(&body).starts_with("permission denied: "), "{body}");
    assert!(
        server
            .audit("review.manage")
            .iter()
            .any(|e| e["outcome"] == "denied" && e["actor"] == "user:bob"),
        "bob's denial is recorded"
    );

    // Bad input: the CLI's words, beside the form, what was typed kept.
    let long = "x".repeat(101);
    let (_, _, list) = page(&rita, &base, "/console/reviews").await;
    assert!(list.contains("href=\"/console/reviews/new\""), "{list}");
    for (name, scope, reviewer, due) in [
        ("Q1", "groups:nope", "bob", "7d"),
        ("Q1", "groups:ops", "bob", "yesterday"),
        ("Q1", "groups:ops", "Not A Name", "7d"),
        (long.as_str(), "groups:ops", "bob", "7d"),
    ] {
        let (status, body) = submit(
            &rita,
            &base,
            "/console/reviews/new",
            &[
                ("csrf", rita_csrf.as_str()),
                ("name", name),
                ("scope", scope),
                ("reviewer", reviewer),
                ("due", due),
            ],
        )
        .await;
        let expected = cli_error(
            &server,
            &ops,
            &[
                "review",
                "create",
                "--name",
                name,
                "--scope",
                scope,
                "--reviewer",
                reviewer,
                "--due",
                due,
            ],
        );
        assert_eq!(
            (status, alert(&body)),
            (400, expected),
            "{scope} {reviewer} {due}"
        );
        assert!(body.contains("id=\"review-error\""), "{body}");
        assert!(body.contains(&format!("value=\"{due}\"")), "{body}");
    }
    let (_, answer) = server
        .graphql(Some(&ops), "{ accessReviews { id } }", json!({}))
        .await;
    assert_eq!(
        answer["data"]["accessReviews"],
        json!([]),
        "nothing started"
    );

    // Started, named.
    let (status, body) = submit(
        &rita,
        &base,
        "/console/reviews/new",
        &[
            ("csrf", rita_csrf.as_str()),
            ("name", "Q1 2027 ops access"),
            ("scope", "groups:ops"),
            ("reviewer", "bob"),
            ("due", "7d"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let (_, answer) = server
        .graphql(Some(&ops), "{ accessReviews { id name } }", json!({}))
        .await;
    let id = answer["data"]["accessReviews"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        answer["data"]["accessReviews"][0]["name"],
        "Q1 2027 ops access"
    );
    let path = format!("/console/reviews/{id}");
    let (_, _, listed) = page(&bob, &base, "/console/reviews").await;
    assert!(listed.contains(">Q1 2027 ops access</a>"), "{listed}");

    // bob keeps two items at once, with one justification; he is offered no close.
    let (_, _, shown) = page(&bob, &base, &path).await;
    assert!(!shown.contains("<form id=\"close\""), "{shown}");
    let (status, body) = submit(
        &bob,
        &base,
        &path,
        &[
            ("csrf", bob_csrf.as_str()),
            ("item", "1"),
            ("item", "2"),
            ("decision", "keep"),
            ("reason", "both on the on-call rota"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let (_, answer) = server
        .graphql(
            Some(&ops),
            "query($id: String!) { accessReview(id: $id) { state items { subject decision reason decidedBy } } }",
            json!({ "id": id }),
        )
        .await;
    let items = answer["data"]["accessReview"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{answer}");
    assert!(
        items[2]["decision"].is_null(),
        "frank is undecided: {answer}"
    );
    assert!(
        items[..2].iter().all(|i| i["decision"] == "keep"
            && i["reason"] == "both on the on-call rota"
            && i["decidedBy"] == "user:bob"),
        "{answer}"
    );

    // rita closes it; closed twice is the API's refusal.
    let close = format!("{path}/close");
    let (status, _) = submit(&bob, &base, &close, &[("csrf", bob_csrf.as_str())]).await;
    assert_eq!(status, 403, "bob may not close it");
    let (_, _, shown) = page(&rita, &base, &path).await;
    assert!(shown.contains("<form id=\"close\""), "{shown}");
    let (status, _) = submit(&rita, &base, &close, &[("csrf", rita_csrf.as_str())]).await;
    assert_eq!(status, 303);
    let (status, body) = submit(&rita, &base, &close, &[("csrf", rita_csrf.as_str())]).await;
    let expected = cli_error(&server, &ops, &["review", "close", &id]);
    assert_eq!((status, alert(&body)), (400, expected));
    let closed = server.audit("review.close");
    assert!(
        closed
            .iter()
            .any(|e| e["outcome"] == "success" && e["actor"] == "user:rita"),
        "{closed:?}"
    );
    let created = server.audit("review.create");
    assert!(
        created.iter().any(|e| e["actor"] == "user:rita"
            && e["outcome"] == "success"
            && e["details"]["name"] == "Q1 2027 ops access"),
        "{created:?}"
    );
}

#[tokio::test]
async fn access_reviews_from_the_console_sqlite() {
    reviews(Backend::Sqlite).await;
}

#[tokio::test]
async fn access_reviews_from_the_console_postgres() {
    reviews(Backend::Postgres).await;
}

/// The textarea's text on a page, unescaped.
fn textarea(body: &str) -> String {
    let rest = body
        .split("<textarea")
        .nth(1)
        .unwrap_or_else(|| panic!("{body}"));
    let text = rest
        .split_once('>')
        .unwrap()
        .1
        .split("</textarea>")
        .next()
        .unwrap();
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The policy changed in the console: a `policy` member (read and manage the policy) edits
/// a file; a syntax error and a change that fails the set's tests are refused beside the
/// editor with the CLI's words and change nothing; a passing change is checked (dry run:
/// diff and tests, nothing in force), then applied; an apply from a stale editor is refused;
/// two versions are compared. An auditor may read the policy but not open the editor.
async fn policy_editing(backend: Backend) {
    let (server, base) = console_server(backend).await;
    let root = tempfile::tempdir().unwrap();
    let ops = server.token("ops-root", "admin", None);
    for group in ["policy", "auditors"] {
        admin_ok(&server, &["group", "add", group]);
    }
    let grant = "@id(\"policy-team\")\npermit (principal in Warden::Group::\"policy\", \
         action in [Warden::Action::\"read_policy\", Warden::Action::\"manage_policy\"], resource);\n";
    apply_policy(&server, root.path(), &ops, grant);
    let (pia, _, pia_csrf) = server.enroll_soft_passkey(&base, "pia").await;
    admin_ok(&server, &["group", "add-member", "policy", "pia"]);
    let (carol, _, _) = server.enroll_soft_passkey(&base, "carol").await;
    admin_ok(&server, &["group", "add-member", "auditors", "carol"]);
    let version = |answer: &Value| answer["data"]["policy"]["version"].as_i64().unwrap();
    let (_, before) = server
        .graphql(Some(&ops), "{ policy { version hash } }", json!({}))
        .await;

    // The auditor reads the policy, highlighted, but is refused the editor (recorded).
    let (status, _, shown) = page(&carol, &base, "/console/policy").await;
    assert_eq!(status, 200);
    assert!(
        shown.contains("<span class=\"hl-k\">permit</span>"),
        "{shown}"
    );
    assert!(!shown.contains("href=\"/console/policy/edit\""));
    let (status, _, body) = page(&carol, &base, "/console/policy/edit").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        server
            .audit("policy.manage")
            .iter()
            .any(|e| e["outcome"] == "denied" && e["actor"] == "user:carol"),
        "carol's denial is recorded"
    );

    // pia opens the file in force.
    let (status, _, editor) = page(&pia, &base, "/console/policy/edit?file=extra.cedar").await;
    assert_eq!(status, 200, "{editor}");
    assert_eq!(textarea(&editor), grant);
    let hash = hidden(&editor, "policy", "base");
    assert_eq!(hash, before["data"]["policy"]["hash"].as_str().unwrap());

    // A syntax error and a change that fails a test: the CLI's words, nothing applied.
    let everyone_ssh = format!(
        "{grant}@id(\"everyone\")\npermit (principal, action == Warden::Action::\"ssh\", resource);\n"
    );
    for text in ["permit (", everyone_ssh.as_str()] {
        let (status, body) = submit(
            &pia,
            &base,
            "/console/policy/edit",
            &[
                ("csrf", pia_csrf.as_str()),
                ("base", hash.as_str()),
                ("file", "extra.cedar"),
                ("text", text),
                ("step", "check"),
            ],
        )
        .await;
        let dir = root.path().join(format!("cli-{}", text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, starter) in warden_policy::STARTER {
            std::fs::write(dir.join(name), starter).unwrap();
        }
        std::fs::write(dir.join("extra.cedar"), text).unwrap();
        let out = server.remote(
            &ops,
            &["policy", "apply", dir.to_str().unwrap(), "--dry-run"],
        );
        assert!(!out.status.success());
        let cli = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
        let shown = body
            .split("<pre>")
            .nth(1)
            .and_then(|rest| rest.split("</pre>").next())
            .unwrap_or_else(|| panic!("{body}"))
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
        assert_eq!((status, format!("error: {shown}")), (400, cli), "{text}");
        assert!(body.contains("aria-describedby=\"policy-error\""), "{body}");
        assert_eq!(textarea(&body), text, "what was typed is kept");
    }

    // A passing change, checked: the diff and the tests, and nothing in force yet.
    let audit_for_web = format!(
        "{grant}@id(\"web-reads-audit\")\npermit (principal in Warden::Group::\"web\", action == Warden::Action::\"read_audit\", resource);\n"
    );
    let change = [
        ("csrf", pia_csrf.as_str()),
        ("base", hash.as_str()),
        ("file", "extra.cedar"),
        ("text", audit_for_web.as_str()),
        ("step", "check"),
    ];
    let (status, body) = submit(&pia, &base, "/console/policy/edit", &change).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<section id=\"checked\""), "{body}");
    assert!(
        body.contains("<span class=\"add\">+@id(&quot;web-reads-audit&quot;)"),
        "{body}"
    );
    assert!(body.contains("<table id=\"policy-tests\">"), "{body}");
    assert!(
        body.contains("nothing is in force until you apply it"),
        "{body}"
    );
    let (_, now) = server
        .graphql(Some(&ops), "{ policy { version hash } }", json!({}))
        .await;
    assert_eq!(
        version(&now),
        version(&before),
        "a dry run activates nothing"
    );

    // Applied; then an apply from the stale editor is refused.
    let mut apply = change;
    apply[4] = ("step", "apply");
    let (status, body) = submit(&pia, &base, "/console/policy/edit", &apply).await;
    assert_eq!(status, 303, "{body}");
    let (_, after) = server
        .graphql(
            Some(&ops),
            "{ policy { version files { name text } } }",
            json!({}),
        )
        .await;
    assert_eq!(version(&after), version(&before) + 1);
    let extra = after["data"]["policy"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "extra.cedar")
        .unwrap()["text"]
        .clone();
    assert_eq!(extra, audit_for_web.as_str());
    assert!(
        server
            .audit("policy.apply")
            .iter()
            .any(|e| e["outcome"] == "success" && e["actor"] == "user:pia"),
        "the apply is recorded as pia's"
    );
    let (status, body) = submit(&pia, &base, "/console/policy/edit", &apply).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains(&format!(
            "the policy changed since you began editing (version {} is in force now)",
            version(&after)
        )),
        "{body}"
    );

    // Two versions compared.
    let path = format!(
        "/console/policy?from={}&to={}",
        version(&before),
        version(&after)
    );
    let (status, _, compared) = page(&pia, &base, &path).await;
    assert_eq!(status, 200);
    assert!(
        compared.contains("<span class=\"add\">+@id(&quot;web-reads-audit&quot;)"),
        "{compared}"
    );
    let (status, _, body) = page(&pia, &base, "/console/policy?from=1&to=999").await;
    assert_eq!(status, 200);
    assert_eq!(
        alert(&body),
        cli_error(&server, &ops, &["policy", "show", "--version", "999"])
    );
}

#[tokio::test]
async fn policy_editing_from_the_console_sqlite() {
    policy_editing(Backend::Sqlite).await;
}

#[tokio::test]
async fn policy_editing_from_the_console_postgres() {
    policy_editing(Backend::Postgres).await;
}

/// Host health: a host joined with a join token made in the console, its agent running,
/// shows online with its agent's version and its certificate's expiry; once the agent
/// stops, the host shows offline after `agent.offline_after`. Read by an auditor (the
/// narrowest reader of the inventory), through the console and the API.
#[tokio::test]
async fn a_stopped_agent_shows_offline() {
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let config = format!(
        "public_url = \"{base}\"\n[limits]\nper_source_rps = 0\n[agent]\noffline_after = \"6s\"\n"
    );
    let server = TestServer::start_on(bin(), Backend::Sqlite, &config, port).await;
    let root = tempfile::tempdir().unwrap();
    let auditor = server.token("report", "auditor", None);
    admin_ok(&server, &["group", "add", "auditors"]);
    let (dave, _, dave_csrf) = server.enroll_soft_passkey(&base, "dave").await;
    admin_ok(&server, &["group", "add", "admins"]);
    admin_ok(&server, &["group", "add-member", "admins", "dave"]);
    let (carol, _, _) = server.enroll_soft_passkey(&base, "carol").await;
    admin_ok(&server, &["group", "add-member", "auditors", "carol"]);
    let (status, body) = submit(
        &dave,
        &base,
        "/console/hosts/join",
        &[
            ("csrf", dave_csrf.as_str()),
            ("host", "app-1"),
            ("ttl", "10m"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let command = shown(&body, "agent-command");
    let token = command
        .split_whitespace()
        .skip_while(|w| *w != "--join-token")
        .nth(1)
        .unwrap()
        .to_owned();
    let d = root.path();
    let mut agent = std::process::Command::new(bin())
        .args([
            "agent",
            "--server",
            &base,
            "--join-token",
            &token,
            "--data-dir",
            d.join("agent").to_str().unwrap(),
            "--sshd-config-dir",
            d.join("sshd.d").to_str().unwrap(),
            "--break-glass-spool",
            d.join("spool").to_str().unwrap(),
            "--refresh",
            "500ms",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let hosts = async || {
        let (_, answer) = server
            .graphql(
                Some(&auditor),
                "{ hosts { name online agentVersion lastContactAt certificateExpiresAt } }",
                json!({}),
            )
            .await;
        answer["data"]["hosts"][0].clone()
    };
    let mut host = Value::Null;
    for _ in 0..100 {
        host = hosts().await;
        if host["agentVersion"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(host["agentVersion"], env!("CARGO_PKG_VERSION"), "{host}");
    assert_eq!(host["online"], true, "{host}");
    // The agent's client certificate: days ahead (agent.client_cert_ttl, default 7d).
    let expires = host["certificateExpiresAt"].as_str().unwrap();
    let left = humantime::parse_rfc3339_weak(expires)
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > std::time::Duration::from_secs(6 * 86_400), "{host}");
    let (_, _, page_shown) = page(&carol, &base, "/console/hosts").await;
    assert!(
        page_shown.contains(
            "<td class=\"health\"><span class=\"badge state-approved\">online</span></td>"
        ),
        "{page_shown}"
    );
    assert!(
        page_shown.contains(&format!("<code>{}</code>", env!("CARGO_PKG_VERSION"))),
        "{page_shown}"
    );
    // Still online a while later: the agent keeps in touch.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    assert_eq!(
        hosts().await["online"],
        true,
        "a running agent stays online"
    );

    // Stopped: offline once `agent.offline_after` passes.
    agent.kill().unwrap();
    agent.wait().unwrap();
    let mut offline = false;
    for _ in 0..200 {
        if hosts().await["online"] == false {
            offline = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(offline, "the stopped agent's host never showed offline");
    let (_, _, page_shown) = page(&carol, &base, "/console/hosts").await;
    assert!(
        page_shown.contains("<span class=\"badge state-denied\">offline</span>"),
        "{page_shown}"
    );
}

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
    admin_ok(&server, &["group", "add", "admins"]);
    let (dave, _, _) = server.enroll_soft_passkey(&base, "dave").await;
    admin_ok(&server, &["group", "add-member", "admins", "dave"]);
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
    admin_ok(&with_idp, &["group", "add", "admins"]);
    let (erin, _, _) = with_idp.enroll_soft_passkey(&other, "erin").await;
    admin_ok(&with_idp, &["group", "add-member", "admins", "erin"]);
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
    admin_ok(&server, &["group", "add", "auditors"]);
    let (carol, _, _) = server.enroll_soft_passkey(&base, "carol").await;
    admin_ok(&server, &["group", "add-member", "auditors", "carol"]);
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
}
