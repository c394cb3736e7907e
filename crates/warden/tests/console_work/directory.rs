//! People, groups and hosts changed in the console, and a host's health.

use serde_json::{Value, json};
use warden_testkit::console::{alert, page, submit};
use warden_testkit::{Backend, TestServer, free_port};

use crate::{api_error, apply_policy, bin, console_server, run_agent, shown};

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
        server.admin_ok(&["group", "add", group]);
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
    server.admin_ok(&["group", "add-member", "people", "pat"]);
    let (fran, _, fran_csrf) = server.enroll_soft_passkey(&base, "fran").await;
    server.admin_ok(&["group", "add-member", "fleet", "fran"]);

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
    // The owner form says which owner it showed; one shown before newbie was made owner
    // is stale, and changes nothing.
    assert!(
        shown_group.contains("<input type=\"hidden\" name=\"seen\" value=\"newbie\">"),
        "{shown_group}"
    );
    let (status, body) = submit(
        &pat,
        &base,
        group,
        &[
            ("csrf", pat_csrf.as_str()),
            ("change", "owner"),
            ("seen", ""),
            ("user", "fran"),
        ],
    )
    .await;
    assert_eq!(
        (status, alert(&body)),
        (
            409,
            "the owner of group `oncall` changed since it was read (now `newbie`): read it again, then decide".to_owned()
        )
    );
    assert!(body.contains("id=\"owner-error\""), "{body}");
    // The API takes the same check as `expectedOwner`, with an admin token; pat's member
    // token is refused before it, whatever pat's groups allow.
    let stale = "mutation { setGroupOwner(group: \"oncall\", user: \"fran\", expectedOwner: \"fran\") { name } }";
    let (_, answer) = server.graphql(Some(&ops), stale, json!({})).await;
    assert_eq!(
        (
            &answer["errors"][0]["message"],
            &answer["errors"][0]["extensions"]["code"]
        ),
        (
            &json!(
                "the owner of group `oncall` changed since it was read (now `newbie`): read it again, then decide"
            ),
            &json!("STALE")
        ),
        "{answer}"
    );
    let pat_token = server.token("pat-api", "member", Some("pat"));
    let (_, answer) = server.graphql(Some(&pat_token), stale, json!({})).await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{answer}"
    );
    // The store checked and refused in the change's own transaction, so each attempt is in
    // the log as a failure, with the owner its caller had read.
    let refused: Vec<_> = server
        .audit("group.set_owner")
        .into_iter()
        .filter(|e| e["outcome"] == "failure" && e["details"].get("expected_owner").is_some())
        .map(|e| (e["actor"].clone(), e["details"].clone()))
        .collect();
    assert_eq!(
        refused,
        [
            (
                json!("user:pat"),
                json!({ "owner": "fran", "expected_owner": null })
            ),
            (
                json!("token:ops"),
                json!({ "owner": "fran", "expected_owner": "fran" })
            ),
        ]
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
    let removal = Removal {
        server: &server,
        base: &base,
        admin: &ops,
        refused: (&pat, &pat_csrf),
        remover: (&fran, &fran_csrf),
    };
    removal
        .check(
            "/console/hosts/web-1/remove",
            "{ hosts { name } }",
            "mutation { removeHost(name: \"web-1\") }",
        )
        .await;

    // Mesh: fran's laptop enrolls with her own member token, then fran removes it from the
    // console (pat may not); it is gone from the API's list, and a second removal is refused.
    let fran_token = server.token("fran-laptop", "member", Some("fran"));
    let (status, body) = server
        .post_json(
            "/v1/mesh/device",
            Some(&fran_token),
            r#"{"name":"fran-laptop","public_key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, hosts) = page(&fran, &base, "/console/hosts").await;
    assert!(
        hosts.contains("action=\"/console/mesh/fran-laptop/remove\""),
        "{hosts}"
    );
    removal
        .check(
            "/console/mesh/fran-laptop/remove",
            "{ meshNodes { name } }",
            "mutation { removeMeshNode(name: \"fran-laptop\") }",
        )
        .await;
    for action in ["host.join_token.create", "host.remove", "mesh.node.remove"] {
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

/// A removal from the console, checked from both sides: refused to one person (403), made by
/// the other (303).
struct Removal<'a> {
    server: &'a TestServer,
    base: &'a str,
    /// An admin token, for the API's view.
    admin: &'a str,
    refused: (&'a reqwest::Client, &'a str),
    remover: (&'a reqwest::Client, &'a str),
}

impl Removal<'_> {
    /// Posts `path` as each; then the API's `list` is empty, and a second removal is refused
    /// beside nothing with the words the API's `mutation` answers.
    async fn check(&self, path: &str, list: &str, mutation: &str) {
        let (status, _) =
            submit(self.refused.0, self.base, path, &[("csrf", self.refused.1)]).await;
        assert_eq!(status, 403, "{path}");
        let (status, body) =
            submit(self.remover.0, self.base, path, &[("csrf", self.remover.1)]).await;
        assert_eq!(status, 303, "{path}: {body}");
        let (_, answer) = self.server.graphql(Some(self.admin), list, json!({})).await;
        let listed = answer["data"].as_object().and_then(|d| d.values().next());
        assert_eq!(listed, Some(&json!([])), "{answer}");
        let (status, body) =
            submit(self.remover.0, self.base, path, &[("csrf", self.remover.1)]).await;
        let expected = api_error(self.server, self.admin, mutation, json!({})).await;
        assert_eq!((status, alert(&body)), (400, expected), "{path}");
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
    server.admin_ok(&["group", "add", "auditors"]);
    let (dave, _, dave_csrf) = server.enroll_soft_passkey(&base, "dave").await;
    server.admin_ok(&["group", "add", "admins"]);
    server.admin_ok(&["group", "add-member", "admins", "dave"]);
    let (carol, _, _) = server.enroll_soft_passkey(&base, "carol").await;
    server.admin_ok(&["group", "add-member", "auditors", "carol"]);
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
    let args: Vec<String> = [
        "agent",
        "--server",
        &base,
        "--join-token",
        &token,
        "--data-dir",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .chain([d.join("agent").to_str().unwrap().to_owned()])
    .collect();
    let mut agent = run_agent(&args, d);
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
