//! Test support: throwaway PostgreSQL databases and real `warden` server processes.
//!
//! Nothing here is a stand-in: databases are real PostgreSQL databases on the machine's server
//! (127.0.0.1:5432 unless `WARDEN_TEST_POSTGRES_URL` says otherwise), and servers are the real
//! binary, started as a child process and stopped with SIGTERM. A missing PostgreSQL fails the
//! test; nothing is skipped.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failure here is a failed test, and should say why"
)]

mod browser;
pub mod console;
mod oidc;
mod otlp;
mod postgres;
mod rsyslog;
mod s3;
mod server;
mod soft_passkey;
mod ssh_lab;
mod sshd;
mod stats;
mod tls_proxy;
mod webhook;

pub use browser::{Journey, LiveJourney};
pub use oidc::OidcProvider;
pub use otlp::OtlpReceiver;
pub use postgres::{TestDatabase, admin_url as postgres_admin_url};
pub use rsyslog::{Rsyslog, TlsFiles};
pub use s3::S3Server;
pub use server::{
    Backend, Replica, StandaloneProxy, TestServer, account_csrf, enroll_by_link, free_port,
    register_passkey, run_cli, tool,
};
pub use soft_passkey::{AttestationVendor, SoftPasskey};
pub use ssh_lab::{LabOptions, SshLab, through_proxy, through_proxy_at};
pub use sshd::{Sshd, ssh_keygen_ed25519};
pub use stats::{ms, percentile};
pub use tls_proxy::TlsProxy;
pub use webhook::{Received, webhook_receiver};
