//! SCIM list benchmark (issue 8): filtered lists over 100,000 provisioned users, as an
//! identity provider's client sees them (HTTP GET /scim/v2/Users?filter=…), on SQLite and
//! PostgreSQL. The users are provisioned through the store's SCIM path (the same write, with
//! its audit event, as POST /Users) by a second process on the server's database.
//!
//! Run: `cargo bench -p warden --bench scim -- [users]`
#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "a benchmark")]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warden_model::{Actor, Timestamp, UserName};
use warden_store::{AuditContext, DatabaseLocation, ScimUserChange, Store};
use warden_testkit::{Backend, TestServer, ms, percentile};

/// Provisions `n` users with 64 writers at once (the store batches them).
async fn seed(url: &str, n: usize) -> Duration {
    let store = Arc::new(
        Store::open(&DatabaseLocation::parse(url).unwrap())
            .await
            .unwrap(),
    );
    let started = Instant::now();
    let workers = 64;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(workers) {
                let ctx = AuditContext {
                    actor: Actor::Operator,
                    request_id: format!("seed-{i}"),
                    source: None,
                    now: Timestamp::from_system(std::time::SystemTime::now()),
                };
                let user_name = format!("user{i:06}@example.com");
                let kind = if i % 10 == 0 { "home" } else { "work" };
                let document = json!({
                    "userName": user_name,
                    "externalId": format!("ext-{i}"),
                    "displayName": format!("User {i}"),
                    "name": { "givenName": format!("Given{}", i % 1000), "familyName": format!("Family{}", i % 97) },
                    "emails": [{ "value": user_name, "type": kind, "primary": true }],
                });
                let change = ScimUserChange {
                    document: document.as_object().unwrap().clone(),
                    active: Some(i % 50 != 0),
                };
                let name = UserName::new(warden_model::derive_name(&user_name)).unwrap();
                store.scim_create_user(&ctx, name, change).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

async fn measure(backend: Backend, users: usize) {
    let bin = Path::new(env!("CARGO_BIN_EXE_warden"));
    let server = TestServer::start(
        bin,
        backend,
        "[limits]\nper_source_rps = 0\nper_token_rps = 0\n[scim]\nper_token_rps = 0\n",
    )
    .await;
    let seeded = seed(&server.database_url(), users).await;
    println!(
        "{backend:?}: provisioned {users} users in {:.1} s ({:.0}/s)",
        seeded.as_secs_f64(),
        users as f64 / seeded.as_secs_f64()
    );
    let token = server.token("idp", "scim", None);
    let middle = users / 2;
    let filters = [
        format!(r#"userName eq "USER{middle:06}@example.com""#),
        format!(r#"externalId eq "ext-{middle}""#),
        r#"userName sw "user0001""#.to_owned(),
        r#"emails[type eq "home" and value ew "99@example.com"]"#.to_owned(),
        r#"name.familyName eq "family42" and active eq false"#.to_owned(),
        r#"displayName co "User 4242""#.to_owned(),
    ];
    let client = reqwest::Client::new();
    for filter in &filters {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filter", filter)
            .append_pair("count", "100")
            .finish();
        let url = format!("{}/scim/v2/Users?{q}", server.url);
        let mut times = Vec::new();
        let mut total = 0;
        for _ in 0..50 {
            let started = Instant::now();
            let resp = client.get(&url).bearer_auth(&token).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let body: serde_json::Value = resp.json().await.unwrap();
            times.push(started.elapsed());
            total = body["totalResults"].as_u64().unwrap();
        }
        times.sort();
        println!(
            "{backend:?}: {filter:<60} {total:>6} match: p50 {:.2} ms, p99 {:.2} ms (target under 50 ms)",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
        );
    }
    // Deep paging without a filter: the last page.
    let url = format!(
        "{}/scim/v2/Users?startIndex={}&count=100",
        server.url,
        users - 99
    );
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let resp = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "{backend:?}: last page of all {users} (startIndex {}): p50 {:.2} ms, p99 {:.2} ms",
        users - 99,
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
    );
}

#[tokio::main]
async fn main() {
    let users = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    for backend in Backend::ALL {
        measure(backend, users).await;
    }
}
