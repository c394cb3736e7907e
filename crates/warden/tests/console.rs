//! The web console: its security (headers, CSRF, authorization by the policy engine,
//! escaping) and the exact errors of bad input on both backends through a real HTTP client
//! signed in with a passkey; and the main journeys end to end in Debian's Chromium with
//! virtual authenticators, with a screenshot of every page.
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

use std::path::Path;

use serde_json::{Value, json};
use warden_testkit::console::{alert as notice, page as get, submit as post};
use warden_testkit::{Backend, Journey, LabOptions, SshLab, TestServer, free_port, through_proxy};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_and_bad_input(backend: Backend) {
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let config = format!("public_url = \"{base}\"\n[limits]\nper_source_rps = 0\n");
    let server = TestServer::start_on(bin(), backend, &config, port).await;
    server.admin_ok(&["group", "add", "admins"]);
    server.admin_ok(&["group", "add", "web"]);
    server.admin_ok(&[
        "user",
        "add",
        "mallory",
        "--display-name",
        "<img src=x onerror=alert(1)>",
    ]);

    // Without a session, the console sends the browser to sign in.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (status, headers, _) = get(&anonymous, &base, "/console/audit").await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/");

    // A member: their own page, with the console's headers and no inline script.
    let (carol, _, csrf) = server.enroll_soft_passkey(&base, "carol").await;
    let (status, headers, body) = get(&carol, &base, "/console").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-security-policy"], CSP);
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        body.split("<script")
            .skip(1)
            .all(|s| s.starts_with(" src=\"/static/")),
        "only scripts from /static: {body}"
    );
    assert!(!body.contains(" style=\""), "no inline style: {body}");
    assert!(
        !body.contains("href=\"/console/audit\""),
        "no audit link for a member"
    );

    // Pages a member may not open: 403, and the denial recorded by the policy engine.
    for (path, action) in [
        ("/console/audit", "api.read_audit"),
        ("/console/people", "api.read_directory"),
        ("/console/settings", "policy.manage"),
    ] {
        let (status, _, body) = get(&carol, &base, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(
            notice(&body).starts_with("permission denied: "),
            "{path}: {body}"
        );
        let denials = server.audit(action);
        assert!(
            denials
                .iter()
                .any(|e| e["target"] == format!("console:{path}")
                    && e["outcome"] == "denied"
                    && e["actor"] == "user:carol"),
            "{path}: {denials:?}"
        );
    }

    // A form without the session's token is refused and recorded; nothing is requested.
    let form = [
        ("csrf", "forged"),
        ("group", "web"),
        ("duration", "1h"),
        ("reason", "x"),
    ];
    let (status, body) = post(&carol, &base, "/console/access/request", &form).await;
    assert_eq!(status, 403);
    assert_eq!(
        notice(&body),
        "the form is stale or forged (CSRF token mismatch): reload the page and try again"
    );
    let (status, _) = post(
        &carol,
        &base,
        "/console/access/request",
        &[("group", "web"), ("duration", "1h"), ("reason", "x")],
    )
    .await;
    assert_eq!(status, 403, "a form without the token");
    let refused = server.audit("access.request");
    assert_eq!(refused.len(), 2);
    assert!(
        refused
            .iter()
            .all(|e| e["outcome"] == "denied" && e["reason"] == "CSRF token mismatch")
    );

    // Bad input: the API's one-line message, nothing changed.
    for (group, duration, reason, expected) in [
        ("nope", "1h", "fix", "group `nope` not found"),
        ("web", "1h", "  ", "give a reason"),
        (
            "web",
            "forever",
            "fix",
            "invalid duration `forever`: expected number at 0 (like 30m, 2h or 1d)",
        ),
        ("web", "60d", "fix", "a grant lasts from 1s to 30d"),
    ] {
        let form = [
            ("csrf", csrf.as_str()),
            ("group", group),
            ("duration", duration),
            ("reason", reason),
        ];
        let (status, body) = post(&carol, &base, "/console/access/request", &form).await;
        assert_eq!(
            (status, notice(&body).as_str()),
            (400, expected),
            "{group} {duration}"
        );
    }
    let (status, body) = post(
        &carol,
        &base,
        "/console/approvals/0190",
        &[("csrf", csrf.as_str()), ("decision", "maybe")],
    )
    .await;
    assert_eq!(
        (status, notice(&body).as_str()),
        (400, "unknown decision `maybe`: approve or deny")
    );
    let (status, body) = post(
        &carol,
        &base,
        "/console/reviews/0190",
        &[
            ("csrf", csrf.as_str()),
            ("decision", "keep"),
            ("reason", "x"),
        ],
    )
    .await;
    assert_eq!(
        (status, notice(&body).as_str()),
        (400, "select at least one item to decide")
    );
    let (status, body) = post(
        &carol,
        &base,
        "/console/reviews/0190",
        &[
            ("csrf", csrf.as_str()),
            ("item", "one"),
            ("decision", "keep"),
        ],
    )
    .await;
    assert_eq!(
        (status, notice(&body).as_str()),
        (400, "item `one` is not an item number")
    );
    let admin = server.token("ops", "admin", None);
    let (_, requests) = server
        .graphql(Some(&admin), "{ accessRequests { id } }", json!({}))
        .await;
    assert_eq!(requests["data"]["accessRequests"], json!([]), "{requests}");
    let (_, reach) = server
        .graphql(Some(&admin), "{ reachableHosts { name } }", json!({}))
        .await;
    assert_eq!(
        reach["errors"][0]["message"],
        "only a person has hosts to reach; token:ops is not one"
    );
    let (_, burndown) = server
        .graphql(
            Some(&admin),
            "{ vulnBurndown(points: 1) { at } }",
            json!({}),
        )
        .await;
    assert_eq!(
        burndown["errors"][0]["message"],
        "points must be between 2 and 366"
    );

    // An admin sees every page; what people wrote is escaped.
    let (dave, _, dave_csrf) = server.enroll_soft_passkey(&base, "dave").await;
    server.admin_ok(&["group", "add-member", "admins", "dave"]);
    for path in [
        "/console",
        "/console/approvals",
        "/console/reviews",
        "/console/sessions",
        "/console/sessions?q=hello",
        "/console/audit",
        "/console/audit?outcome=denied",
        "/console/people",
        "/console/groups",
        "/console/hosts",
        "/console/policy",
        "/console/policy?principal=user%3Acarol&action=ssh&resource=api%3Ausers",
        "/console/vulns",
        "/console/settings",
        "/console/compliance",
        "/console/compliance?framework=hipaa&test=access-review",
    ] {
        let (status, headers, body) = get(&dave, &base, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(headers["content-security-policy"], CSP, "{path}");
    }
    let (_, groups) = server
        .graphql(
            Some(&admin),
            "{ groups(first: 10) { nodes { name memberCount members(first: 1) } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        groups["data"]["groups"]["nodes"][0],
        json!({ "name": "admins", "memberCount": 1, "members": ["dave"] }),
        "{groups}"
    );
    let (_, bad) = server
        .graphql(
            Some(&admin),
            "{ groups(first: 1) { nodes { members(first: 0) } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        bad["errors"][0]["message"],
        "first must be between 1 and 10000"
    );
    let (_, _, listed) = get(&dave, &base, "/console/groups").await;
    assert!(listed.contains("<td>1: dave </td>"), "{listed}");
    let (_, _, people) = get(&dave, &base, "/console/people").await;
    assert!(
        people.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{people}"
    );
    assert!(!people.contains("<img src=x"), "{people}");
    let (_, _, nav) = get(&dave, &base, "/console").await;
    assert!(nav.contains("href=\"/console/audit\""));

    // Tokens: listed with a revoke form for each live one; revoking goes through the API as
    // dave and is recorded; a forged form changes nothing.
    server.token("doomed", "member", None);
    let (_, listed) = server
        .graphql(Some(&admin), "{ tokens { id name status } }", json!({}))
        .await;
    let doomed = listed["data"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "doomed")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, page) = get(&dave, &base, "/console/tokens").await;
    assert_eq!(status, 200);
    let revoke = format!("/console/tokens/{doomed}/revoke");
    assert!(page.contains(&format!("action=\"{revoke}\"")), "{page}");
    let (status, body) = post(&dave, &base, &revoke, &[("csrf", "forged")]).await;
    assert_eq!(
        (status, notice(&body).as_str()),
        (
            403,
            "the form is stale or forged (CSRF token mismatch): reload the page and try again"
        )
    );
    let (status, body) = post(&dave, &base, &revoke, &[("csrf", dave_csrf.as_str())]).await;
    assert_eq!(status, 303, "{body}");
    let (_, _, body) = get(&dave, &base, "/console/tokens?done=revoked").await;
    assert!(
        body.contains("Revoked. The token no longer works."),
        "{body}"
    );
    let (_, after) = server
        .graphql(Some(&admin), "{ tokens { id name status } }", json!({}))
        .await;
    let state = after["data"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == doomed.as_str())
        .unwrap()["status"]
        .clone();
    assert_eq!(state, "REVOKED");
    let revoked = server.audit("token.revoke");
    assert!(
        revoked
            .iter()
            .any(|e| e["outcome"] == "success" && e["actor"] == "user:dave"),
        "{revoked:?}"
    );
    // Revoked twice: the API's one-line refusal, on the page.
    let (status, body) = post(&dave, &base, &revoke, &[("csrf", dave_csrf.as_str())]).await;
    assert_eq!(status, 400, "{body}");

    // People: disabling frank from the console offboards him (through the API, as dave) and
    // the page says what ended; enabling brings the account back but none of it.
    server.admin_ok(&["user", "add", "frank"]);
    let frank_token = server.token("frank-laptop", "member", Some("frank"));
    let (_, _, page) = get(&dave, &base, "/console/people").await;
    assert!(
        page.contains("action=\"/console/people/frank/disable\""),
        "{page}"
    );
    let (status, _) = post(
        &dave,
        &base,
        "/console/people/frank/disable",
        &[("csrf", "forged")],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &dave,
        &base,
        "/console/people/frank/disable",
        &[("csrf", dave_csrf.as_str())],
    )
    .await;
    assert_eq!(status, 303);
    let (_, _, page) = get(&dave, &base, "/console/people?done=disabled&who=frank").await;
    assert!(
        page.contains("Disabled <strong>frank</strong>. Offboarding ended 1 API token, 0 web sessions, 0 SSH certificates, 0 temporary grants and 0 mesh devices."),
        "{page}"
    );
    let (_, viewer) = server
        .graphql(Some(&frank_token), "{ viewer { name } }", json!({}))
        .await;
    assert!(
        viewer["data"].is_null(),
        "a disabled person's token still works: {viewer}"
    );
    let disabled = server.audit("user.disable");
    assert!(
        disabled.iter().any(|e| e["outcome"] == "success"
            && e["actor"] == "user:dave"
            && e["target"] == "user:frank"),
        "{disabled:?}"
    );
    // Disabled twice: the API's one-line refusal on the page; then enabled again.
    let (status, body) = post(
        &dave,
        &base,
        "/console/people/frank/disable",
        &[("csrf", dave_csrf.as_str())],
    )
    .await;
    assert_eq!(
        (status, notice(&body).as_str()),
        (400, "user `frank` is already disabled")
    );
    let (status, _) = post(
        &dave,
        &base,
        "/console/people/frank/enable",
        &[("csrf", dave_csrf.as_str())],
    )
    .await;
    assert_eq!(status, 303);
    let (status, body) = post(
        &dave,
        &base,
        "/console/people/frank/archive",
        &[("csrf", dave_csrf.as_str())],
    )
    .await;
    assert_eq!(
        (status, notice(&body).as_str()),
        (404, "unknown change `archive`: disable or enable")
    );

    // A browser sent nowhere gets a page in the console's frame; a program gets JSON.
    let nowhere = dave
        .get(format!("{base}/no/such/page"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), 404);
    assert_eq!(nowhere.headers()["content-security-policy"], CSP);
    assert!(
        nowhere.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = nowhere.text().await.unwrap();
    assert!(page.contains("<title>Not found · Warden</title>"), "{page}");
    assert!(page.contains("href=\"/console\""), "{page}");
    let (status, _, body) = get(&dave, &base, "/no/such/page").await;
    assert_eq!((status, body.as_str()), (404, r#"{"error":"not found"}"#));
    // The product mark, also as the favicon browsers ask for.
    for path in ["/favicon.ico", "/static/mark.svg"] {
        let (status, headers, body) = get(&dave, &base, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(headers["content-type"], "image/svg+xml", "{path}");
        assert!(body.starts_with("<svg "), "{path}");
    }
    assert!(
        nav.contains("rel=\"icon\" href=\"/static/mark.svg\""),
        "{nav}"
    );

    // The empty Hosts page names a command that exists: asked for its help, the CLI knows it.
    let (_, _, hosts) = get(&dave, &base, "/console/hosts").await;
    let suggested = hosts
        .split("<code>")
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .unwrap_or_else(|| panic!("{hosts}"));
    let words: Vec<&str> = suggested.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"warden"), "{suggested}");
    let help = std::process::Command::new(bin())
        .args(&words[1..])
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "`{suggested}` is not a command: {}",
        String::from_utf8_lossy(&help.stderr)
    );

    // Bad input to an admin's pages.
    let (status, _, body) = get(&dave, &base, "/console/audit?outcome=bogus").await;
    assert_eq!(
        (status, notice(&body).as_str()),
        (400, "unknown outcome `bogus`: success, failure or denied")
    );
    let (status, _, body) = get(&dave, &base, "/console/audit?before=x").await;
    assert_eq!(status, 400, "{body}");
    for (path, message) in [
        (
            "/console/compliance?framework=pci",
            "unknown framework `pci`: soc2 or hipaa",
        ),
        (
            "/console/compliance?test=nope",
            "unknown compliance test `nope`: `warden compliance status` lists them",
        ),
        (
            "/console/compliance?from=2001-01-01T00:00:00Z",
            "the period starts before the audit log began (",
        ),
    ] {
        let (status, _, body) = get(&dave, &base, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(notice(&body).starts_with(message), "{path}: {body}");
    }
    let (status, _, body) = get(
        &dave,
        &base,
        "/console/policy?principal=user%3Acarol&action=ssh&resource=host%3Adb-1&context=%7B",
    )
    .await;
    assert_eq!(status, 200);
    assert!(notice(&body).starts_with("invalid context: "), "{body}");
    let (status, _, body) = get(&dave, &base, "/console/recordings/nonsense").await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        error["error"],
        "invalid recording name `nonsense`: `warden sessions list` shows them"
    );
    // The same refusal, asked for by a browser navigating there: a page, with the status.
    for (path, status, message) in [
        (
            "/console/recordings/nonsense",
            400,
            "invalid recording name `nonsense`: `warden sessions list` shows them",
        ),
        ("/v1/audit/export", 401, ""),
    ] {
        let r = dave
            .get(format!("{base}{path}"))
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        assert_eq!(r.headers()["content-security-policy"], CSP, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        let page = r.text().await.unwrap();
        assert!(page.contains("href=\"/console\""), "{page}");
        if !message.is_empty() {
            assert_eq!(notice(&page), message, "{path}");
        }
    }
    let (status, _, body) = get(&dave, &base, "/console/sessions/nope").await;
    assert_eq!((status, notice(&body).as_str()), (404, "no session `nope`"));
    let (status, _, body) = get(&dave, &base, "/console/reviews/nope").await;
    assert_eq!(status, 404, "{body}");

    // The static files the pages use are served as what they are.
    for (path, kind) in [
        ("/static/console.css", "text/css; charset=utf-8"),
        ("/static/console.js", "text/javascript; charset=utf-8"),
        ("/static/player.js", "text/javascript; charset=utf-8"),
        ("/static/mark.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let (status, headers, _) = get(&anonymous, &base, path).await;
        assert_eq!(
            (status, headers["content-type"].to_str().unwrap()),
            (200, kind)
        );
    }
}

#[tokio::test]
async fn console_security_and_bad_input_sqlite() {
    security_and_bad_input(Backend::Sqlite).await;
}

#[tokio::test]
async fn console_security_and_bad_input_postgres() {
    security_and_bad_input(Backend::Postgres).await;
}

/// What a signed-in member of no group gets from a console route: the page (their own data,
/// or nothing), or a refusal decided by the policy engine and recorded under `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    /// The page, with the member's own data.
    Page,
    /// 403, and a denial of `action` recorded.
    Denied(&'static str),
    /// A form without the session's CSRF token: refused before anything is read.
    StaleForm,
    /// An id that names nothing the member may see.
    NotFound,
}

/// Every console route, with what a member of no group gets. A route of
/// `warden_web::console::ROUTES` missing here fails the walk, so a new page cannot ship
/// without its row.
const CONSOLE_ROUTES: &[(&str, &str, Member)] = &[
    ("get", "/console", Member::Page),
    ("post", "/console/access/request", Member::StaleForm),
    ("get", "/console/approvals", Member::Page),
    ("post", "/console/approvals/{id}", Member::StaleForm),
    ("get", "/console/reviews", Member::Page),
    (
        "get",
        "/console/reviews/new",
        Member::Denied("review.manage"),
    ),
    ("post", "/console/reviews/new", Member::StaleForm),
    ("get", "/console/reviews/{id}", Member::NotFound),
    ("post", "/console/reviews/{id}/close", Member::StaleForm),
    ("post", "/console/reviews/{id}", Member::StaleForm),
    ("get", "/console/sessions", Member::Denied("api.read_audit")),
    (
        "get",
        "/console/sessions/{id}",
        Member::Denied("api.read_audit"),
    ),
    (
        "get",
        "/console/recordings/{file}",
        Member::Denied("api.read_audit"),
    ),
    ("get", "/console/audit", Member::Denied("api.read_audit")),
    (
        "get",
        "/console/compliance",
        Member::Denied("api.read_audit"),
    ),
    (
        "get",
        "/console/people",
        Member::Denied("api.read_directory"),
    ),
    (
        "get",
        "/console/groups",
        Member::Denied("api.read_directory"),
    ),
    (
        "get",
        "/console/hosts",
        Member::Denied("api.read_directory"),
    ),
    ("get", "/console/tokens", Member::Denied("api.read_tokens")),
    ("post", "/console/people/{name}/{verb}", Member::StaleForm),
    (
        "get",
        "/console/people/invite",
        Member::Denied("api.read_directory"),
    ),
    ("post", "/console/people/invite", Member::StaleForm),
    (
        "get",
        "/console/people/{name}",
        Member::Denied("api.read_directory"),
    ),
    (
        "get",
        "/console/groups/new",
        Member::Denied("api.read_directory"),
    ),
    ("post", "/console/groups/new", Member::StaleForm),
    (
        "get",
        "/console/groups/{name}",
        Member::Denied("api.read_directory"),
    ),
    ("post", "/console/groups/{name}", Member::StaleForm),
    (
        "get",
        "/console/hosts/join",
        Member::Denied("api.read_directory"),
    ),
    ("post", "/console/hosts/join", Member::StaleForm),
    ("post", "/console/hosts/{name}/remove", Member::StaleForm),
    ("post", "/console/mesh/{name}/remove", Member::StaleForm),
    ("post", "/console/sessions/{id}/end", Member::StaleForm),
    ("post", "/console/tokens/{id}/revoke", Member::StaleForm),
    ("get", "/console/policy", Member::Denied("policy.read")),
    ("get", "/console/policy/edit", Member::Denied("policy.read")),
    ("post", "/console/policy/edit", Member::StaleForm),
    ("get", "/console/vulns", Member::Denied("vuln.read")),
    ("get", "/console/vulns/{id}", Member::Denied("vuln.read")),
    ("post", "/console/vulns/{id}", Member::StaleForm),
    ("get", "/console/settings", Member::Denied("policy.manage")),
];

/// Walks every route the console declares: without a session each one sends the browser to
/// sign in and shows nothing; with a member's session each answers as its row says, and each
/// refusal is the policy engine's, recorded.
#[tokio::test]
async fn every_console_route_needs_a_session_and_the_policy() {
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let config = format!("public_url = \"{base}\"\n[limits]\nper_source_rps = 0\n");
    let server = TestServer::start_on(bin(), Backend::Sqlite, &config, port).await;
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (member, _, _) = server.enroll_soft_passkey(&base, "carol").await;
    let mut seen = Vec::new();
    for &(method, route) in warden_web::console::ROUTES {
        // The public files: checked by type in `security_and_bad_input`.
        if route.starts_with("/static/") || route == "/favicon.ico" {
            continue;
        }
        let expected = CONSOLE_ROUTES
            .iter()
            .find(|(m, r, _)| *m == method && *r == route)
            .map(|(_, _, e)| *e)
            .unwrap_or_else(|| panic!("{method} {route} has no row in CONSOLE_ROUTES"));
        seen.push((method, route));
        let path = route
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{file}", "SESSION-1.rec");
        let send = |client: &reqwest::Client| {
            let url = format!("{base}{path}");
            match method {
                "get" => client.get(url),
                // Every field a console form has, so the form parses and the handler decides.
                _ => client.post(url).form(&[
                    ("csrf", "forged"),
                    ("group", "admins"),
                    ("duration", "1h"),
                    ("reason", "walk"),
                    ("decision", "approve"),
                    ("item", "00000000-0000-0000-0000-000000000000"),
                    ("seen", "0"),
                    ("change", "add"),
                    ("user", "carol"),
                ]),
            }
            .send()
        };
        let r = send(&anonymous).await.unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        assert_eq!(
            (status, location.as_deref()),
            (303, Some("/")),
            "{method} {route} without a session"
        );
        let denials = |action: &str| {
            server
                .audit(action)
                .iter()
                .filter(|e| e["outcome"] == "denied" && e["actor"] == "user:carol")
                .count()
        };
        let denied_before = match expected {
            Member::Denied(action) => denials(action),
            _ => 0,
        };
        let r = send(&member).await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        match expected {
            Member::Page => assert_eq!(status, 200, "{method} {route}: {body}"),
            Member::NotFound => assert_eq!(status, 404, "{method} {route}: {body}"),
            Member::StaleForm => {
                assert_eq!(status, 403, "{method} {route}: {body}");
                assert!(body.contains("stale"), "{method} {route}: {body}");
            }
            Member::Denied(action) => {
                assert_eq!(status, 403, "{method} {route}: {body}");
                // A page shows the refusal; the player's fetch gets it as JSON.
                let message = match serde_json::from_str::<Value>(&body) {
                    Ok(json) => json["error"].as_str().unwrap_or_default().to_owned(),
                    Err(_) => notice(&body),
                };
                assert!(
                    message.starts_with("permission denied: "),
                    "{method} {route}: {body}"
                );
                assert!(
                    denials(action) > denied_before,
                    "{method} {route}: no denial of {action} recorded"
                );
            }
        }
    }
    for (method, route, _) in CONSOLE_ROUTES {
        assert!(
            seen.contains(&(*method, *route)),
            "{method} {route} is in CONSOLE_ROUTES but the console has no such route"
        );
    }
}

#[tokio::test]
async fn console_journeys_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let base = format!("http://localhost:{port}");
    // Every SLA a second, so what is imported is overdue by the time the browser looks.
    let top = format!(
        "public_url = \"{base}\"\n[vuln.sla.default]\ncritical = \"1s\"\nhigh = \"1s\"\nmedium = \"1s\"\nlow = \"1s\"\ninformational = \"1s\"\n"
    );
    let lab = SshLab::start_opts(
        bin(),
        d,
        &LabOptions {
            top: &top,
            port,
            ..LabOptions::default()
        },
    )
    .await;
    let server = &lab.server;
    for args in [
        &["group", "add", "admins"][..],
        &["group", "add", "web"],
        &["user", "add", "bob"],
        &["group", "add-member", "admins", "bob"],
    ] {
        server.admin_ok(args);
    }

    // A session on a pty through the recording proxy.
    let out = through_proxy("ssh", server, d)
        .args([
            "-tt",
            "-l",
            "root",
            "db-1",
            "echo hello-console-$((6 * 7)); sleep 0.2",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hello-console-42"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..100 {
        if !server.audit("ssh.session.end").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // A review of ops for bob, and findings from a real Trivy report.
    let admin = server.token("ci", "admin", None);
    let (_, review) = server
        .graphql(
            Some(&admin),
            "mutation { createAccessReview(groups: [\"ops\"], reviewer: \"bob\", due: \"7d\") { id } }",
            json!({}),
        )
        .await;
    assert!(review["errors"].is_null(), "{review}");
    let report = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../warden-vuln/tests/fixtures/trivy/scheme_2_many_vulns.json");
    let out = server.remote(
        &admin,
        &["vuln", "import", "--asset", "api", report.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let link = |user: &str| {
        let out = server.admin(&["user", "enroll-link", user]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (alice_link, bob_link) = (link("alice"), link("bob"));
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots/console");
    std::fs::create_dir_all(&shots).unwrap();
    let journey = Journey::run(
        "console-journey.mjs",
        &[&base, &alice_link, &bob_link, shots.to_str().unwrap()],
    );
    journey.assert_no_error();
    for name in [
        "alice-signed-in",
        "my-hosts",
        "skip-link",
        "requested",
        "audit-denied",
        "csrf-refused",
        "progress",
        "approved",
        "granted",
        "keyboard-request",
        "phone",
        "played",
        "seek",
        "search",
        "reviewed",
        "overdue",
        "severity",
        "finding",
        "triage-refused",
        "triaged",
        "audit-filter",
        "audit-proof",
        "checkpoint",
        "compliance",
        "explain",
        "policy-refused",
        "policy-applied",
        "inventory",
        "cards",
        "axe",
        "csp",
    ] {
        let step = journey.step(name);
        assert_eq!(step["ok"], true, "{name}: {step}");
    }
    for file in [
        "my-access.png",
        "requested.png",
        "denied.png",
        "approvals.png",
        "my-access-granted.png",
        "my-access-phone.png",
        "menu-phone.png",
        "sessions.png",
        "playback.png",
        "search.png",
        "reviews.png",
        "review.png",
        "vulns.png",
        "finding.png",
        "finding-refused.png",
        "audit.png",
        "policy.png",
        "policy-edit.png",
        "people.png",
        "groups.png",
        "hosts.png",
        "settings.png",
        "vulns-phone.png",
        "page-console-1280.png",
        "page-console-390.png",
        "page-console-policy-edit-390.png",
        "page-console-vulns-overdue-1-1280.png",
    ] {
        assert!(shots.join(file).exists(), "{file}");
    }

    // The trail: the request by alice, the approval by bob, the review decision, the
    // forged form and the denied page.
    let requested = server.audit("access.request");
    assert!(
        requested
            .iter()
            .any(|e| e["outcome"] == "success" && e["actor"] == "user:alice")
    );
    assert!(
        requested
            .iter()
            .any(|e| e["outcome"] == "denied" && e["reason"] == "CSRF token mismatch")
    );
    let approved = server.audit("access.approve");
    assert_eq!(approved.len(), 1, "{approved:?}");
    assert_eq!(approved[0]["actor"], "user:bob");
    assert_eq!(
        approved[0]["auth"], "web_session",
        "a console change names its sign-in"
    );
    let decided = server.audit("review.keep");
    assert!(
        decided
            .iter()
            .any(|e| e["outcome"] == "success" && e["actor"] == "user:bob"),
        "{decided:?}"
    );
    assert!(
        server
            .audit("api.read_audit")
            .iter()
            .any(|e| e["outcome"] == "denied" && e["actor"] == "user:alice")
    );
}
