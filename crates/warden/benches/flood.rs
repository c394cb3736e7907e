//! Flood benchmark (issue 21): 10,000 unauthenticated 1 MiB uploads from 100 loopback sources
//! (127.0.0.10 to 127.0.0.109), spread over the routes that take bodies (`/v1/vuln/import`,
//! `/graphql`, `/webauthn/assert/start`), while a legitimate admin asks `viewer` in a loop.
//! Prints the server's peak resident memory, the legitimate client's latency, what the
//! attackers got, and the audit log's growth: bytes per refused request, unauthenticated and
//! for a member's request of 200 refused fields.
//!
//! Run: `cargo bench -p warden --bench flood -- [uploads] [sources] [in flight per source]`
#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "a benchmark")]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warden_testkit::{Backend, TestServer};

const MIB: usize = 1024 * 1024;
const ROUTES: [&str; 3] = [
    "/v1/vuln/import?asset=app",
    "/graphql",
    "/webauthn/assert/start",
];

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// One unauthenticated upload from `source`: the request head, then as much of the 1 MiB body
/// as the server takes; returns the status it answered (0: it closed the connection first).
async fn upload(server: SocketAddr, source: IpAddr, route: &str, chunk: &[u8]) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if socket.bind(SocketAddr::new(source, 0)).is_err() {
        return 0;
    }
    let Ok(mut stream) = socket.connect(server).await else {
        return 0;
    };
    let head = format!(
        "POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        chunk.len()
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    let _ = stream.write_all(chunk).await;
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut answer))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    String::from_utf8_lossy(&answer[..n])
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    warden_testkit::ms(warden_testkit::percentile(sorted, p))
}

/// The audit events with `action` and the bytes of their JSON as `warden audit query` prints it.
fn audit_bytes(server: &TestServer, action: &str) -> (usize, usize) {
    let events = server.audit(action);
    let bytes = events.iter().map(|e| e.to_string().len()).sum();
    (events.len(), bytes)
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let uploads = args.first().copied().unwrap_or(10_000);
    let sources = args.get(1).copied().unwrap_or(100);
    let in_flight = args.get(2).copied().unwrap_or(4);
    let bin = Path::new(env!("CARGO_BIN_EXE_warden"));
    // The defaults, as a deployment has them: 50/s per source with a burst of 100, 256
    // connections per source, 1 MiB bodies.
    let server = TestServer::start(bin, Backend::Sqlite, "").await;
    let pid = server.pid().unwrap();
    let admin = server.token("admin", "admin", None);
    let addr: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let idle = rss_mib(pid);
    let (anon_before, anon_bytes_before) = audit_bytes(&server, "auth.token");

    let peak = Arc::new(AtomicU64::new(idle));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_mib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let legit = {
        let (url, admin, done) = (server.url.clone(), admin.clone(), done.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut times = Vec::new();
            let mut failed = 0;
            while !done.load(Ordering::Relaxed) {
                let start = Instant::now();
                let ok = client
                    .post(format!("{url}/graphql"))
                    .bearer_auth(&admin)
                    .header("content-type", "application/json")
                    .body("{\"query\":\"{ viewer { name } }\"}")
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if ok {
                    times.push(start.elapsed());
                } else {
                    failed += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (times, failed)
        })
    };

    let chunk: Arc<Vec<u8>> = Arc::new(vec![b'x'; MIB]);
    let statuses = Arc::new(std::sync::Mutex::new(BTreeMap::<u16, usize>::new()));
    let started = Instant::now();
    let per_source = uploads.div_ceil(sources);
    let mut tasks = Vec::new();
    for s in 0..sources {
        let source = IpAddr::from([127, 0, 0, u8::try_from(10 + s % 240).unwrap()]);
        for lane in 0..in_flight {
            let (chunk, statuses) = (chunk.clone(), statuses.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = lane;
                while i < per_source {
                    let route = ROUTES[(s + i) % ROUTES.len()];
                    let status = upload(addr, source, route, &chunk).await;
                    *statuses.lock().unwrap().entry(status).or_insert(0) += 1;
                    i += in_flight;
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let flood = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let (mut times, failed) = legit.await.unwrap();
    times.sort();
    let peak = peak.load(Ordering::Relaxed);
    let statuses = statuses.lock().unwrap().clone();
    let refused: usize = statuses.values().sum();
    let (anon_after, anon_bytes_after) = audit_bytes(&server, "auth.token");
    let (_, _, metrics) = server.get("/metrics").await;
    let metric = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map_or_else(|| "0".to_owned(), |v| v.trim().to_owned())
    };

    println!(
        "flood: {uploads} uploads of 1 MiB from {sources} sources, {in_flight} in flight each, over {ROUTES:?}"
    );
    println!("  took {:.1} s; answers {statuses:?}", flood.as_secs_f64());
    println!("  server RSS: idle {idle} MiB, peak {peak} MiB (target < 200 MiB)");
    println!(
        "  legitimate viewer during the flood: {} requests, {failed} failed, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 < 50 ms)",
        times.len(),
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        percentile(&times, 1.0)
    );
    let written = anon_after - anon_before;
    let bytes = anon_bytes_after - anon_bytes_before;
    println!(
        "  audit: {written} auth.token events ({bytes} bytes of JSON) for {refused} unauthenticated refusals: {:.1} bytes per refused request; refusals counted {}, left out of the log {}",
        bytes as f64 / refused.max(1) as f64,
        metric("warden_anonymous_refusals_total "),
        metric("warden_audit_unrecorded_refusals_total ")
    );

    // A member's one request of 200 refused fields.
    assert!(server.admin(&["user", "add", "mo"]).status.success());
    let member = server.token("mo", "member", Some("mo"));
    let (before, before_bytes) = audit_bytes(&server, "api.read_directory");
    let fields: String = (0..200)
        .map(|i| format!("u{i}: user(name: \"mo\") {{ name }} "))
        .collect();
    let (_, body) = server
        .graphql(Some(&member), &format!("{{ {fields} }}"), Value::Null)
        .await;
    let errors = body["errors"].as_array().map_or(0, Vec::len);
    let (after, after_bytes) = audit_bytes(&server, "api.read_directory");
    println!(
        "  a member's request of {errors} refused fields: {} event(s), {} bytes",
        after - before,
        after_bytes - before_bytes
    );
}
