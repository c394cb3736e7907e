//! The netmap compiler decides as Cedar does, changes incrementally as it would from
//! scratch, and refuses what it cannot compile.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use warden_mesh::{
    ConnectRule, MeshRanges, Netmap, Node, NodeKind, Protocol, PublicKey, connect_rules,
};
use warden_policy::{Policies, PolicyFile};

fn policies(text: &str) -> Policies {
    warden_policy::load(&[PolicyFile {
        name: "mesh.cedar".into(),
        text: text.into(),
    }])
    .unwrap()
}

fn rules(text: &str) -> Vec<ConnectRule> {
    connect_rules(&policies(text).policies_json().unwrap()).unwrap()
}

fn key(n: u32) -> PublicKey {
    let mut b = [7u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    PublicKey::from_bytes(b).unwrap()
}

fn host(n: u32, name: &str, labels: &[(&str, &str)]) -> Node {
    let ranges = MeshRanges::default();
    let (ipv4, ipv6) = ranges.addresses(n).unwrap();
    Node {
        name: name.into(),
        kind: NodeKind::Host {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        key: key(n),
        ipv4,
        ipv6,
        endpoint: None,
    }
}

fn device(n: u32, name: &str, owner: &str, groups: &[&str]) -> Node {
    let (ipv4, ipv6) = MeshRanges::default().addresses(n).unwrap();
    Node {
        name: name.into(),
        kind: NodeKind::Device {
            owner: owner.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        },
        key: key(n),
        ipv4,
        ipv6,
        endpoint: None,
    }
}

/// Cedar's own answer for `source` connecting to `dest`.
fn cedar_allows(
    p: &Policies,
    nodes: &[Node],
    source: &Node,
    dest: &Node,
    proto: Protocol,
    port: u16,
) -> bool {
    let mut entities = Vec::new();
    let mut groups = BTreeSet::new();
    for n in nodes {
        match &n.kind {
            NodeKind::Host { labels } => entities.push(serde_json::json!({
                "uid": {"type": "Warden::Host", "id": n.name}, "attrs": {}, "parents": [], "tags": labels,
            })),
            NodeKind::Device { owner, groups: g } => {
                groups.extend(g.iter().cloned());
                entities.push(serde_json::json!({
                    "uid": {"type": "Warden::Device", "id": n.name}, "attrs": {},
                    "parents": [{"type": "Warden::User", "id": owner}],
                }));
                entities.push(serde_json::json!({
                    "uid": {"type": "Warden::User", "id": owner},
                    "attrs": {"name": owner, "groups": g},
                    "parents": g.iter().map(|g| serde_json::json!({"type": "Warden::Group", "id": g})).collect::<Vec<_>>(),
                }));
            }
        }
    }
    for g in groups {
        entities.push(serde_json::json!({"uid": {"type": "Warden::Group", "id": g}, "attrs": {}, "parents": []}));
    }
    let entities = cedar_policy::Entities::from_json_value(
        serde_json::Value::Array(entities),
        Some(p.schema()),
    )
    .unwrap();
    let uid = |n: &Node| match n.kind {
        NodeKind::Host { .. } => format!("Warden::Host::\"{}\"", n.name),
        NodeKind::Device { .. } => format!("Warden::Device::\"{}\"", n.name),
    };
    if matches!(dest.kind, NodeKind::Device { .. }) || source.name == dest.name {
        return false;
    }
    p.decide(
        &entities,
        &uid(source),
        "Warden::Action::\"connect\"",
        &uid(dest),
        &serde_json::json!({"protocol": proto.name(), "port": port}),
    )
    .unwrap()
    .allow
}

const POLICY: &str = r#"
@id("eng-web")
permit(principal in Warden::Group::"eng", action == Warden::Action::"connect", resource)
when { resource.hasTag("role") && resource.getTag("role") == "web" && context.protocol == "tcp" && [80, 443].contains(context.port) };
@id("web-db")
permit(principal is Warden::Host, action == Warden::Action::"connect", resource is Warden::Host)
when { principal.hasTag("role") && principal.getTag("role") == "web" && resource.hasTag("role") && resource.getTag("role") == "db" && context.port >= 5432 && context.port <= 5433 };
@id("ops-any")
permit(principal in Warden::User::"olga", action == Warden::Action::"connect", resource);
@id("no-prod-db")
forbid(principal in Warden::Group::"contractors", action == Warden::Action::"connect", resource)
when { resource.hasTag("env") && resource.getTag("env") == "prod" };
@id("ping")
permit(principal, action == Warden::Action::"connect", resource) when { context.protocol == "icmp" || context.protocol == "udp" && context.port == 53 };
"#;

fn sample() -> Vec<Node> {
    vec![
        host(1, "web-1", &[("role", "web"), ("env", "prod")]),
        host(2, "web-2", &[("role", "web"), ("env", "dev")]),
        host(3, "db-1", &[("role", "db"), ("env", "prod")]),
        device(4, "alice-laptop", "alice", &["eng"]),
        device(5, "carl-laptop", "carl", &["eng", "contractors"]),
        device(6, "olga-phone", "olga", &["ops"]),
        device(7, "bob-laptop", "bob", &[]),
    ]
}

#[test]
fn compiled_rules_decide_as_cedar() {
    let p = policies(POLICY);
    let nodes = sample();
    let map = Netmap::new(rules(POLICY), nodes.clone());
    let mut allowed = 0;
    for s in &nodes {
        for d in &nodes {
            for (proto, port) in [
                (Protocol::Tcp, 80),
                (Protocol::Tcp, 443),
                (Protocol::Tcp, 22),
                (Protocol::Tcp, 5432),
                (Protocol::Tcp, 5434),
                (Protocol::Udp, 53),
                (Protocol::Udp, 80),
                (Protocol::Icmp, 0),
            ] {
                let want = cedar_allows(&p, &nodes, s, d, proto, port);
                assert_eq!(
                    map.allows(&s.name, &d.name, proto, port),
                    want,
                    "{} → {} {proto:?}/{port}",
                    s.name,
                    d.name
                );
                allowed += usize::from(want);
            }
        }
    }
    assert!(allowed > 10);
}

#[test]
fn peers_and_filters_follow_the_rules() {
    let map = Netmap::new(rules(POLICY), sample());
    let peers = |n: &str| {
        map.render(n)
            .unwrap()
            .peers
            .into_iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
    };
    // Everyone may ping everyone, so everyone peers with the hosts; devices never with devices.
    assert_eq!(peers("alice-laptop"), ["db-1", "web-1", "web-2"]);
    assert_eq!(
        peers("web-1"),
        [
            "alice-laptop",
            "bob-laptop",
            "carl-laptop",
            "db-1",
            "olga-phone",
            "web-2"
        ]
    );
    let web1 = map.render("web-1").unwrap();
    // The contractor's forbid comes first and names carl's addresses.
    let first = &web1.inbound[0];
    assert_eq!(first.policy, "mesh.cedar:no-prod-db");
    assert_eq!(first.sources.len(), 2);
    assert!(map.render("bob-laptop").unwrap().inbound.is_empty());
}

#[test]
fn refuses_what_it_cannot_compile() {
    let cases = [
        (
            r#"@id("by-name") permit(principal, action == Warden::Action::"connect", resource) when { principal is Warden::User && principal.name == "x" };"#,
            "policy `mesh.cedar:by-name`: the condition",
        ),
        (
            r#"@id("unless") permit(principal, action == Warden::Action::"connect", resource) unless { context.port == 22 };"#,
            "policy `mesh.cedar:unless`: `unless` clauses cannot be compiled into network rules; write the condition with `when`",
        ),
    ];
    for (text, want) in cases {
        let err = connect_rules(&policies(text).policies_json().unwrap()).unwrap_err();
        assert!(err.to_string().starts_with(want), "{err}");
    }
    // A permit for any action whose conditions are about something else is left out.
    let any = r#"@id("admins") permit(principal, action, resource) when { context has login && context.login == "root" };"#;
    assert_eq!(
        connect_rules(&policies(any).policies_json().unwrap()).unwrap(),
        vec![]
    );
}

#[test]
fn keys_and_ranges_refuse_bad_input() {
    for (input, want) in [
        (
            "abc",
            "`abc` is not a WireGuard key: a key is 32 bytes in base64, 44 characters ending in `=`",
        ),
        (
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "the all-zero WireGuard key is not a key",
        ),
        (
            "!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "`!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=` is not a WireGuard key: a key is 32 bytes in base64, 44 characters ending in `=`",
        ),
    ] {
        assert_eq!(input.parse::<PublicKey>().unwrap_err().to_string(), want);
    }
    for ((v4, v6), want) in [
        (
            ("8.8.8.0/24", "fd00::/64"),
            "the mesh IPv4 range `8.8.8.0/24` must lie inside 100.64.0.0/10 (shared address space) or a private block (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)",
        ),
        (
            ("100.64.0.0/10", "2001:db8::/64"),
            "the mesh IPv6 range `2001:db8::/64` must lie inside fc00::/7 (unique local addresses)",
        ),
        (
            ("10.0.0.0/31", "fd00::/64"),
            "the mesh IPv4 range `10.0.0.0/31` is too small: use a /30 or larger",
        ),
        (
            ("10.0.0.0/8", "fd00::/120"),
            "the mesh IPv6 range `fd00::/120` must hold at least as many addresses as `10.0.0.0/8`",
        ),
        (
            ("ten", "fd00::/64"),
            "`ten` is not an address range: write it as a CIDR block such as `100.64.0.0/10`",
        ),
    ] {
        assert_eq!(MeshRanges::new(v4, v6).unwrap_err().to_string(), want);
    }
    let small = MeshRanges::new("10.9.0.0/30", "fd00::/64").unwrap();
    let used = BTreeSet::from([1, 2]);
    assert_eq!(
        small.allocate(&used).unwrap_err().to_string(),
        "the mesh address range 10.9.0.0/30 is exhausted: every address is assigned; remove nodes or widen mesh.ipv4_range"
    );
    assert_eq!(small.allocate(&BTreeSet::from([2])).unwrap(), 1);
    assert_eq!(
        small.addresses(1).unwrap(),
        (
            Ipv4Addr::new(10, 9, 0, 1),
            "fd00::1".parse::<Ipv6Addr>().unwrap()
        )
    );
    let err = MeshRanges::default()
        .check_overlap("100.64.3.0/24".parse().unwrap(), "eth0")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the mesh range 100.64.0.0/10 overlaps 100.64.3.0/24 on eth0: choose a mesh range no local network uses"
    );
}

fn arb_node(n: u32) -> impl Strategy<Value = Node> {
    let role = prop::sample::select(vec!["web", "db", "cache"]);
    let env = prop::sample::select(vec!["prod", "dev"]);
    let owner = prop::sample::select(vec!["alice", "bob", "carl", "olga"]);
    let groups = prop::collection::btree_set(
        prop::sample::select(vec!["eng", "ops", "contractors"]),
        0..3,
    );
    prop_oneof![
        (role, env).prop_map(move |(r, e)| host(n, &format!("h{n}"), &[("role", r), ("env", e)])),
        (owner, groups).prop_map(move |(o, g)| {
            let g: Vec<&str> = g.into_iter().collect();
            device(n + 50, &format!("d{n}"), o, &g)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of changes leaves the same maps as compiling the end state from scratch.
    #[test]
    fn incremental_equals_fresh(
        first in prop::collection::vec((0u32..12).prop_flat_map(|n| arb_node(n + 1)), 1..12),
        changes in prop::collection::vec(((0u32..12).prop_flat_map(|n| arb_node(n + 1)), any::<bool>()), 0..12),
    ) {
        let mut map = Netmap::new(rules(POLICY), first.clone());
        let mut state: BTreeMap<String, Node> = first.into_iter().map(|n| (n.name.clone(), n)).collect();
        for (node, remove) in changes {
            let before: BTreeMap<String, _> = map.names().map(|n| (n.clone(), map.render(n))).collect();
            let touched = if remove {
                state.remove(&node.name);
                map.remove(&node.name)
            } else {
                state.insert(node.name.clone(), node.clone());
                map.upsert(node)
            };
            // Every node whose map changed was reported.
            for name in map.names() {
                if before.get(name) != Some(&map.render(name)) {
                    prop_assert!(touched.contains(name), "{name} changed unreported");
                }
            }
        }
        let fresh = Netmap::new(rules(POLICY), state.values().cloned());
        for name in fresh.names() {
            prop_assert_eq!(fresh.render(name), map.render(name));
        }
    }

    /// Cedar and the compiled rules agree for random meshes.
    #[test]
    fn random_meshes_decide_as_cedar(nodes in prop::collection::vec((0u32..8).prop_flat_map(|n| arb_node(n + 1)), 1..8), port in prop::sample::select(vec![22u16, 53, 80, 443, 5432])) {
        let mut unique: BTreeMap<String, Node> = BTreeMap::new();
        let mut groups_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for mut n in nodes {
            // A person's groups are the same on all their devices.
            if let NodeKind::Device { owner, groups } = &mut n.kind {
                *groups = groups_of.entry(owner.clone()).or_insert_with(|| groups.clone()).clone();
            }
            unique.insert(n.name.clone(), n);
        }
        let nodes: Vec<Node> = unique.into_values().collect();
        let p = policies(POLICY);
        let map = Netmap::new(rules(POLICY), nodes.clone());
        for s in &nodes {
            for d in &nodes {
                for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Icmp] {
                    let port = if proto == Protocol::Icmp { 0 } else { port };
                    prop_assert_eq!(map.allows(&s.name, &d.name, proto, port), cedar_allows(&p, &nodes, s, d, proto, port));
                }
            }
        }
    }
}
