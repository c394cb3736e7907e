//! `warden policy`: the schema, checking a policy directory and running its tests offline;
//! applying sets to a real server (diff, versions, history, audit), refusing sets that fail,
//! explaining decisions, and a server with no policy denying everything but its operator.
#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::path::Path;

use serde_json::{Value, json};
use warden_testkit::{Backend, TestServer, run_cli};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn starter() -> String {
    format!("{}/../warden-policy/starter", env!("CARGO_MANIFEST_DIR"))
}

fn out(args: &[&str]) -> (bool, String, String) {
    let o = run_cli(bin(), args);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).trim().to_owned(),
    )
}

#[test]
fn the_starter_set_checks_and_passes_its_tests() {
    let (ok, stdout, _) = out(&["policy", "schema"]);
    assert!(ok && stdout.contains("namespace Warden") && stdout.contains("tags String"));
    let (ok, stdout, _) = out(&["policy", "check", &starter()]);
    assert!(ok);
    assert_eq!(stdout.trim(), "ok: 5 policies in 2 files match the schema");
    let (ok, stdout, _) = out(&["policy", "test", &starter()]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.lines().skip(1).all(|l| l.starts_with("pass")),
        "{stdout}"
    );
    assert!(
        stdout.contains("ssh.cedar:ops-as-root-or-deploy"),
        "{stdout}"
    );
}

#[test]
fn bad_policy_directories_are_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, _, err) = out(&["policy", "check", d]);
    assert!(!ok);
    assert_eq!(err, format!("error: no *.cedar files in {d}"));

    std::fs::write(
        dir.path().join("a.cedar"),
        "permit (principal, action, resource)\nwhen { 1 + };\n",
    )
    .unwrap();
    let (ok, _, err) = out(&["policy", "check", d]);
    assert!(!ok);
    assert!(err.starts_with("error: a.cedar:2:"), "{err}");

    std::fs::write(
        dir.path().join("a.cedar"),
        "permit (principal, action == Warden::Action::\"ssh\", resource)\nwhen { resource.environment == 3 };\n",
    )
    .unwrap();
    let (ok, _, err) = out(&["policy", "check", d]);
    assert!(!ok);
    assert!(err.starts_with("error: a.cedar:2:"), "{err}");

    std::fs::write(dir.path().join("a.cedar"), [0xff, 0xfe]).unwrap();
    let (ok, _, err) = out(&["policy", "check", d]);
    assert!(!ok);
    assert_eq!(err, format!("error: {d}/a.cedar: not UTF-8 text"));

    // A test that fails makes the command fail, after the table.
    std::fs::write(
        dir.path().join("a.cedar"),
        "permit (principal, action == Warden::Action::\"read_audit\", resource);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tests.toml"),
        "[[user]]\nname = \"x\"\n[[test]]\nname = \"x may not read audit\"\nprincipal = 'Warden::User::\"x\"'\naction = 'Warden::Action::\"read_audit\"'\nresource = 'Warden::Api::\"audit\"'\nexpect = \"deny\"\n",
    )
    .unwrap();
    let (ok, stdout, err) = out(&["policy", "test", d]);
    assert!(!ok);
    assert!(
        stdout.contains("FAIL") && stdout.contains("a.cedar#1"),
        "{stdout}"
    );
    assert_eq!(err, "error: 1 of 1 tests failed");

    std::fs::write(
        dir.path().join("tests.toml"),
        "[[test]]\nname = \"ghost\"\nprincipal = 'Warden::User::\"ghost\"'\naction = 'Warden::Action::\"read_audit\"'\nresource = 'Warden::Api::\"audit\"'\nexpect = \"deny\"\n",
    )
    .unwrap();
    let (ok, _, err) = out(&["policy", "test", d]);
    assert!(!ok);
    assert_eq!(
        err,
        "error: tests.toml: test `ghost`: unknown principal Warden::User::\"ghost\""
    );
}

const CONFIG: &str = "[limits]\nper_source_rps = 0\n";

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).trim().to_owned(),
    )
}

/// A copy of the starter set with one more policy and one more test.
fn edited_starter(dir: &Path) {
    let (ok, _, err) = out(&["policy", "init", dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    let ssh = dir.join("ssh.cedar");
    let mut policy = std::fs::read_to_string(&ssh).unwrap();
    policy.push_str(
        "\n// web may deploy on web hosts.\n@id(\"web-deploy\")\npermit (principal in Warden::Group::\"web\", action == Warden::Action::\"ssh\", resource)\nwhen { resource.hasTag(\"team\") && resource.getTag(\"team\") == \"web\" && context.login == \"deploy\" };\n",
    );
    std::fs::write(&ssh, policy).unwrap();
    let tests = dir.join("tests.toml");
    let mut t = std::fs::read_to_string(&tests).unwrap();
    t.push_str(
        "\n[[test]]\nname = \"web deploys on web hosts\"\nprincipal = 'Warden::User::\"wendy\"'\naction = 'Warden::Action::\"ssh\"'\nresource = 'Warden::Host::\"web-1\"'\ncontext = { login = \"deploy\" }\nexpect = \"allow\"\n",
    );
    std::fs::write(&tests, t).unwrap();
}

#[tokio::test]
async fn policy_sets_apply_with_a_diff_versions_history_and_audit() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, CONFIG).await;
        let admin = server.token("root", "admin", None);
        let data = server.data_dir.to_str().unwrap().to_owned();
        // The starter set is version 1, applied by Warden itself at first start.
        let history = server.remote(&admin, &["policy", "history", "--json"]);
        let history: Value = serde_json::from_slice(&history.stdout).unwrap();
        assert_eq!(history.as_array().unwrap().len(), 1, "{backend:?}");
        assert_eq!(history[0]["version"], 1);
        assert_eq!(history[0]["active"], true);
        assert_eq!(history[0]["appliedBy"], "system");
        assert_eq!(history[0]["policies"], 5);
        assert_eq!(history[0]["tests"], 13);

        let dir = tempfile::tempdir().unwrap();
        edited_starter(dir.path());
        let d = dir.path().to_str().unwrap();
        // A dry run shows the diff and the tests, and activates nothing.
        let (stdout, stderr) = text(&server.remote(&admin, &["policy", "apply", d, "--dry-run"]));
        assert!(
            stdout.contains("--- a/ssh.cedar\n+++ b/ssh.cedar\n"),
            "{stdout}"
        );
        assert!(stdout.contains("+@id(\"web-deploy\")"), "{stdout}");
        assert!(
            stdout.contains("pass    web deploys on web hosts"),
            "{stdout}"
        );
        assert!(
            stderr.starts_with(
                "dry run: 6 policies and 14 tests pass; nothing was activated (sha256 "
            ),
            "{stderr}"
        );
        // Made against a version that is not in force: refused as stale, recorded, nothing
        // applied.
        let out = server.remote(&admin, &["policy", "apply", d, "--if-version", "2"]);
        assert!(!out.status.success());
        assert_eq!(
            text(&out).1,
            "error: the policy changed since it was read (version 1 is in force now, not 2): \
             read it again, then decide"
        );
        // Applied for real against the version read: version 2, through the API with an
        // admin token.
        let (stdout, stderr) =
            text(&server.remote(&admin, &["policy", "apply", d, "--if-version", "1"]));
        assert!(stdout.contains("+@id(\"web-deploy\")"), "{stdout}");
        assert!(
            stderr.starts_with("applied policy version 2 (6 policies, 14 tests passed, sha256 "),
            "{stderr}"
        );
        // The same set again changes nothing.
        let (_, stderr) = text(&run_cli(
            bin(),
            &["policy", "--data-dir", &data, "apply", d],
        ));
        assert!(
            stderr.starts_with("unchanged: the active policy set is already this one"),
            "{stderr}"
        );

        let (stdout, _) = text(&run_cli(bin(), &["policy", "--data-dir", &data, "history"]));
        let rows: Vec<&str> = stdout.lines().collect();
        assert_eq!(rows.len(), 3, "{stdout}");
        assert!(rows[0].starts_with("VERSION  STATE   SHA256"), "{stdout}");
        assert!(rows[1].starts_with("2        active  "), "{stdout}");
        assert!(rows[1].contains("token:root"), "{stdout}");
        assert!(rows[2].starts_with("1                "), "{stdout}");
        let (now, _) = text(&run_cli(bin(), &["policy", "--data-dir", &data, "show"]));
        assert!(
            now.starts_with("# policy version 2, active (sha256 "),
            "{now}"
        );
        assert!(
            now.contains("# ==> ssh.cedar <==") && now.contains("web-deploy"),
            "{now}"
        );
        let (then, _) = text(&run_cli(
            bin(),
            &["policy", "--data-dir", &data, "show", "--version", "1"],
        ));
        assert!(then.starts_with("# policy version 1 (sha256 "), "{then}");
        assert!(!then.contains("web-deploy"), "{then}");
        let (_, err) = text(&run_cli(
            bin(),
            &["policy", "--data-dir", &data, "show", "--version", "9"],
        ));
        assert_eq!(
            err,
            "error: policy version 9 not found: `warden policy history` lists them"
        );

        let applied = server.audit("policy.apply");
        let summary: Vec<(&str, &str, &str)> = applied
            .iter()
            .map(|e| {
                (
                    e["actor"].as_str().unwrap(),
                    e["target"].as_str().unwrap(),
                    e["outcome"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("system", "policy:v1", "success"),
                ("token:root", "policy", "failure"),
                ("token:root", "policy:v2", "success")
            ],
            "{applied:?}"
        );
        assert_eq!(
            applied[2]["details"]["files"],
            json!({ "ssh.cedar": "changed", "tests.toml": "changed" })
        );
        assert_eq!(applied[2]["details"]["policies"], 6);
        assert_eq!(applied[2]["details"]["hash"].as_str().unwrap().len(), 64);
    }
}

#[tokio::test]
async fn apply_refuses_failing_tests_and_bad_sets_and_activates_nothing() {
    let server = TestServer::start(bin(), Backend::Sqlite, CONFIG).await;
    assert!(server.admin(&["user", "add", "mo"]).status.success());
    let admin = server.token("root", "admin", None);
    let member = server.token("m", "member", Some("mo"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let apply = |token: &str| text(&server.remote(token, &["policy", "apply", d])).1;

    assert_eq!(apply(&admin), format!("error: no *.cedar files in {d}"));
    edited_starter(dir.path());
    // A member may not apply policy; the denial names the policy version.
    assert_eq!(
        apply(&member),
        "error: permission denied: policy v1: no policy permits `manage_policy` (default deny)"
    );
    // A test that fails: the set is refused, one line per failing test.
    let tests = dir.path().join("tests.toml");
    let good_tests = std::fs::read_to_string(&tests).unwrap();
    std::fs::write(
        &tests,
        good_tests.replace(
            "context = { login = \"deploy\" }\nexpect = \"allow\"",
            "context = { login = \"root\" }\nexpect = \"allow\"",
        ),
    )
    .unwrap();
    assert_eq!(
        apply(&admin),
        "error: policy not applied: 1 of 14 tests failed:\ntest `web deploys on web hosts`: expected allow, got deny (no policy applies)"
    );
    std::fs::write(&tests, &good_tests).unwrap();
    let cedar = dir.path().join("ssh.cedar");
    let good = std::fs::read_to_string(&cedar).unwrap();
    for (bad, error) in [
        (
            "permit (principal, action, resource)\nwhen { 1 + };\n",
            "error: ssh.cedar:2:",
        ),
        (
            "permit (principal == Warden::Robot::\"r2\", action, resource);\n",
            "error: ssh.cedar:1:",
        ),
        (
            "permit (principal is Warden::User, action, resource) when { principal.shoe_size == 1 };\n",
            "error: ssh.cedar:1:",
        ),
        (
            "permit (principal is Warden::User, action, resource) when { principal.name == 1 };\n",
            "error: ssh.cedar:1:",
        ),
    ] {
        std::fs::write(&cedar, bad).unwrap();
        let err = apply(&admin);
        assert!(err.starts_with(error), "{err}");
    }
    std::fs::write(&cedar, [0xc3, 0x28]).unwrap();
    assert_eq!(
        apply(&admin),
        format!("error: {d}/ssh.cedar: not UTF-8 text")
    );
    std::fs::write(&cedar, &good).unwrap();
    std::fs::write(&tests, "[[test]]\nname = \"ghost\"\nprincipal = 'Warden::User::\"ghost\"'\naction = 'Warden::Action::\"read_audit\"'\nresource = 'Warden::Api::\"audit\"'\nexpect = \"deny\"\n").unwrap();
    assert_eq!(
        apply(&admin),
        "error: tests.toml: test `ghost`: unknown principal Warden::User::\"ghost\""
    );

    // Nothing was activated; every refusal the server saw is in the audit log.
    let history: Value = serde_json::from_slice(
        &server
            .remote(&admin, &["policy", "history", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1);
    let refused: Vec<String> = server
        .audit("policy.apply")
        .iter()
        .filter(|e| e["outcome"] == "failure")
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(refused.len(), 6, "{refused:?}");
    assert!(
        refused[0].starts_with("policy not applied: 1 of 14 tests failed: test `web deploys"),
        "{refused:?}"
    );
    let denied = server.audit("policy.manage");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["outcome"], "denied");
    assert_eq!(denied[0]["details"]["policy_version"], 1);
}

#[tokio::test]
async fn explain_says_what_decided_and_why() {
    let server = TestServer::start(bin(), Backend::Sqlite, CONFIG).await;
    for args in [
        &["user", "add", "alice"][..],
        &["user", "add", "bob"],
        &["group", "add", "ops"],
        &["group", "add-member", "ops", "alice"],
    ] {
        assert!(server.admin(args).status.success());
    }
    let dir = tempfile::tempdir().unwrap();
    server.join_host(dir.path(), "db-1", &["team=ops", "env=prod"]);
    let data = server.data_dir.to_str().unwrap().to_owned();
    let explain = |principal: &str, action: &str, resource: &str, context: Option<&str>| {
        let mut args = vec![
            "policy",
            "--data-dir",
            &data,
            "explain",
            "--principal",
            principal,
            "--action",
            action,
            "--resource",
            resource,
        ];
        if let Some(c) = context {
            args.extend_from_slice(&["--context", c]);
        }
        text(&run_cli(bin(), &args))
    };
    let (stdout, _) = explain(
        "user:bob",
        "ssh",
        "host:db-1",
        Some("{\"login\": \"root\"}"),
    );
    assert_eq!(
        stdout,
        "decision:   deny\n\
         why:        policy v1: `ssh` forbidden by ssh.cedar:no-root-on-prod-outside-ops\n\
         principal:  Warden::User::\"bob\" (groups: none)\n\
         resource:   Warden::Host::\"db-1\" (labels: env=prod, team=ops)\n\
         determined by:\n\
        \x20 ssh.cedar:no-root-on-prod-outside-ops\n\
        \x20   @id(\"no-root-on-prod-outside-ops\")\n\
        \x20   forbid (\n\
        \x20     principal,\n\
        \x20     action == Warden::Action::\"ssh\",\n\
        \x20     resource\n\
        \x20   )\n\
        \x20   when {\n\
        \x20     context.login == \"root\" &&\n\
        \x20     resource.hasTag(\"env\") && resource.getTag(\"env\") == \"prod\"\n\
        \x20   }\n\
        \x20   unless { principal in Warden::Group::\"ops\" };\n\
         also in scope (their conditions did not hold):\n\
        \x20 ssh.cedar:team-members-as-themselves\n\
        \x20   @id(\"team-members-as-themselves\")\n\
        \x20   permit (\n\
        \x20     principal is Warden::User,\n\
        \x20     action == Warden::Action::\"ssh\",\n\
        \x20     resource\n\
        \x20   )\n\
        \x20   when {\n\
        \x20     resource.hasTag(\"team\") &&\n\
        \x20     principal.groups.contains(resource.getTag(\"team\")) &&\n\
        \x20     context.login == principal.name\n\
        \x20   };\n"
    );
    let (stdout, _) = explain(
        "Warden::User::\"alice\"",
        "Warden::Action::\"ssh\"",
        "Warden::Host::\"db-1\"",
        Some("{\"login\": \"root\"}"),
    );
    assert!(stdout.starts_with("decision:   allow\nwhy:        policy v1: `ssh` permitted by ssh.cedar:ops-as-root-or-deploy\nprincipal:  Warden::User::\"alice\" (groups: ops)\n"), "{stdout}");
    let (stdout, _) = explain("user:bob", "read_audit", "api:audit", None);
    assert!(stdout.starts_with("decision:   deny\nwhy:        policy v1: no policy permits `read_audit` (default deny)\n"), "{stdout}");
    assert!(
        stdout.contains(
            "also in scope (their conditions did not hold):\n  admins.cedar:admins-manage-warden\n"
        ),
        "{stdout}"
    );

    // Bad requests: one line each.
    for (principal, action, resource, context, error) in [
        (
            "user:ghost",
            "ssh",
            "host:db-1",
            Some("{\"login\": \"x\"}"),
            "error: unknown principal User `ghost`",
        ),
        (
            "robot:r2",
            "ssh",
            "host:db-1",
            None,
            "error: unknown entity type `robot` in `robot:r2`",
        ),
        (
            "user:bob",
            "fly",
            "host:db-1",
            None,
            "error: unknown action `fly`: `warden policy schema` lists them",
        ),
        (
            "user:bob",
            "ssh",
            "host:nowhere",
            None,
            "error: unknown resource Host `nowhere`",
        ),
        (
            "user:bob",
            "ssh",
            "host:db-1",
            Some("[1]"),
            "error: invalid context: a JSON object, like {\"login\": \"root\"}",
        ),
        (
            "user:bob",
            "ssh",
            "host:db-1",
            Some("{\"login\": 3}"),
            "error: invalid request: ",
        ),
    ] {
        let (_, err) = explain(principal, action, resource, context);
        assert!(err.starts_with(error), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[tokio::test]
async fn with_no_policy_everything_is_denied_but_the_operator() {
    let server = TestServer::start(
        bin(),
        Backend::Sqlite,
        &format!("{CONFIG}[policy]\nstarter = false\n"),
    )
    .await;
    let admin = server.token("root", "admin", None);
    let users = async || {
        let q = "{ users(first: 5) { nodes { name } } }";
        server.graphql(Some(&admin), q, Value::Null).await.1
    };
    let body = users().await;
    assert_eq!(
        body["errors"][0]["message"],
        "permission denied: no policy is active: no policy permits `read_directory` (default deny)"
    );
    // The operator on the admin socket is never locked out, and can apply a policy.
    assert!(server.admin(&["user", "add", "carol"]).status.success());
    let data = server.data_dir.to_str().unwrap().to_owned();
    let (_, err) = text(&run_cli(bin(), &["policy", "--data-dir", &data, "show"]));
    assert_eq!(
        err,
        "error: no policy is active: everything is denied (apply one with `warden policy apply DIR`)"
    );
    let (_, err) = text(&run_cli(
        bin(),
        &["policy", "--data-dir", &data, "apply", &starter()],
    ));
    assert!(
        err.starts_with("applied policy version 1 (5 policies, 13 tests passed"),
        "{err}"
    );
    let body = users().await;
    assert_eq!(
        body["data"]["users"]["nodes"],
        json!([{ "name": "carol" }]),
        "{body}"
    );
}

#[tokio::test]
async fn a_replica_follows_a_policy_applied_elsewhere_within_a_second() {
    let server = TestServer::start(bin(), Backend::Postgres, CONFIG).await;
    let replica = server.replica();
    let auditor = server.token("aud", "auditor", None);
    let ask = async |url: &str| {
        reqwest::Client::new()
            .post(format!("{url}/graphql"))
            .bearer_auth(&auditor)
            .json(&json!({ "query": "{ users(first: 1) { nodes { name } } }" }))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert!(
        ask(&replica.url).await["errors"].is_null(),
        "the starter set lets auditors read"
    );
    // A set without the auditors' permit, applied through the first server.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{}/admins.cedar", starter()),
        dir.path().join("admins.cedar"),
    )
    .unwrap();
    let admins = std::fs::read_to_string(dir.path().join("admins.cedar")).unwrap();
    let cut = admins.find("// Auditors read").unwrap();
    std::fs::write(dir.path().join("admins.cedar"), &admins[..cut]).unwrap();
    let data = server.data_dir.to_str().unwrap().to_owned();
    let (_, err) = text(&run_cli(
        bin(),
        &[
            "policy",
            "--data-dir",
            &data,
            "apply",
            dir.path().to_str().unwrap(),
        ],
    ));
    assert!(err.starts_with("applied policy version 2"), "{err}");
    let applied = std::time::Instant::now();
    loop {
        let body = ask(&replica.url).await;
        if let Some(message) = body["errors"][0]["message"].as_str() {
            assert_eq!(
                message,
                "permission denied: policy v2: no policy permits `read_directory` (default deny)"
            );
            break;
        }
        assert!(
            applied.elapsed() < std::time::Duration::from_secs(5),
            "the replica still answers with v1"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!("the replica followed in {:?}", applied.elapsed());
}
