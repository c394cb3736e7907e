//! Mesh nodes on both backends: enrollment with address allocation, key renewal, refusals
//! that change nothing, what the compiler reads (labels, groups, liveness), offboarding.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test")]

mod common;

use std::collections::BTreeSet;

use common::{ctx, stores};
use warden_model::{GroupName, Timestamp, UserName};
use warden_store::{MeshNodeKind, NewJoinToken, NewMeshNode, NewUser, Store, StoreError};

fn device(name: &str, owner: &str, key: &str, expires_at: i64) -> NewMeshNode {
    NewMeshNode {
        name: name.into(),
        kind: MeshNodeKind::Device,
        owner: owner.into(),
        public_key: key.into(),
        endpoint: None,
        expires_at: Some(Timestamp::from_millis(expires_at)),
    }
}

/// Offsets 1..=capacity, lowest free first.
fn allocator(capacity: u32) -> impl FnOnce(&BTreeSet<u32>) -> Result<u32, String> {
    move |used| {
        (1..=capacity)
            .find(|o| !used.contains(o))
            .ok_or_else(|| "the mesh address range is exhausted".to_owned())
    }
}

async fn join(store: &Store, host: &str, labels: &[(&str, &str)]) {
    store
        .create_join_token(
            &ctx(1),
            &NewJoinToken {
                id: format!("jt-{host}"),
                secret_hash: "h".into(),
                host: host.into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                addresses: vec![],
                expires_at: Timestamp::from_millis(1_000_000),
            },
        )
        .await
        .unwrap();
    store
        .join_host(&ctx(2), &format!("jt-{host}"), "127.0.0.1:22", |_| true)
        .await
        .unwrap();
}

#[tokio::test]
async fn enrollment_allocation_and_refusals() {
    for (store, _db, _dir) in stores().await {
        let alice = UserName::new("alice").unwrap();
        store
            .create_user(
                &ctx(1),
                NewUser {
                    name: alice.clone(),
                    display_name: None,
                    email: None,
                },
            )
            .await
            .unwrap();
        let eng = GroupName::new("eng").unwrap();
        store
            .create_group(&ctx(1), eng.clone(), String::new())
            .await
            .unwrap();
        store.add_group_member(&ctx(1), &eng, &alice).await.unwrap();
        join(&store, "web-1", &[("role", "web")]).await;

        let host = NewMeshNode {
            name: "web-1".into(),
            kind: MeshNodeKind::Host,
            owner: "web-1".into(),
            public_key: "KEY-A".into(),
            endpoint: Some("10.0.0.1:51820".into()),
            expires_at: None,
        };
        assert_eq!(
            store
                .mesh_enroll(&ctx(10), &host, allocator(3))
                .await
                .unwrap()
                .address_offset,
            1
        );
        let laptop = store
            .mesh_enroll(
                &ctx(11),
                &device("laptop", "alice", "KEY-B", 100_000),
                allocator(3),
            )
            .await
            .unwrap();
        assert_eq!(laptop.address_offset, 2);
        // A new key keeps the address; the key time moves.
        let renewed = store
            .mesh_enroll(
                &ctx(12),
                &device("laptop", "alice", "KEY-C", 200_000),
                allocator(3),
            )
            .await
            .unwrap();
        assert_eq!(
            (renewed.address_offset, renewed.key_set_at),
            (2, Timestamp::from_millis(12))
        );

        // Refusals change nothing and are recorded.
        let refusals = [
            (
                device("phone", "alice", "KEY-A", 100_000),
                "this WireGuard key belongs to another node: every node must make its own key",
            ),
            (
                device("web-1", "alice", "KEY-D", 100_000),
                "mesh node `web-1` belongs to another host: choose another name",
            ),
        ];
        for (node, want) in refusals {
            match store.mesh_enroll(&ctx(13), &node, allocator(3)).await {
                Err(StoreError::Conflict(message)) => assert_eq!(message, want),
                other => panic!("{other:?}"),
            }
        }
        store
            .mesh_enroll(
                &ctx(14),
                &device("phone", "alice", "KEY-E", 100_000),
                allocator(3),
            )
            .await
            .unwrap();
        match store
            .mesh_enroll(
                &ctx(15),
                &device("tablet", "alice", "KEY-F", 100_000),
                allocator(3),
            )
            .await
        {
            Err(StoreError::Conflict(message)) => {
                assert_eq!(message, "the mesh address range is exhausted")
            }
            other => panic!("{other:?}"),
        }
        assert!(store.mesh_node("tablet").await.unwrap().is_none());

        // What the compiler reads: labels, groups, liveness (the phone expired at 100,000).
        let members = store
            .mesh_members(Timestamp::from_millis(150_000))
            .await
            .unwrap();
        let by_name = |n: &str| members.iter().find(|m| m.node.name == n).unwrap().clone();
        assert_eq!(
            by_name("web-1").labels.get("role").map(String::as_str),
            Some("web")
        );
        assert!(by_name("web-1").live);
        assert_eq!(by_name("laptop").groups, BTreeSet::from(["eng".to_owned()]));
        assert_eq!(
            by_name("phone").groups,
            BTreeSet::from(["eng".to_owned()]),
            "every device of a person carries their groups"
        );
        assert!(by_name("laptop").live);
        assert!(!by_name("phone").live);

        // Removing frees the address for the next node.
        store.mesh_remove(&ctx(16), "phone").await.unwrap();
        assert_eq!(
            store
                .mesh_enroll(
                    &ctx(17),
                    &device("tablet", "alice", "KEY-F", 300_000),
                    allocator(3)
                )
                .await
                .unwrap()
                .address_offset,
            3
        );

        // Disabling alice removes her devices in the same change.
        store
            .set_user_disabled(&ctx(18), &alice, true)
            .await
            .unwrap();
        let left: Vec<String> = store
            .mesh_members(Timestamp::from_millis(20))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.node.name)
            .collect();
        assert_eq!(left, ["web-1"]);
        let filter = warden_store::EventFilter {
            action: Some("mesh.node.enroll".into()),
            ..Default::default()
        };
        let events = store.events(&filter, 100).await.unwrap();
        assert_eq!(events.len(), 8, "five enrollments and three refusals");
    }
}
