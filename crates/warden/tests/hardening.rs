//! The holes an attacker looks for first, each tried against the real server (SQLite and
//! PostgreSQL where storage is involved) as an ordinary user, a narrow token, a SCIM client or
//! nobody at all, and each answered as documented.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers fail the test"
)]

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_testkit::{Backend, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn ok(server: &TestServer, args: &[&str]) {
    let out = server.admin(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The server process's resident memory, in MiB.
fn rss_mib(server: &TestServer) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid().unwrap())).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024
}

fn first_error(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

const MEMBER_CEILING: &str = "permission denied: a member token may not `manage_tokens`, whatever its person's groups allow: sign in with a passkey or use a token whose role permits it";

#[tokio::test]
async fn a_token_role_is_a_ceiling_whatever_the_person_may_do() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, "[limits]\nper_source_rps = 0\n").await;
        ok(&server, &["user", "add", "alice"]);
        ok(&server, &["group", "add", "admins"]);
        ok(&server, &["group", "add-member", "admins", "alice"]);
        let member = server.token("alice-member", "member", Some("alice"));
        let auditor = server.token("alice-auditor", "auditor", Some("alice"));
        let admin = server.token("alice-admin", "admin", Some("alice"));
        let mint = "mutation { createToken(input: { name: \"mine\", role: ADMIN, user: \"alice\", ttl: \"1h\" }) { apiToken { name } } }";

        // alice is an admin, but her member token stays a member token.
        let (_, body) = server.graphql(Some(&member), mint, Value::Null).await;
        assert_eq!(first_error(&body), MEMBER_CEILING, "{backend:?} {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
        let (_, body) = server
            .graphql(
                Some(&member),
                "{ users { edges { node { name } } } }",
                Value::Null,
            )
            .await;
        assert!(
            first_error(&body).contains("a member token may not `read_directory`"),
            "{body}"
        );
        let (_, body) = server
            .graphql(Some(&member), "{ viewer { name } }", Value::Null)
            .await;
        assert_eq!(body["data"]["viewer"]["name"], "alice");

        // Her auditor token reads but does not change.
        let (_, body) = server
            .graphql(
                Some(&auditor),
                "{ users { edges { node { name } } } }",
                Value::Null,
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
        let (_, body) = server.graphql(Some(&auditor), mint, Value::Null).await;
        assert!(
            first_error(&body).contains("an auditor token may not `manage_tokens`"),
            "{body}"
        );

        // A token with the admin role has her full rights.
        let (_, body) = server.graphql(Some(&admin), mint, Value::Null).await;
        assert_eq!(
            body["data"]["createToken"]["apiToken"]["name"], "mine",
            "{body}"
        );

        let denied: Vec<Value> = server
            .audit("api.manage_tokens")
            .into_iter()
            .filter(|e| e["outcome"] == "denied")
            .collect();
        assert_eq!(denied.len(), 2, "{denied:?}");
        assert_eq!(denied[0]["details"]["role_ceiling"], "member");
        assert_eq!(denied[1]["details"]["role_ceiling"], "auditor");
    }
}

async fn scim(
    server: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, _, value) = server.scim(token, method, path, body).await;
    (status, value)
}

/// The members of `group`, sorted.
fn members(server: &TestServer, group: &str) -> Vec<String> {
    let listed = server.members_json(group);
    let mut names: Vec<String> = listed
        .as_array()
        .unwrap_or_else(|| panic!("no group {group}"))
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_scim_token_cannot_make_administrators() {
    for backend in Backend::ALL {
        let server = TestServer::start(
            bin(),
            backend,
            "[limits]\nper_source_rps = 0\n[scim]\nadopt_groups = [\"ops\"]\n",
        )
        .await;
        ok(&server, &["user", "add", "root-admin"]);
        ok(&server, &["group", "add", "admins"]);
        ok(&server, &["group", "add-member", "admins", "root-admin"]);
        ok(&server, &["user", "add", "olga"]);
        ok(&server, &["group", "add", "ops"]);
        ok(&server, &["group", "add-member", "ops", "olga"]);
        ok(&server, &["group", "add", "web"]);
        let idp = server.token("idp", "scim", None);
        let (status, mallory) = scim(
            &server,
            &idp,
            "POST",
            "/Users",
            Some(json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "mallory@example.com", "active": true })),
        )
        .await;
        assert_eq!(status, 201, "{mallory}");
        let mallory_id = mallory["id"].as_str().unwrap().to_owned();
        let group =
            |name: &str| json!({ "displayName": name, "members": [{ "value": mallory_id }] });

        // `admins` is given management rights by the policy: never the IdP's to make or take.
        let (status, body) = scim(&server, &idp, "POST", "/Groups", Some(group("admins"))).await;
        assert_eq!(status, 403, "{backend:?} {body}");
        assert_eq!(
            body["detail"],
            "group `admins` is given management rights by the policy in force: a SCIM client may provision it only if an operator lists it in scim.adopt_groups"
        );
        assert_eq!(
            body["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
        // Nor a new group of a name the policy names for admins, after the local one is gone.
        // A Warden group not listed as adoptable is refused; a listed one is adopted.
        let (status, body) = scim(&server, &idp, "POST", "/Groups", Some(group("web"))).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(
            body["detail"],
            "group `web` already exists in Warden and is not adoptable: an operator may list it in scim.adopt_groups"
        );
        let (status, ops) = scim(&server, &idp, "POST", "/Groups", Some(group("ops"))).await;
        assert_eq!(status, 201, "{ops}");
        assert_eq!(members(&server, "admins"), ["root-admin"]);
        assert_eq!(members(&server, "ops"), ["mallory-example.com"]);

        // Deleting the adopted group releases it: the group stays, without SCIM's people.
        let ops_id = ops["id"].as_str().unwrap();
        let (status, _) = scim(&server, &idp, "DELETE", &format!("/Groups/{ops_id}"), None).await;
        assert_eq!(status, 204);
        let (_, _, listed) = server
            .request("GET", "/scim/v2/Groups", Some(&idp), None, &[])
            .await;
        assert_eq!(listed["totalResults"], 0);
        assert!(members(&server, "ops").is_empty());

        let refused: Vec<Value> = server
            .audit("group.create")
            .into_iter()
            .filter(|e| e["outcome"] == "failure")
            .collect();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert_eq!(refused[0]["target"], "group:admins");
        assert_eq!(server.audit("group.release").len(), 1);
    }
}

/// Sends a request's head and then up to `body_len` bytes of body on a raw connection, as
/// fast as the server takes them; returns the status line's code, or 0 when the server closed
/// the connection before answering.
async fn upload(addr: &str, token: Option<&str>, body_len: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /v1/vuln/import?asset=app HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {body_len}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'x'; 1024 * 1024];
    let mut sent = 0;
    while sent < body_len {
        let n = chunk.len().min(body_len - sent);
        if stream.write_all(&chunk[..n]).await.is_err() {
            break;
        }
        sent += n;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn nothing_large_is_read_before_the_caller_is_known() {
    let server = TestServer::start(
        bin(),
        Backend::Sqlite,
        "[limits]\nper_source_rps = 0\nimports_per_source = 1\n",
    )
    .await;
    ok(&server, &["user", "add", "mo"]);
    let member = server.token("mo", "member", Some("mo"));
    let admin = server.token("ci", "admin", None);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let before = rss_mib(&server);
    // Four unauthenticated 200 MiB uploads at once: refused on their headers.
    let uploads = (0..4).map(|_| upload(&addr, None, 200 * 1024 * 1024));
    let started = Instant::now();
    for status in futures_util::future::join_all(uploads).await {
        assert!(matches!(status, 401 | 0), "{status}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    let grown = rss_mib(&server).saturating_sub(before);
    assert!(grown < 50, "the server grew by {grown} MiB");
    assert!(!server.audit("auth.token").is_empty());

    // A token that may not import is refused before the body, too.
    let status = upload(&addr, Some(&member), 8 * 1024 * 1024).await;
    assert!(matches!(status, 403 | 0), "{status}");
    assert_eq!(
        server.audit("vuln.import").len(),
        1,
        "the denial is recorded"
    );

    // One upload in progress per source: a second waits its turn.
    use tokio::io::AsyncWriteExt;
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/vuln/import?asset=app HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Length: 100\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/vuln/import?asset=app", server.url))
        .bearer_auth(&admin)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        first_error(&body),
        "too many scan uploads in progress from 127.0.0.1: wait for one to finish (limits.imports_per_source)"
    );
    drop(slow);
}

#[tokio::test]
async fn refusals_cannot_flood_the_audit_log() {
    for backend in Backend::ALL {
        let server = TestServer::start(
            bin(),
            backend,
            "[limits]\nper_source_rps = 0\nper_token_rps = 1\nper_token_burst = 3\n",
        )
        .await;
        ok(&server, &["user", "add", "mo"]);
        let member = server.token("mo", "member", Some("mo"));
        // One request of 200 refused fields: one event that counts them.
        let fields: String = (0..200)
            .map(|i| format!("u{i}: user(name: \"mo\") {{ name }} "))
            .collect();
        let (status, body) = server
            .graphql(Some(&member), &format!("{{ {fields} }}"), Value::Null)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["errors"].as_array().unwrap().len(), 200);
        let denied = server.audit("api.read_directory");
        assert_eq!(denied.len(), 1, "{backend:?}");
        assert_eq!(denied[0]["details"]["refused"], 200);
        assert_eq!(
            denied[0]["details"]["refused_by_action"]["api.read_directory"],
            200
        );

        // A caller's long string is kept bounded.
        let long = "x".repeat(5000);
        let (_, _) = server
            .graphql(
                Some(&member),
                "query($n: String!) { user(name: $n) { name } }",
                json!({ "n": long }),
            )
            .await;
        let denied = server.audit("api.read_directory");
        let target = denied.last().unwrap()["target"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            target.len() <= warden_store::MAX_TARGET_BYTES,
            "{}",
            target.len()
        );

        // The token's own budget: three at once, then one a second.
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let (status, _) = server
                .graphql(Some(&member), "{ viewer { name } }", Value::Null)
                .await;
            statuses.push(status);
        }
        assert!(statuses.contains(&429), "{statuses:?}");
        let (status, body) = server
            .graphql(Some(&member), "{ viewer { name } }", Value::Null)
            .await;
        assert_eq!(status, 429);
        assert!(first_error(&body).starts_with("too many requests with this token: retry after"));

        // Unauthenticated refusals are sampled, and counted.
        let before = server.audit("auth.token").len();
        for _ in 0..200 {
            server
                .graphql(Some("nonsense"), "{ viewer { name } }", Value::Null)
                .await;
        }
        let written = server.audit("auth.token").len() - before;
        assert!(
            (10..=60).contains(&written),
            "{written} events for 200 refusals"
        );
        let (_, _, metrics) = server.get("/metrics").await;
        let unrecorded: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("warden_audit_unrecorded_refusals_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        assert!(unrecorded >= 140, "{unrecorded}");
    }
}

#[tokio::test]
async fn the_edge_holds_against_made_up_methods_hogs_and_huge_queries() {
    let server = TestServer::start(
        bin(),
        Backend::Sqlite,
        "[limits]\nper_source_rps = 0\nper_source_connections = 4\n",
    )
    .await;
    // Methods nobody uses fold into one label.
    let (_, _, before) = server.get("/metrics").await;
    for i in 0..300 {
        server
            .request(&format!("FROB{i}"), "/healthz", None, None, &[])
            .await;
    }
    let (_, _, after) = server.get("/metrics").await;
    assert!(
        after.len() < before.len() + 4096,
        "{} -> {}",
        before.len(),
        after.len()
    );
    assert!(after.contains("method=\"other\""));

    // 1,001 `__typename` aliases count.
    let admin = server.token("admin", "admin", None);
    let aliases: String = (0..1001).map(|i| format!("a{i}: __typename ")).collect();
    let (status, body) = server
        .graphql(Some(&admin), &format!("{{ {aliases} }}"), Value::Null)
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        first_error(&body),
        "Query is too complex: it selects more than 1000 fields (each alias, `__typename` and fragment use counted)"
    );

    // One source holds at most four connections; another source still gets in.
    let addr = server.url.trim_start_matches("http://").to_owned();
    let held: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = std::net::TcpStream::connect(&addr).unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    use std::io::{Read, Write};
    let _ = fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 64];
    assert!(
        matches!(fifth.read(&mut buf), Ok(0) | Err(_)),
        "the fifth is closed"
    );
    let other = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let port = addr.rsplit(':').next().unwrap();
    let resp = other
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    drop(held);
    let (_, _, metrics) = server.get("/metrics").await;
    assert!(metrics.contains("reason=\"per_source_connections\""));
}

#[tokio::test]
async fn only_trusted_proxies_name_the_client() {
    let server = TestServer::start(
        bin(),
        Backend::Sqlite,
        "trusted_proxies = [\"127.0.0.1\"]\n[limits]\nper_source_rps = 1\nper_source_burst = 1\n",
    )
    .await;
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let send = async |client: &reqwest::Client, xff: &str| {
        client
            .post(format!("http://127.0.0.1:{port}/graphql"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", xff)
            .body("{\"query\":\"{ viewer { name } }\"}")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let proxy = from([127, 0, 0, 1]);
    // Behind the proxy, each client has its own budget.
    assert_eq!(send(&proxy, "203.0.113.5").await, 401);
    assert_eq!(send(&proxy, "198.51.100.7").await, 401);
    assert_eq!(send(&proxy, "203.0.113.5").await, 429);
    // From anyone else the header is ignored: the peer is the source.
    let stranger = from([127, 0, 0, 9]);
    assert_eq!(send(&stranger, "192.0.2.1").await, 401);
    assert_eq!(send(&stranger, "192.0.2.2").await, 429);
    // A TCP proxy's PROXY protocol header, version 1 and 2, from the trusted peer only.
    let request = "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    let raw = async |source: [u8; 4], head: Vec<u8>| {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::new(IpAddr::from(source), 0))
            .unwrap();
        let mut stream = socket
            .connect(format!("127.0.0.1:{port}").parse().unwrap())
            .await
            .unwrap();
        stream.write_all(&head).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer)
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    };
    let v1 = b"PROXY TCP4 203.0.113.77 127.0.0.1 5555 80\r\n".to_vec();
    assert_eq!(raw([127, 0, 0, 1], v1.clone()).await, "401");
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend([
        0x21, 0x11, 0, 12, 198, 51, 100, 99, 127, 0, 0, 1, 0x15, 0xb3, 0, 80,
    ]);
    assert_eq!(raw([127, 0, 0, 1], v2).await, "401");
    // From anyone else it is not a header but a malformed request.
    assert_eq!(raw([127, 0, 0, 10], v1).await, "400");
    let sources: Vec<String> = server
        .audit("auth.token")
        .iter()
        .map(|e| e["source"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        sources,
        [
            "203.0.113.5",
            "198.51.100.7",
            "127.0.0.9",
            "203.0.113.77",
            "198.51.100.99"
        ]
    );
}

#[tokio::test]
async fn scim_clients_get_their_own_budget_and_scim_errors() {
    let server = TestServer::start(
        bin(),
        Backend::Sqlite,
        "[limits]\nper_source_rps = 1\nper_source_burst = 2\n[scim]\nper_token_rps = 1\nper_token_burst = 20\n",
    )
    .await;
    let idp = server.token("idp", "scim", None);
    // Past the per-source budget: an authenticated SCIM client goes on, on its own budget.
    for i in 0..20 {
        let (status, body) = scim(&server, &idp, "GET", "/Users", None).await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    let (status, headers, body) = server
        .request("GET", "/scim/v2/Users", Some(&idp), None, &[])
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(body["status"], "429");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("too many requests with this SCIM token")
    );
    assert!(headers.contains_key("retry-after"));
    // Without a credential, the source's budget holds, and the refusal is a SCIM error too.
    let mut last = (0, Value::Null);
    for _ in 0..4 {
        let (status, _, body) = server
            .request("GET", "/scim/v2/Users", None, None, &[])
            .await;
        last = (status, body);
    }
    assert_eq!(last.0, 429);
    assert_eq!(
        last.1["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
}

/// Makes a local account `name` that can log in with keys (no password, not locked).
fn unix_user(name: &str) {
    let exists = std::process::Command::new("id").arg(name).output().unwrap();
    if !exists.status.success() {
        let made = std::process::Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/sh", name])
            .output()
            .unwrap();
        // Another test may have made it meanwhile.
        assert!(
            made.status.success()
                || String::from_utf8_lossy(&made.stderr).contains("already exists"),
            "useradd: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let unlocked = std::process::Command::new("usermod")
        .args(["-p", "*", name])
        .output()
        .unwrap();
    assert!(unlocked.status.success());
}

#[tokio::test]
async fn a_person_logs_in_as_themselves_not_only_as_root() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lab = warden_testkit::SshLab::start(bin(), d).await;
    unix_user("alice");
    // alice (in ops) as alice on db-1 (team=ops): sshd reads the host's principal as her.
    let out = warden_testkit::through_proxy("ssh", &lab.server, d)
        .args(["alice@db-1", "id", "-un"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nsshd: {}",
        String::from_utf8_lossy(&out.stderr),
        lab.sshd.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "alice");
    assert!(
        !lab.sshd.log().contains("Permission denied"),
        "{}",
        lab.sshd.log()
    );
}

#[tokio::test]
async fn the_sign_in_page_does_not_tell_who_exists() {
    let port = warden_testkit::free_port();
    let base = format!("http://localhost:{port}");
    let config = format!("public_url = \"{base}\"\n[limits]\nper_source_rps = 0\n");
    let server = TestServer::start_on(bin(), Backend::Sqlite, &config, port).await;
    ok(&server, &["user", "add", "bob"]);
    server.enroll_soft_passkey(&base, "alice").await;
    server.enroll_soft_passkey(&base, "carol").await;
    ok(&server, &["user", "disable", "carol"]);
    let client = reqwest::Client::new();
    let start = async |user: &str| {
        let resp = client
            .post(format!("{base}/auth/passkey/start"))
            .json(&json!({ "user": user }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let cookie = resp.headers().contains_key("set-cookie");
        (status, cookie, resp.json::<Value>().await.unwrap())
    };
    let shape = |v: &Value| {
        let options = &v["publicKey"];
        let mut keys: Vec<String> = options.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let ids: Vec<usize> = options["allowCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().len())
            .collect();
        (
            keys,
            ids,
            options["rpId"].clone(),
            options["userVerification"].clone(),
        )
    };
    let (status, cookie, real) = start("alice").await;
    assert_eq!((status, cookie), (200, true), "{real}");
    // No passkey, disabled, unknown: answered exactly as alice is, bar the values.
    for user in ["bob", "carol", "nobody"] {
        let (status, cookie, answer) = start(user).await;
        assert_eq!((status, cookie), (200, true), "{user}: {answer}");
        assert_eq!(shape(&answer), shape(&real), "{user}: {answer}");
    }
    // A name's stand-in is the same every time, as a real credential is.
    let id = |v: &Value| v["publicKey"]["allowCredentials"][0]["id"].clone();
    let (_, _, once) = start("nobody").await;
    let (_, _, twice) = start("nobody").await;
    assert_eq!(id(&once), id(&twice));
    let (_, _, other) = start("nobody-else").await;
    assert_ne!(id(&once), id(&other));
    assert_ne!(
        once["publicKey"]["challenge"],
        twice["publicKey"]["challenge"]
    );
}

#[tokio::test]
async fn a_password_typed_through_the_proxy_is_not_recorded() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lab = warden_testkit::SshLab::start(bin(), d).await;
    let mut child = warden_testkit::through_proxy("ssh", &lab.server, d)
        .args([
            "-tt",
            "root@db-1",
            "stty -echo; printf 'Password: '; read p; stty echo; echo; echo got-${#p}",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Typed once the prompt is on the screen, as a person would.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"hunter2\r")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("got-7"),
        "{shown}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ends = Vec::new();
    for _ in 0..100 {
        ends = lab.server.audit("ssh.session.end");
        if !ends.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recording = &ends[0]["details"]["recordings"][0];
    assert_eq!(recording["redacted_entries"], 1, "{recording}");
    let file = recording["file"].as_str().unwrap();
    let raw = std::fs::read(lab.server.data_dir.join("recordings").join(file)).unwrap();
    assert!(!raw.windows(7).any(|w| w == b"hunter2"));
    // Read back as an auditor reads it.
    let casts = lab.server.recording_as_auditor(file).await;
    assert!(casts.contains("got-7"), "the session was recorded: {casts}");
    assert!(casts.contains("[redacted]"), "{casts}");
    assert!(!casts.contains("hunter2"), "{casts}");
}
