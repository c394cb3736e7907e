use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::TestDatabase;

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in the server's data directory.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

impl Backend {
    /// Both, for tests that must behave the same on each.
    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
}

/// A running `warden server` child process with its own data directory and database.
#[derive(Debug)]
pub struct TestServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The mutual-TLS listener, `127.0.0.1:PORT`.
    pub mtls_addr: String,
    /// The recording SSH proxy, `127.0.0.1:PORT`.
    pub ssh_proxy_addr: String,
    /// The data directory (admin socket, SQLite file).
    pub data_dir: PathBuf,
    /// Standard error so far is readable here: JSON log lines.
    pub log_path: PathBuf,
    /// The binary, for CLI calls.
    pub bin: PathBuf,
    database: Option<TestDatabase>,
    /// Extra environment for the server process (and its replicas and proxies).
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl TestServer {
    /// Starts `bin server` on a free loopback port with `config` (TOML) as its config file,
    /// and waits until it prints that it is ready.
    pub async fn start(bin: &Path, backend: Backend, config: &str) -> TestServer {
        Self::start_on(bin, backend, config, 0).await
    }

    /// As [`TestServer::start`], listening on `port` (for tests whose peers must know the
    /// server's URL before it starts, like an identity provider's redirect URI).
    pub async fn start_on(bin: &Path, backend: Backend, config: &str, port: u16) -> TestServer {
        Self::start_env(bin, backend, config, port, &[]).await
    }

    /// As [`TestServer::start_on`], with `env` set for the server process.
    pub async fn start_env(
        bin: &Path,
        backend: Backend,
        config: &str,
        port: u16,
        env: &[(&str, &str)],
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, bin, backend, config, port, env, READY).await
    }

    /// As [`TestServer::start`] on SQLite, in `dir`, whose `data/` a benchmark may have filled
    /// first (a store migrated and written to before any server ran). Such a log has no
    /// checkpoint yet, so the server checks every event of it before it listens: it may take
    /// minutes to be ready.
    pub async fn start_prepared(bin: &Path, dir: tempfile::TempDir, config: &str) -> TestServer {
        Self::start_in(
            dir,
            bin,
            Backend::Sqlite,
            config,
            0,
            &[],
            Duration::from_secs(1800),
        )
        .await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        bin: &Path,
        backend: Backend,
        config: &str,
        port: u16,
        env: &[(&str, &str)],
        ready: Duration,
    ) -> TestServer {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let data_dir = dir.path().join("data");
        let config_path = dir.path().join("warden.toml");
        // Every test server seals its CA keys under a key-encryption key of its own.
        let kek_path = dir.path().join("kek");
        let kek: String = (0..32).map(|_| format!("{:02x}", rand_byte())).collect();
        std::fs::write(&kek_path, format!("{kek}\n")).expect("write kek");
        let config = format!("kek_file = \"{}\"\n{config}", kek_path.display());
        std::fs::write(&config_path, config).expect("write config");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create().await),
        };
        let log_path = dir.path().join("server.log");
        let started = spawn(
            bin,
            &config_path,
            &data_dir,
            database.as_ref(),
            &log_path,
            Launch {
                port,
                env: &env,
                ready,
            },
        );
        TestServer {
            child: Some(started.child),
            url: started.url,
            mtls_addr: started.mtls,
            ssh_proxy_addr: started.proxy,
            data_dir,
            log_path,
            bin: bin.to_path_buf(),
            database,
            env,
            _dir: dir,
            http: client(reqwest::Client::builder()),
        }
    }

    /// Kills the server with SIGKILL (no chance to clean up) and starts it again on the same
    /// data directory and database; the new process may listen on another port.
    pub fn crash_and_restart(&mut self) {
        let env = self.env.clone();
        self.respawn(0, &env);
    }

    /// Kills the process if it runs, and starts it again on `port` with `env`.
    fn respawn(&mut self, port: u16, env: &[(String, String)]) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let config_path = self._dir.path().join("warden.toml");
        let started = spawn(
            &self.bin,
            &config_path,
            &self.data_dir,
            self.database.as_ref(),
            &self.log_path,
            Launch {
                port,
                env,
                ready: READY,
            },
        );
        self.child = Some(started.child);
        self.url = started.url;
        self.mtls_addr = started.mtls;
        self.ssh_proxy_addr = started.proxy;
    }

    /// Starts the server again on the same data directory and database (after [`stop`]),
    /// expecting it to refuse: returns what it printed on standard error. Panics if it is
    /// still running after 30 s.
    ///
    /// [`stop`]: TestServer::stop
    pub fn start_refused(&self) -> String {
        let config_path = self._dir.path().join("warden.toml");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("server")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("WARDEN_LISTEN_AGENT_MTLS", "127.0.0.1:0")
            .env("WARDEN_LISTEN_SSH_PROXY", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(db) = &self.database {
            cmd.arg("--database-url").arg(db.url());
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().expect("spawn warden server");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for server") {
                assert!(!status.success(), "the server exited cleanly");
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    use std::io::Read;
                    let _ = stderr.read_to_string(&mut err);
                }
                return err;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server started, and was expected to refuse");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again after [`TestServer::stop`], on the same data and database.
    pub fn restart(&mut self) {
        self.crash_and_restart();
    }

    /// As [`TestServer::restart`], listening where it listened before: the addresses agents
    /// learned at join keep working, as after a real restart.
    pub fn restart_in_place(&mut self) {
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
            .expect("the server's port");
        let mut env = self.env.clone();
        env.push((
            "WARDEN_LISTEN_AGENT_MTLS".to_owned(),
            self.mtls_addr.clone(),
        ));
        env.push((
            "WARDEN_LISTEN_SSH_PROXY".to_owned(),
            self.ssh_proxy_addr.clone(),
        ));
        self.respawn(port, &env);
    }

    /// The database URL a second process may use to reach the same data.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(db) => db.url().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("warden.db").display()),
        }
    }

    /// Runs `warden admin --data-dir DIR ARGS…` against this server.
    pub fn admin(&self, args: &[&str]) -> Output {
        let mut full = vec!["admin", "--data-dir"];
        let dir = self.data_dir.to_str().expect("utf-8 path");
        full.push(dir);
        full.extend_from_slice(args);
        run_cli(&self.bin, &full)
    }

    /// Joins host `name` with `labels` (`team=ops`) through a one-time token and the real agent
    /// (`warden agent --once`, keeping its files under `dir`), so policy has a host to decide on.
    pub fn join_host(&self, dir: &Path, name: &str, labels: &[&str]) {
        self.join_host_at(dir, name, labels, "127.0.0.1:22");
    }

    /// As [`TestServer::join_host`], with the host's sshd at `sshd_addr`. Returns the sshd config
    /// directory holding the agent's `warden.conf`.
    pub fn join_host_at(
        &self,
        dir: &Path,
        name: &str,
        labels: &[&str],
        sshd_addr: &str,
    ) -> PathBuf {
        let mut args = vec!["join-token", "create", "--host", name, "--ttl", "10m"];
        for label in labels {
            args.extend_from_slice(&["--label", label]);
        }
        let out = self.admin(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let data = dir.join(format!("agent-{name}"));
        let conf = dir.join(format!("sshd-{name}.d"));
        let spool = dir.join(format!("break-glass-{name}"));
        let out = run_cli(
            &self.bin,
            &[
                "agent",
                "--server",
                &self.url,
                "--join-token",
                &token,
                "--data-dir",
                data.to_str().expect("utf-8 path"),
                "--sshd-config-dir",
                conf.to_str().expect("utf-8 path"),
                "--sshd-addr",
                sshd_addr,
                "--break-glass-spool",
                spool.to_str().expect("utf-8 path"),
                "--once",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        conf
    }

    /// The server process's id (for reading its CPU time and memory in benchmarks).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs the CLI against this server over HTTP with `token` in WARDEN_TOKEN.
    pub fn remote(&self, token: &str, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .args(["--server", &self.url])
            .env("WARDEN_TOKEN", token)
            .env_remove("WARDEN_DATA_DIR")
            .stdin(Stdio::null())
            .output()
            .expect("run warden")
    }

    /// Creates a token through the admin CLI and returns it.
    pub fn token(&self, name: &str, role: &str, user: Option<&str>) -> String {
        let mut args = vec![
            "token", "create", "--name", name, "--role", role, "--ttl", "1h",
        ];
        if let Some(user) = user {
            args.extend_from_slice(&["--user", user]);
        }
        let out = self.admin(&args);
        assert!(
            out.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    /// A session recording as an auditor reads it: through `sshRecording` with a new
    /// `auditor` token (the narrowest that may), which checks the file's hash against the
    /// audit log and opens it under the KEK. Returns the asciicast text.
    pub async fn recording_as_auditor(&self, file: &str) -> String {
        let name = format!("auditor-{}", file.replace('.', "-"));
        let token = self.token(&name, "auditor", None);
        let (status, body) = self
            .graphql(
                Some(&token),
                "query($f: String!) { sshRecording(file: $f) }",
                json!({ "f": file }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body.pointer("/data/sshRecording")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no recording `{file}`: {body}"))
            .to_owned()
    }

    /// POSTs a GraphQL query with an optional bearer token; returns status and JSON body.
    pub async fn graphql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let body = json!({ "query": query, "variables": variables });
        self.post_json("/graphql", token, &body.to_string()).await
    }

    /// POSTs a raw body as application/json.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Sends `method` to `path` with an optional bearer token, body (sent as
    /// `application/scim+json` unless `headers` name another type) and extra headers; returns
    /// status, headers and the body as JSON (text when it is not JSON, null when empty).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                req = req.header("content-type", "application/scim+json");
            }
            req = req.body(body.to_owned());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, value)
    }

    /// A SCIM call with `token` to `/scim/v2{path}`: status, headers, JSON body.
    pub async fn scim(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let body = body.map(|b| b.to_string());
        self.request(
            method,
            &format!("/scim/v2{path}"),
            Some(token),
            body.as_deref(),
            &[],
        )
        .await
    }

    /// `warden admin user list --json`.
    pub fn users_json(&self) -> Value {
        self.admin_json(&["user", "list", "--json"])
    }

    /// `warden admin group list --json`.
    pub fn groups_json(&self) -> Value {
        self.admin_json(&["group", "list", "--json"])
    }

    /// The members of `group` as the group list shows them; null when there is no such group.
    pub fn members_json(&self, group: &str) -> Value {
        self.groups_json()
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["name"] == group))
            .map(|g| g["members"].clone())
            .unwrap_or(Value::Null)
    }

    fn admin_json(&self, args: &[&str]) -> Value {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON from warden admin")
    }

    /// GETs a path; returns status, headers and body text.
    pub async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.expect("body"))
    }

    /// The audit events with `action`, oldest first, as `warden audit query --json` prints them.
    pub fn audit(&self, action: &str) -> Vec<Value> {
        let dir = self.data_dir.to_str().expect("utf-8 path");
        let out = run_cli(
            &self.bin,
            &[
                "audit",
                "--data-dir",
                dir,
                "query",
                "--action",
                action,
                "--limit",
                "1000",
                "--json",
            ],
        );
        assert!(
            out.status.success(),
            "audit query failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("audit JSON")
    }

    /// `warden admin ARGS…` on the admin socket, which must succeed.
    ///
    /// # Panics
    /// When the command fails (with its stderr).
    pub fn admin_ok(&self, args: &[&str]) {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "warden admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Adds local user `user`, follows an enrollment link and registers a software passkey,
    /// as a browser at `base` (the server's public URL on `localhost`) would. Returns that
    /// browser (with its session cookie), the passkey and the session's CSRF token.
    pub async fn enroll_soft_passkey(
        &self,
        base: &str,
        user: &str,
    ) -> (reqwest::Client, crate::SoftPasskey, String) {
        let soft = crate::SoftPasskey::new("localhost", base);
        let (status, body, enrolled) = self.try_enroll(base, user, soft).await;
        assert_eq!(status, 200, "{body}");
        enrolled
    }

    /// As [`TestServer::enroll_soft_passkey`] with a given authenticator; returns how the
    /// registration's finish was answered.
    pub async fn try_enroll(
        &self,
        base: &str,
        user: &str,
        soft: crate::SoftPasskey,
    ) -> (u16, Value, (reqwest::Client, crate::SoftPasskey, String)) {
        assert!(self.admin(&["user", "add", user]).status.success());
        let link =
            String::from_utf8(self.admin(&["user", "enroll-link", user]).stdout).expect("utf-8");
        enroll_by_link(base, link.trim(), soft).await
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status and the time
    /// it took.
    pub fn stop(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().expect("server already stopped");
        let pid = child.id().to_string();
        let start = Instant::now();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = child.wait().expect("wait for server");
        (status, start.elapsed())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A second `warden server` sharing a PostgreSQL-backed server's database and KEK, with a
/// data directory of its own: a scale-out replica.
#[derive(Debug)]
pub struct Replica {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

/// A `warden proxy` process sharing a PostgreSQL-backed server's database, KEK and recordings
/// directory, with a data directory of its own.
#[derive(Debug)]
pub struct StandaloneProxy {
    child: Child,
    /// Where it listens for SSH.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for StandaloneProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestServer {
    /// Starts `warden proxy` beside this server (which must use PostgreSQL).
    pub fn standalone_proxy(&self) -> StandaloneProxy {
        let database = self
            .database
            .as_ref()
            .expect("a standalone proxy shares a PostgreSQL database: use Backend::Postgres");
        let dir = tempfile::tempdir().expect("temp dir");
        let log_path = dir.path().join("proxy.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut child = Command::new(&self.bin)
            .arg("proxy")
            .arg("--config")
            .arg(self._dir.path().join("warden.toml"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--database-url")
            .arg(database.url())
            .env("WARDEN_LISTEN_SSH_PROXY", "127.0.0.1:0")
            .env("WARDEN_SSH_RECORDINGS", self.data_dir.join("recordings"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn warden proxy");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Read to the end, so the proxy never writes to a closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.trim().strip_prefix("ssh proxy") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("warden proxy did not become ready; its log:\n{log}");
        };
        StandaloneProxy {
            child,
            addr,
            _dir: dir,
        }
    }

    /// Starts a replica of this server (which must use PostgreSQL).
    pub fn replica(&self) -> Replica {
        let database = self.database.as_ref().expect(
            "replicas share a PostgreSQL database: start the server with Backend::Postgres",
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let config_path = self._dir.path().join("warden.toml");
        let log_path = dir.path().join("server.log");
        let started = spawn(
            &self.bin,
            &config_path,
            &data_dir,
            Some(database),
            &log_path,
            Launch {
                port: 0,
                env: &self.env,
                ready: READY,
            },
        );
        Replica {
            child: started.child,
            url: started.url,
            _dir: dir,
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a peer program the tests drive (`wg`, `openssl`, `ssh-keygen`) with no input and
/// collects its output; a missing program fails the test, naming who installs it.
pub fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{name} is needed (./scripts/test.sh installs it): {e}"))
}

/// Runs the CLI and collects its output.
pub fn run_cli(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run warden")
}

/// How long a server may take to print each of its addresses.
const READY: Duration = Duration::from_secs(30);

/// How a server process is started: on which HTTP port (0: any), with what environment, and
/// how long it may take to say it is ready.
struct Launch<'a> {
    port: u16,
    env: &'a [(String, String)],
    ready: Duration,
}

fn spawn(
    bin: &Path,
    config_path: &Path,
    data_dir: &Path,
    database: Option<&TestDatabase>,
    log_path: &Path,
    launch: Launch<'_>,
) -> Started {
    let Launch { port, env, ready } = launch;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("log file");
    let mut cmd = Command::new(bin);
    cmd.arg("server")
        .arg("--config")
        .arg(config_path)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("WARDEN_LISTEN_AGENT_MTLS", "127.0.0.1:0")
        .env("WARDEN_LISTEN_SSH_PROXY", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    if let Some(db) = database {
        cmd.arg("--database-url").arg(db.url());
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd.spawn().expect("spawn warden server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let line = line.trim();
            for (n, prefix) in ["listening on ", "agent mTLS ", "ssh proxy "]
                .iter()
                .enumerate()
            {
                if let Some(rest) = line.strip_prefix(prefix) {
                    let value = rest.trim().trim_start_matches("https://").to_owned();
                    let _ = tx.send((n, value));
                }
            }
        }
    });
    let mut found: [Option<String>; 3] = [None, None, None];
    while found.iter().any(Option::is_none) {
        match rx.recv_timeout(ready) {
            Ok((n, value)) => {
                if let Some(slot) = found.get_mut(n) {
                    *slot = Some(value);
                }
            }
            Err(_) => break,
        }
    }
    match found {
        [Some(url), Some(mtls), Some(proxy)] => Started {
            child,
            url,
            mtls,
            proxy,
        },
        _ => {
            let _ = child.kill();
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            panic!("warden server did not become ready; its log:\n{log}");
        }
    }
}

/// A server process that said it is ready, and where it listens.
struct Started {
    child: Child,
    url: String,
    mtls: String,
    proxy: String,
}

/// The CSRF token of the signed-in browser `b`, read off its `/account` page.
pub async fn account_csrf(b: &reqwest::Client, base: &str) -> String {
    let page = b
        .get(format!("{base}/account"))
        .send()
        .await
        .expect("account")
        .text()
        .await
        .expect("page");
    page.split("data-csrf=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf token on the account page")
        .to_owned()
}

/// Registers `soft` for the person signed in on browser `b`, as the account page's button
/// does. Returns how the finish was answered, and the session's CSRF token.
pub async fn register_passkey(
    b: &reqwest::Client,
    base: &str,
    soft: &mut crate::SoftPasskey,
) -> (u16, Value, String) {
    let csrf = account_csrf(b, base).await;
    let options: Value = b
        .post(format!("{base}/webauthn/register/start"))
        .header("x-warden-csrf", &csrf)
        .json(&json!({}))
        .send()
        .await
        .expect("register start")
        .json()
        .await
        .expect("options");
    let credential = soft.register(&options);
    let done = b
        .post(format!("{base}/webauthn/register/finish"))
        .header("x-warden-csrf", &csrf)
        .json(&json!({ "name": "laptop", "credential": credential }))
        .send()
        .await
        .expect("register finish");
    let status = done.status().as_u16();
    let body = done.json().await.unwrap_or(Value::Null);
    (status, body, csrf)
}

/// A free TCP port on 127.0.0.1 (for servers whose URL must be known before they start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A random byte from the OS, for test keys.
fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    let _ = std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("urandom"),
        &mut b,
    );
    b[0]
}

/// Follows the enrollment link `link` and registers `soft` as a browser at `base` would:
/// how the registration's finish was answered, and that browser (with its session cookie),
/// the passkey and the session's CSRF token.
///
/// # Panics
/// When the link does not open the enrollment page.
pub async fn enroll_by_link(
    base: &str,
    link: &str,
    mut soft: crate::SoftPasskey,
) -> (u16, Value, (reqwest::Client, crate::SoftPasskey, String)) {
    let b = client(
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none()),
    );
    let enrolled = b.get(link).send().await.expect("enroll");
    assert_eq!(enrolled.status(), 200, "{link}");
    let (status, body, csrf) = register_passkey(&b, base, &mut soft).await;
    (status, body, (b, soft, csrf))
}

/// A test's HTTP client. The server closes a connection idle for `limits.header_timeout`
/// (10 s): a pooled connection idle that long could be reused just as the server closes it
/// (hyper's `IncompleteMessage`), so the client lets go of it first.
fn client(builder: reqwest::ClientBuilder) -> reqwest::Client {
    builder
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("client")
}
