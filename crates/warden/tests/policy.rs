//! `warden policy`: the schema, checking a policy directory and running its tests, offline.

use std::path::Path;

use warden_testkit::run_cli;

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
    assert_eq!(stdout.trim(), "ok: 4 policies in 2 files match the schema");
    let (ok, stdout, _) = out(&["policy", "test", &starter()]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.lines().skip(1).all(|l| l.starts_with("pass")),
        "{stdout}"
    );
    assert!(stdout.contains("ssh.cedar#1"), "{stdout}");
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
