//! The audit log knows its own end: what someone with the database (and, for some, the data
//! directory) but not the KEK can do to it while the server is stopped, and the one line the
//! server answers with at its next start. On SQLite and PostgreSQL.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test"
)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use warden_model::{Actor, Timestamp};
use warden_store::{AuditContext, DatabaseLocation, Outcome, Store};
use warden_testkit::{Backend, TestServer, run_cli};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn ok(server: &TestServer, args: &[&str]) {
    let out = server.admin(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a few events and a checkpoint covering them; returns the checkpoint's note.
async fn some_history(server: &TestServer, admin: &str, n: usize) -> (u64, String) {
    for i in 0..n {
        ok(server, &["user", "add", &format!("u{i}-{}", rand_suffix())]);
    }
    let (_, body) = server
        .graphql(
            Some(admin),
            "{ auditCheckpoint { size note } }",
            Value::Null,
        )
        .await;
    let size = body["data"]["auditCheckpoint"]["size"].as_u64().unwrap();
    let note = body["data"]["auditCheckpoint"]["note"]
        .as_str()
        .unwrap()
        .to_owned();
    (size, note)
}

fn rand_suffix() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

async fn raw(server: &TestServer) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&server.database_url())
        .await
        .unwrap()
}

/// Deletes every event after `keep`, their checkpoints and tree nodes, as someone with the
/// database would to hide what happened.
async fn truncate(server: &TestServer, keep: u64) {
    let pool = raw(server).await;
    let keep = i64::try_from(keep).unwrap();
    // A node at (level, idx) covers leaves up to (idx + 1) * 2^level.
    let nodes = if server.database_url().starts_with("sqlite:") {
        "DELETE FROM audit_nodes WHERE (idx + 1) * (1 << level) > $1"
    } else {
        "DELETE FROM audit_nodes WHERE (idx + 1) * (1::bigint << level::int) > $1"
    };
    for sql in [
        "DELETE FROM audit_log WHERE seq > $1",
        "DELETE FROM audit_checkpoints WHERE size > $1",
        nodes,
        "UPDATE audit_head SET size = $1 WHERE id = 1",
    ] {
        sqlx::query(sql).bind(keep).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

#[tokio::test]
async fn a_forged_event_appended_while_stopped_is_named_and_refused() {
    for backend in Backend::ALL {
        let mut server = TestServer::start(bin(), backend, "[limits]\nper_source_rps = 0\n").await;
        let admin = server.token("admin", "admin", None);
        some_history(&server, &admin, 3).await;
        server.stop();
        // Warden's own write path, without the server's MAC key: a perfect row, nodes and head.
        let store = Store::open(&DatabaseLocation::parse(&server.database_url()).unwrap())
            .await
            .unwrap();
        let ctx = AuditContext {
            actor: Actor::Operator,
            request_id: "forged".to_owned(),
            source: None,
            now: Timestamp::from_system(SystemTime::now()),
        };
        store
            .record(
                &ctx,
                "user.disable",
                "user:alice",
                Value::Null,
                Outcome::Success,
                None,
            )
            .await
            .unwrap();
        let size = store.audit_size().await.unwrap();
        // And a checkpoint over it, signed by a key of the forger's own.
        let root = store.audit_frontier(size).await.unwrap().root();
        let forger = warden_audit::SigningKey::from_seed("localhost/audit", &[9; 32]).unwrap();
        let note = forger.sign(&warden_audit::Checkpoint {
            origin: "localhost/audit".to_owned(),
            size,
            root,
        });
        store
            .insert_checkpoint(size, Timestamp::from_system(SystemTime::now()), &note)
            .await
            .unwrap();
        store.close().await;
        let err = server.start_refused();
        assert!(
            err.contains(&format!(
                "audit event {size} (`user.disable` by operator) carries no valid MAC: it was not written by a Warden server; restore the database from a backup"
            )),
            "{backend:?}: {err}"
        );
        // Deleting the MAC key's row does not turn the MACs off.
        let pool = raw(&server).await;
        sqlx::query("DELETE FROM audit_mac_keys")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let err = server.start_refused();
        assert!(
            err.contains("the audit MAC key is missing from the database, but the log was written with one: restore the database from a backup"),
            "{backend:?}: {err}"
        );
    }
}

#[tokio::test]
async fn deleting_the_last_events_and_their_checkpoints_is_noticed() {
    for backend in Backend::ALL {
        let outside = tempfile::tempdir().unwrap();
        let mut server = TestServer::start(
            bin(),
            backend,
            &format!(
                "[limits]\nper_source_rps = 0\n[[audit.sink]]\nkind = \"jsonl\"\nname = \"copy\"\ndir = \"{}\"\n",
                outside.path().display()
            ),
        )
        .await;
        let admin = server.token("admin", "admin", None);
        let (kept, kept_note) = some_history(&server, &admin, 2).await;
        let (size, _) = some_history(&server, &admin, 3).await;
        assert!(size > kept + 2);
        // The JSONL sink holds the checkpoints as well as the events.
        let sink = outside.path().join("checkpoints.jsonl");
        let mut copied = String::new();
        for _ in 0..100 {
            copied = std::fs::read_to_string(&sink).unwrap_or_default();
            if copied.contains(&format!("\"size\":{size}")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(copied.contains(&format!("\"size\":{size}")), "{copied}");
        server.stop();
        truncate(&server, kept).await;
        let err = server.start_refused();
        assert!(
            err.contains(&format!(
                "the audit log ends at event {kept}, but {} holds {size} events: events were deleted; restore the database from a backup",
                server.data_dir.canonicalize().unwrap().join("audit-head").display()
            )),
            "{backend:?}: {err}"
        );
        // With the data directory's copy gone too, the server starts; the sink's copy still
        // proves the truncation, and an older checkpoint is still extended.
        let _ = std::fs::remove_file(server.data_dir.join("audit-head"));
        server.restart();
        let verify = |note: &Path| {
            run_cli(
                bin(),
                &[
                    "audit",
                    "--data-dir",
                    server.data_dir.to_str().unwrap(),
                    "verify",
                    "--checkpoint",
                    note.to_str().unwrap(),
                ],
            )
        };
        let out = verify(&sink);
        assert!(!out.status.success());
        // The sink's newest copy holds at least `size` events; the log now holds fewer.
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(said.contains("the log was truncated: it holds "), "{said}");
        assert!(
            said.contains("but the checkpoint kept outside holds "),
            "{said}"
        );
        let old = server.data_dir.join("old.note");
        std::fs::write(&old, &kept_note).unwrap();
        let out = verify(&old);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: the log of "));
    }
}

#[tokio::test]
async fn a_deleted_signing_key_stops_the_server() {
    for backend in Backend::ALL {
        let mut server = TestServer::start(bin(), backend, "").await;
        let admin = server.token("admin", "admin", None);
        some_history(&server, &admin, 1).await;
        server.stop();
        // The key lives in the database, sealed under the KEK; its row deleted, the server
        // will not sign the log with a new one.
        let pool = raw(&server).await;
        sqlx::query("DELETE FROM audit_signing_key")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let err = server.start_refused();
        assert!(
            err.contains(
                "the audit signing key is missing from the database, but this log was signed with it: restore the database from a backup, or start once a server whose data directory still holds audit-signing.key (Warden will not sign the log with a new key)"
            ),
            "{backend:?}: {err}"
        );
    }
}

/// A data directory from before the key moved to the database: its `audit-signing.key` is
/// kept as the log's key, but only if it signed the log.
#[tokio::test]
async fn a_signing_key_file_from_before_is_kept_only_if_it_signed_the_log() {
    for backend in Backend::ALL {
        let mut server = TestServer::start(bin(), backend, "").await;
        let admin = server.token("admin", "admin", None);
        some_history(&server, &admin, 1).await;
        let (_, _, published) = server.get("/v1/audit/public_key").await;
        let origin = published.split('+').next().unwrap().to_owned();
        server.stop();
        let seed = [0x7f_u8; 32];
        let file = format!(r#"{{"name":"{origin}","seed":"{}"}}"#, "7f".repeat(32));
        std::fs::write(server.data_dir.join("audit-signing.key"), &file).unwrap();
        let pool = raw(&server).await;
        sqlx::query("DELETE FROM audit_signing_key")
            .execute(&pool)
            .await
            .unwrap();

        // That key did not sign this log: refused, and nothing kept.
        let err = server.start_refused();
        assert!(
            err.contains(
                "audit-signing.key in the data directory did not sign this log (checkpoint "
            ),
            "{backend:?}: {err}"
        );
        let kept: Option<String> = sqlx::query_scalar("SELECT name FROM audit_signing_key")
            .fetch_optional(&pool)
            .await
            .unwrap();
        assert_eq!(kept, None, "{backend:?}");

        // A log it could have signed (no checkpoint yet): kept, and published.
        sqlx::query("DELETE FROM audit_checkpoints")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let _ = std::fs::remove_file(server.data_dir.join("audit-head"));
        server.crash_and_restart();
        let (_, _, now_published) = server.get("/v1/audit/public_key").await;
        let expected = warden_audit::SigningKey::from_seed(&origin, &seed)
            .unwrap()
            .verifier()
            .to_string();
        assert_eq!(now_published.trim(), expected, "{backend:?}");
    }
}

#[tokio::test]
async fn a_clean_restart_verifies_and_goes_on() {
    for backend in Backend::ALL {
        let mut server = TestServer::start(bin(), backend, "").await;
        let admin = server.token("admin", "admin", None);
        some_history(&server, &admin, 2).await;
        // Events after the last checkpoint, then a crash: the next start checks their MACs.
        ok(&server, &["user", "add", "late"]);
        server.crash_and_restart();
        ok(&server, &["user", "add", "later"]);
        let out = run_cli(
            bin(),
            &[
                "audit",
                "--data-dir",
                server.data_dir.to_str().unwrap(),
                "verify",
            ],
        );
        assert!(
            out.status.success(),
            "{backend:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
