//! What the store's tests share: a fresh, migrated store of each backend.

use warden_model::{Actor, Timestamp};
use warden_store::{AuditContext, DatabaseLocation, Store};
use warden_testkit::TestDatabase;

/// A store on a fresh database of each backend, migrated.
pub async fn stores() -> Vec<(Store, Option<TestDatabase>, tempfile::TempDir)> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&DatabaseLocation::in_data_dir(dir.path()))
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    out.push((sqlite, None, dir));
    let db = TestDatabase::create().await;
    let pg = Store::open(&DatabaseLocation::parse(db.url()).unwrap())
        .await
        .unwrap();
    pg.migrate().await.unwrap();
    out.push((pg, Some(db), tempfile::tempdir().unwrap()));
    out
}

pub fn ctx(now: i64) -> AuditContext {
    AuditContext {
        actor: Actor::Operator,
        request_id: format!("req-{now}"),
        source: None,
        now: Timestamp::from_millis(now),
    }
}
