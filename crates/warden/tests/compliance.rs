//! Compliance status from a real server's own log: a journey (a grant asked, approved by
//! another person and expired; a group reviewed; a leaver disabled), then the controls read as
//! an auditor, with the planted exception (groups never reviewed) found by name. A member is
//! refused; bad periods, frameworks and tests get one line each. On SQLite and PostgreSQL.
//! Planted exceptions found by name: groups never reviewed, an overdue Critical, a recording
//! altered on disk, a late offboarding behind a dead proxy.
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
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_testkit::{Backend, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(server: &TestServer, token: &str, args: &[&str]) -> std::process::Output {
    server.remote(token, args)
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn error_of(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "{}", text(&out.stdout));
    text(&out.stderr).trim().to_owned()
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// A test's result within a status report, by id.
fn test_in(reports: &Value, id: &str) -> Value {
    reports
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["controls"].as_array().unwrap())
        .flat_map(|c| c["tests"].as_array().unwrap())
        .find(|t| t["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no test {id} in {reports}"))
}

fn control_in(reports: &Value, id: &str) -> Value {
    reports[0]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn status_finds_the_planted_exceptions_and_passes_the_rest() {
    for backend in Backend::ALL {
        let server = TestServer::start(
            bin(),
            backend,
            "[limits]\nper_source_rps = 0\n[compliance]\nreview_every = \"4s\"\nmonitor_every = \"1s\"\n[vuln.sla.default]\ncritical = \"1s\"\n",
        )
        .await;
        for args in [
            &["user", "add", "alice"][..],
            &["user", "add", "bob"],
            &["user", "add", "carol"],
            &["user", "add", "dora"],
            &["user", "add", "audrey"],
            &["group", "add", "admins"],
            &["group", "add", "ops"],
            &["group", "add", "web"],
            &["group", "add-member", "admins", "bob"],
            &["group", "add-member", "ops", "alice"],
        ] {
            assert!(server.admin(args).status.success(), "{args:?}");
        }
        // Taken once the groups exist: under load the CLI calls above take seconds, and the
        // wait below must run from the last group's creation.
        let groups_made = Instant::now();
        let admin = server.token("ci", "admin", None);
        let bob = server.token("bob-cli", "member", Some("bob"));
        let carol = server.token("carol-cli", "member", Some("carol"));
        let dora = server.token("dora-cli", "member", Some("dora"));
        let auditor = server.token("audrey-cli", "auditor", Some("audrey"));

        // A grant: dora asks, bob (another person, in admins) approves, it expires.
        let out = run(
            &server,
            &dora,
            &[
                "request",
                "create",
                "--group",
                "web",
                "--reason",
                "deploy",
                "--duration",
                "1s",
            ],
        );
        let request = ok(&out).trim().to_owned();
        ok(&run(
            &server,
            &bob,
            &["request", "approve", &request, "--reason", "ok"],
        ));

        // ops is reviewed (after a pause, so that its review is the newest thing on its clock).
        std::thread::sleep(Duration::from_millis(1500));
        let out = run(
            &server,
            &admin,
            &[
                "review",
                "--json",
                "create",
                "--scope",
                "groups:ops",
                "--reviewer",
                "carol",
                "--due",
                "14d",
            ],
        );
        let review = json_of(&out)["id"].as_str().unwrap().to_owned();
        ok(&run(
            &server,
            &carol,
            &[
                "review", "decide", &review, "--items", "1", "--keep", "--reason", "on call",
            ],
        ));

        // An overdue Critical: a real Trivy report's one Critical, with a one-second SLA.
        let report = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../warden-vuln/tests/fixtures/trivy/scheme_2_many_vulns.json");
        ok(&run(
            &server,
            &admin,
            &["vuln", "import", "--asset", "api", report.to_str().unwrap()],
        ));

        // A leaver.
        assert!(server.admin(&["user", "disable", "alice"]).status.success());

        // admins and web were never reviewed: past the 4 s interval they are the exceptions;
        // ops, reviewed later, is not yet due.
        let wait = Duration::from_millis(4500).saturating_sub(groups_made.elapsed());
        std::thread::sleep(wait);
        // Computed now: the monitor's latest run may be from before the planting.
        let out = run(
            &server,
            &auditor,
            &[
                "compliance",
                "status",
                "--json",
                "--fresh",
                "--framework",
                "soc2",
            ],
        );
        let reports = json_of(&out);
        assert_eq!(reports.as_array().unwrap().len(), 1);
        assert_eq!(reports[0]["framework"], "soc2");

        let vulns = test_in(&reports, "vuln-sla");
        assert_eq!(vulns["passed"], false, "{backend:?}: {vulns}");
        assert_eq!(vulns["exceptionCount"], 1, "{backend:?}: {vulns}");
        let reviews = test_in(&reports, "access-review");
        assert_eq!(reviews["passed"], false, "{backend:?}: {reviews}");
        assert_eq!(reviews["exceptionCount"], 2, "{backend:?}: {reviews}");
        for id in [
            "grant-approval",
            "grant-expiry",
            "leaver-deprovision",
            "policy-change",
        ] {
            let t = test_in(&reports, id);
            assert_eq!(t["passed"], true, "{backend:?}: {t}");
            assert_eq!(t["population"], 1, "{backend:?}: {t}");
        }
        assert_eq!(control_in(&reports, "CC6.2")["status"], "fail");
        assert_eq!(control_in(&reports, "CC8.1")["status"], "pass");
        assert_eq!(control_in(&reports, "CC6.8")["status"], "fail");
        let out = run(
            &server,
            &auditor,
            &["compliance", "status", "--json", "--test", "vuln-sla"],
        );
        let overdue = json_of(&out);
        let why = overdue["exceptions"][0]["exception"].as_str().unwrap();
        assert!(
            why.starts_with("critical `") && why.contains("` on `api` passed its due date "),
            "{why}"
        );

        // The monitor saw it start failing, and said so in the log (and so to webhooks).
        let deadline = Instant::now() + Duration::from_secs(10);
        let failed = loop {
            let found = server
                .audit("compliance.test.fail")
                .into_iter()
                .find(|e| e["target"] == "compliance:access-review");
            match found {
                Some(e) => break e,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                None => panic!("{backend:?}: no compliance.test.fail for access-review"),
            }
        };
        assert_eq!(failed["actor"], "system", "{failed}");
        assert!(
            failed["details"]["first_exception"]["subject"]
                .as_str()
                .unwrap()
                .starts_with("group:"),
            "{failed}"
        );

        // Without a period, status shows the monitor's latest run and says when it ran;
        // --fresh computes now. Both see the failing review.
        let reports = |args: &[&str]| {
            let mut full = vec!["compliance", "status", "--json", "--framework", "soc2"];
            full.extend_from_slice(args);
            json_of(&run(&server, &auditor, &full))
        };
        let kept = reports(&[]);
        assert_eq!(kept[0]["source"], "monitor", "{kept}");
        let fresh = reports(&["--fresh"]);
        assert_eq!(fresh[0]["source"], "live", "{fresh}");
        assert!(
            fresh[0]["computedAt"].as_str().unwrap() >= kept[0]["computedAt"].as_str().unwrap()
        );
        for report in [&kept, &fresh] {
            let cc62 = report[0]["controls"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == "CC6.2")
                .unwrap();
            assert_eq!(cc62["status"], "fail", "{report}");
        }
        let shown = text(
            &run(
                &server,
                &auditor,
                &["compliance", "status", "--framework", "soc2"],
            )
            .stdout,
        );
        assert!(
            shown.contains(": the compliance monitor's latest run (--fresh computes now)"),
            "{shown}"
        );
        // A period asked for is always computed.
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let asked = reports(&["--to", &now]);
        assert_eq!(asked[0]["source"], "live", "{asked}");

        // Drilling down names the groups and why.
        let out = run(
            &server,
            &auditor,
            &["compliance", "status", "--json", "--test", "access-review"],
        );
        let drill = json_of(&out);
        let mut found: Vec<(String, String)> = drill["exceptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["subject"].as_str().unwrap().to_owned(),
                    e["exception"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        found.sort();
        assert_eq!(found.len(), 2, "{drill}");
        assert_eq!(found[0].0, "group:admins");
        assert_eq!(found[1].0, "group:web");
        for (_, why) in &found {
            assert!(
                why.starts_with("no completed review for ") && why.ends_with(" (interval 4 s)"),
                "{why}"
            );
        }
        assert!(
            drill["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["subject"] == "group:ops" && i["exception"].is_null()),
            "{drill}"
        );
        let out = run(
            &server,
            &auditor,
            &[
                "compliance",
                "status",
                "--json",
                "--test",
                "leaver-deprovision",
            ],
        );
        let leavers = json_of(&out);
        assert_eq!(leavers["items"][0]["subject"], "user:alice");
        assert_eq!(leavers["items"][0]["measureMs"], 0);

        // The people's view: controls and tests, HIPAA's not-evidenced safeguards said so.
        let out = ok(&run(
            &server,
            &auditor,
            &["compliance", "status", "--framework", "hipaa"],
        ));
        assert!(out.contains("HIPAA Security Rule"), "{out}");
        assert!(out.contains("164.312(a)(2)(ii)"), "{out}");
        assert!(out.contains("not evidenced"), "{out}");
        // No SSH session in this journey: unique identification has nothing to test.
        assert!(
            out.lines()
                .any(|l| l.starts_with("164.312(a)(2)(i) ") && l.contains("nothing tested")),
            "{out}"
        );
        assert!(
            out.lines()
                .any(|l| l.starts_with("access-review ") && l.contains(" FAIL ")),
            "{out}"
        );

        // A member may not read the evidence; the refusal is recorded.
        let out = run(&server, &bob, &["compliance", "status"]);
        assert_eq!(
            error_of(&out),
            "error: permission denied: a member token may not `read_audit`, whatever its person's groups allow: sign in with a passkey or use a token whose role permits it"
        );
        let denied = server.audit("api.read_audit");
        assert_eq!(denied[0]["target"], "compliance", "{denied:?}");

        // The evidence bundle, made as the auditor, verified offline with the published key.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soc2.zip");
        let file = path.to_str().unwrap();
        let out = run(
            &server,
            &auditor,
            &["compliance", "evidence", "--framework", "soc2", "-o", file],
        );
        assert!(
            text(&out.stderr).starts_with("wrote the soc2 evidence bundle ("),
            "{}",
            text(&out.stderr)
        );
        let key = ok(&run(&server, &auditor, &["audit", "key"]))
            .trim()
            .to_owned();
        let verify = |file: &str, key: &str| {
            std::process::Command::new(bin())
                .args(["compliance", "verify", file, "--key", key])
                .output()
                .unwrap()
        };
        let line = ok(&verify(file, &key));
        assert!(line.starts_with("ok: soc2 evidence from "), "{line}");
        assert!(
            line.trim_end()
                .ends_with("failing: access-review (2), vuln-sla (1)"),
            "{line}"
        );
        let made = server.audit("compliance.evidence");
        assert_eq!(made[0]["target"], "compliance:soc2", "{made:?}");
        assert_eq!(made[0]["actor"], "user:audrey", "{made:?}");

        // A period that begins mid-journey, at the leaver's offboarding: what the tests read
        // from before it (the people, the groups, the grant) comes as context, each event with
        // its inclusion proof, and the bundle verifies with them.
        let since = server.audit("user.disable")[0]["time"]
            .as_str()
            .unwrap()
            .to_owned();
        let later = dir.path().join("later.zip");
        let out = run(
            &server,
            &auditor,
            &[
                "compliance",
                "evidence",
                "--framework",
                "soc2",
                "--from",
                &since,
                "-o",
                later.to_str().unwrap(),
            ],
        );
        assert!(
            text(&out.stderr).starts_with("wrote the soc2 evidence bundle ("),
            "{}",
            text(&out.stderr)
        );
        let later_line = ok(&verify(later.to_str().unwrap(), &key));
        let proven: u64 = later_line
            .split(" signed checkpoint(s) and ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{later_line}"));
        assert!(proven > 0, "{later_line}");
        let files = warden_compliance::bundle::from_zip(&std::fs::read(&later).unwrap()).unwrap();
        let context = text(&files["events/context.jsonl"]);
        assert_eq!(context.lines().count() as u64, proven, "{context}");
        assert!(context.contains(r#""action":"user.create""#), "{context}");

        // What the auditor reads beside it, and every kind of damage named.
        let files = warden_compliance::bundle::from_zip(&std::fs::read(&path).unwrap()).unwrap();
        for name in [
            "report.html",
            "oscal/assessment-results.json",
            "population/access-review.csv",
            "events/period.jsonl",
        ] {
            assert!(files.contains_key(name), "{name}: {:?}", files.keys());
        }
        let mut edited = files.clone();
        edited
            .get_mut("population/access-review.csv")
            .unwrap()
            .extend_from_slice(b"group:x,,,,\n");
        let edited_path = dir.path().join("edited.zip");
        std::fs::write(
            &edited_path,
            warden_compliance::bundle::to_zip(&edited).unwrap(),
        )
        .unwrap();
        let got = error_of(&verify(edited_path.to_str().unwrap(), &key));
        assert!(
            got.starts_with("error: verification failed: `population/access-review.csv` was changed: its SHA-256 is "),
            "{got}"
        );
        let truncated = dir.path().join("truncated.zip");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let got = error_of(&verify(truncated.to_str().unwrap(), &key));
        assert!(
            got.starts_with("error: verification failed: not a Warden evidence bundle: "),
            "{got}"
        );
        let other = warden_audit::SigningKey::from_seed(key.split('+').next().unwrap(), &[9u8; 32])
            .unwrap()
            .verifier()
            .to_string();
        let got = error_of(&verify(file, &other));
        assert!(
            got.starts_with(
                "error: verification failed: the manifest's signature does not verify with key "
            ),
            "{got}"
        );
        let got = error_of(&run(
            &server,
            &bob,
            &["compliance", "evidence", "--framework", "soc2", "-o", file],
        ));
        assert!(got.starts_with("error: permission denied: "), "{got}");
        let got = error_of(&run(
            &server,
            &auditor,
            &["compliance", "evidence", "--framework", "pci", "-o", file],
        ));
        assert_eq!(got, "error: unknown framework `pci`: soc2 or hipaa");
        assert_eq!(
            ok(&verify(file, &key)),
            line,
            "a refused request wrote nothing over the bundle"
        );

        // Bad input: one line each.
        for (args, want) in [
            (
                &["compliance", "status", "--framework", "pci"][..],
                "error: unknown framework `pci`: soc2 or hipaa",
            ),
            (
                &["compliance", "status", "--test", "nope"],
                "error: unknown compliance test `nope`: `warden compliance status` lists them",
            ),
            (
                &["compliance", "status", "--from", "someday"],
                "error: invalid `from` time `someday`: use RFC 3339, like 2026-11-29T10:00:00Z",
            ),
            (
                &["compliance", "status", "--from", "2001-01-01T00:00:00Z"],
                "error: the period starts before the audit log began (",
            ),
            (
                &["compliance", "status", "--to", "2099-01-01T00:00:00Z"],
                "error: the period ends in the future: `--to` 2099-01-01T00:00:00Z is after now (",
            ),
        ] {
            let got = error_of(&run(&server, &auditor, args));
            assert!(got.starts_with(want), "{args:?}: {got}");
        }
        let now = text(
            &std::process::Command::new("date")
                .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
                .output()
                .unwrap()
                .stdout,
        );
        let got = error_of(&run(
            &server,
            &auditor,
            &[
                "compliance",
                "status",
                "--from",
                now.trim(),
                "--to",
                now.trim(),
            ],
        ));
        assert!(
            got.starts_with("error: the period is reversed or empty: `--from` "),
            "{got}"
        );
    }
}

/// Real `ssh` through the recording proxy to a real `sshd`, on both backends: the sessions
/// pass `ssh-recorded`; a recording altered on disk afterwards is found by name, and the
/// evidence bundle made then carries the finding and still verifies offline.
#[tokio::test]
async fn a_session_recording_altered_on_disk_is_an_exception() {
    for backend in Backend::ALL {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let lab = warden_testkit::SshLab::start_opts(
            bin(),
            d,
            &warden_testkit::LabOptions {
                backend,
                ..warden_testkit::LabOptions::default()
            },
        )
        .await;
        let server = &lab.server;
        for command in ["echo first", "echo second"] {
            let out = warden_testkit::through_proxy("ssh", server, d)
                .args(["-l", "root", "db-1", command])
                .output()
                .expect("ssh (./scripts/test.sh installs openssh-client)");
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let ends = loop {
            let ends = server.audit("ssh.session.end");
            if ends.len() == 2 || Instant::now() > deadline {
                break ends;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(ends.len(), 2, "{backend:?}: {ends:?}");
        let auditor = server.token("audrey-cli", "auditor", None);
        let drill = |server: &TestServer| {
            json_of(&run(
                server,
                &auditor,
                &["compliance", "status", "--json", "--test", "ssh-recorded"],
            ))
        };
        let before = drill(server);
        assert_eq!(before["passed"], true, "{backend:?}: {before}");
        assert_eq!(before["population"], 2, "{backend:?}: {before}");
        // A fresh status of the default period comes from the server's kept evaluator, built
        // here, before the alteration: it must judge the recordings as they are when asked.
        let fresh = |server: &TestServer| {
            test_in(
                &json_of(&run(
                    server,
                    &auditor,
                    &["compliance", "status", "--json", "--fresh"],
                )),
                "ssh-recorded",
            )
        };
        let kept = fresh(server);
        assert_eq!(kept["exceptionCount"], 0, "{backend:?}: {kept}");
        assert_eq!(kept["population"], 2, "{backend:?}: {kept}");

        // Someone alters the second session's recording on disk.
        let file = ends[1]["details"]["recordings"][0]["file"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = server.data_dir.join("recordings").join(&file);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();

        let kept = fresh(server);
        assert_eq!(kept["exceptionCount"], 1, "{backend:?}: {kept}");
        assert_eq!(kept["population"], 2, "{backend:?}: {kept}");
        let after = drill(server);
        assert_eq!(after["passed"], false, "{backend:?}: {after}");
        assert_eq!(after["exceptionCount"], 1, "{backend:?}: {after}");
        let why = after["exceptions"][0]["exception"].as_str().unwrap();
        assert!(
            why.starts_with(&format!(
                "recording `{file}` is damaged: its SHA-256 is now "
            )),
            "{backend:?}: {why}"
        );

        // The bundle carries the finding, and verifies.
        let bundle = d.join("soc2.zip");
        ok(&run(
            server,
            &auditor,
            &[
                "compliance",
                "evidence",
                "--framework",
                "soc2",
                "-o",
                bundle.to_str().unwrap(),
            ],
        ));
        let key = ok(&run(server, &auditor, &["audit", "key"]))
            .trim()
            .to_owned();
        let out = std::process::Command::new(bin())
            .args([
                "compliance",
                "verify",
                bundle.to_str().unwrap(),
                "--key",
                &key,
            ])
            .output()
            .unwrap();
        let line = ok(&out);
        assert!(line.contains("ssh-recorded (1)"), "{backend:?}: {line}");
    }
}

/// A recurring access review, on both backends: a schedule opens a campaign of its scope by
/// itself, recorded as `review.create` by the server, and again when its turn comes back; one
/// campaign a turn.
#[tokio::test]
async fn a_review_schedule_opens_campaigns_by_itself() {
    for backend in Backend::ALL {
        let server = TestServer::start(
            bin(),
            backend,
            "[limits]\nper_source_rps = 0\n\
             [[compliance.review_schedule]]\nscope = \"groups:ops\"\nevery = \"2s\"\nreviewer = \"carol\"\ndue = \"1d\"\n",
        )
        .await;
        for args in [
            &["user", "add", "alice"][..],
            &["user", "add", "carol"],
            &["group", "add", "ops"],
            &["group", "add-member", "ops", "alice"],
        ] {
            assert!(server.admin(args).status.success(), "{args:?}");
        }
        let started = Instant::now();
        let deadline = started + Duration::from_secs(15);
        let opened = loop {
            let opened: Vec<Value> = server
                .audit("review.create")
                .into_iter()
                .filter(|e| e["outcome"] == "success")
                .collect();
            if opened.len() >= 2 || Instant::now() > deadline {
                break opened;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let waited = started.elapsed().as_secs_f64();
        assert!(opened.len() >= 2, "{backend:?}: {opened:?}");
        // At most one a turn (the first may have come before the group had a member).
        assert!(
            opened.len() as f64 <= waited / 2.0 + 2.0,
            "{backend:?}: {} campaigns in {waited:.1} s",
            opened.len()
        );
        for e in &opened {
            assert_eq!(e["actor"], "system", "{e}");
            assert_eq!(e["details"]["scope"], "groups:ops", "{e}");
            assert_eq!(e["details"]["reviewer"], "user:carol", "{e}");
        }
    }
}

/// A late offboarding, planted the way it happens: alice's SSH session runs through a
/// standalone `warden proxy` that dies; she is disabled at once, but her session stays open on
/// the record until the dead proxy's lease runs out (3 s), past `deprovision_within` (1 s). The
/// compliance status names her, with the time it took, and the session's missing recording.
/// PostgreSQL: a standalone proxy shares the server's database.
#[tokio::test]
async fn a_late_offboarding_is_an_exception_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lab = warden_testkit::SshLab::start_opts(
        bin(),
        d,
        &warden_testkit::LabOptions {
            backend: Backend::Postgres,
            ssh: "proxy_lease = \"3s\"\n",
            top: "[compliance]\ndeprovision_within = \"1s\"\n",
            ..warden_testkit::LabOptions::default()
        },
    )
    .await;
    let server = &lab.server;
    let auditor = server.token("audrey-cli", "auditor", None);
    let proxy = server.standalone_proxy();
    let mut client = warden_testkit::through_proxy_at("ssh", server, &proxy.addr, d)
        .args(["-l", "root", "db-1", "sleep 60"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ssh (./scripts/test.sh installs openssh-client)");
    let deadline = Instant::now() + Duration::from_secs(20);
    let session = loop {
        if let Some(start) = server.audit("ssh.session.start").first() {
            break start["details"]["session"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the session never started");
        std::thread::sleep(Duration::from_millis(100));
    };

    // The proxy dies with the session open; alice leaves at once.
    drop(proxy);
    let _ = client.kill();
    let _ = client.wait();
    assert!(server.admin(&["user", "disable", "alice"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server
        .audit("ssh.session.end")
        .iter()
        .any(|e| e["details"]["session"] == session.as_str())
    {
        assert!(Instant::now() < deadline, "the session never ended");
        std::thread::sleep(Duration::from_millis(100));
    }

    for args in [&["--fresh"][..], &["--test", "leaver-deprovision"]] {
        let mut command = vec!["compliance", "status", "--json"];
        command.extend_from_slice(args);
        let out = run(server, &auditor, &command);
        let shown = json_of(&out);
        if args[0] == "--fresh" {
            // The overview counts; the drill-down below names.
            let leavers = test_in(&shown, "leaver-deprovision");
            assert_eq!(leavers["population"], 1, "{leavers}");
            assert_eq!(leavers["exceptionCount"], 1, "{leavers}");
            continue;
        }
        let leavers = shown;
        assert_eq!(leavers["population"], 1, "{leavers}");
        assert_eq!(leavers["exceptionCount"], 1, "{leavers}");
        let late = &leavers["exceptions"][0];
        assert_eq!(late["subject"], "user:alice", "{late}");
        let why = late["exception"].as_str().unwrap();
        assert!(
            why.starts_with("the last SSH session closed ")
                && why.ends_with(" after the disable (limit 1 s)"),
            "{why}"
        );
        assert!(late["measureMs"].as_i64().unwrap() > 1_000, "{late}");
    }
    let out = run(
        server,
        &auditor,
        &["compliance", "status", "--json", "--test", "ssh-recorded"],
    );
    let recorded = json_of(&out);
    let why = recorded["exceptions"][0]["exception"].as_str().unwrap();
    assert!(why.starts_with("no recording: its proxy ("), "{why}");
}
