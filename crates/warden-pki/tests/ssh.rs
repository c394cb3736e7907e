//! Warden's SSH CA and KRLs checked by the real OpenSSH tools: `ssh-keygen -L` reads the
//! certificates and `ssh-keygen -Q` applies the KRL.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

use std::path::Path;
use std::process::Command;

use rand::rngs::OsRng;
use warden_pki::krl::{Revocations, build};
use warden_pki::ssh::{CertRequest, Kind, SshCa, SshError, parse_public_key};

fn ssh_keygen(args: &[&str]) -> std::process::Output {
    Command::new("ssh-keygen")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ssh-keygen is required (apt-get install openssh-client): {e}"))
}

/// A fresh user key made by ssh-keygen itself; returns the public key line and its path.
fn user_key(dir: &Path, name: &str) -> (String, std::path::PathBuf) {
    let path = dir.join(name);
    let out = ssh_keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        name,
        "-f",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (public, path)
}

fn request(public: &str, serial: u64, principals: &[&str]) -> CertRequest {
    CertRequest {
        public_key: parse_public_key(public).unwrap(),
        kind: Kind::User,
        key_id: format!("user:alice req:{serial}"),
        serial,
        principals: principals.iter().map(|p| p.to_string()).collect(),
        valid_after: 1_700_000_000,
        valid_before: 4_000_000_000,
        extensions: vec!["permit-pty".into()],
    }
}

#[test]
fn ssh_keygen_reads_user_and_host_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = SshCa::generate(&mut OsRng).unwrap();
    let (public, path) = user_key(dir.path(), "alice");
    let cert = ca
        .issue(&request(&public, 42, &["alice", "deploy"]), &mut OsRng)
        .unwrap();
    let cert_path = dir.path().join("alice-cert.pub");
    std::fs::write(&cert_path, cert.to_openssh().unwrap()).unwrap();
    let out = ssh_keygen(&["-L", "-f", cert_path.to_str().unwrap()]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listing.contains("Type: ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{listing}"
    );
    assert!(
        listing.contains("Key ID: \"user:alice req:42\""),
        "{listing}"
    );
    assert!(listing.contains("Serial: 42"), "{listing}");
    assert!(
        listing.contains("                alice\n                deploy"),
        "{listing}"
    );
    assert!(listing.contains("permit-pty"), "{listing}");
    assert!(!listing.contains("permit-port-forwarding"), "{listing}");
    assert!(ca.public_key_openssh().starts_with("ssh-ed25519 "));
    // The certificate is for the key ssh-keygen made: its fingerprint matches.
    let key_fp = ssh_keygen(&["-l", "-f", path.with_extension("pub").to_str().unwrap()]);
    let fp = String::from_utf8_lossy(&key_fp.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(
        listing.contains(&format!("Public key: ED25519-CERT {fp}")),
        "{listing}"
    );

    let mut host = request(&public, 7, &["db-1.internal", "10.0.0.5"]);
    host.kind = Kind::Host;
    host.key_id = "host:db-1".into();
    let cert = ca.issue(&host, &mut OsRng).unwrap();
    let host_path = dir.path().join("host-cert.pub");
    std::fs::write(&host_path, cert.to_openssh().unwrap()).unwrap();
    let out = ssh_keygen(&["-L", "-f", host_path.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("host certificate"));
}

#[test]
fn the_krl_revokes_by_serial_and_key_id_as_ssh_keygen_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = SshCa::generate(&mut OsRng).unwrap();
    let (public, _) = user_key(dir.path(), "bob");
    let write_cert = |serial: u64, name: &str| {
        let cert = ca
            .issue(&request(&public, serial, &["bob"]), &mut OsRng)
            .unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, cert.to_openssh().unwrap()).unwrap();
        p
    };
    let revoked = write_cert(1001, "revoked-cert.pub");
    let by_id = write_cert(2002, "by-id-cert.pub");
    let fine = write_cert(3003, "fine-cert.pub");
    let krl = build(
        ca.public_key(),
        &Revocations {
            serials: vec![5, 1001, 1001, 77],
            key_ids: vec!["user:alice req:2002".into()],
        },
        1,
        1_800_000_000,
    )
    .unwrap();
    let krl_path = dir.path().join("revoked.krl");
    std::fs::write(&krl_path, &krl).unwrap();
    let query = |cert: &Path| {
        ssh_keygen(&[
            "-Q",
            "-f",
            krl_path.to_str().unwrap(),
            cert.to_str().unwrap(),
        ])
    };
    assert_eq!(
        query(&revoked).status.code(),
        Some(1),
        "serial 1001 is revoked"
    );
    assert_eq!(query(&by_id).status.code(), Some(1), "key id is revoked");
    let out = query(&fine);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another CA's certificate with a revoked serial is not affected.
    let other = SshCa::generate(&mut OsRng).unwrap();
    let cert = other
        .issue(&request(&public, 1001, &["bob"]), &mut OsRng)
        .unwrap();
    let other_path = dir.path().join("other-cert.pub");
    std::fs::write(&other_path, cert.to_openssh().unwrap()).unwrap();
    assert_eq!(query(&other_path).status.code(), Some(0));
}

#[test]
fn bad_requests_are_refused_with_clear_errors() {
    let ca = SshCa::generate(&mut OsRng).unwrap();
    assert!(
        parse_public_key("ssh-ed25519 notbase64")
            .unwrap_err()
            .to_string()
            .starts_with("invalid SSH public key: ")
    );
    let dir = tempfile::tempdir().unwrap();
    let (public, _) = user_key(dir.path(), "carol");
    let err = ca
        .issue(&request(&public, 1, &["carol,root"]), &mut OsRng)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid principal `carol,root`: use letters, digits, '.', '_', '-' and '@'"
    );
    let mut bad = request(&public, 1, &["carol"]);
    bad.valid_before = bad.valid_after;
    assert_eq!(
        ca.issue(&bad, &mut OsRng).unwrap_err(),
        SshError::BadValidity("valid_before must be after valid_after")
    );
    assert_eq!(
        ca.issue(&request(&public, 1, &[]), &mut OsRng)
            .unwrap_err()
            .to_string(),
        "invalid validity: a certificate needs at least one principal"
    );
    // The CA survives a round trip through its sealed form's plaintext.
    let again = SshCa::from_openssh(&ca.to_openssh().unwrap()).unwrap();
    assert_eq!(again.public_key_openssh(), ca.public_key_openssh());
}

#[test]
fn a_krl_of_100000_serials_builds_quickly_and_deterministically() {
    let ca = SshCa::generate(&mut OsRng).unwrap();
    let revoked = Revocations {
        serials: (0..100_000u64).rev().map(|s| s * 3).collect(),
        key_ids: Vec::new(),
    };
    let a = build(ca.public_key(), &revoked, 9, 1).unwrap();
    let b = build(ca.public_key(), &revoked, 9, 1).unwrap();
    assert_eq!(a, b);
    assert!(a.len() > 800_000);
}
