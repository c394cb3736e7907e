//! The GraphQL API over real HTTP against the real server, on SQLite and PostgreSQL.

use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};
use warden_model::{Actor, Role, Timestamp, TokenName};
use warden_store::{AuditContext, DatabaseLocation, NewToken, Store};
use warden_testkit::{Backend, TestServer};

const UNAUTHORIZED: &str =
    "authentication required: send a valid API token as `Authorization: Bearer <token>`";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

/// Rate limiting off: these tests send many requests from one address.
const NO_RATE_LIMIT: &str = "[limits]\nper_source_rps = 0\n";

async fn viewer(server: &TestServer, token: Option<&str>) -> (u16, Value) {
    server
        .graphql(
            token,
            "{ viewer { kind name role tokenId user { name groups } } }",
            Value::Null,
        )
        .await
}

#[tokio::test]
async fn tokens_authenticate_and_stop_working_when_revoked_or_user_disabled() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, NO_RATE_LIMIT).await;
        assert!(server.admin(&["user", "add", "alice"]).status.success());
        assert!(server.admin(&["group", "add", "ops"]).status.success());
        assert!(
            server
                .admin(&["group", "add-member", "ops", "alice"])
                .status
                .success()
        );
        let alice = server.token("alice-laptop", "member", Some("alice"));
        let service = server.token("ci", "auditor", None);

        let (status, body) = viewer(&server, Some(&alice)).await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(
            body["data"]["viewer"],
            json!({ "kind": "USER", "name": "alice", "role": "MEMBER",
                    "tokenId": alice[4..36], "user": { "name": "alice", "groups": ["ops"] } })
        );
        let (_, body) = viewer(&server, Some(&service)).await;
        assert_eq!(body["data"]["viewer"]["kind"], "TOKEN");
        assert_eq!(body["data"]["viewer"]["name"], "ci");

        // No token, a malformed one, a wrong secret: the same 401.
        for token in [
            None,
            Some("nonsense"),
            Some(&format!("{}x", &alice[..alice.len() - 1])),
        ] {
            let (status, body) = viewer(&server, token).await;
            assert_eq!(
                (status, body["errors"][0]["message"].as_str()),
                (401, Some(UNAUTHORIZED)),
                "{token:?}"
            );
        }

        // Disabling offboards: the token is revoked, and enabling again does not bring it
        // back (a returning person gets new credentials).
        assert!(server.admin(&["user", "disable", "alice"]).status.success());
        assert_eq!(viewer(&server, Some(&alice)).await.0, 401);
        let disabled = server.audit("user.disable");
        assert_eq!(disabled[0]["details"]["tokens_revoked"], 1, "{disabled:?}");
        assert!(server.admin(&["user", "enable", "alice"]).status.success());
        let (status, body) = viewer(&server, Some(&alice)).await;
        assert_eq!(
            (status, body["errors"][0]["message"].as_str()),
            (401, Some(UNAUTHORIZED))
        );
        let out = server.admin(&["token", "revoke", "alice-laptop"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            "error: token `alice-laptop` not found"
        );
    }
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, NO_RATE_LIMIT).await;
        // A second process writes a token that expired a second ago, as the server would have.
        let store = Store::open(&DatabaseLocation::parse(&server.database_url()).unwrap())
            .await
            .unwrap();
        let issued = warden_identity::issue(&mut rand::rngs::OsRng);
        let now = Timestamp::from_system(SystemTime::now());
        let ctx = AuditContext {
            actor: Actor::Operator,
            request_id: "test".into(),
            source: None,
            now,
        };
        let new = NewToken {
            id: issued.id.clone(),
            name: TokenName::new("old").unwrap(),
            role: Role::Admin,
            user: None,
            secret_hash: issued.secret_hash.clone(),
            expires_at: Timestamp::from_millis(now.as_millis() - 1000),
        };
        store.create_token(&ctx, new).await.unwrap();
        let (status, body) = viewer(&server, Some(issued.token.expose())).await;
        assert_eq!(
            (status, body["errors"][0]["message"].as_str()),
            (401, Some(UNAUTHORIZED)),
            "{backend:?}"
        );
        let events = store.recent_events(1).await.unwrap();
        assert_eq!(events[0].action, "auth.token");
        assert_eq!(
            events[0].reason.as_deref(),
            Some(format!("token `{}` has expired", issued.id).as_str())
        );
        assert_eq!(events[0].source.as_deref(), Some("127.0.0.1"));
        store.close().await;
    }
}

#[tokio::test]
async fn the_starter_policy_denies_by_default_and_denials_are_audited() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, NO_RATE_LIMIT).await;
        assert!(server.admin(&["user", "add", "bob"]).status.success());
        let member = server.token("m", "member", Some("bob"));
        let auditor = server.token("a", "auditor", None);
        let admin = server.token("root", "admin", None);
        let scim = server.token("idp", "scim", None);

        let list = "{ users(first: 10) { nodes { name } } }";
        let (status, body) = server.graphql(Some(&member), list, Value::Null).await;
        assert_eq!(status, 200);
        assert_eq!(
            body["errors"][0]["message"],
            "permission denied: policy v1: no policy permits `read_directory` (default deny)"
        );
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
        assert_eq!(body["data"], Value::Null);

        let (_, body) = server.graphql(Some(&auditor), list, Value::Null).await;
        assert_eq!(
            body["data"]["users"]["nodes"],
            json!([{ "name": "bob" }]),
            "{backend:?}"
        );
        let create = "mutation { createUser(input: { name: \"eve\" }) { name } }";
        let (_, body) = server.graphql(Some(&auditor), create, Value::Null).await;
        assert_eq!(
            body["errors"][0]["message"],
            "permission denied: policy v1: no policy permits `manage_users` (default deny)"
        );
        let (_, body) = server.graphql(Some(&admin), create, Value::Null).await;
        assert_eq!(body["data"]["createUser"]["name"], "eve");

        let (status, body) = viewer(&server, Some(&scim)).await;
        assert_eq!(status, 403);
        assert_eq!(
            body["errors"][0]["message"],
            "permission denied: a scim token may only use /scim/v2"
        );

        // Tokens never show their secrets once created.
        let (_, body) = server
            .graphql(Some(&admin), "{ tokens { name status } }", Value::Null)
            .await;
        let text = body.to_string();
        for secret in [&member, &auditor, &admin, &scim] {
            assert!(
                !text.contains(&secret[37..]),
                "secret leaked in token listing"
            );
        }
        assert!(
            !server.log().contains(&admin[37..]),
            "secret leaked in the log"
        );

        let store = Store::open(&DatabaseLocation::parse(&server.database_url()).unwrap())
            .await
            .unwrap();
        let denied: Vec<(String, String)> = store
            .recent_events(50)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.outcome == warden_store::Outcome::Denied)
            .map(|e| (e.actor_label, e.action))
            .collect();
        let first = store
            .recent_events(50)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.outcome == warden_store::Outcome::Denied)
            .unwrap();
        assert_eq!(
            first.details,
            json!({ "policy_version": 1, "determining_policies": [], "errors": [] }),
            "a denial records the policy version and the determining policies"
        );
        assert_eq!(
            denied,
            [
                ("user:bob".to_owned(), "api.read_directory".to_owned()),
                ("token:a".to_owned(), "api.manage_users".to_owned()),
                ("token:idp".to_owned(), "api.access".to_owned()),
            ]
        );
        store.close().await;
    }
}

#[tokio::test]
async fn users_paginate_with_cursors() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, NO_RATE_LIMIT).await;
        let admin = server.token("root", "admin", None);
        for i in 0..7 {
            let q = "mutation($n: String!) { createUser(input: { name: $n }) { name } }";
            let (status, _) = server
                .graphql(Some(&admin), q, json!({ "n": format!("user{i}") }))
                .await;
            assert_eq!(status, 200);
        }
        let q = "query($after: String) { users(first: 3, after: $after) { \
                 pageInfo { hasNextPage endCursor } nodes { name } } }";
        let mut names = Vec::new();
        let mut after = Value::Null;
        let mut pages = 0;
        loop {
            let (_, body) = server
                .graphql(Some(&admin), q, json!({ "after": after }))
                .await;
            let conn = &body["data"]["users"];
            names.extend(
                conn["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n["name"].as_str().unwrap().to_owned()),
            );
            pages += 1;
            if conn["pageInfo"]["hasNextPage"] != json!(true) {
                break;
            }
            after = conn["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(pages, 3, "{backend:?}");
        assert_eq!(
            names,
            (0..7).map(|i| format!("user{i}")).collect::<Vec<_>>()
        );

        let (_, body) = server
            .graphql(
                Some(&admin),
                "{ users(first: 101) { nodes { name } } }",
                Value::Null,
            )
            .await;
        assert_eq!(
            body["errors"][0]["message"],
            "`first` and `last` may be at most 100"
        );
    }
}

/// A page of groups reads members, counts and owners for all its groups in one batch per
/// field: each group still gets its own, whatever the mix of groups and `first`.
#[tokio::test]
async fn a_page_of_groups_gets_each_groups_members_count_and_owner() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, NO_RATE_LIMIT).await;
        for user in ["u0", "u1", "u2", "u3", "u4", "u5"] {
            assert!(server.admin(&["user", "add", user]).status.success());
        }
        for group in ["g-a", "g-b", "g-c"] {
            assert!(server.admin(&["group", "add", group]).status.success());
        }
        for (group, user) in [
            ("g-a", "u5"),
            ("g-a", "u3"),
            ("g-a", "u0"),
            ("g-a", "u1"),
            ("g-b", "u2"),
        ] {
            let out = server.admin(&["group", "add-member", group, user]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = server.admin(&["group", "set-owner", "g-a", "u4", "--if-no-owner"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Set against an owner read before that: refused as stale, nothing changed.
        for stale in [
            &["group", "set-owner", "g-a", "u5", "--if-no-owner"][..],
            &["group", "set-owner", "g-a", "u5", "--if-owner", "u3"][..],
        ] {
            let out = server.admin(stale);
            assert_eq!(
                String::from_utf8_lossy(&out.stderr).trim(),
                "error: the owner of group `g-a` changed since it was read (now `u4`): read it again, then decide",
                "{stale:?}"
            );
            assert!(!out.status.success());
        }
        let out = server.admin(&["group", "set-owner", "g-a", "u4", "--if-owner", "u4"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Cleared: against a stale owner refused the same way; then with the owner read, and
        // without a check. g-b is left with no owner.
        let ok = |args: &[&str]| {
            let out = server.admin(args);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let refused = |args: &[&str], now: &str| {
            let out = server.admin(args);
            assert_eq!(
                String::from_utf8_lossy(&out.stderr).trim(),
                format!(
                    "error: the owner of group `g-b` changed since it was read (now {now}): read it again, then decide"
                ),
                "{args:?}"
            );
            assert!(!out.status.success());
        };
        refused(&["group", "clear-owner", "g-b", "--if-owner", "u2"], "none");
        ok(&["group", "set-owner", "g-b", "u2"]);
        refused(&["group", "clear-owner", "g-b", "--if-owner", "u1"], "`u2`");
        assert_eq!(
            ok(&["group", "clear-owner", "g-b", "--if-owner", "u2"]),
            "g-b has no owner"
        );
        ok(&["group", "set-owner", "g-b", "u2"]);
        assert_eq!(ok(&["group", "clear-owner", "g-b"]), "g-b has no owner");

        // The narrowest caller that may read the directory: an auditor's token.
        let auditor = server.token("a", "auditor", None);
        let q = "{ groups(first: 10) { nodes { name memberCount owner top: members(first: 2) all: members } } }";
        let (status, body) = server.graphql(Some(&auditor), q, Value::Null).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["errors"], Value::Null, "{backend:?}: {body}");
        let mine: Vec<&Value> = body["data"]["groups"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["name"].as_str().unwrap().starts_with("g-"))
            .collect();
        assert_eq!(
            mine,
            [
                &json!({ "name": "g-a", "memberCount": 4, "owner": "u4", "top": ["u0", "u1"], "all": ["u0", "u1", "u3", "u5"] }),
                &json!({ "name": "g-b", "memberCount": 1, "owner": null, "top": ["u2"], "all": ["u2"] }),
                &json!({ "name": "g-c", "memberCount": 0, "owner": null, "top": [], "all": [] }),
            ],
            "{backend:?}"
        );
        // One group alone reads the same.
        let one = "{ group(name: \"g-a\") { memberCount owner members(first: 3) } }";
        let (_, body) = server.graphql(Some(&auditor), one, Value::Null).await;
        assert_eq!(
            body["data"]["group"],
            json!({ "memberCount": 4, "owner": "u4", "members": ["u0", "u1", "u3"] })
        );
        let (_, body) = server
            .graphql(
                Some(&auditor),
                "{ group(name: \"g-a\") { members(first: 0) } }",
                Value::Null,
            )
            .await;
        assert_eq!(
            body["errors"][0]["message"],
            "first must be between 1 and 10000"
        );

        // A member's token may not read them.
        let member = server.token("m", "member", Some("u0"));
        let (_, body) = server.graphql(Some(&member), q, Value::Null).await;
        assert_eq!(
            body["errors"][0]["message"],
            "permission denied: policy v1: no policy permits `read_directory` (default deny)"
        );
        assert_eq!(body["data"], Value::Null);
    }
}

#[tokio::test]
async fn bad_requests_get_400_with_positions() {
    let server = TestServer::start(bin(), Backend::Sqlite, NO_RATE_LIMIT).await;
    let admin = server.token("root", "admin", None);

    let (status, body) = server
        .graphql(Some(&admin), "{ viewer { name ", Value::Null)
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["locations"],
        json!([{ "line": 1, "column": 17 }])
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("syntax error at 1:17: "),
        "{body}"
    );

    let (status, body) = server
        .graphql(Some(&admin), "{ nosuchfield }", Value::Null)
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["message"],
        "Unknown field \"nosuchfield\" on type \"Query\"."
    );

    // Deeper than the depth limit, through the recursive introspection types.
    let deep = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } }";
    let (status, body) = server.graphql(Some(&admin), deep, Value::Null).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["message"], "Query is nested too deep.");

    // More fields than the complexity limit allows, through aliases.
    let wide: String = (0..600)
        .map(|i| format!("a{i}: viewer {{ name }} "))
        .collect();
    let (status, body) = server
        .graphql(Some(&admin), &format!("{{ {wide} }}"), Value::Null)
        .await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Query is too complex"),
        "{body}"
    );

    let (status, body) = server
        .post_json("/graphql", Some(&admin), "{not json")
        .await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body: ")
    );

    let bad_names = [
        (
            "mutation { createUser(input: { name: \"Bad Name\" }) { name } }",
            "user name `Bad Name` is invalid: use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        ),
        (
            "mutation { createToken(input: { name: \"x\", role: ADMIN, ttl: \"forever\" }) { token } }",
            "invalid duration `forever`: use a number and a unit, like 90m, 12h or 30d",
        ),
        (
            "mutation { revokeToken(token: \"nope\") { id } }",
            "token `nope` not found",
        ),
        (
            "mutation { addGroupMember(group: \"ops\", user: \"bob\") { name } }",
            "group `ops` not found",
        ),
    ];
    for (q, message) in bad_names {
        let (status, body) = server.graphql(Some(&admin), q, Value::Null).await;
        assert_eq!(
            (status, body["errors"][0]["message"].as_str()),
            (200, Some(message)),
            "{q}"
        );
    }
}
