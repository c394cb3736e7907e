//! The schema, the starter policy set and its tests, errors at file:line:col, and the
//! engine's laws: no policy denies everything, a forbid beats any permit, and a user in no
//! group gets nothing.
#![expect(clippy::unwrap_used, reason = "tests")]

use proptest::prelude::*;
use serde_json::json;
use warden_policy::{Directory, PolicyFile, load, parse_tests, run_tests, schema};

fn starter() -> Vec<PolicyFile> {
    ["admins.cedar", "ssh.cedar"]
        .iter()
        .map(|name| PolicyFile {
            name: (*name).to_owned(),
            text: std::fs::read_to_string(format!("{}/starter/{name}", env!("CARGO_MANIFEST_DIR")))
                .unwrap(),
        })
        .collect()
}

fn file(name: &str, text: &str) -> PolicyFile {
    PolicyFile {
        name: name.to_owned(),
        text: text.to_owned(),
    }
}

#[test]
fn the_starter_set_passes_its_tests() {
    schema().unwrap();
    let policies = load(&starter()).unwrap();
    assert_eq!(policies.len(), 4);
    let text =
        std::fs::read_to_string(format!("{}/starter/tests.toml", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    let tests = parse_tests("tests.toml", &text).unwrap();
    let results = run_tests(&policies, &tests).unwrap();
    assert_eq!(results.len(), 6);
    for r in &results {
        assert!(r.passed, "{r:?}");
    }
    let allowed = &results[0];
    assert_eq!(allowed.decided.reasons, ["ssh.cedar#1"]);
}

#[test]
fn errors_name_the_file_line_and_column() {
    let cases = [
        (
            "permit (principal, action, resource)\nwhen { resource.hasTag(\"x\") && };\n",
            "bad.cedar:2:",
        ),
        (
            "permit (principal == Warden::Robot::\"r2\", action, resource);\n",
            "bad.cedar:1:",
        ),
        (
            "permit (principal, action == Warden::Action::\"ssh\", resource)\nwhen { resource.environment == 3 };\n",
            "bad.cedar:2:",
        ),
    ];
    for (text, at) in cases {
        let err = load(&[file("bad.cedar", text)]).unwrap_err();
        assert!(
            err.0.iter().all(|l| l.starts_with(at) && !l.contains('\n')),
            "{err:?}"
        );
    }
    let err = load(&[file(
        "bad.cedar",
        "permit (principal == Warden::Robot::\"r2\", action, resource);\n",
    )])
    .unwrap_err();
    assert!(err.0[0].contains("Warden::Robot"), "{err:?}");
    let err = parse_tests(
        "tests.toml",
        "[[test]]\nname = \"x\"\nprincipal = 'Warden::User::\"zed\"'\naction = 'Warden::Action::\"ssh\"'\nresource = 'Warden::Api::\"a\"'\nexpect = \"deny\"\n",
    )
    .unwrap_err();
    assert_eq!(
        err.0,
        ["tests.toml: test `x`: unknown principal Warden::User::\"zed\""]
    );
    let err = parse_tests("tests.toml", "[[test]]\nnom = 1\n").unwrap_err();
    assert!(
        err.0[0].starts_with("tests.toml:2:1: unknown field `nom`"),
        "{err:?}"
    );
}

#[test]
fn a_forbid_beats_any_permit() {
    let policies = load(&[file(
        "p.cedar",
        "permit (principal, action, resource);\n@id(\"no-root\") forbid (principal, action == Warden::Action::\"ssh\", resource) when { context.login == \"root\" };\n",
    )])
    .unwrap();
    let dir = Directory {
        users: vec![warden_policy::UserEntry {
            name: "a".into(),
            groups: vec![],
        }],
        hosts: vec![warden_policy::HostEntry {
            name: "h".into(),
            labels: Default::default(),
        }],
        ..Default::default()
    };
    let entities = dir.entities(policies.schema()).unwrap();
    let d = policies
        .decide(
            &entities,
            "Warden::User::\"a\"",
            "Warden::Action::\"ssh\"",
            "Warden::Host::\"h\"",
            &json!({ "login": "root" }),
        )
        .unwrap();
    assert!(!d.allow);
    assert_eq!(d.reasons, ["p.cedar:no-root"]);
    let d = policies
        .decide(
            &entities,
            "Warden::User::\"a\"",
            "Warden::Action::\"ssh\"",
            "Warden::Host::\"h\"",
            &json!({ "login": "a" }),
        )
        .unwrap();
    assert!(d.allow);
}

proptest! {
    #[test]
    fn no_policy_denies_everything(user in "[a-z]{1,8}", host in "[a-z]{1,8}", login in "[a-z]{1,8}", groups in prop::collection::vec("[a-z]{1,6}", 0..3)) {
        let policies = load(&[]).unwrap();
        let dir = Directory {
            groups: groups.iter().map(|g| warden_policy::GroupEntry { name: g.clone() }).collect(),
            users: vec![warden_policy::UserEntry { name: user.clone(), groups: groups.clone() }],
            hosts: vec![warden_policy::HostEntry { name: host.clone(), labels: Default::default() }],
        };
        let entities = dir.entities(policies.schema()).unwrap();
        let d = policies
            .decide(&entities, &format!("Warden::User::\"{user}\""), "Warden::Action::\"ssh\"", &format!("Warden::Host::\"{host}\""), &json!({ "login": login }))
            .unwrap();
        prop_assert!(!d.allow);
        prop_assert!(d.reasons.is_empty());
    }

    #[test]
    fn a_user_in_no_group_gets_nothing_from_the_starter_set(user in "[a-z]{1,8}", login in "[a-z]{1,8}") {
        let policies = load(&starter()).unwrap();
        let dir = Directory {
            users: vec![warden_policy::UserEntry { name: user.clone(), groups: vec![] }],
            hosts: vec![warden_policy::HostEntry { name: "h".into(), labels: [("team".to_owned(), "ops".to_owned()), ("env".to_owned(), "prod".to_owned())].into() }],
            ..Default::default()
        };
        let entities = dir.entities(policies.schema()).unwrap();
        for action in ["ssh", "manage_users", "read_audit"] {
            let resource = if action == "ssh" { "Warden::Host::\"h\"".to_owned() } else { "Warden::Api::\"x\"".to_owned() };
            let context = if action == "ssh" { json!({ "login": login }) } else { json!({}) };
            let d = policies
                .decide(&entities, &format!("Warden::User::\"{user}\""), &format!("Warden::Action::\"{action}\""), &resource, &context)
                .unwrap();
            prop_assert!(!d.allow, "{action}");
        }
    }
}
