//! The server process: start, health, metrics, shutdown, and refusing to start on bad input.
#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::path::Path;
use std::process::Output;

use warden_testkit::{Backend, TestServer, run_cli};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim_end().to_owned()
}

#[tokio::test]
async fn serves_health_and_metrics_then_stops_cleanly_on_sigterm() {
    for backend in Backend::ALL {
        let mut server = TestServer::start(bin(), backend, "").await;
        let (status, _, body) = server.get("/healthz").await;
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, body),
            (200, serde_json::json!({ "database": "ok", "status": "ok" })),
            "{backend:?}"
        );
        let (status, _, _) = server.get("/healthz/live").await;
        assert_eq!(status, 200);
        let (status, headers, metrics) = server.get("/metrics").await;
        assert_eq!(status, 200);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        for needle in [
            "warden_build_info{version=\"0.1.0\"} 1",
            "warden_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1",
            "warden_http_request_duration_seconds_bucket{le=\"0.005\",route=\"/healthz\"}",
            "warden_db_pool_connections{state=\"max\"}",
            "warden_connections_open{listener=\"http\"}",
        ] {
            assert!(
                metrics.contains(needle),
                "{needle} missing from:\n{metrics}"
            );
        }
        let (status, _, _) = server.get("/nowhere").await;
        assert_eq!(status, 404);

        let socket = server.data_dir.join("admin.sock");
        let mode = std::fs::metadata(&socket)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
        assert_eq!(mode.unwrap() & 0o777, 0o600);
        let (status, took) = server.stop();
        assert!(status.success(), "{status:?}");
        assert!(took.as_secs() < 5, "shutdown took {took:?}");
        assert!(!socket.exists(), "admin socket left behind");
        assert!(server.log().contains("\"message\":\"stopped\""));
    }
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let server = TestServer::start(bin(), Backend::Sqlite, "").await;
    let dir = server.data_dir.to_str().unwrap();
    let out = run_cli(
        bin(),
        &["server", "--data-dir", dir, "--listen", "127.0.0.1:0"],
    );
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        format!(
            "error: a Warden server is already running with data dir {dir} (its admin socket is {dir}/admin.sock)"
        )
    );
}

#[test]
fn unknown_config_keys_and_wrong_types_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let cases = [
        (
            "[listen]\nhttp = \"127.0.0.1:0\"\nhttps = \"x\"\n",
            "line 3: unknown key `listen.https`",
        ),
        (
            "[limits]\nmax_connections = \"lots\"\n",
            "line 2: key `limits.max_connections`: invalid type: string \"lots\", expected u32",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&config, text).unwrap();
        let out = run_cli(
            bin(),
            &[
                "server",
                "--config",
                config.to_str().unwrap(),
                "--data-dir",
                data,
            ],
        );
        assert!(!out.status.success());
        assert_eq!(
            stderr(&out),
            format!("error: config file {}: {expected}", config.display())
                .replace(".toml: line", ".toml line")
        );
        assert!(
            !Path::new(data).exists(),
            "a refused config must change nothing"
        );
    }
}

#[test]
fn environment_overrides_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["server", "--data-dir", dir.path().to_str().unwrap()])
        .env("WARDEN_LIMITS_MAX_BODY_BYTES", "1MB")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "error: environment variable WARDEN_LIMITS_MAX_BODY_BYTES: expected a whole number for `limits.max_body_bytes`, got `1MB`"
    );
}

#[test]
fn unreachable_database_is_one_line_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(
        bin(),
        &[
            "server",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://warden:hunter2@127.0.0.1:1/warden",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "error: cannot connect to the database at postgres://warden@127.0.0.1:1/warden: Connection refused"
    );
}

#[test]
fn an_unusable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "").unwrap();
    let data = file.join("data");
    let out = run_cli(
        bin(),
        &[
            "server",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        format!(
            "error: cannot create data directory {}: Not a directory",
            data.display()
        )
    );

    // A read-only directory (checked as a non-root user would see it).
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
    let probe = std::fs::File::create(ro.join("probe"));
    if probe.is_err() {
        // Not root: the permission bits apply.
        let out = run_cli(
            bin(),
            &[
                "server",
                "--data-dir",
                ro.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
        );
        assert_eq!(
            stderr(&out),
            format!(
                "error: data directory {} is not writable: Permission denied",
                ro.display()
            )
        );
    }
}

#[test]
fn migrate_only_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(
        bin(),
        &["migrate", "--data-dir", dir.path().to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let db = dir.path().join("warden.db");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("database sqlite://{} is up to date", db.display())
    );
    assert!(db.exists());
    assert!(!dir.path().join("admin.sock").exists());
}

#[test]
fn api_schema_prints_the_sdl() {
    let out = run_cli(bin(), &["api", "schema"]);
    assert!(out.status.success());
    let sdl = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "type Query",
        "viewer: Viewer!",
        "users(after: String, before: String, first: Int, last: Int): UserConnection!",
        "createToken(input: CreateTokenInput!): CreatedToken!",
    ] {
        assert!(sdl.contains(needle), "{needle} missing");
    }
}

/// Runs `warden server --dev` until it is ready and returns its stdout lines so far.
fn dev_start(data: &Path) -> (std::process::Child, Vec<String>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(bin())
        .args(["server", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("WARDEN_LISTEN_AGENT_MTLS", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
    {
        let done = line.contains("token create --name first-admin");
        lines.push(line);
        if done {
            break;
        }
    }
    (child, lines)
}

#[tokio::test]
async fn a_dev_server_prints_the_first_admins_enrollment_link_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, lines) = dev_start(&data);
    // stdout is a pipe, not a terminal: the link goes to a file only its owner reads.
    let file = data.canonicalize().unwrap().join("first-admin-link");
    assert!(
        lines.contains(&format!(
            "First admin: the one-time link to register your passkey (24 h) is in {} (mode 0600)",
            file.display()
        )),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("/enroll/")), "{lines:?}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let link = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    let listen = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("listening on "))
        .unwrap()
        .to_owned();
    let port = listen.rsplit(':').next().unwrap();
    assert!(
        link.starts_with(&format!("http://localhost:{port}/enroll/wel_")),
        "{link}"
    );
    let resp = reqwest::get(&link).await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = child.kill();
    let _ = child.wait();
    let (mut child, lines) = dev_start(&data);
    assert!(
        !lines.iter().any(|l| l.starts_with("First admin:")),
        "only on the first start: {lines:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
