//! PKI core benchmark: SSH user certificates per second through `SshCa::issue` (parse the
//! requester's key, sign, encode), against raw Ed25519 signing of the same count and against
//! `ssh-keygen -s` signing the same keys; and the time to build a KRL of 100,000 serials.
//! The server's issuing path adds an audit write per certificate (group-committed; see the
//! audit benchmark) once the CA is wired into the server.
//!
//! Run: `cargo run --release -p warden-pki --example bench [count]`
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark binary: failures abort it"
)]

use std::process::Command;
use std::time::Instant;

use ed25519_dalek::Signer;
use rand::rngs::OsRng;
use warden_pki::krl::{Revocations, build};
use warden_pki::ssh::{CertRequest, Kind, SshCa, parse_public_key};

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let ca = SshCa::generate(&mut OsRng).unwrap();
    // Distinct requester keys, made once, as text (as they arrive over the API).
    let keys: Vec<String> = (0..count.min(1000))
        .map(|i| SshCa::generate(&mut OsRng).unwrap().public_key_openssh() + &format!(" user{i}"))
        .collect();

    let t = Instant::now();
    for (i, key) in keys.iter().cycle().take(count).enumerate() {
        let public = parse_public_key(key).unwrap();
        let req = CertRequest {
            public_key: public,
            kind: Kind::User,
            key_id: format!("user:u{i} req:{i}"),
            serial: i as u64 + 1,
            principals: vec![format!("u{i}"), "deploy".into()],
            valid_after: 1_800_000_000,
            valid_before: 1_800_028_800,
            extensions: vec!["permit-pty".into()],
        };
        let cert = ca.issue(&req, &mut OsRng).unwrap();
        std::hint::black_box(cert.to_openssh().unwrap());
    }
    let issue = t.elapsed();
    println!(
        "issue {count} user certificates (parse key, sign, encode): {:.2} s, {:.0}/s",
        issue.as_secs_f64(),
        count as f64 / issue.as_secs_f64()
    );

    let raw_key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let message = vec![7u8; 300];
    let t = Instant::now();
    for _ in 0..count {
        std::hint::black_box(raw_key.sign(&message));
    }
    let raw = t.elapsed();
    println!(
        "raw Ed25519 signatures of 300 bytes: {:.0}/s (issuing runs at {:.0}% of it)",
        count as f64 / raw.as_secs_f64(),
        100.0 * raw.as_secs_f64() / issue.as_secs_f64()
    );

    // ssh-keygen -s: one process signing many keys, the fastest way to use it.
    let ca_path = dir.path().join("ca");
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            ca_path.to_str().unwrap(),
        ])
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success());
    let n = count.min(2000);
    let mut paths = Vec::new();
    for (i, key) in keys.iter().cycle().take(n).enumerate() {
        let p = dir.path().join(format!("k{i}.pub"));
        std::fs::write(&p, key).unwrap();
        paths.push(p.to_str().unwrap().to_owned());
    }
    let t = Instant::now();
    let mut args = vec![
        "-q",
        "-s",
        ca_path.to_str().unwrap(),
        "-I",
        "bench",
        "-n",
        "deploy",
        "-V",
        "+8h",
        "-z",
        "1",
    ];
    args.extend(paths.iter().map(String::as_str));
    let out = Command::new("ssh-keygen")
        .args(&args)
        .output()
        .expect("ssh-keygen -s");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keygen = t.elapsed();
    let keygen_rate = n as f64 / keygen.as_secs_f64();
    println!(
        "ssh-keygen -s signing {n} keys in one process: {:.2} s, {keygen_rate:.0}/s (Warden is {:.1}x)",
        keygen.as_secs_f64(),
        (count as f64 / issue.as_secs_f64()) / keygen_rate
    );

    let revoked = Revocations {
        serials: (1..=100_000u64).collect(),
        key_ids: Vec::new(),
    };
    let t = Instant::now();
    let krl = build(ca.public_key(), &revoked, 1, 1_800_000_000).unwrap();
    println!(
        "KRL with 100,000 revoked serials: {} bytes in {:.1} ms",
        krl.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
}
