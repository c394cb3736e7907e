//! The administrator's journeys in Chromium, with the test playing the world outside the
//! browser: the host that runs the agent command the console printed, and alice on SSH.

use serde_json::json;
use warden_testkit::{LabOptions, LiveJourney, SshLab, free_port};

use crate::{alice_on_db1, apply_policy, bin, fixture, run_agent};

/// dana may set Warden up and run the fleet, and nothing else: the directory, inviting and
/// disabling people, hosts (join tokens, ending sessions), the audit log, reviews, the
/// policy, tokens and findings read. In Chromium with a passkey she invites erin, who enrolls
/// and signs in, and disables her (her browser is signed out); makes a join token whose
/// command the test runs, sees the host online with its agent's version and offline once
/// the test stops the agent; ends alice's live session on a real sshd (alice's terminal says
/// why); starts a review and keeps every item with one justification; and sees the
/// getting-started checklist tick off. Each is then checked in the audit log. Groups are
/// not hers: the new-group form is refused.
#[tokio::test]
async fn an_administrators_day_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let top = format!("public_url = \"{base}\"\n[agent]\noffline_after = \"3s\"\n");
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
    let ops = server.token("ops-root", "admin", None);
    server.admin_ok(&["group", "add", "setup"]);
    for user in ["bob", "carol"] {
        server.admin_ok(&["user", "add", user]);
        server.admin_ok(&["group", "add-member", "ops", user]);
    }
    apply_policy(
        server,
        d,
        &ops,
        "@id(\"setup-team\")\npermit (principal in Warden::Group::\"setup\", action in [\
         Warden::Action::\"read_directory\", Warden::Action::\"manage_users\", \
         Warden::Action::\"manage_hosts\", Warden::Action::\"read_audit\", Warden::Action::\"review\", \
         Warden::Action::\"read_policy\", Warden::Action::\"manage_policy\", \
         Warden::Action::\"read_vulns\"], resource);\n",
    );
    server.admin_ok(&["user", "add", "dana"]);
    server.admin_ok(&["group", "add-member", "setup", "dana"]);
    let link = server.admin(&["user", "enroll-link", "dana"]);
    assert!(link.status.success());
    let link = String::from_utf8(link.stdout).unwrap().trim().to_owned();
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots/console");
    std::fs::create_dir_all(&shots).unwrap();
    let mut journey = LiveJourney::start(
        "console-admin-journey.mjs",
        &[&base, &link, shots.to_str().unwrap()],
    );

    // The host: the agent command exactly as the console printed it, with the places this
    // test keeps its files and a refresh fast enough to watch.
    let command = journey.asked("agent-started");
    let command = command.as_str().unwrap();
    let mut words: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    assert_eq!(
        words.first().map(String::as_str),
        Some("warden"),
        "{command}"
    );
    // The agent's state goes where this test keeps its files, not /var/lib.
    let at = words.iter().position(|w| w == "--data-dir").unwrap();
    words[at + 1] = d.join("app-1").to_str().unwrap().to_owned();
    let mut agent = run_agent(&words[1..], &d.join("app-1-host"));
    journey.answer("agent-started", "");
    journey.asked("agent-stopped");
    agent.kill().unwrap();
    agent.wait().unwrap();
    journey.answer("agent-stopped", "");

    // alice's session on db-1, open until someone ends it.
    journey.asked("session-open");
    let (ssh, _) = alice_on_db1(server, d, &ops).await;
    journey.answer("session-open", "");

    // A scanner's findings and a SCIM token: two more of the checklist's steps.
    journey.asked("imported");
    let scan = fixture("trivy/scheme_2_many_vulns.json");
    let out = server.remote(
        &ops,
        &["vuln", "import", scan.to_str().unwrap(), "--asset", "web"],
    );
    assert!(out.status.success());
    server.token("idp", "scim", None);
    journey.answer("imported", "");

    let journey = journey.finish();
    journey.assert_no_error();
    for step in [
        "checklist-before",
        "groups-refused",
        "invited",
        "erin-signed-in",
        "disabled",
        "erin-signed-out",
        "join-token",
        "host-online",
        "host-offline",
        "session-ended",
        "session-closed",
        "bulk-reviewed",
        "checklist-after",
        "csp",
    ] {
        let found = journey.step(step);
        assert_eq!(found["ok"], true, "{step}: {found}");
    }
    assert_eq!(
        journey.step("host-online")["detail"]["version"][0],
        env!("CARGO_PKG_VERSION")
    );

    // alice's terminal said who ended it, and why.
    let out = ssh.wait_with_output().unwrap();
    let seen = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(seen.contains("INC-9: patching db-1"), "{seen}");

    // The trail: each change made by dana in the browser, named as her web sign-in.
    for (action, target) in [
        ("user.create", "user:erin"),
        ("user.disable", "user:erin"),
        ("host.join_token.create", "host:app-1"),
        ("ssh.session.kill", ""),
        ("review.create", ""),
        ("review.keep", ""),
    ] {
        let events = server.audit(action);
        assert!(
            events.iter().any(|e| e["outcome"] == "success"
                && e["actor"] == "user:dana"
                && e["auth"] == "web_session"
                && e["target"].as_str().unwrap_or("").starts_with(target)),
            "{action}: {events:?}"
        );
    }
    assert!(
        server
            .audit("api.manage_groups")
            .iter()
            .any(|e| e["outcome"] == "denied" && e["actor"] == "user:dana"),
        "the refused group form is recorded"
    );
    // Through the API afterwards: erin is disabled, app-1 is offline, the review decided.
    let (_, after) = server
        .graphql(
            Some(&ops),
            "{ user(name: \"erin\") { disabled } hosts { name online } accessReviews { items { decision } } }",
            json!({}),
        )
        .await;
    assert_eq!(after["data"]["user"]["disabled"], true, "{after}");
    let app = after["data"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "app-1")
        .cloned()
        .unwrap();
    assert_eq!(app["online"], false, "{after}");
    let items = after["data"]["accessReviews"][0]["items"]
        .as_array()
        .unwrap();
    assert!(
        items.len() >= 2 && items.iter().all(|i| i["decision"] == "keep"),
        "{after}"
    );
}
