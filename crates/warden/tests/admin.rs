//! `warden admin` against a real server over its admin socket, on SQLite and PostgreSQL.

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use warden_testkit::{Backend, TestServer, run_cli};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: Output) -> String {
    assert!(
        !out.status.success(),
        "unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(text.lines().count(), 1, "errors are one line: {text}");
    text.trim_end().to_owned()
}

#[tokio::test]
async fn users_groups_and_tokens_end_to_end() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, "").await;
        assert_eq!(
            ok(server.admin(&[
                "user",
                "add",
                "alice",
                "--display-name",
                "Alice A",
                "--email",
                "a@example.com"
            ])),
            "added user alice\n"
        );
        ok(server.admin(&["user", "add", "bob"]));
        ok(server.admin(&["group", "add", "ops", "--description", "Operations"]));
        assert_eq!(
            ok(server.admin(&["group", "add-member", "ops", "alice"])),
            "added alice to ops\n"
        );
        ok(server.admin(&["group", "add-member", "ops", "bob"]));
        ok(server.admin(&["group", "remove-member", "ops", "bob"]));
        assert_eq!(
            ok(server.admin(&["user", "disable", "bob"])),
            "disabled user bob\n"
        );

        let users: Value =
            serde_json::from_str(&ok(server.admin(&["user", "list", "--json"]))).unwrap();
        let summary: Vec<(String, bool, Value)> = users
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["name"].as_str().unwrap().to_owned(),
                    u["disabled"].as_bool().unwrap(),
                    u["groups"].clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("alice".to_owned(), false, serde_json::json!(["ops"])),
                ("bob".to_owned(), true, serde_json::json!([]))
            ],
            "{backend:?}"
        );
        let table = ok(server.admin(&["user", "list"]));
        assert!(
            table.starts_with("NAME   DISPLAY NAME  EMAIL          STATE     GROUPS  CREATED\n"),
            "{table}"
        );
        assert!(
            table.contains("\nalice  Alice A       a@example.com  active    ops"),
            "{table}"
        );

        let groups: Value =
            serde_json::from_str(&ok(server.admin(&["group", "list", "--json"]))).unwrap();
        assert_eq!(groups[0]["members"], serde_json::json!(["alice"]));

        let token = server.token("alice-cli", "member", Some("alice"));
        assert!(token.starts_with("wdn_") && token.len() == 80, "{token}");
        let tokens: Value =
            serde_json::from_str(&ok(server.admin(&["token", "list", "--json"]))).unwrap();
        assert_eq!(tokens[0]["name"], "alice-cli");
        assert_eq!(tokens[0]["status"], "ACTIVE");
        assert_eq!(tokens[0]["user"], "alice");
        assert_eq!(tokens[0]["createdBy"], "operator");
        assert!(!tokens.to_string().contains(&token[37..]));
        let revoked = ok(server.admin(&["token", "revoke", "alice-cli"]));
        assert!(
            revoked.starts_with("revoked token alice-cli ("),
            "{revoked}"
        );
        let listed = ok(server.admin(&["token", "list"]));
        assert!(
            listed.contains("alice-cli  member  alice  revoked"),
            "{listed}"
        );
    }
}

#[tokio::test]
async fn mistakes_are_one_line_and_change_nothing() {
    let server = TestServer::start(bin(), Backend::Sqlite, "").await;
    ok(server.admin(&["user", "add", "alice"]));
    let cases: [(&[&str], &str); 9] = [
        (
            &["user", "add", "alice"],
            "error: user `alice` already exists",
        ),
        (
            &["user", "add", "Alice"],
            "error: user name `Alice` is invalid: use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        ),
        (
            &["user", "disable", "nobody"],
            "error: user `nobody` not found",
        ),
        (
            &["user", "enable", "alice"],
            "error: user `alice` is already enabled",
        ),
        (
            &["group", "add-member", "ops", "alice"],
            "error: group `ops` not found",
        ),
        (
            &[
                "token", "create", "--name", "t", "--role", "admin", "--user", "ghost",
            ],
            "error: user `ghost` not found",
        ),
        (
            &["token", "revoke", "never-made"],
            "error: token `never-made` not found",
        ),
        (
            &["user", "add", "carol", "--email", "carol"],
            "error: `email` must contain @",
        ),
        (
            &["group", "add", "ops", "--description", "line\nbreak"],
            "error: `description` contains control characters",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(err(server.admin(args)), expected, "{args:?}");
    }
    let users: Value =
        serde_json::from_str(&ok(server.admin(&["user", "list", "--json"]))).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1);
    let tokens: Value =
        serde_json::from_str(&ok(server.admin(&["token", "list", "--json"]))).unwrap();
    assert_eq!(tokens, serde_json::json!([]));
}

#[test]
fn flags_are_checked_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let create = ["admin", "--data-dir", d, "token", "create", "--name", "x"];
    let cases: [(&[&str], &str); 2] = [
        (
            &["--role", "root"],
            "unknown role `root`: expected admin, auditor, member or scim",
        ),
        (
            &["--role", "admin", "--ttl", "5s"],
            "duration `5s` is too short: the minimum is 1m",
        ),
    ];
    for (extra, expected) in cases {
        let args: Vec<&str> = create.iter().chain(extra).copied().collect();
        let out = run_cli(bin(), &args);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expected),
            "{expected}"
        );
    }
}

#[test]
fn admin_without_a_server_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = run_cli(bin(), &["admin", "--data-dir", d, "user", "list"]);
    assert_eq!(
        err(out),
        format!("error: no Warden server is running with data dir {d}")
    );
}
