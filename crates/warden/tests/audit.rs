//! The audit log end to end: every mutation and denial is a leaf, exports verify offline with
//! only the public key, tampering is named, and SIGKILL during writes loses nothing acknowledged.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use warden_testkit::{Backend, TestServer, run_cli};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn stdout(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim_end().to_owned()
}

fn audit(server: &TestServer, args: &[&str]) -> Output {
    let dir = server.data_dir.to_string_lossy().into_owned();
    let mut full = vec!["audit", "--data-dir", dir.as_str()];
    full.extend_from_slice(args);
    run_cli(bin(), &full)
}

#[tokio::test]
async fn exports_verify_offline_and_tampering_is_named() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, "[limits]\nper_source_rps = 0\n").await;
        for name in ["alice", "bob", "carol"] {
            stdout(server.admin(&["user", "add", name]));
        }
        assert!(!server.admin(&["user", "add", "alice"]).status.success());
        stdout(server.admin(&["group", "add", "ops"]));
        stdout(server.admin(&["group", "add-member", "ops", "bob"]));

        let key = stdout(audit(&server, &["key"])).trim().to_owned();
        let (status, _, served) = server.get("/v1/audit/public_key").await;
        assert_eq!((status, served.trim()), (200, key.as_str()));

        let events: Value =
            serde_json::from_str(&stdout(audit(&server, &["query", "--json"]))).unwrap();
        let actions: Vec<(&str, &str)> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap(),
                    e["outcome"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            actions,
            [
                ("ca.create", "success"),
                ("ca.create", "success"),
                ("ca.create", "success"),
                ("policy.apply", "success"),
                ("x509.issue", "success"),
                ("user.create", "success"),
                ("user.create", "success"),
                ("user.create", "success"),
                ("user.create", "failure"),
                ("group.create", "success"),
                ("group.add_member", "success"),
            ],
            "{backend:?}"
        );
        let bob: Value = serde_json::from_str(&stdout(audit(
            &server,
            &["query", "--target", "user:bob", "--json"],
        )))
        .unwrap();
        assert_eq!(bob.as_array().unwrap().len(), 1);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.jsonl");
        let file_arg = file.to_str().unwrap();
        let out = audit(&server, &["export", "-o", file_arg]);
        assert_eq!(stderr(&out), format!("wrote 11 events to {file_arg}"));
        // Checkpoints are signed on a timer too, so how many fall in the range varies.
        let offline = stdout(run_cli(
            bin(),
            &["audit", "verify", file_arg, "--key", &key],
        ));
        assert!(
            offline.starts_with("ok: events 1 to 11 (11 events) match "),
            "{offline}"
        );
        assert!(
            offline
                .trim_end()
                .ends_with("signed checkpoint(s), up to tree size 12"),
            "{offline}"
        );
        // The export itself was recorded, and the live log still verifies as a whole.
        let live = stdout(audit(&server, &["verify"]));
        assert!(live.starts_with("ok: events 1 to 12 (12 events)"), "{live}");

        let original = std::fs::read_to_string(&file).unwrap();
        let tampered = [
            (
                original.replacen("\"target\":\"user:bob\"", "\"target\":\"user:eve\"", 1),
                "event 7: its content does not match the leaf hash the log recorded",
            ),
            (
                drop_event(&original, 6),
                "event 6: missing (the next event in the file is 7)",
            ),
        ];
        for (text, expected) in tampered {
            std::fs::write(&file, text).unwrap();
            let out = run_cli(bin(), &["audit", "verify", file_arg, "--key", &key]);
            assert!(!out.status.success());
            assert_eq!(
                stderr(&out),
                format!("error: verification failed: {expected}")
            );
        }
        std::fs::write(&file, &original).unwrap();
        let wrong_key = "localhost/audit+00000000+AQ==";
        let out = run_cli(bin(), &["audit", "verify", file_arg, "--key", wrong_key]);
        assert_eq!(
            stderr(&out),
            "error: invalid audit public key: an Ed25519 key is 32 bytes"
        );
        let out = run_cli(bin(), &["audit", "verify", file_arg]);
        assert_eq!(
            stderr(&out),
            "error: verifying a file needs the log's public key: --key PUBKEY"
        );
    }
}

/// A filtered export (a selection) holds the matching events only, each with its inclusion
/// proof; it verifies offline and says what it is; tampering is named; a bad filter is
/// refused with the API's words and changes nothing.
#[tokio::test]
async fn filtered_exports_prove_each_event_they_hold() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, "[limits]\nper_source_rps = 0\n").await;
        for name in ["alice", "bob", "dave"] {
            stdout(server.admin(&["user", "add", name]));
        }
        assert!(!server.admin(&["user", "add", "alice"]).status.success());
        stdout(server.admin(&["group", "add", "ops"]));
        let member = server.token("mem", "member", Some("dave"));
        let (_, body) = server
            .graphql(
                Some(&member),
                "mutation { createUser(input: { name: \"eve\" }) { name } }",
                Value::Null,
            )
            .await;
        assert_eq!(body["data"], Value::Null, "{body}");
        let key = stdout(audit(&server, &["key"])).trim().to_owned();

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("created.jsonl");
        let file_arg = file.to_str().unwrap();
        let out = audit(
            &server,
            &["export", "--action", "user.create", "-o", file_arg],
        );
        assert_eq!(
            stderr(&out),
            format!("wrote 4 events to {file_arg}"),
            "{backend:?}"
        );
        let offline = stdout(run_cli(
            bin(),
            &["audit", "verify", file_arg, "--key", &key],
        ));
        assert!(
            offline.starts_with("ok: 4 events selected by action=user.create among events 1 to "),
            "{offline}"
        );
        assert!(
            offline
                .trim_end()
                .ends_with("(a selection does not show that no matching event is left out)"),
            "{offline}"
        );
        let json_report: Value = serde_json::from_str(&stdout(run_cli(
            bin(),
            &["audit", "--json", "verify", file_arg, "--key", &key],
        )))
        .unwrap();
        assert_eq!(json_report["selection"], json!({ "action": "user.create" }));

        // The narrowest caller that may export: an auditor's token, over HTTP.
        let auditor = server.token("aud", "auditor", None);
        let get = |query: &'static str, token: &str| {
            reqwest::Client::new()
                .get(format!("{}/v1/audit/export?{query}", server.url))
                .bearer_auth(token)
                .send()
        };
        let resp = get("actor=user%3Adave&outcome=denied", &auditor)
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        let report = warden_audit::verify(text.as_bytes(), &key.parse().unwrap()).unwrap();
        assert_eq!(report.events, 1, "{text}");
        assert!(text.contains("\"action\":\"api.manage_users\""), "{text}");
        let resp = get("action=user.create", &member).await.unwrap();
        assert_eq!(resp.status(), 403);

        // Tampered: an edited event, and an event from outside the filter.
        let original = std::fs::read_to_string(&file).unwrap();
        let edited = original.replacen("\"target\":\"user:bob\"", "\"target\":\"user:eve\"", 1);
        std::fs::write(&file, &edited).unwrap();
        let out = run_cli(bin(), &["audit", "verify", file_arg, "--key", &key]);
        let seq_bob = original
            .lines()
            .find(|l| l.contains("\"target\":\"user:bob\""))
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
            .and_then(|v| v["event"]["seq"].as_u64())
            .unwrap();
        assert_eq!(
            stderr(&out),
            format!(
                "error: verification failed: event {seq_bob}: its content does not match the leaf hash the log recorded"
            )
        );
        // The group's creation, a real event, proven in the same tree as the file's.
        let group = get("action=group.create", &auditor)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let group_line = group.lines().nth(2).unwrap();
        let group_seq = serde_json::from_str::<Value>(group_line).unwrap()["event"]["seq"]
            .as_u64()
            .unwrap();
        let size = json_report["signed_size"].as_u64().unwrap();
        let (_, proof) = server
            .graphql(
                Some(&auditor),
                &format!("{{ auditInclusionProof(seq: {group_seq}, treeSize: {size}) }}"),
                Value::Null,
            )
            .await;
        let cut = group_line.find(",\"inclusion\":").unwrap();
        let group_line = format!(
            "{},\"inclusion\":{}}}",
            &group_line[..cut],
            proof["data"]["auditInclusionProof"]
        );
        let group_line = group_line.as_str();
        let mut mixed: Vec<&str> = original.lines().collect();
        let at = mixed
            .iter()
            .position(|l| {
                serde_json::from_str::<Value>(l).unwrap()["event"]["seq"]
                    .as_u64()
                    .is_some_and(|s| s > group_seq)
            })
            .unwrap_or(mixed.len());
        mixed.insert(at, group_line);
        std::fs::write(&file, mixed.join("\n")).unwrap();
        let out = run_cli(bin(), &["audit", "verify", file_arg, "--key", &key]);
        assert_eq!(
            stderr(&out),
            format!(
                "error: verification failed: event {group_seq}: does not match the selection: its action is `group.create`"
            )
        );

        // A bad filter: the API's words, nothing written, nothing recorded.
        let exports = server.audit("audit.export").len();
        let out = audit(&server, &["export", "--outcome", "maybe", "-o", file_arg]);
        assert!(!out.status.success());
        assert_eq!(
            stderr(&out),
            "error: unknown outcome `maybe`: success, failure or denied"
        );
        assert_eq!(server.audit("audit.export").len(), exports);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), mixed.join("\n"));
    }
}

fn drop_event(export: &str, seq: u64) -> String {
    export
        .lines()
        .filter(|l| {
            !(l.starts_with("{\"type\":\"event\"")
                && l.contains(&format!("\"seq\":{seq},\"source\"")))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test]
async fn the_audit_api_is_authorized_like_everything_else() {
    let server = TestServer::start(bin(), Backend::Sqlite, "[limits]\nper_source_rps = 0\n").await;
    stdout(server.admin(&["user", "add", "dave"]));
    let auditor = server.token("aud", "auditor", None);
    let member = server.token("mem", "member", Some("dave"));

    let q = "{ auditEvents(action: \"user.create\", first: 5) { seq action target } auditCheckpoint { size note } }";
    let (_, body) = server.graphql(Some(&auditor), q, Value::Null).await;
    assert_eq!(
        body["data"]["auditEvents"][0],
        json!({ "seq": 6, "action": "user.create", "target": "user:dave" })
    );
    let size = body["data"]["auditCheckpoint"]["size"].as_u64().unwrap();
    assert!(size >= 3);
    let proof = format!(
        "{{ auditInclusionProof(seq: 1, treeSize: {size}) auditConsistencyProof(fromSize: 1, toSize: {size}) }}"
    );
    let (_, body) = server.graphql(Some(&auditor), &proof, Value::Null).await;
    let path = body["data"]["auditInclusionProof"].as_array().unwrap();
    assert!(!path.is_empty(), "{body}");
    let (_, body) = server
        .graphql(
            Some(&auditor),
            "{ auditInclusionProof(seq: 99, treeSize: 99) }",
            Value::Null,
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("the log has "),
        "{body}"
    );

    let (_, body) = server.graphql(Some(&member), q, Value::Null).await;
    assert_eq!(
        body["errors"][0]["message"],
        "permission denied: policy v1: no policy permits `read_audit` (default deny)"
    );
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/audit/export", server.url))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/audit/export", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/audit/export?since_seq=2", server.url))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.starts_with("{\"type\":\"header\",\"format\":\"warden-audit-export/1\",\"origin\":\"localhost/audit\",\"first_seq\":2,"), "{text}");
    let key = stdout(audit(&server, &["key"]));
    let report = warden_audit::verify(text.as_bytes(), &key.trim().parse().unwrap()).unwrap();
    assert_eq!(report.first_seq, 2);
}

#[tokio::test]
async fn sigkill_during_concurrent_writes_loses_nothing_acknowledged() {
    for backend in Backend::ALL {
        let mut server = TestServer::start(bin(), backend, "[limits]\nper_source_rps = 0\n").await;
        let admin = server.token("root", "admin", None);
        let mut acknowledged = Vec::new();
        for round in 0..4 {
            let url = server.url.clone();
            // Writes acknowledged in this round so far: the crash comes after the first.
            let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let writers: Vec<_> = (0..8)
                .map(|w| {
                    let (url, admin, acked) = (url.clone(), admin.clone(), acked.clone());
                    tokio::spawn(async move {
                        let client = reqwest::Client::new();
                        let mut done = Vec::new();
                        for i in 0..200 {
                            let name = format!("r{round}w{w}n{i}");
                            let body = json!({ "query": "mutation($n: String!) { createUser(input: { name: $n }) { name } }", "variables": { "n": name } });
                            let Ok(resp) = client.post(format!("{url}/graphql")).bearer_auth(&admin).json(&body).send().await else { break };
                            let Ok(v) = resp.json::<Value>().await else { break };
                            if v["data"]["createUser"]["name"] == json!(name) {
                                done.push(name);
                                acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                        done
                    })
                })
                .collect();
            // However loaded the machine, kill while writes are flowing.
            for _ in 0..400 {
                if acked.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 + 50 * round)).await;
            server.crash_and_restart();
            for w in writers {
                acknowledged.extend(w.await.unwrap());
            }
            let live = stdout(audit(&server, &["verify"]));
            assert!(
                live.starts_with("ok: "),
                "{backend:?} round {round}: {live}"
            );
        }
        assert!(!acknowledged.is_empty());
        let events: Value = serde_json::from_str(&stdout(audit(
            &server,
            &[
                "query",
                "--action",
                "user.create",
                "--limit",
                "100000",
                "--json",
            ],
        )))
        .unwrap();
        let recorded: std::collections::BTreeSet<&str> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["target"].as_str().unwrap().trim_start_matches("user:"))
            .collect();
        for name in &acknowledged {
            assert!(
                recorded.contains(name.as_str()),
                "{backend:?}: acknowledged {name} has no audit event"
            );
        }
    }
}

#[tokio::test]
async fn retention_archives_old_events_into_verifiable_files_and_the_chain_stays_unbroken() {
    for backend in Backend::ALL {
        let archive = tempfile::tempdir().unwrap();
        let config = format!(
            "[audit]\nretention = \"1s\"\nretention_check = \"500ms\"\narchive_dir = \"{}\"\n",
            archive.path().display()
        );
        let server = TestServer::start(bin(), backend, &config).await;
        for name in ["old1", "old2", "old3"] {
            stdout(server.admin(&["user", "add", name]));
        }
        let start = std::time::Instant::now();
        let file = loop {
            let found = std::fs::read_dir(archive.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|x| x == "jsonl"));
            if let Some(f) = found {
                break f;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(15),
                "no archive file"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert!(
            file.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("archive-000000000001-"),
            "{file:?}"
        );
        let key = stdout(audit(&server, &["key"])).trim().to_owned();
        let report = stdout(run_cli(
            bin(),
            &["audit", "verify", file.to_str().unwrap(), "--key", &key],
        ));
        assert!(
            report.starts_with("ok: events 1 to "),
            "{backend:?}: {report}"
        );

        // The live log starts after the archive, and still verifies against the signed tree.
        stdout(server.admin(&["user", "add", "new1"]));
        let live = stdout(audit(&server, &["verify"]));
        assert!(live.starts_with("ok: events "), "{live}");
        assert!(
            !live.starts_with("ok: events 1 to"),
            "archived events are no longer in the database: {live}"
        );
        let archived: Value = serde_json::from_str(&stdout(audit(
            &server,
            &["query", "--action", "audit.archive", "--json"],
        )))
        .unwrap();
        let details = &archived[0]["details"];
        assert_eq!(details["first_seq"], 1);
        assert_eq!(details["file"], file.file_name().unwrap().to_str().unwrap());
        assert_eq!(details["sha256"].as_str().unwrap().len(), 64);
        let out = audit(&server, &["export", "--since-seq", "1", "-o", "/dev/null"]);
        assert!(
            stderr(&out).starts_with("error: events before "),
            "{}",
            stderr(&out)
        );
    }
}

/// One audit identity for a deployment: replicas on one PostgreSQL database publish the same
/// key, and an export made on the survivor after the other stopped, holding checkpoints both
/// signed, verifies offline with the one published key. (When each replica made its own key,
/// such an export could not verify with either.)
#[tokio::test]
async fn replicas_sign_as_one_log() {
    let config = "[audit]\ncheckpoint_interval = \"200ms\"\n[limits]\nper_source_rps = 0\n";
    let mut server = TestServer::start(bin(), Backend::Postgres, config).await;
    // Creating people takes an admin token, reading the log an auditor one (the key is public).
    let admin = server.token("admin", "admin", None);
    let auditor = server.token("aud", "auditor", None);
    let member = server.token("plain", "member", None);
    let replica = server.replica();
    let http = reqwest::Client::new();
    let get = async |url: &str, path: &str| {
        let resp = http
            .get(format!("{url}{path}"))
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.text().await.unwrap()
    };
    let add_user = async |url: &str, name: &str| {
        let body: Value = http
            .post(format!("{url}/graphql"))
            .bearer_auth(&admin)
            .json(&json!({
                "query": "mutation($n: String!) { createUser(input: { name: $n }) { name } }",
                "variables": { "n": name },
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["data"]["createUser"]["name"], name, "{body}");
    };
    let key = get(&server.url, "/v1/audit/public_key").await;
    assert_eq!(
        get(&replica.url, "/v1/audit/public_key").await,
        key,
        "every replica publishes the one key"
    );
    add_user(&server.url, "alice").await;
    add_user(&replica.url, "bob").await;
    // The server signs alice's and bob's events (every 200 ms), then stops; the replica
    // goes on.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    server.stop();
    add_user(&replica.url, "carol").await;
    let mut covered = false;
    for _ in 0..100 {
        let body: Value = http
            .post(format!("{}/graphql", replica.url))
            .bearer_auth(&auditor)
            .json(&json!({ "query": "{ auditCheckpoint { size } auditEvents(first: 1, newestFirst: true) { seq } }" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let signed = body["data"]["auditCheckpoint"]["size"]
            .as_u64()
            .unwrap_or(0);
        let newest = body["data"]["auditEvents"][0]["seq"]
            .as_u64()
            .unwrap_or(u64::MAX);
        if signed >= newest {
            covered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(covered, "the replica signs what came after");

    // A member may not read the log, on the replica either.
    let refused = http
        .get(format!("{}/v1/audit/export", replica.url))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let export = get(&replica.url, "/v1/audit/export").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    std::fs::write(&file, &export).unwrap();
    let offline = stdout(run_cli(
        bin(),
        &[
            "audit",
            "verify",
            file.to_str().unwrap(),
            "--key",
            key.trim(),
        ],
    ));
    assert!(offline.starts_with("ok: events 1 to "), "{offline}");
}
