//! The store's behaviour, identical on SQLite and PostgreSQL: every case runs on both.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions may unwrap too"
)]

use warden_model::{Actor, GroupName, Role, Timestamp, TokenName, UserName};
use warden_store::{DatabaseLocation, NewToken, NewUser, Outcome, PageRequest, Store, StoreError};

mod common;

use common::{ctx, stores};

fn user(name: &str) -> NewUser {
    NewUser {
        name: UserName::new(name).unwrap(),
        display_name: None,
        email: None,
    }
}

#[tokio::test]
async fn users_and_groups_with_their_audit_events() {
    for (store, _db, _dir) in stores().await {
        let backend = store.location().backend();
        let alice = store.create_user(&ctx(1), user("alice")).await.unwrap();
        assert_eq!(alice.display_name, "alice");
        let err = store.create_user(&ctx(2), user("alice")).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "user `alice` already exists",
            "{backend:?}"
        );

        let ops = GroupName::new("ops").unwrap();
        store
            .create_group(&ctx(3), ops.clone(), "Operations".into())
            .await
            .unwrap();
        store
            .add_group_member(&ctx(4), &ops, &alice.name)
            .await
            .unwrap();
        let err = store
            .add_group_member(&ctx(5), &ops, &alice.name)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "user `alice` is already a member of group `ops`"
        );
        let nobody = UserName::new("nobody").unwrap();
        let err = store
            .add_group_member(&ctx(6), &ops, &nobody)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "user `nobody` not found");
        assert_eq!(
            store
                .user_groups(&alice.id, Timestamp::from_millis(0))
                .await
                .unwrap(),
            vec![ops.clone()]
        );

        let disabled = store
            .set_user_disabled(&ctx(7), &alice.name, true)
            .await
            .unwrap();
        assert_eq!(disabled.disabled_at, Some(Timestamp::from_millis(7)));
        let err = store
            .set_user_disabled(&ctx(8), &alice.name, true)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "user `alice` is already disabled");

        let events = store.recent_events(100).await.unwrap();
        let summary: Vec<(&str, Outcome)> = events
            .iter()
            .map(|e| (e.action.as_str(), e.outcome))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("user.create", Outcome::Success),
                ("user.create", Outcome::Failure),
                ("group.create", Outcome::Success),
                ("group.add_member", Outcome::Success),
                ("group.add_member", Outcome::Failure),
                ("group.add_member", Outcome::Failure),
                ("user.disable", Outcome::Success),
                ("user.disable", Outcome::Failure),
            ],
            "{backend:?}"
        );
        let first = &events[0];
        assert_eq!(first.actor_label, "operator");
        assert_eq!(first.actor, serde_json::json!({ "kind": "operator" }));
        assert_eq!(first.auth, "unix_socket");
        assert_eq!(first.target, "user:alice");
        assert_eq!(first.request_id, "req-1");
        assert_eq!(
            events[1].reason.as_deref(),
            Some("user `alice` already exists")
        );
        assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    }
}

#[tokio::test]
async fn pagination_orders_bytewise_on_both_backends() {
    for (store, _db, _dir) in stores().await {
        // Names whose order differs between bytewise and locale-aware collations.
        for name in ["b-2", "b.1", "b_3", "a", "c", "b1"] {
            store.create_user(&ctx(1), user(name)).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut page = PageRequest::first(2);
        loop {
            let got = store.users(&page).await.unwrap();
            seen.extend(got.items.iter().map(|u| u.name.to_string()));
            if !got.has_next {
                break;
            }
            page.after = got.items.last().map(|u| u.name.to_string());
        }
        assert_eq!(
            seen,
            ["a", "b-2", "b.1", "b1", "b_3", "c"],
            "{:?}",
            store.location().backend()
        );

        let last = PageRequest {
            after: None,
            before: Some("c".into()),
            limit: 2,
            from_end: true,
        };
        let got = store.users(&last).await.unwrap();
        let names: Vec<String> = got.items.iter().map(|u| u.name.to_string()).collect();
        assert_eq!(names, ["b1", "b_3"]);
        assert!(got.has_previous);
    }
}

#[tokio::test]
async fn tokens_store_only_hashes_and_revoke_once() {
    for (store, _db, _dir) in stores().await {
        store.create_user(&ctx(1), user("bob")).await.unwrap();
        let new = NewToken {
            id: "0123456789abcdef0123456789abcdef".into(),
            name: TokenName::new("deploy").unwrap(),
            role: Role::Member,
            user: Some(UserName::new("bob").unwrap()),
            secret_hash: "ab".repeat(32),
            expires_at: Timestamp::from_millis(10_000),
        };
        let token = store.create_token(&ctx(2), new.clone()).await.unwrap();
        assert_eq!(token.created_by, "operator");
        let err = store
            .create_token(
                &ctx(3),
                NewToken {
                    id: "ff".repeat(16),
                    ..new.clone()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "token `deploy` already exists");

        let cred = store.token_credential(&token.id).await.unwrap().unwrap();
        assert_eq!(cred.secret_hash, "ab".repeat(32));

        let revoked = store.revoke_token(&ctx(4), "deploy").await.unwrap();
        assert_eq!(revoked.revoked_at, Some(Timestamp::from_millis(4)));
        let err = store.revoke_token(&ctx(5), &token.id).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("token `{}` is already revoked", token.id)
        );
        let err = store.revoke_token(&ctx(6), "deploy").await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }));
        // The name is free again once the old token is revoked.
        store
            .create_token(
                &ctx(7),
                NewToken {
                    id: "ee".repeat(16),
                    ..new
                },
            )
            .await
            .unwrap();
        assert_eq!(store.tokens().await.unwrap().len(), 2);
        let details = &store.recent_events(1).await.unwrap()[0].details;
        assert!(
            !details.to_string().contains(&"ab".repeat(32)),
            "no hash in audit details"
        );
    }
}

#[tokio::test]
async fn denials_are_recorded() {
    for (store, _db, _dir) in stores().await {
        let mut c = ctx(9);
        c.actor = Actor::Anonymous;
        c.source = Some("127.0.0.1".into());
        store
            .record_denial(&c, "auth.token", "graphql", "no bearer token")
            .await
            .unwrap();
        let e = &store.recent_events(1).await.unwrap()[0];
        assert_eq!(
            (
                e.action.as_str(),
                e.outcome,
                e.reason.as_deref(),
                e.source.as_deref(),
                e.auth.as_str()
            ),
            (
                "auth.token",
                Outcome::Denied,
                Some("no bearer token"),
                Some("127.0.0.1"),
                "none"
            )
        );
    }
}

#[tokio::test]
async fn unreachable_database_is_one_clear_line_without_password() {
    let loc = DatabaseLocation::parse("postgres://warden:hunter2@127.0.0.1:1/warden").unwrap();
    let err = Store::open(&loc).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot connect to the database at postgres://warden@127.0.0.1:1/warden: Connection refused"
    );
}

#[tokio::test]
async fn migrating_twice_is_harmless() {
    for (store, _db, _dir) in stores().await {
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        // PostgreSQL's findings texts get their trigram index (pg_trgm is in its contrib).
        assert_eq!(
            store.has_trigram_index().await.unwrap(),
            store.location().backend() == warden_store::Backend::Postgres
        );
    }
}

/// A database user who may not create extensions still migrates, without the trigram index;
/// once allowed, the next start makes it.
#[tokio::test]
async fn postgres_without_pg_trgm_migrates_and_a_later_start_adds_it() {
    use sqlx::Connection;
    let db = warden_testkit::TestDatabase::create().await;
    let role = format!("warden_plain_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::postgres::PgConnection::connect(db.url())
        .await
        .unwrap();
    // Owner of the schema it writes in, but without CREATE on the database, which a trusted
    // extension needs.
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("ALTER SCHEMA public OWNER TO {role}"),
    ] {
        sqlx::query(&sql).execute(&mut admin).await.unwrap();
    }
    let (base, name) = db.url().rsplit_once('/').unwrap();
    let url = base.replacen("postgres@", &format!("{role}@"), 1) + "/" + name;
    let loc = DatabaseLocation::parse(&url).unwrap();
    let store = Store::open(&loc).await.unwrap();
    store.migrate().await.unwrap();
    assert!(!store.has_trigram_index().await.unwrap());
    store.ping().await.unwrap();
    store.pool().close().await;

    sqlx::query(&format!("GRANT CREATE ON DATABASE {name} TO {role}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let store = Store::open(&loc).await.unwrap();
    store.migrate().await.unwrap();
    assert!(store.has_trigram_index().await.unwrap());
    store.pool().close().await;
    let _ = admin.close().await;
    drop(db);
    let mut admin = sqlx::postgres::PgConnection::connect(&warden_testkit::postgres_admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_audit_log_is_a_gapless_merkle_tree_even_under_concurrent_writes() {
    use std::sync::Arc;
    use warden_audit::{
        Frontier, NodeId, consistency_proof, inclusion_proof, verify_consistency, verify_inclusion,
    };

    for (store, _db, _dir) in stores().await {
        let store = Arc::new(store);
        let backend = store.location().backend();
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(
                    async move { store.create_user(&ctx(i), user(&format!("u{i:02}"))).await },
                )
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        store.create_user(&ctx(99), user("u00")).await.unwrap_err();
        let size = store.audit_size().await.unwrap();
        assert_eq!(size, 25, "{backend:?}");

        // Recompute every leaf from its content: the stored tree must agree.
        let events = store.event_range(1, size).await.unwrap();
        let seqs: Vec<u64> = events.iter().map(|(e, _)| e.seq).collect();
        assert_eq!(seqs, (1..=size).collect::<Vec<_>>());
        let mut tree = Frontier::new();
        for (event, recorded) in &events {
            assert_eq!(&event.leaf_hash(), recorded, "event {}", event.seq);
            tree.push(event.leaf_hash());
        }
        let stored = store.audit_frontier(size).await.unwrap();
        assert_eq!(stored.root(), tree.root());

        // Proofs from stored nodes verify against roots recomputed from the events.
        let old = store.audit_frontier(10).await.unwrap();
        let ids: Vec<NodeId> = (0..6)
            .flat_map(|l| (0..32).map(move |i| NodeId { level: l, index: i }))
            .collect();
        let nodes: std::collections::BTreeMap<NodeId, warden_audit::Hash> =
            store.audit_nodes(&ids).await.unwrap().into_iter().collect();
        let path = inclusion_proof(6, size, |id| nodes.get(&id).copied()).unwrap();
        assert!(verify_inclusion(6, size, &events[6].1, &path, &tree.root()));
        let proof = consistency_proof(10, size, |id| nodes.get(&id).copied()).unwrap();
        assert!(verify_consistency(
            10,
            size,
            &old.root(),
            &tree.root(),
            &proof
        ));
    }
}

/// Committed changes reach subscribers: in this process at once, and on PostgreSQL in every
/// other process on the database through LISTEN/NOTIFY.
#[tokio::test]
async fn committed_changes_reach_every_process_listening() {
    for (store, db, _dir) in stores().await {
        let backend = store.location().backend();
        let mut here = store.subscribe();
        // A second process on the same database, listening.
        let other = match &db {
            Some(db) => {
                let other = std::sync::Arc::new(
                    Store::open(&DatabaseLocation::parse(db.url()).unwrap())
                        .await
                        .unwrap(),
                );
                let mut told = other.subscribe();
                tokio::spawn(other.clone().listen());
                // It says `*` once listening.
                let first = tokio::time::timeout(std::time::Duration::from_secs(10), told.recv())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(*first, vec!["*".to_owned()]);
                Some((other, told))
            }
            None => None,
        };
        store.create_user(&ctx(1), user("alice")).await.unwrap();
        assert_eq!(
            *here.recv().await.unwrap(),
            vec!["user.create".to_owned()],
            "{backend:?}"
        );
        if let Some((_other, mut told)) = other {
            let got = tokio::time::timeout(std::time::Duration::from_secs(10), told.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(*got, vec!["user.create".to_owned()]);
        }
    }
}

/// Disabling a person revokes the certificates stored with their id, their own and the
/// proxy's session certificates for them, and nobody else's: not a look-alike name's (`_` is a
/// LIKE wildcard), and not a certificate whose key id names them but that was issued to
/// someone else. Certificates stored before the id was (no holder) are matched by key id.
#[tokio::test]
async fn offboarding_revokes_certificates_by_their_holder_id() {
    for (store, _db, _dir) in stores().await {
        let backend = store.location().backend();
        let alice = store.create_user(&ctx(1), user("a_ice")).await.unwrap();
        let other = store.create_user(&ctx(2), user("abice")).await.unwrap();
        let ca = store
            .add_ca_keys(
                &ctx(3),
                warden_model::Change::CaCreate,
                "ssh-user",
                &[("ssh-user", "ssh-ed25519 AAAA test".into(), "sealed".into())],
                None,
            )
            .await
            .unwrap();
        let ca_key_id = ca[0].id.clone();
        let far = 4_000_000_000;
        let certs = [
            // Hers, by id: her own and a session's for her.
            (1, "user:a_ice token:t1", Some(alice.id.clone()), true),
            (2, "session:s1 user:a_ice", Some(alice.id.clone()), true),
            // Hers from before the id was stored: matched by key id.
            (3, "user:a_ice token:t0", None, true),
            // A look-alike's, which `_` as a wildcard would match.
            (4, "user:abice token:t2", Some(other.id.clone()), false),
            (5, "session:s2 user:abice", None, false),
            // Held by the other person, whatever its text says.
            (6, "user:a_ice token:t3", Some(other.id.clone()), false),
        ];
        for (serial, key_id, holder, _) in &certs {
            let cert = warden_store::NewSshCertificate {
                serial: *serial,
                ca_key_id: ca_key_id.clone(),
                kind: "user",
                key_id: (*key_id).to_owned(),
                holder_user_id: holder.clone(),
                principals: vec!["ops".into()],
                valid_after: 0,
                valid_before: far,
                policy: serde_json::Value::Null,
            };
            store
                .issue_ssh_certificate(&ctx(4), &cert, || Ok(()))
                .await
                .unwrap();
        }
        store
            .set_user_disabled(&ctx(5), &alice.name, true)
            .await
            .unwrap();
        for (serial, key_id, _, revoked) in &certs {
            let live = store
                .ssh_user_certificate_live(*serial, key_id)
                .await
                .unwrap()
                .is_some();
            assert_eq!(
                live, !revoked,
                "{backend:?}: certificate {serial} ({key_id})"
            );
        }
        let events = store.recent_events(20).await.unwrap();
        let disable = events.iter().find(|e| e.action == "user.disable").unwrap();
        assert_eq!(
            disable.details["ssh_certificates_revoked"], 3,
            "{backend:?}: {:?}",
            disable.details
        );
    }
}

/// Processes that follow commits hear of changes, by name, and never of records that changed
/// nothing: a denial does not wake the proxy.
#[tokio::test]
async fn only_changes_reach_the_processes_that_follow_commits() {
    for (store, _db, _dir) in stores().await {
        let backend = store.location().backend();
        let mut changes = store.subscribe();
        store
            .record_denial(&ctx(1), "api.read_audit", "audit", "no policy permits it")
            .await
            .unwrap();
        store.create_user(&ctx(2), user("carol")).await.unwrap();
        let heard = changes.recv().await.unwrap();
        assert_eq!(heard.as_slice(), ["user.create"], "{backend:?}");
        assert!(
            changes.try_recv().is_err(),
            "{backend:?}: nothing else was heard"
        );
    }
}

#[tokio::test]
async fn a_dead_proxys_sessions_end_when_its_lease_runs_out() {
    let session = |id: &str, proxy: Option<&str>| warden_store::SshSession {
        id: id.to_owned(),
        principal: "user:alice".to_owned(),
        login: "alice".to_owned(),
        host: "web-1".to_owned(),
        source: None,
        started_at: Timestamp::from_millis(1_000),
        ended_at: None,
        end_reason: None,
        recordings: serde_json::json!([]),
        proxy: proxy.map(str::to_owned),
    };
    for (store, _db, _dir) in stores().await {
        let backend = store.location().backend();
        let at = Timestamp::from_millis;
        store
            .renew_ssh_proxy_lease("p-dead", "warden proxy on a (pid 1)", at(1_000), at(2_000))
            .await
            .unwrap();
        store
            .renew_ssh_proxy_lease("p-live", "server on b (pid 2)", at(1_000), at(2_000))
            .await
            .unwrap();
        for (id, proxy) in [
            ("s-dead", Some("p-dead")),
            ("s-live", Some("p-live")),
            ("s-old", None),
        ] {
            let details = serde_json::json!({});
            store
                .start_ssh_session(&ctx(1_000), &session(id, proxy), details)
                .await
                .unwrap();
        }
        // Within the lease nothing ends; the live proxy renews, the dead one does not.
        assert_eq!(
            store
                .end_ssh_sessions_of_lost_proxies(&ctx(1_500))
                .await
                .unwrap(),
            0
        );
        store
            .renew_ssh_proxy_lease("p-live", "server on b (pid 2)", at(1_900), at(2_900))
            .await
            .unwrap();
        assert_eq!(
            store
                .end_ssh_sessions_of_lost_proxies(&ctx(2_500))
                .await
                .unwrap(),
            1,
            "{backend:?}"
        );
        // Once only, however many replicas' timers run.
        assert_eq!(
            store
                .end_ssh_sessions_of_lost_proxies(&ctx(2_600))
                .await
                .unwrap(),
            0
        );
        let all = store.ssh_sessions(false, 10).await.unwrap();
        let dead = all.iter().find(|s| s.id == "s-dead").unwrap();
        assert_eq!(dead.ended_at, Some(at(2_500)), "{backend:?}");
        assert_eq!(
            dead.end_reason.as_deref(),
            Some(
                "its proxy (warden proxy on a (pid 1)) stopped: its lease ran out at 1970-01-01T00:00:02.000Z"
            ),
            "{backend:?}"
        );
        // A proxy that was only cut off from the database sees the end requested.
        assert_eq!(
            store.ssh_session_end_requested("s-dead").await.unwrap(),
            dead.end_reason
        );
        let mut open: Vec<String> = store
            .ssh_sessions(true, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        open.sort();
        assert_eq!(open, ["s-live", "s-old"], "{backend:?}");
        let events = store.recent_events(10).await.unwrap();
        let end = events
            .iter()
            .find(|e| e.action == "ssh.session.end")
            .unwrap();
        assert_eq!(
            end.details["reason"].as_str(),
            dead.end_reason.as_deref(),
            "{backend:?}"
        );
        assert_eq!(end.actor_label, "operator", "{backend:?}");
        assert_eq!(end.target, "host:web-1");
    }
}

#[tokio::test]
async fn one_replica_at_a_time_holds_the_audit_signers_lease() {
    for (store, _db, _dir) in stores().await {
        let backend = store.location().backend();
        let at = Timestamp::from_millis;
        assert!(
            store
                .take_audit_signer("a", at(1_000), at(4_000))
                .await
                .unwrap()
        );
        assert!(
            !store
                .take_audit_signer("b", at(2_000), at(5_000))
                .await
                .unwrap(),
            "{backend:?}: a's lease is live"
        );
        assert!(
            store
                .take_audit_signer("a", at(3_000), at(6_000))
                .await
                .unwrap()
        );
        assert!(
            !store
                .take_audit_signer("b", at(5_999), at(9_000))
                .await
                .unwrap()
        );
        // a stopped renewing: once its lease has run out, b takes over, and a is refused.
        assert!(
            store
                .take_audit_signer("b", at(6_001), at(9_000))
                .await
                .unwrap(),
            "{backend:?}"
        );
        assert!(
            !store
                .take_audit_signer("a", at(6_500), at(9_500))
                .await
                .unwrap()
        );

        // The signing key is kept once: the second server to keep one gets the first's.
        assert_eq!(store.audit_signing_key().await.unwrap(), None);
        let first = store
            .insert_audit_signing_key("example.com/audit", "v1.first")
            .await
            .unwrap();
        let second = store
            .insert_audit_signing_key("example.com/audit", "v1.second")
            .await
            .unwrap();
        assert_eq!(
            first,
            ("example.com/audit".to_owned(), "v1.first".to_owned())
        );
        assert_eq!(second, first, "{backend:?}");
    }
}

#[tokio::test]
async fn a_compliance_test_is_recorded_when_its_state_changes_and_only_then() {
    for (store, _db, _dir) in stores().await {
        let backend = store.location().backend();
        let details = |n: u64| serde_json::json!({ "exceptions": n });
        let steps = [
            (true, 0, true, "the first state seen is recorded"),
            (true, 0, false, "still passing: nothing new"),
            (false, 2, true, "it starts failing"),
            (
                false,
                3,
                false,
                "still failing, with one more exception: nothing new",
            ),
            (true, 0, true, "it recovers"),
        ];
        for (i, (passing, exceptions, news, why)) in steps.into_iter().enumerate() {
            let recorded = store
                .record_compliance_state(
                    &ctx(i64::try_from(i).unwrap() + 1),
                    "access-review",
                    passing,
                    exceptions,
                    details(exceptions),
                )
                .await
                .unwrap();
            assert_eq!(recorded, news, "{backend:?}: step {i}: {why}");
        }
        let mut recorded = store.recent_events(10).await.unwrap();
        recorded.sort_by_key(|e| e.seq);
        let events: Vec<(String, String)> = recorded
            .into_iter()
            .filter(|e| e.action.starts_with("compliance.test."))
            .map(|e| (e.action, e.target))
            .collect();
        let target = "compliance:access-review".to_owned();
        assert_eq!(
            events,
            [
                ("compliance.test.pass".to_owned(), target.clone()),
                ("compliance.test.fail".to_owned(), target.clone()),
                ("compliance.test.pass".to_owned(), target),
            ],
            "{backend:?}"
        );
    }
}
