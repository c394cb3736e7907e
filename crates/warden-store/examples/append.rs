//! Audit append benchmark: concurrent writers record events through the store's one write path,
//! each acknowledged only after a durable commit. Prints events per second.
//!
//! Run: `cargo run --release -p warden-store --example append [sqlite|postgres://URL] [events] [writers]`
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark binary: failures abort it"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use serde_json::json;
use warden_model::{Actor, Timestamp};
use warden_store::{AuditContext, DatabaseLocation, Outcome, Store};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).cloned().unwrap_or_else(|| "sqlite".into());
    let total: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let writers: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(64);
    let dir = tempfile::tempdir().unwrap();
    let location = if target == "sqlite" {
        DatabaseLocation::in_data_dir(dir.path())
    } else {
        DatabaseLocation::parse(&target).expect("a postgres:// URL")
    };
    let store = Arc::new(Store::open(&location).await.unwrap());
    store.migrate().await.unwrap();
    let start_size = store.audit_size().await.unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let ctx = AuditContext {
                        actor: Actor::Operator,
                        request_id: format!("bench-{w}-{i}"),
                        source: Some("127.0.0.1".into()),
                        now: Timestamp::from_system(SystemTime::now()),
                    };
                    store
                        .record(
                            &ctx,
                            "bench.event",
                            &format!("thing:{i}"),
                            json!({ "i": i }),
                            Outcome::Success,
                            None,
                        )
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed();
    let size = store.audit_size().await.unwrap();
    assert_eq!(
        size - start_size,
        total,
        "every acknowledged event is in the log"
    );
    // Inclusion proofs as the server builds them: learn the nodes, fetch them in one query,
    // build the path, verify it against the root.
    let root = store.audit_frontier(size).await.unwrap().root();
    let samples = 1000u64;
    let proof_start = Instant::now();
    for i in 0..samples {
        let index = (i * 7919) % size;
        let mut wanted = Vec::new();
        warden_audit::inclusion_proof(index, size, |id| {
            wanted.push(id);
            Some([0u8; 32])
        })
        .unwrap();
        let nodes: std::collections::BTreeMap<_, _> = store
            .audit_nodes(&wanted)
            .await
            .unwrap()
            .into_iter()
            .collect();
        let path =
            warden_audit::inclusion_proof(index, size, |id| nodes.get(&id).copied()).unwrap();
        let leaf = store
            .audit_nodes(&[warden_audit::NodeId { level: 0, index }])
            .await
            .unwrap()
            .first()
            .unwrap()
            .1;
        assert!(warden_audit::verify_inclusion(
            index, size, &leaf, &path, &root
        ));
    }
    let per_proof = proof_start.elapsed() / u32::try_from(samples).unwrap();
    println!(
        "{} inclusion proof at {size} events (one node query, build, verify): {:.0} µs",
        location.backend_name(),
        per_proof.as_secs_f64() * 1e6
    );
    println!(
        "{} append: {total} events, {writers} writers, {:.2} s, {:.0} events/s (durable commits)",
        location.backend_name(),
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
}
