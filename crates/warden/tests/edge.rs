//! Edge limits on the real server: body size, rate limits, slowloris, connection cap.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_testkit::{Backend, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let config = "[limits]\nper_source_rps = 0\nmax_body_bytes = 1024\n";
    let server = TestServer::start(bin(), Backend::Sqlite, config).await;
    let big = format!(
        "{{\"query\": \"{{ viewer {{ name }} }}\", \"pad\": \"{}\"}}",
        "x".repeat(2000)
    );
    let (status, _) = server.post_json("/graphql", None, &big).await;
    assert_eq!(status, 413);
    let (_, _, metrics) = server.get("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "warden_edge_rejections_total{listener=\"http\",reason=\"body_too_large\"}"
        ),
        1.0
    );
    // Under the limit goes through to authentication.
    let (status, _) = server
        .post_json("/graphql", None, "{\"query\": \"{ viewer { name } }\"}")
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn sources_over_their_rate_get_429_with_retry_after() {
    let config = "[limits]\nper_source_rps = 1\nper_source_burst = 3\n";
    let server = TestServer::start(bin(), Backend::Sqlite, config).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let (status, headers, _) = server.get("/healthz/live").await;
        statuses.push(status);
        if status == 429 {
            retry_after = headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(retry_after.as_deref(), Some("1"));
    // The admin socket is not rate limited: the operator can always act.
    assert!(server.admin(&["user", "list"]).status.success());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &metrics,
            "warden_edge_rejections_total{listener=\"http\",reason=\"rate_limit\"}"
        ),
        2.0
    );
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let config = "[limits]\nper_source_rps = 0\nheader_timeout = \"500ms\"\n";
    let server = TestServer::start(bin(), Backend::Sqlite, config).await;
    let addr = server.url.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let mut buf = Vec::new();
        // The server closes the connection; read returns what it sent (a 408 at most) then EOF.
        let _ = stream.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
    .await
    .unwrap();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "connection held for {waited:?}"
    );
    assert!(
        closed.is_empty() || closed.starts_with("HTTP/1.1 408"),
        "{closed}"
    );
    let (_, _, metrics) = server.get("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "warden_edge_rejections_total{listener=\"http\",reason=\"header_timeout\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn connections_past_the_cap_are_closed() {
    let config = "[limits]\nper_source_rps = 0\nmax_connections = 2\n";
    let server = TestServer::start(bin(), Backend::Sqlite, config).await;
    let addr = server.url.trim_start_matches("http://").to_owned();
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(&addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = third.write_all(b"GET /healthz/live HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = Vec::new();
    let _ = third.read_to_end(&mut buf);
    assert!(
        buf.is_empty(),
        "third connection was served: {}",
        String::from_utf8_lossy(&buf)
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let (status, _, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &metrics,
            "warden_edge_rejections_total{listener=\"http\",reason=\"max_connections\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn every_log_line_of_a_request_carries_its_id() {
    let server = TestServer::start(bin(), Backend::Sqlite, "[limits]\nper_source_rps = 0\n").await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/graphql", server.url))
        .header("content-type", "application/json")
        .header("x-request-id", "trace-me-42")
        .body("{\"query\": \"{ viewer { name } }\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lines: Vec<Value> = server
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v: &Value| v.to_string().contains("trace-me-42"))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["authentication failed", "request"]);
    for line in &lines {
        assert_eq!(line["span"]["request_id"], "trace-me-42");
    }
}
