//! A real OpenSSH server (`/usr/sbin/sshd`, Debian's openssh-server) on a free loopback port,
//! and `ssh-keygen` for keys.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running sshd. Killed when dropped.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its log (`-e`: everything it would send to syslog).
    pub log: PathBuf,
}

impl Sshd {
    /// Starts sshd with a config in `dir`: the listen address, port and pid file, key-only
    /// authentication without PAM, then `config` (the test's own lines: host keys, CAs,
    /// `Include`s).
    pub fn start(dir: &Path, config: &str) -> Sshd {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self::start_on(dir, port, config)
    }

    /// As [`Sshd::start`], on `port` (for a host whose agent registered that address first).
    pub fn start_on(dir: &Path, port: u16, config: &str) -> Sshd {
        let path = dir.join("sshd_config");
        std::fs::write(
            &path,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nPidFile {}\n\
                 AuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n{config}",
                dir.join("sshd.pid").display()
            ),
        )
        .expect("write sshd_config");
        // sshd wants its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let log = dir.join("sshd.log");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("sshd log"))
            .spawn()
            .expect("sshd (./scripts/test.sh installs openssh-server)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd { child, port, log }
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes an Ed25519 key pair at `path` (and `path.pub`) with `ssh-keygen`; returns the public
/// key line.
pub fn ssh_keygen_ed25519(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (./scripts/test.sh installs openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path.with_extension("pub")).expect("read public key")
}
