//! Findings for the benchmarks that need a full database: written through the store's import
//! path, as imports would, without the HTTP upload and parse.

use std::time::{Duration, Instant, SystemTime};

use warden_model::{Actor, Timestamp};
use warden_store::{AuditContext, DatabaseLocation, Store};
use warden_vuln::{ImportedFinding, Severity, SlaTiers};
use warden_vuln_store::{NewImport, VulnStore};

/// Fills the database up to `total` findings through the store's import path, on assets of
/// 100,000 each, with clocks started 0 to 120 days ago so that many are overdue.
pub async fn seed(url: &str, total: usize) -> Duration {
    let store = Store::open(&DatabaseLocation::parse(url).unwrap())
        .await
        .unwrap();
    let sla = SlaTiers::default();
    let started = Instant::now();
    let per = 100_000;
    let now = Timestamp::from_system(SystemTime::now()).as_millis();
    for a in 0..total.div_ceil(per) {
        let days_ago = (i64::try_from(a).unwrap() * 13) % 120;
        let ctx = AuditContext {
            actor: Actor::Operator,
            request_id: format!("seed-{a}"),
            source: None,
            now: Timestamp::from_millis(now - days_ago * 86_400_000),
        };
        let findings = (0..per.min(total - a * per))
            .map(|i| ImportedFinding {
                advisory: format!("CVE-2024-{i:06}"),
                aliases: vec![format!("GHSA-{i:06}")],
                package: Some(format!("pkg:npm/mod{}@{}.0.0", i % 3000, i % 11)),
                location: None,
                fingerprint: None,
                fixed_in: None,
                no_fix: false,
                title: format!("mod{}: prototype pollution {i}", i % 3000),
                disclosed: Severity::from_rank(i64::try_from(i % 5).unwrap()),
                cvss: None,
            })
            .collect();
        let new = NewImport {
            asset: format!("service-{a:02}"),
            scanner: "grype".to_owned(),
            format: "grype".to_owned(),
            file_name: "seed.json".to_owned(),
            sha256: "00".repeat(32),
            findings,
        };
        store.vulns().import(&ctx, &sla, new).await.unwrap();
    }
    started.elapsed()
}
