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

/// User `a` asking to log in as `login` on host `h`.
fn ssh_as_a(
    policies: &warden_policy::Policies,
    entities: &cedar_policy::Entities,
    login: &str,
) -> warden_policy::Decided {
    policies
        .decide(
            entities,
            "Warden::User::\"a\"",
            "Warden::Action::\"ssh\"",
            "Warden::Host::\"h\"",
            &json!({ "login": login }),
        )
        .unwrap()
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
    assert_eq!(policies.len(), 5);
    let text =
        std::fs::read_to_string(format!("{}/starter/tests.toml", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    let tests = parse_tests("tests.toml", &text).unwrap();
    let results = run_tests(&policies, &tests).unwrap();
    assert_eq!(results.len(), 13);
    for r in &results {
        assert!(r.passed, "{r:?}");
    }
    let allowed = &results[0];
    assert_eq!(allowed.decided.reasons, ["ssh.cedar:ops-as-root-or-deploy"]);
    // The shipped constant is the same set.
    let files = warden_policy::STARTER
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    let checked = warden_policy::check_set(&files).unwrap();
    assert_eq!(checked.results.len(), 13);
    assert_eq!(checked.failures().count(), 0);
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
            role: None,
        }],
        hosts: vec![warden_policy::HostEntry {
            name: "h".into(),
            labels: Default::default(),
        }],
        ..Default::default()
    };
    let entities = dir.entities(policies.schema()).unwrap();
    let d = ssh_as_a(&policies, &entities, "root");
    assert!(!d.allow);
    assert_eq!(d.reasons, ["p.cedar:no-root"]);
    let d = ssh_as_a(&policies, &entities, "a");
    assert!(d.allow);
}

proptest! {
    #[test]
    fn no_policy_denies_everything(user in "[a-z]{1,8}", host in "[a-z]{1,8}", login in "[a-z]{1,8}", groups in prop::collection::vec("[a-z]{1,6}", 0..3)) {
        let policies = load(&[]).unwrap();
        let dir = Directory {
            groups: groups.iter().map(|g| warden_policy::GroupEntry { name: g.clone() }).collect(),
            users: vec![warden_policy::UserEntry { name: user.clone(), groups: groups.clone(), role: None }],
            hosts: vec![warden_policy::HostEntry { name: host.clone(), labels: Default::default() }],
            ..Default::default()
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
            users: vec![warden_policy::UserEntry { name: user.clone(), groups: vec![], role: None }],
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

/// A policy from a small grammar: effect, principal scope, action scope, and a condition.
fn arb_policy() -> impl Strategy<Value = String> {
    let principal = prop_oneof![
        Just("principal".to_owned()),
        (0..3u8).prop_map(|g| format!("principal in Warden::Group::\"g{g}\"")),
        (0..3u8).prop_map(|u| format!("principal == Warden::User::\"u{u}\"")),
    ];
    let action = prop_oneof![
        Just("action".to_owned()),
        Just("action == Warden::Action::\"ssh\"".to_owned()),
        Just("action in [Warden::Action::\"ssh\", Warden::Action::\"read_audit\"]".to_owned()),
        Just("action == Warden::Action::\"read_audit\"".to_owned()),
    ];
    let condition = prop_oneof![
        Just(String::new()),
        Just("when { context has login && context.login == \"root\" }".to_owned()),
        Just("when { resource has environment }".to_owned()),
        Just("unless { principal in Warden::Group::\"g1\" }".to_owned()),
    ];
    (prop::bool::ANY, principal, action, condition).prop_map(|(permit, p, a, c)| {
        let effect = if permit { "permit" } else { "forbid" };
        format!("{effect} ({p}, {a}, resource) {c};\n")
    })
}

fn table_directory() -> Directory {
    Directory {
        groups: (0..3)
            .map(|g| warden_policy::GroupEntry {
                name: format!("g{g}"),
            })
            .collect(),
        users: (0..4)
            .map(|u| warden_policy::UserEntry {
                name: format!("u{u}"),
                groups: (0..3)
                    .filter(|g| (u + g) % 2 == 0)
                    .map(|g| format!("g{g}"))
                    .collect(),
                role: None,
            })
            .collect(),
        hosts: vec![warden_policy::HostEntry {
            name: "h".into(),
            labels: Default::default(),
        }],
        services: Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The index only leaves out policies that cannot apply: the sliced decision, its reasons
    /// and its errors equal Cedar's over the whole set.
    #[test]
    fn slicing_decides_as_the_whole_set(policies in prop::collection::vec(arb_policy(), 0..12), user in 0..4u8, login in prop_oneof![Just("root"), Just("u1")], audit in prop::bool::ANY) {
        use std::str::FromStr;
        let set = load(&[file("p.cedar", &policies.concat())]).unwrap();
        let entities = table_directory().entities(set.schema()).unwrap();
        let (action, resource, context) = if audit {
            ("read_audit", "Warden::Api::\"audit\"", json!({}))
        } else {
            ("ssh", "Warden::Host::\"h\"", json!({ "login": login }))
        };
        let principal = format!("Warden::User::\"u{user}\"");
        let action = format!("Warden::Action::\"{action}\"");
        let sliced = set.decide(&entities, &principal, &action, resource, &context).unwrap();
        let a = cedar_policy::EntityUid::from_str(&action).unwrap();
        let whole = set
            .decide_unsliced(
                &entities,
                &cedar_policy::EntityUid::from_str(&principal).unwrap(),
                &a,
                &cedar_policy::EntityUid::from_str(resource).unwrap(),
                cedar_policy::Context::from_json_value(context, Some((set.schema(), &a))).unwrap(),
            )
            .unwrap();
        let mut reasons = sliced.reasons.clone();
        reasons.sort();
        let mut expected = whole.reasons.clone();
        expected.sort();
        prop_assert_eq!(sliced.allow, whole.allow);
        prop_assert_eq!(reasons, expected);
        prop_assert_eq!(sliced.errors.len(), whole.errors.len());
    }

    /// A forbid of everything beats whatever permits there are.
    #[test]
    fn a_forbid_of_everything_beats_every_permit(policies in prop::collection::vec(arb_policy(), 0..12), user in 0..4u8) {
        let text = format!("{}@id(\"stop\") forbid (principal, action, resource);\n", policies.concat());
        let set = load(&[file("p.cedar", &text)]).unwrap();
        let entities = table_directory().entities(set.schema()).unwrap();
        let d = set
            .decide(&entities, &format!("Warden::User::\"u{user}\""), "Warden::Action::\"ssh\"", "Warden::Host::\"h\"", &json!({ "login": "root" }))
            .unwrap();
        prop_assert!(!d.allow);
        prop_assert!(d.reasons.contains(&"p.cedar:stop".to_owned()));
    }
}

/// Every action of the schema against the starter set, for an admin token, an auditor token,
/// a member of `admins`, a member of `auditors`, and a person in no group.
#[test]
fn decision_table_for_each_action_with_the_starter_set() {
    use warden_policy::{Object, Subject};
    let files = warden_policy::STARTER
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    let set = warden_policy::check_set(&files).unwrap().policies;
    let admin = Subject::Service {
        name: "ci".into(),
        role: "admin".into(),
    };
    let auditor = Subject::Service {
        name: "report".into(),
        role: "auditor".into(),
    };
    let member = Subject::Service {
        name: "bot".into(),
        role: "member".into(),
    };
    let person = |name: &str, groups: &[&str]| Subject::User {
        name: name.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        role: Some("member".into()),
    };
    let (alice, audrey, bob) = (
        person("alice", &["admins"]),
        person("audrey", &["auditors"]),
        person("bob", &[]),
    );
    let reads = ["read_directory", "read_audit", "read_policy", "read_vulns"];
    for action in [
        "read_directory",
        "manage_users",
        "manage_groups",
        "manage_tokens",
        "read_audit",
        "manage_hosts",
        "manage_cas",
        "issue_certificates",
        "read_policy",
        "manage_policy",
        "approve",
        "review",
        "read_vulns",
        "manage_vulns",
        "import_vulns",
    ] {
        let (object, context) = match action {
            "approve" => (
                Object::Group("ops".into()),
                json!({ "requester": "carol", "reason": "incident", "duration_seconds": 3600 }),
            ),
            _ => (Object::Api("x".into()), json!({})),
        };
        let decide = |s: &Subject| set.decide_as(s, action, &object, &context).unwrap().allow;
        assert!(decide(&admin), "{action}: admin token");
        assert!(decide(&alice), "{action}: member of admins");
        assert_eq!(
            decide(&auditor),
            reads.contains(&action),
            "{action}: auditor token"
        );
        assert_eq!(
            decide(&audrey),
            reads.contains(&action),
            "{action}: member of auditors"
        );
        assert!(!decide(&member), "{action}: member token");
        assert!(!decide(&bob), "{action}: a person in no group");
    }
    let host = |team: &str, env: &str| Object::Host {
        name: "h".into(),
        labels: [
            ("team".to_owned(), team.to_owned()),
            ("env".to_owned(), env.to_owned()),
        ]
        .into(),
    };
    let ssh = |s: &Subject, h: &Object, login: &str| {
        set.decide_as(s, "ssh", h, &json!({ "login": login }))
            .unwrap()
    };
    let ops = person("olga", &["ops"]);
    let web = person("wendy", &["web"]);
    assert!(ssh(&ops, &host("ops", "prod"), "root").allow);
    assert!(ssh(&ops, &host("ops", "prod"), "olga").allow);
    assert!(!ssh(&ops, &host("web", "dev"), "olga").allow);
    assert!(ssh(&web, &host("web", "dev"), "wendy").allow);
    assert!(!ssh(&web, &host("web", "dev"), "root").allow);
    let forbidden = ssh(&person("wendy", &["web"]), &host("web", "prod"), "root");
    assert!(!forbidden.allow);
    assert_eq!(forbidden.reasons, ["ssh.cedar:no-root-on-prod-outside-ops"]);
    assert!(
        !ssh(&admin, &host("ops", "dev"), "root").allow,
        "services get no logins"
    );
    // `connect` has no policy in the starter set: denied.
    let connect = set
        .decide_as(
            &ops,
            "connect",
            &host("ops", "prod"),
            &json!({ "protocol": "tcp", "port": 22 }),
        )
        .unwrap();
    assert!(!connect.allow);
}

/// Bad policy sets: one line each, naming the problem.
#[test]
fn bad_sets_are_refused_with_one_line_each() {
    let set = |pairs: &[(&str, &str)]| {
        warden_policy::check_set(
            &pairs
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect(),
        )
        .map(|_| ())
        .unwrap_err()
        .0
    };
    assert_eq!(
        set(&[]),
        ["no *.cedar files: a policy set needs at least one"]
    );
    assert_eq!(
        set(&[("notes.txt", "hello")]),
        ["`notes.txt`: a policy directory holds *.cedar files and tests.toml only"]
    );
    assert_eq!(
        set(&[("../x.cedar", "")]),
        ["`../x.cedar`: a policy file name is a plain file name"]
    );
    let unknown_attr = set(&[(
        "a.cedar",
        "permit (principal, action, resource) when { principal.shoe_size == 3 };\n",
    )]);
    // One line per principal type the policy could see, each at the attribute.
    assert!(
        unknown_attr.iter().all(|l| l.starts_with("a.cedar:1:45: ")
            && l.contains("attribute `shoe_size`")
            && !l.contains('\n')),
        "{unknown_attr:?}"
    );
    let wrong_type = set(&[(
        "a.cedar",
        "permit (principal is Warden::User, action, resource) when { principal.name == 3 };\n",
    )]);
    assert!(wrong_type[0].starts_with("a.cedar:1:"), "{wrong_type:?}");
    let syntax = set(&[("a.cedar", "permit (principal, action, resource\n")]);
    assert!(syntax[0].starts_with("a.cedar:"), "{syntax:?}");
    let unknown_principal = set(&[
        ("a.cedar", "permit (principal, action, resource);\n"),
        (
            "tests.toml",
            "[[test]]\nname = \"t\"\nprincipal = 'Warden::User::\"ghost\"'\naction = 'Warden::Action::\"read_audit\"'\nresource = 'Warden::Api::\"audit\"'\nexpect = \"allow\"\n",
        ),
    ]);
    assert_eq!(
        unknown_principal,
        ["tests.toml: test `t`: unknown principal Warden::User::\"ghost\""]
    );
}

/// A host's `env` label is also its `environment` attribute, in tests files and in the server.
#[test]
fn the_env_label_is_the_environment_attribute() {
    use warden_policy::{Object, Subject};
    let set = load(&[file(
        "p.cedar",
        "permit (principal, action == Warden::Action::\"ssh\", resource) when { resource has environment && resource.environment == \"dev\" };\n",
    )])
    .unwrap();
    let person = Subject::User {
        name: "a".into(),
        groups: vec![],
        role: None,
    };
    let host = |env: Option<&str>| Object::Host {
        name: "h".into(),
        labels: env
            .map(|e| ("env".to_owned(), e.to_owned()))
            .into_iter()
            .collect(),
    };
    let ssh = |o: &Object| {
        set.decide_as(&person, "ssh", o, &json!({ "login": "a" }))
            .unwrap()
            .allow
    };
    assert!(ssh(&host(Some("dev"))));
    assert!(!ssh(&host(Some("prod"))));
    assert!(!ssh(&host(None)));
    let dir = Directory {
        users: vec![warden_policy::UserEntry {
            name: "a".into(),
            groups: vec![],
            role: None,
        }],
        hosts: vec![warden_policy::HostEntry {
            name: "h".into(),
            labels: [("env".to_owned(), "dev".to_owned())].into(),
        }],
        ..Default::default()
    };
    let entities = dir.entities(set.schema()).unwrap();
    let d = ssh_as_a(&set, &entities, "a");
    assert!(d.allow);
}
