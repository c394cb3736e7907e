//! A ready SSH lab for proxy tests and benchmarks: a server with alice in `ops`; host `db-1`
//! (team=ops, env=prod) joined by the real agent with a stock sshd on the address it
//! registered; `web-1` (team=web) in the inventory only; alice's key with a Warden certificate
//! for `alice` and `root`; Warden's host CA as the only trust for hosts.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::{Backend, Sshd, TestServer, free_port, ssh_keygen_ed25519};

/// The lab.
#[derive(Debug)]
pub struct SshLab {
    /// The server, with its proxy.
    pub server: TestServer,
    /// db-1's sshd.
    pub sshd: Sshd,
    /// db-1's sshd port.
    pub port: u16,
}

/// How an [`SshLab`] differs from the default.
#[derive(Debug, Clone, Copy)]
pub struct LabOptions<'a> {
    /// The server's database.
    pub backend: Backend,
    /// More `[ssh]` settings for the server.
    pub ssh: &'a str,
    /// Environment for the server process.
    pub env: &'a [(&'a str, &'a str)],
    /// sshd settings before the agent's `Include` (sshd keeps the first value it reads).
    pub sshd_first: &'a str,
    /// Server settings before any table (`public_url = …`), and tables of their own.
    pub top: &'a str,
    /// The HTTP port (0: any free one).
    pub port: u16,
}

impl Default for LabOptions<'_> {
    fn default() -> Self {
        LabOptions {
            backend: Backend::Sqlite,
            ssh: "",
            env: &[],
            sshd_first: "",
            top: "",
            port: 0,
        }
    }
}

impl SshLab {
    /// Sets the lab up, keeping its files in `d`.
    pub async fn start(bin: &Path, d: &Path) -> SshLab {
        Self::start_with(bin, d, "").await
    }

    /// As [`SshLab::start`], with more `[ssh]` settings (`idle_timeout = "2s"`).
    pub async fn start_with(bin: &Path, d: &Path, ssh: &str) -> SshLab {
        Self::start_opts(
            bin,
            d,
            &LabOptions {
                ssh,
                ..LabOptions::default()
            },
        )
        .await
    }

    /// As [`SshLab::start`], set up as `options` say.
    pub async fn start_opts(bin: &Path, d: &Path, options: &LabOptions<'_>) -> SshLab {
        let LabOptions {
            backend,
            ssh,
            env,
            sshd_first,
            top,
            port: http_port,
        } = *options;
        let server = TestServer::start_env(
            bin,
            backend,
            // The bastion in the proxy benchmark needs port forwarding on the certificate.
            &format!(
                "{top}[limits]\nper_source_rps = 0\n[ssh]\nport_forwarding_groups = [\"ops\"]\n{ssh}"
            ),
            http_port,
            env,
        )
        .await;
        for args in [
            &["user", "add", "alice"][..],
            &["group", "add", "ops"],
            &["group", "add-member", "ops", "alice"],
        ] {
            assert!(server.admin(args).status.success());
        }
        // db-1: a stock sshd set up by the agent (host key and certificate, user CA, KRL).
        let port = free_port();
        let conf = server.join_host_at(
            d,
            "db-1",
            &["team=ops", "env=prod"],
            &format!("127.0.0.1:{port}"),
        );
        let sshd_dir = d.join("sshd-db-1");
        std::fs::create_dir_all(&sshd_dir).expect("lab setup");
        let sshd = Sshd::start_on(
            &sshd_dir,
            port,
            &format!(
                "{sshd_first}Subsystem sftp internal-sftp\nMaxStartups 1000\nInclude {}/warden.conf\n",
                conf.display()
            ),
        );
        // web-1: in the inventory, but no ops member may log in there.
        server.join_host_at(d, "web-1", &["team=web"], "127.0.0.1:9");

        // alice's key and Warden certificate; Warden's host CA as the only trust for hosts.
        let public = ssh_keygen_ed25519(&d.join("id_ed25519"));
        let alice = server.token("alice", "member", Some("alice"));
        let q = "mutation($k: String!) { issueSshUserCertificate(publicKey: $k, ttl: \"1h\", principals: [\"alice\", \"root\"]) { certificate principals } }";
        let (_, body) = server
            .graphql(Some(&alice), q, json!({ "k": public }))
            .await;
        let cert = body
            .pointer("/data/issueSshUserCertificate/certificate")
            .and_then(|c| c.as_str())
            .unwrap_or_else(|| panic!("alice's certificate: {body}"));
        std::fs::write(d.join("id_ed25519-cert.pub"), cert).expect("lab setup");
        let (_, _, host_ca) = server.get("/v1/ssh/host_ca.pub").await;
        std::fs::write(
            d.join("known_hosts"),
            format!("@cert-authority * {}", host_ca.trim()),
        )
        .expect("lab setup");

        SshLab { server, sshd, port }
    }
}

/// `program` (ssh, sftp, scp) with the options to go through `server`'s proxy with alice's key
/// and certificate in `d`, trusting hosts only through Warden's host CA.
pub fn through_proxy(program: &str, server: &TestServer, d: &Path) -> Command {
    through_proxy_at(program, server, &server.ssh_proxy_addr, d)
}

/// As [`through_proxy`], through the proxy at `addr` (a `warden proxy`).
pub fn through_proxy_at(program: &str, server: &TestServer, addr: &str, d: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .args([
            "-F",
            "none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            d.join("known_hosts").display()
        ))
        .arg("-o")
        .arg(format!(
            "ProxyCommand={} ssh --proxy {} --stdio %h",
            server.bin.display(),
            addr
        ))
        .arg("-i")
        .arg(d.join("id_ed25519"))
        .arg("-o")
        .arg(format!(
            "CertificateFile={}",
            d.join("id_ed25519-cert.pub").display()
        ))
        .args(["-o", "IdentitiesOnly=yes"]);
    command
}
