//! A real OpenID Provider: the certified npm package `oidc-provider`, run by Node from
//! `js/oidc-provider.mjs` (installed by `./scripts/test.sh` with `npm ci`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A running provider. Killed when dropped.
#[derive(Debug)]
pub struct OidcProvider {
    child: Child,
    /// Its issuer, `http://127.0.0.1:PORT`.
    pub issuer: String,
}

impl OidcProvider {
    /// Starts a provider with `config` (`clients`, `accounts`, …; see the script) written to
    /// `dir`.
    pub fn start(dir: &Path, config: &Value) -> OidcProvider {
        let path = dir.join("oidc-provider.json");
        std::fs::write(&path, config.to_string()).expect("write provider config");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("js/oidc-provider.mjs");
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("js/node_modules/oidc-provider")
                .is_dir(),
            "oidc-provider is not installed: run ./scripts/test.sh (npm ci in crates/warden-testkit/js)"
        );
        let mut child = Command::new("node")
            .arg(script)
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node (the machine's Node.js)");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("listening ") {
                    let _ = tx.send(issuer.trim().to_owned());
                }
            }
        });
        let issuer = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(issuer) => issuer,
            Err(_) => {
                let _ = child.kill();
                panic!("oidc-provider did not start");
            }
        };
        OidcProvider { child, issuer }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
