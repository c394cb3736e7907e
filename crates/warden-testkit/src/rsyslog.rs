use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// TLS material for a collector: PEM files of the CA, the server certificate and its key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificate.
    pub ca: PathBuf,
    /// Server certificate.
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
}

/// A real rsyslogd receiving RFC 5424 syslog over TCP (optionally TLS through its gtls
/// driver) on a loopback port, writing each message's MSG part to a file, one per line.
#[derive(Debug)]
pub struct Rsyslog {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    dir: PathBuf,
    tls: Option<TlsFiles>,
}

impl Rsyslog {
    /// Starts rsyslogd in `dir` (which must exist). Fails the test if rsyslogd is missing.
    pub fn start(dir: &Path, tls: Option<TlsFiles>) -> Rsyslog {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut r = Rsyslog {
            child: None,
            port,
            dir: dir.to_path_buf(),
            tls,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let dir = self.dir.display();
        let (global_tls, module) = match &self.tls {
            None => (String::new(), "module(load=\"imtcp\")".to_owned()),
            Some(t) => (
                format!(
                    " defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=\"{}\" \
                     defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                    t.ca.display(),
                    t.cert.display(),
                    t.key.display()
                ),
                "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")".to_owned(),
            ),
        };
        let conf = format!(
            "global(workDirectory=\"{dir}\" maxMessageSize=\"64k\"{global_tls})\n{module}\n\
             input(type=\"imtcp\" port=\"{}\" address=\"127.0.0.1\")\n\
             template(name=\"msgonly\" type=\"string\" string=\"%msg%\\n\")\n\
             action(type=\"omfile\" file=\"{dir}/messages.log\" template=\"msgonly\" flushOnTXEnd=\"on\")\n",
            self.port
        );
        let conf_path = self.dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).expect("write rsyslog.conf");
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("rsyslogd.err")).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("rsyslogd is required for these tests (apt-get install rsyslog rsyslog-gnutls): {e}"));
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "rsyslogd did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the collector (SIGKILL): the sink's deliveries fail until [`Rsyslog::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The messages received so far, one per line.
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("messages.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}
