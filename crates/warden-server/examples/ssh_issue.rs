//! SSH user certificates per second through the server's issuing path: parse the requester's
//! key, sign with the CA opened from its sealed form, record the certificate and its audit
//! event (group-committed, durable), from many concurrent requests, as the GraphQL mutation
//! does after authorization. Compared in the same run with raw Ed25519 signing on both cores.
//!
//! Run: `cargo run --release -p warden-server --example ssh_issue [count] [concurrency]`
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark binary: failures abort it"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::OsRng;
use warden_model::{Actor, Holder, KeyId, Role, Timestamp, UserName};
use warden_pki::seal::Kek;
use warden_pki::ssh::{Kind, SshCa};
use warden_server::ca::{Authorities, SshIssue};
use warden_store::{AuditContext, DatabaseLocation, Store};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let concurrency: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(256);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(&DatabaseLocation::in_data_dir(dir.path()))
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let kek = Kek::generate(&mut OsRng);
    let authorities = Authorities::start(store.clone(), kek, "bench", "bench.local")
        .await
        .unwrap();
    let keys: Arc<Vec<String>> = Arc::new(
        (0..256)
            .map(|_| SshCa::generate(&mut OsRng).unwrap().public_key_openssh())
            .collect(),
    );

    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (authorities, keys, next) = (authorities.clone(), keys.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let name = UserName::new(format!("u{}", i % 1000)).unwrap();
                    let ctx = AuditContext {
                        actor: Actor::User {
                            name: name.clone(),
                            token_id: "bench".into(),
                            role: Some(Role::Member),
                        },
                        request_id: format!("r{i}"),
                        source: Some("127.0.0.1".into()),
                        now: Timestamp::from_system(SystemTime::now()),
                    };
                    let key = keys.get(i % keys.len()).unwrap();
                    let key_id = KeyId::token(Holder::User(name.clone()), "bench").expect("key id");
                    let ttl = Duration::from_secs(8 * 3600);
                    authorities
                        .issue(
                            &ctx,
                            SshIssue {
                                kind: Kind::User,
                                public_key: key,
                                key_id,
                                holder_user_id: None,
                                principals: vec![name.to_string()],
                                ttl,
                                port_forwarding: false,
                                policy: serde_json::Value::Null,
                            },
                        )
                        .await
                        .expect("issue");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let took = start.elapsed();
    let rate = count as f64 / took.as_secs_f64();
    println!(
        "issued {count} SSH user certificates with durable audit records, {concurrency} concurrent: {:.2} s, {rate:.0}/s",
        took.as_secs_f64()
    );

    // The limit: raw Ed25519 signatures of a certificate-sized message on both cores.
    let per_core = count / 2;
    let t = Instant::now();
    let signers: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                use ed25519_dalek::Signer;
                let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
                let msg = [5u8; 350];
                for _ in 0..per_core {
                    std::hint::black_box(key.sign(&msg));
                }
            })
        })
        .collect();
    for s in signers {
        s.join().unwrap();
    }
    let raw = (per_core * 2) as f64 / t.elapsed().as_secs_f64();
    println!(
        "raw Ed25519 signing on 2 threads: {raw:.0}/s; issuing runs at {:.0}% of it",
        100.0 * rate / raw
    );
    println!(
        "audit events in the log: {}",
        store.audit_size().await.unwrap()
    );

    // ssh-keygen -s on both cores: two processes, each signing half the keys in one run
    // (its fastest use), with no audit record at all.
    let n = count.min(4000);
    let ca = dir.path().join("ca");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&ca)
        .output()
        .expect("ssh-keygen (apt-get install openssh-client)");
    assert!(made.status.success());
    let halves: Vec<Vec<String>> = (0..2)
        .map(|half| {
            (0..n / 2)
                .map(|i| {
                    let p = dir.path().join(format!("k{half}-{i}.pub"));
                    std::fs::write(&p, keys.get(i % keys.len()).unwrap()).unwrap();
                    p.to_str().unwrap().to_owned()
                })
                .collect()
        })
        .collect();
    let t = Instant::now();
    let children: Vec<_> = halves
        .iter()
        .map(|paths| {
            std::process::Command::new("ssh-keygen")
                .args(["-q", "-s"])
                .arg(&ca)
                .args(["-I", "bench", "-n", "deploy", "-V", "+8h", "-z", "1"])
                .args(paths)
                .spawn()
                .expect("ssh-keygen -s")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let keygen = (n / 2 * 2) as f64 / t.elapsed().as_secs_f64();
    println!(
        "ssh-keygen -s, 2 processes signing {} keys: {keygen:.0}/s; Warden's issuing path with audit is {:.1}x faster",
        n / 2 * 2,
        rate / keygen
    );
}
