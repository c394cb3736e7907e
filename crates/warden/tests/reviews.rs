//! Access reviews: a campaign freezes and hashes who holds what; reviewers keep or revoke
//! with a justification; revocations are applied and verified; nobody reviews their own
//! access; undecided items are revoked at the due date when asked; the report lists before
//! and after. On SQLite and PostgreSQL.
#![expect(
    clippy::too_many_lines,
    reason = "an end-to-end journey reads in order, one step after another"
)]
#![expect(clippy::unwrap_used, reason = "test helpers fail the test")]

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use warden_testkit::{Backend, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `warden review ARGS…` against `server` with `token`.
fn review(server: &TestServer, token: &str, args: &[&str]) -> std::process::Output {
    let mut full = vec!["review"];
    full.extend_from_slice(args);
    server.remote(token, &full)
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn error_of(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "{}", text(&out.stdout));
    text(&out.stderr).trim().to_owned()
}

fn members(server: &TestServer, group: &str) -> Value {
    let out = server.admin(&["group", "list", "--json"]);
    let groups: Value = serde_json::from_slice(&out.stdout).unwrap();
    groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == group)
        .map(|g| g["members"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn review_revoke_verify_and_report() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, "[limits]\nper_source_rps = 0\n").await;
        for args in [
            &["user", "add", "alice"][..],
            &["user", "add", "bob"],
            &["user", "add", "carol"],
            &["user", "add", "dora"],
            &["group", "add", "ops"],
            &["group", "add", "web"],
            &["group", "add", "admins"],
            &["group", "add-member", "ops", "alice"],
            &["group", "add-member", "ops", "bob"],
            &["group", "add-member", "web", "dora"],
            &["group", "add-member", "admins", "carol"],
        ] {
            assert!(server.admin(args).status.success(), "{args:?}");
        }
        let admin = server.token("ci", "admin", None);
        let carol = server.token("carol-cli", "member", Some("carol"));
        let bob = server.token("bob-cli", "member", Some("bob"));

        // Self-review is refused at the start, naming who and what.
        let out = review(
            &server,
            &admin,
            &[
                "create",
                "--scope",
                "groups:ops",
                "--reviewer",
                "alice",
                "--due",
                "14d",
            ],
        );
        assert_eq!(
            error_of(&out),
            "error: cannot assign reviewers: `alice` would review their own access to `ops`"
        );
        for (args, want) in [
            (
                &["create", "--reviewer", "carol", "--due", "2020-01-01"][..],
                "error: the due date `2020-01-01` has passed",
            ),
            (
                &["create", "--reviewer", "carol", "--due", "someday"],
                "error: invalid due date `someday`: use 2026-12-31, an RFC 3339 time or a span like 14d",
            ),
            (
                &["create", "--reviewer", "owner", "--due", "1d"],
                "error: cannot assign reviewers: group `admins` has no enabled owner (and 2 more)",
            ),
            (
                &[
                    "create",
                    "--scope",
                    "groups:nope",
                    "--reviewer",
                    "carol",
                    "--due",
                    "1d",
                ],
                "error: group `nope` not found",
            ),
            (
                &[
                    "create",
                    "--scope",
                    "hosts:*",
                    "--reviewer",
                    "carol",
                    "--due",
                    "1d",
                ],
                "error: invalid review scope `hosts:*`: use groups:*, groups:NAME,NAME, tokens:* or tokens:ROLE,ROLE",
            ),
        ] {
            assert_eq!(
                error_of(&review(&server, &admin, args)),
                want,
                "{backend:?} {args:?}"
            );
        }
        // Only those who may `review` start one.
        let out = review(
            &server,
            &bob,
            &["create", "--reviewer", "carol", "--due", "1d"],
        );
        assert!(
            error_of(&out).starts_with("error: permission denied: "),
            "{}",
            error_of(&out)
        );

        // The campaign: frozen, hashed, each item with how and since when it was granted.
        let out = review(
            &server,
            &admin,
            &[
                "--json",
                "create",
                "--scope",
                "groups:ops,web",
                "--reviewer",
                "carol",
                "--due",
                "14d",
            ],
        );
        let campaign = json_of(&out);
        let id = campaign["id"].as_str().unwrap().to_owned();
        assert_eq!(campaign["populationSha256"].as_str().unwrap().len(), 64);
        let items: Vec<(String, String, String)> = campaign["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["subject"].as_str().unwrap().to_owned(),
                    i["entitlement"].as_str().unwrap().to_owned(),
                    i["grantedBy"].as_str().unwrap_or("-").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            items,
            [
                ("alice".to_owned(), "ops".to_owned(), "operator".to_owned()),
                ("bob".to_owned(), "ops".to_owned(), "operator".to_owned()),
                ("dora".to_owned(), "web".to_owned(), "operator".to_owned()),
            ],
            "{backend:?}"
        );

        // carol keeps alice, revokes bob: applied, then verified.
        let out = review(
            &server,
            &carol,
            &[
                "--json",
                "decide",
                &id,
                "--items",
                "1",
                "--keep",
                "--reason",
                "on call this quarter",
            ],
        );
        assert_eq!(json_of(&out)["items"][0]["decision"], "keep");
        let out = review(
            &server,
            &carol,
            &[
                "--json",
                "decide",
                &id,
                "--items",
                "2",
                "--revoke",
                "--reason",
                "left the team",
            ],
        );
        let after = json_of(&out);
        assert_eq!(after["items"][1]["decision"], "revoke");
        assert!(after["items"][1]["verifiedAt"].is_string(), "{after}");
        assert_eq!(members(&server, "ops"), json!(["alice"]));
        let verify = server.audit("review.verify");
        assert_eq!(verify[0]["details"]["verified"], json!([2]));

        // Bad decisions change nothing.
        for (token, args, want) in [
            (
                &bob,
                &["decide", &id, "--items", "3", "--keep", "--reason", "x"][..],
                "error: item 3 is for `carol` to review".to_owned(),
            ),
            (
                &carol,
                &["decide", &id, "--items", "1", "--revoke", "--reason", "x"],
                "error: item 1 is already decided (keep)".to_owned(),
            ),
            (
                &carol,
                &["decide", &id, "--items", "9", "--keep", "--reason", "x"],
                "error: review item `9` not found".to_owned(),
            ),
            (
                &carol,
                &["decide", &id, "--items", "3", "--keep", "--reason", " "],
                "error: give a justification: one line of at most 500 bytes".to_owned(),
            ),
        ] {
            assert_eq!(
                error_of(&review(&server, token, args)),
                want,
                "{backend:?} {args:?}"
            );
        }
        assert_eq!(members(&server, "web"), json!(["dora"]));

        // The report: CSV, and JSON with the lists before and after.
        let out = review(&server, &admin, &["report", &id]);
        let csv = text(&out.stdout);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "n,subject,entitlement,source,grantedAt,grantedBy,grantedWhy,lastUsedAt,reviewer,decision,reason,decidedBy,decidedAt,verifiedAt"
        );
        assert_eq!(lines.len(), 4);
        assert!(lines[2].starts_with("2,bob,ops,member,"), "{csv}");
        assert!(
            lines[2].contains(",carol,revoke,left the team,user:carol,"),
            "{csv}"
        );
        let out = review(&server, &admin, &["report", &id, "--format", "json"]);
        let report = json_of(&out);
        assert_eq!(report["before"].as_array().unwrap().len(), 3);
        assert_eq!(
            report["after"],
            json!([{ "subject": "alice", "entitlement": "ops" }, { "subject": "dora", "entitlement": "web" }])
        );

        // The last decision closes it; a closed review takes no more.
        let out = review(
            &server,
            &carol,
            &[
                "--json",
                "decide",
                &id,
                "--items",
                "3",
                "--keep",
                "--reason",
                "still on web",
            ],
        );
        assert_eq!(json_of(&out)["state"], "closed");
        let out = review(&server, &admin, &["close", &id]);
        assert_eq!(error_of(&out), format!("error: review `{id}` is closed"));

        // Undecided at the due date: revoked by Warden, verified, closed.
        let out = review(
            &server,
            &admin,
            &[
                "--json",
                "create",
                "--scope",
                "groups:web",
                "--reviewer",
                "carol",
                "--due",
                "2s",
                "--auto-revoke",
            ],
        );
        let auto = json_of(&out)["id"].as_str().unwrap().to_owned();
        let mut shown = Value::Null;
        for _ in 0..100 {
            shown = json_of(&review(&server, &admin, &["--json", "show", &auto]));
            // The timer revokes (closing the review) and then verifies, in two commits.
            if shown["state"] == "closed" && shown["items"][0]["verifiedAt"].is_string() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(shown["state"], "closed", "{shown}");
        assert_eq!(shown["items"][0]["decidedBy"], "system");
        assert_eq!(shown["items"][0]["reason"], "not reviewed by the due date");
        assert!(shown["items"][0]["verifiedAt"].is_string());
        assert_eq!(members(&server, "web"), json!([]));
    }
}

#[tokio::test]
async fn managers_review_their_reports() {
    let server = TestServer::start(bin(), Backend::Sqlite, "[limits]\nper_source_rps = 0\n").await;
    let okta = server.token("okta", "scim", None);
    let admin = server.token("ci", "admin", None);
    let scim = async |method: &str, path: &str, body: Value| {
        let (status, _, body) = server
            .request(
                method,
                &format!("/scim/v2{path}"),
                Some(&okta),
                Some(&body.to_string()),
                &[],
            )
            .await;
        assert!(status < 300, "{body}");
        body
    };
    let boss = scim("POST", "/Users", json!({ "userName": "boss@example.com" })).await;
    let boss_id = boss["id"].as_str().unwrap();
    let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let emp = scim(
        "POST",
        "/Users",
        json!({ "userName": "emp@example.com", ext: { "manager": { "value": boss_id } } }),
    )
    .await;
    scim(
        "POST",
        "/Groups",
        json!({ "displayName": "Eng", "members": [{ "value": emp["id"] }] }),
    )
    .await;
    let out = review(
        &server,
        &admin,
        &[
            "--json",
            "create",
            "--scope",
            "groups:eng",
            "--reviewer",
            "manager",
            "--due",
            "7d",
        ],
    );
    let campaign = json_of(&out);
    assert_eq!(campaign["items"][0]["subject"], "emp-example.com");
    assert_eq!(campaign["items"][0]["reviewer"], "boss-example.com");
    assert_eq!(campaign["items"][0]["grantedBy"], "token:okta");
    assert_eq!(campaign["items"][0]["grantedWhy"], "provisioned by SCIM");
    // Someone without a manager cannot be assigned one.
    scim(
        "POST",
        "/Groups",
        json!({ "displayName": "Leads", "members": [{ "value": boss_id }] }),
    )
    .await;
    let out = review(
        &server,
        &admin,
        &[
            "create",
            "--scope",
            "groups:leads",
            "--reviewer",
            "manager",
            "--due",
            "7d",
        ],
    );
    assert_eq!(
        error_of(&out),
        "error: cannot assign reviewers: `boss-example.com` has no manager"
    );

    // Owners review their groups' members.
    for args in [
        &["user", "add", "olga"][..],
        &["group", "set-owner", "eng", "olga"],
    ] {
        assert!(server.admin(args).status.success(), "{args:?}");
    }
    let args = [
        "--json",
        "create",
        "--scope",
        "groups:eng,leads",
        "--reviewer",
        "owner",
        "--due",
        "7d",
    ];
    let out = review(&server, &admin, &args);
    assert_eq!(
        error_of(&out),
        "error: cannot assign reviewers: group `leads` has no enabled owner"
    );
    let args = [
        "--json",
        "create",
        "--scope",
        "groups:eng",
        "--reviewer",
        "owner",
        "--due",
        "7d",
    ];
    let campaign = json_of(&review(&server, &admin, &args));
    assert_eq!(campaign["reviewer"], "owner");
    assert_eq!(campaign["items"][0]["reviewer"], "olga");
    assert_eq!(
        server.audit("group.set_owner")[0]["details"]["owner"],
        "olga"
    );
}

/// API tokens are access too: a campaign over `tokens:…` lists each live token with its owner
/// and role; its reviewer (an ordinary member) revokes one and the token stops working at
/// once; nobody reviews a token that acts as them; scopes and reviewers that cannot apply are
/// refused in one line, changing nothing.
#[tokio::test]
async fn api_tokens_are_reviewed_with_their_owners_and_roles() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, "[limits]\nper_source_rps = 0\n").await;
        for args in [
            &["user", "add", "alice"][..],
            &["user", "add", "bob"],
            &["group", "add", "ops"],
            &["group", "add-member", "ops", "alice"],
        ] {
            assert!(server.admin(args).status.success(), "{args:?}");
        }
        let admin = server.token("ci", "admin", None);
        let deploy = server.token("alice-deploy", "admin", Some("alice"));
        server.token("okta", "scim", None);
        let bob = server.token("bob-cli", "member", Some("bob"));
        let campaigns = || {
            let out = review(&server, &admin, &["--json", "list"]);
            json_of(&out).as_array().unwrap().len()
        };

        // bob holds a member token of his own: he cannot review it.
        for (args, want) in [
            (
                &[
                    "create",
                    "--scope",
                    "tokens:*",
                    "--reviewer",
                    "bob",
                    "--due",
                    "7d",
                ][..],
                "error: cannot assign reviewers: `bob` would review their own token `bob-cli`",
            ),
            (
                &[
                    "create",
                    "--scope",
                    "tokens:scim",
                    "--reviewer",
                    "owner",
                    "--due",
                    "7d",
                ],
                "error: cannot assign reviewers: token `okta` belongs to no group, so it has no group owner: name a reviewer or use manager",
            ),
            (
                &[
                    "create",
                    "--scope",
                    "tokens:scim",
                    "--reviewer",
                    "manager",
                    "--due",
                    "7d",
                ],
                "error: cannot assign reviewers: token `okta` acts as itself and no person made it: it has no manager",
            ),
            (
                &[
                    "create",
                    "--scope",
                    "tokens:root",
                    "--reviewer",
                    "bob",
                    "--due",
                    "7d",
                ],
                "error: invalid review scope `tokens:root`: unknown role `root`: expected admin, auditor, member or scim",
            ),
            (
                &[
                    "create",
                    "--scope",
                    "tokens:auditor",
                    "--reviewer",
                    "bob",
                    "--due",
                    "7d",
                ],
                "error: no live token is in tokens:auditor: nothing to review",
            ),
        ] {
            assert_eq!(error_of(&review(&server, &admin, args)), want, "{args:?}");
        }
        assert_eq!(campaigns(), 0, "{backend:?}");

        let args = [
            "--json",
            "create",
            "--scope",
            "tokens:admin,scim",
            "--reviewer",
            "bob",
            "--due",
            "7d",
        ];
        let campaign = json_of(&review(&server, &admin, &args));
        let id = campaign["id"].as_str().unwrap().to_owned();
        assert_eq!(campaign["scope"], "tokens:admin,scim");
        let items: Vec<(String, String, String, Value)> = campaign["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                assert_eq!(i["source"], "token");
                (
                    i["subject"].as_str().unwrap().to_owned(),
                    i["entitlement"].as_str().unwrap().to_owned(),
                    i["grantedWhy"]
                        .as_str()
                        .unwrap()
                        .split(';')
                        .next()
                        .unwrap()
                        .to_owned(),
                    i["owner"].clone(),
                )
            })
            .collect();
        assert_eq!(
            items,
            [
                (
                    "alice-deploy".to_owned(),
                    "role:admin".to_owned(),
                    "acts as `alice`".to_owned(),
                    json!("alice")
                ),
                (
                    "ci".to_owned(),
                    "role:admin".to_owned(),
                    "acts as itself".to_owned(),
                    Value::Null
                ),
                (
                    "okta".to_owned(),
                    "role:scim".to_owned(),
                    "acts as itself".to_owned(),
                    Value::Null
                ),
            ],
            "{backend:?}"
        );
        assert_eq!(campaign["items"][0]["grantedBy"], "operator");

        // alice's token cannot decide its own item, even as an admin.
        let out = review(
            &server,
            &deploy,
            &["decide", &id, "--items", "1", "--keep", "--reason", "mine"],
        );
        assert_eq!(
            error_of(&out),
            "error: item 1: you cannot review your own access"
        );
        // bob, an ordinary member, revokes it: it stops working at once, verified.
        let out = review(
            &server,
            &bob,
            &[
                "--json",
                "decide",
                &id,
                "--items",
                "1",
                "--revoke",
                "--reason",
                "deploys moved to CI",
            ],
        );
        let after = json_of(&out);
        assert_eq!(after["items"][0]["decision"], "revoke");
        assert!(after["items"][0]["verifiedAt"].is_string(), "{after}");
        let refused = review(&server, &deploy, &["list"]);
        assert!(!refused.status.success());
        let revoked = server.audit("review.revoke");
        assert_eq!(
            revoked[0]["details"]["revoked"],
            json!(["alice-deploy:role:admin"])
        );
        let out = review(
            &server,
            &bob,
            &[
                "--json",
                "decide",
                &id,
                "--items",
                "2,3",
                "--keep",
                "--reason",
                "CI and the IdP's provisioning",
            ],
        );
        assert_eq!(json_of(&out)["state"], "closed");
        // The listing of tokens agrees.
        let out = server.admin(&["token", "list", "--json"]);
        let tokens: Value = serde_json::from_slice(&out.stdout).unwrap();
        let deploy_row = tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "alice-deploy")
            .unwrap()
            .clone();
        assert!(deploy_row["revokedAt"].is_string(), "{deploy_row}");
    }
}
