//! A real TLS-terminating proxy (Debian's `socat`) in front of a server, as production runs
//! Warden's public listener behind one: `https://localhost:PORT` → `http://127.0.0.1:UPSTREAM`.
//! Its certificate comes from a throwaway CA whose PEM the client is told to trust.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running proxy. Killed when dropped.
#[derive(Debug)]
pub struct TlsProxy {
    child: Child,
    /// Its port on 127.0.0.1 (serve it as `https://localhost:PORT`).
    pub port: u16,
    /// The CA that signed its certificate, PEM.
    pub ca_file: PathBuf,
}

impl TlsProxy {
    /// Listens on `port` (0: any) and forwards to 127.0.0.1:`upstream`.
    pub fn start(dir: &Path, port: u16, upstream: u16) -> TlsProxy {
        let port = if port == 0 { crate::free_port() } else { port };
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "test proxy CA");
        let ca = ca.self_signed(&ca_key).expect("CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &ca, &ca_key)
            .expect("leaf");
        let ca_file = dir.join("proxy-ca.pem");
        let cert_file = dir.join("proxy-cert.pem");
        let key_file = dir.join("proxy-key.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write");
        std::fs::write(&cert_file, leaf.pem()).expect("write");
        std::fs::write(&key_file, key.serialize_pem()).expect("write");
        let child = Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
                cert_file.display(),
                key_file.display()
            ))
            .arg(format!("TCP:127.0.0.1:{upstream}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (./scripts/test.sh installs it)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "socat did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsProxy {
            child,
            port,
            ca_file,
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
