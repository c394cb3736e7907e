//! Just-in-time access: request → approve → use → expire → cut, through the CLI and the real
//! proxy; who may decide (the policy's `approve`, never the requester; N approvals); and the
//! exact error for each known bad input, with nothing changed.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_testkit::{
    Backend, SshLab, TestServer, ssh_keygen_ed25519, through_proxy, webhook_receiver,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `warden request ARGS…` against `server` with `token`.
fn request(server: &TestServer, token: &str, args: &[&str]) -> std::process::Output {
    let mut full = vec!["request"];
    full.extend_from_slice(args);
    server.remote(token, &full)
}

#[tokio::test]
async fn request_approve_use_expire_cut() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lab = SshLab::start(bin(), d).await;
    let server = &lab.server;
    server.admin_ok(&["user", "add", "carol"]);
    server.admin_ok(&["user", "add", "bob"]);
    server.admin_ok(&["group", "add", "admins"]);
    server.admin_ok(&["group", "add-member", "admins", "bob"]);
    let carol = server.token("carol-cli", "member", Some("carol"));
    let bob = server.token("bob-cli", "member", Some("bob"));
    let alice = server.token("alice-cli", "member", Some("alice"));

    // carol asks for ops; alice (not an approver under the starter policy) cannot approve.
    let out = request(
        server,
        &carol,
        &[
            "create",
            "--group",
            "ops",
            "--reason",
            "incident 42",
            "--duration",
            "8s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    let out = request(server, &alice, &["approve", &id]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(
            "error: permission denied: policy v1: no policy permits `approve` (default deny)"
        ),
        "{}",
        text(&out.stderr)
    );
    let denied = server.audit("access.approve");
    assert_eq!(denied[0]["outcome"], "denied");
    let out = request(server, &bob, &["list", "--pending"]);
    assert!(
        text(&out.stdout).contains(&id),
        "bob sees what he may decide: {}",
        text(&out.stdout)
    );

    // bob approves: carol is in ops until the grant ends.
    let out = request(server, &bob, &["approve", &id, "--reason", "on call"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!("request {id} approved: carol is in ops until "))
    );
    let approved = Instant::now();
    let (_, body) = server
        .graphql(Some(&carol), "{ viewer { user { groups } } }", Value::Null)
        .await;
    assert_eq!(body["data"]["viewer"]["user"]["groups"], json!(["ops"]));

    // She uses it: a certificate for root and a session on db-1.
    let cd = d.join("carol");
    std::fs::create_dir_all(&cd).unwrap();
    std::fs::copy(d.join("known_hosts"), cd.join("known_hosts")).unwrap();
    let public = ssh_keygen_ed25519(&cd.join("id_ed25519"));
    let q = "mutation($k: String!) { issueSshUserCertificate(publicKey: $k, ttl: \"1h\", principals: [\"root\"]) { certificate } }";
    let (_, body) = server
        .graphql(Some(&carol), q, json!({ "k": public }))
        .await;
    let cert = body
        .pointer("/data/issueSshUserCertificate/certificate")
        .and_then(Value::as_str);
    std::fs::write(
        cd.join("id_ed25519-cert.pub"),
        cert.unwrap_or_else(|| panic!("{body}")),
    )
    .unwrap();
    let session = through_proxy("ssh", server, &cd)
        .args(["-l", "root", "db-1", "echo in; sleep 60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // The grant expires by itself and the session is cut.
    let out = session.wait_with_output().unwrap();
    let cut = approved.elapsed();
    assert_eq!(text(&out.stdout), "in\n", "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warden: access ended: login `root` on `db-1`"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        cut >= Duration::from_secs(7) && cut < Duration::from_secs(15),
        "cut after {cut:?}"
    );
    println!("the session was cut {cut:?} after the approval of an 8 s grant");
    // The proxy's recheck sees the expiry by the clock; the timer that ends the grant and
    // records it runs each second too, so the record may follow the cut by up to a second.
    let mut expired = server.audit("grant.expire");
    for _ in 0..50 {
        if !expired.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        expired = server.audit("grant.expire");
    }
    assert_eq!(expired[0]["target"], "user:carol");
    assert_eq!(expired[0]["details"]["group"], "ops");
    assert_eq!(expired[0]["actor"], "system");
    let out = request(server, &carol, &["list", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["state"], "approved");
    assert_eq!(listed[0]["grant"]["endReason"], "expired");
    assert_eq!(listed[0]["decisions"][0]["approver"], "user:bob");
    assert_eq!(listed[0]["decisions"][0]["reason"], "on call");
    let (_, body) = server
        .graphql(Some(&carol), "{ viewer { user { groups } } }", Value::Null)
        .await;
    assert_eq!(body["data"]["viewer"]["user"]["groups"], json!([]));

    // Closed requests stay closed.
    let out = request(server, &bob, &["approve", &id]);
    assert_eq!(
        text(&out.stderr).trim(),
        format!("error: request `{id}` is already approved")
    );
}

#[tokio::test]
async fn who_decides_and_bad_requests() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, "[limits]\nper_source_rps = 0\n").await;
        for args in [
            &["user", "add", "alice"][..],
            &["user", "add", "bob"],
            &["user", "add", "dora"],
            &["group", "add", "ops"],
            &["group", "add", "admins"],
            &["group", "add-member", "ops", "alice"],
            &["group", "add-member", "admins", "bob"],
            &["group", "add-member", "admins", "dora"],
        ] {
            server.admin_ok(args);
        }
        let alice = server.token("alice-cli", "member", Some("alice"));
        let bob = server.token("bob-cli", "member", Some("bob"));
        let dora = server.token("dora-cli", "member", Some("dora"));
        let service = server.token("ci", "admin", None);
        let create = "mutation($g: String!, $r: String!, $d: String!, $a: Int!) { requestAccess(group: $g, reason: $r, duration: $d, approvals: $a) { id state } }";
        let ask = async |token: &str, group: &str, reason: &str, duration: &str, approvals: i32| {
            let vars = json!({ "g": group, "r": reason, "d": duration, "a": approvals });
            let (_, body) = server.graphql(Some(token), create, vars).await;
            body
        };
        let error = |body: &Value| {
            body["errors"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };

        let cases = [
            (
                ask(&bob, "ops", "x", "forever", 1).await,
                "invalid duration `forever`: expected number at 0 (like 30m, 2h or 1d)",
            ),
            (
                ask(&bob, "ops", "x", "0s", 1).await,
                "a grant lasts from 1s to 30d",
            ),
            (
                ask(&bob, "ops", "x", "31d", 1).await,
                "a grant lasts from 1s to 30d",
            ),
            (ask(&bob, "ops", "  ", "1h", 1).await, "give a reason"),
            (
                ask(&bob, "ops", "x", "1h", 0).await,
                "approvals must be from 1 to 5",
            ),
            (
                ask(&bob, "nope", "x", "1h", 1).await,
                "group `nope` not found",
            ),
            (
                ask(&bob, "Ops!", "x", "1h", 1).await,
                "group name `Ops!` is invalid: use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
            ),
            (
                ask(&alice, "ops", "x", "1h", 1).await,
                "`alice` is already in group `ops`",
            ),
            (
                ask(&service, "ops", "x", "1h", 1).await,
                "only a person can request access; token:ci is not one",
            ),
        ];
        for (body, want) in &cases {
            assert_eq!(&error(body), want, "{backend:?} {body}");
        }

        // Two approvals needed; the requester may not be one of them.
        let body = ask(&bob, "ops", "deploy the fix", "1h", 2).await;
        let id = body["data"]["requestAccess"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let again = ask(&bob, "ops", "again", "1h", 1).await;
        assert_eq!(
            error(&again),
            format!("request `{id}` for group `ops` is already pending")
        );
        let approve = "mutation($i: String!) { approveAccessRequest(id: $i) { state decisions { approver } grant { group } } }";
        let deny = "mutation($i: String!, $r: String!) { denyAccessRequest(id: $i, reason: $r) { state } }";
        let (_, body) = server
            .graphql(Some(&bob), approve, json!({ "i": id }))
            .await;
        assert_eq!(
            error(&body),
            format!("you cannot decide your own request `{id}`")
        );
        let (_, body) = server
            .graphql(Some(&dora), approve, json!({ "i": id }))
            .await;
        assert_eq!(
            body["data"]["approveAccessRequest"]["state"], "pending",
            "{body}"
        );
        let (_, body) = server
            .graphql(Some(&dora), approve, json!({ "i": id }))
            .await;
        assert_eq!(
            error(&body),
            format!("you have already decided request `{id}`")
        );
        let (_, body) = server
            .graphql(Some(&service), approve, json!({ "i": id }))
            .await;
        assert_eq!(
            body["data"]["approveAccessRequest"]["state"], "approved",
            "{body}"
        );
        assert_eq!(
            body["data"]["approveAccessRequest"]["grant"]["group"],
            "ops"
        );
        let (_, body) = server
            .graphql(Some(&dora), deny, json!({ "i": id, "r": "late" }))
            .await;
        assert_eq!(error(&body), format!("request `{id}` is already approved"));

        // A denial needs a reason and closes the request.
        let body = ask(&dora, "ops", "look at logs", "30m", 1).await;
        let id = body["data"]["requestAccess"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, body) = server
            .graphql(Some(&bob), deny, json!({ "i": id, "r": " " }))
            .await;
        assert_eq!(error(&body), "give a reason");
        let (_, body) = server
            .graphql(
                Some(&bob),
                deny,
                json!({ "i": id, "r": "use the dashboard" }),
            )
            .await;
        assert_eq!(body["data"]["denyAccessRequest"]["state"], "denied");
        let (_, body) = server
            .graphql(Some(&bob), approve, json!({ "i": "no-such-id" }))
            .await;
        assert_eq!(error(&body), "access request `no-such-id` not found");

        // Everything is on the record, refusals included.
        let failures: Vec<Value> = server
            .audit("access.approve")
            .into_iter()
            .filter(|e| e["outcome"] == "failure")
            .collect();
        assert_eq!(failures.len(), 2, "{backend:?} {failures:?}");
        assert_eq!(
            server
                .audit("access.request")
                .iter()
                .filter(|e| e["outcome"] == "success")
                .count(),
            2
        );
        let (_, body) = server
            .graphql(
                Some(&service),
                "{ grants { user group grantedBy } }",
                Value::Null,
            )
            .await;
        assert_eq!(
            body["data"]["grants"],
            json!([{ "user": "bob", "group": "ops", "grantedBy": "token:ci" }])
        );

        // Disabling bob ends his grant in the same transaction.
        server.admin_ok(&["user", "disable", "bob"]);
        assert_eq!(
            server.audit("user.disable")[0]["details"]["grants_ended"],
            1
        );
        let (_, body) = server
            .graphql(Some(&service), "{ grants { user } }", Value::Null)
            .await;
        assert_eq!(body["data"]["grants"], json!([]));
    }
}

#[tokio::test]
async fn access_requests_notify_webhooks() {
    let (port, got) = webhook_receiver().await;
    let config = format!(
        "[limits]\nper_source_rps = 0\n\
         [[audit.sink]]\nkind = \"webhook\"\nname = \"chat\"\nurl = \"http://127.0.0.1:{port}/slack\"\nformat = \"slack\"\nactions = [\"access.*\", \"grant.*\"]\n\
         [[audit.sink]]\nkind = \"webhook\"\nname = \"siem\"\nurl = \"http://127.0.0.1:{port}/json\"\nactions = [\"access.request\"]\n"
    );
    let server = TestServer::start(bin(), Backend::Sqlite, &config).await;
    for args in [
        &["user", "add", "carol"][..],
        &["user", "add", "bob"],
        &["group", "add", "ops"],
        &["group", "add", "admins"],
        &["group", "add-member", "admins", "bob"],
    ] {
        server.admin_ok(args);
    }
    let carol = server.token("carol-cli", "member", Some("carol"));
    let bob = server.token("bob-cli", "member", Some("bob"));
    let out = request(
        &server,
        &carol,
        &[
            "create",
            "--group",
            "ops",
            "--reason",
            "incident 42",
            "--duration",
            "2s",
        ],
    );
    let id = text(&out.stdout).trim().to_owned();
    let out = request(&server, &bob, &["approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut messages = Vec::new();
    for _ in 0..200 {
        messages = got.lock().unwrap().clone();
        if messages.iter().filter(|(p, _)| p == "/slack").count() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let slack: Vec<String> = messages
        .iter()
        .filter(|(p, _)| p == "/slack")
        .map(|(_, b)| b["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(slack.len(), 3, "{messages:?}");
    assert_eq!(
        slack[0],
        format!(
            "Warden: carol asks for `ops` for 2 s: \"incident 42\" (request {id}; `warden request approve {id}`)"
        )
    );
    assert!(
        slack[1].starts_with("Warden: user:bob approved carol's access to `ops` until "),
        "{}",
        slack[1]
    );
    assert_eq!(slack[2], "Warden: carol's access to `ops` expired");
    let json: Vec<&Value> = messages
        .iter()
        .filter(|(p, _)| p == "/json")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(json.len(), 1, "{messages:?}");
    assert_eq!(json[0]["action"], "access.request");
    assert_eq!(json[0]["details"]["request"], id.as_str());
}
