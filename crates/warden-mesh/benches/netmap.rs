//! Netmap compiler benchmark: 10,000 nodes (1,000 hosts, 9,000 devices of 3,000 people in
//! 100 groups) under 1,000 `connect` policies. Prints how long it takes to turn the policies
//! into rules, to compile, to render every node's map, and to apply one node's change (with
//! and without rendering the maps it touched).
//!
//! `cargo bench -p warden-mesh --bench netmap`

#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use warden_mesh::{MeshRanges, Netmap, Node, NodeKind, PublicKey, connect_rules};
use warden_policy::PolicyFile;

const HOSTS: u32 = 1_000;
const DEVICES: u32 = 9_000;
const PEOPLE: u32 = 3_000;
const GROUPS: u32 = 100;
const ROLES: u32 = 50;
const POLICIES: u32 = 1_000;

fn key(n: u32) -> PublicKey {
    let mut b = [1u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    PublicKey::from_bytes(b).unwrap()
}

fn groups_of(person: u32, shift: u32) -> BTreeSet<String> {
    [person % GROUPS, (person * 7 + 3 + shift) % GROUPS]
        .iter()
        .map(|g| format!("g{g}"))
        .collect()
}

fn node(n: u32, shift: u32) -> Node {
    let (ipv4, ipv6) = MeshRanges::default().addresses(n + 1).unwrap();
    let kind = if n < HOSTS {
        NodeKind::Host {
            labels: BTreeMap::from([
                ("role".to_owned(), format!("r{}", n % ROLES)),
                (
                    "env".to_owned(),
                    if n.is_multiple_of(3) { "prod" } else { "dev" }.to_owned(),
                ),
            ]),
        }
    } else {
        let person = (n - HOSTS) % PEOPLE;
        NodeKind::Device {
            owner: format!("u{person}"),
            groups: groups_of(person, shift),
        }
    };
    Node {
        name: if n < HOSTS {
            format!("host-{n}")
        } else {
            format!("dev-{n}")
        },
        kind,
        key: key(n),
        ipv4,
        ipv6,
        endpoint: None,
    }
}

fn policies() -> String {
    let mut text = String::new();
    for p in 0..POLICIES {
        let line = if p < 900 {
            format!(
                "@id(\"p{p}\") permit(principal in Warden::Group::\"g{}\", action == Warden::Action::\"connect\", resource) when {{ resource.hasTag(\"role\") && resource.getTag(\"role\") == \"r{}\" && context.protocol == \"tcp\" && [{}, 443].contains(context.port) }};\n",
                p % GROUPS,
                (p * 13) % ROLES,
                8000 + p % 50
            )
        } else if p < 980 {
            format!(
                "@id(\"p{p}\") permit(principal is Warden::Host, action == Warden::Action::\"connect\", resource) when {{ principal.hasTag(\"role\") && principal.getTag(\"role\") == \"r{}\" && resource.hasTag(\"role\") && resource.getTag(\"role\") == \"r{}\" && context.port >= 5000 && context.port <= 5100 }};\n",
                p % ROLES,
                (p + 1) % ROLES
            )
        } else {
            format!(
                "@id(\"p{p}\") forbid(principal in Warden::Group::\"g{}\", action == Warden::Action::\"connect\", resource) when {{ resource.hasTag(\"env\") && resource.getTag(\"env\") == \"prod\" && context.port == 443 }};\n",
                p % GROUPS
            )
        };
        text.push_str(&line);
    }
    text
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a rank within the sample, p in 0..=1"
)]
fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn main() {
    let text = policies();
    let t = Instant::now();
    let loaded = warden_policy::load(&[PolicyFile {
        name: "mesh.cedar".into(),
        text,
    }])
    .unwrap();
    let load = t.elapsed();
    let t = Instant::now();
    let rules = connect_rules(&loaded.policies_json().unwrap()).unwrap();
    let to_rules = t.elapsed();
    let nodes: Vec<Node> = (0..HOSTS + DEVICES).map(|n| node(n, 0)).collect();
    let t = Instant::now();
    let mut map = Netmap::new(rules.clone(), nodes);
    let compile = t.elapsed();
    let t = Instant::now();
    let names: Vec<String> = map.names().cloned().collect();
    let (mut peers, mut sources) = (0usize, 0usize);
    for name in &names {
        let m = map.render(name).unwrap();
        peers += m.peers.len();
        sources += m.inbound.iter().map(|r| r.sources.len()).sum::<usize>();
    }
    let render = t.elapsed();
    println!(
        "netmap: {} nodes ({HOSTS} hosts, {DEVICES} devices), {POLICIES} policies → {} rules",
        names.len(),
        rules.len()
    );
    println!("  cedar load+validate   {:>10.1?}", load);
    println!("  policies → rules      {:>10.1?}", to_rules);
    println!("  compile (indexes)     {:>10.1?}", compile);
    println!(
        "  render all maps       {:>10.1?}   ({peers} peer entries, {sources} filter sources)",
        render
    );
    println!("  compile + render      {:>10.1?}", compile + render);

    // One node's change: a person's device whose owner moves to another group. The update
    // finds the maps it changed; each of those agents then fetches its new map (a render).
    let mut change = Vec::new();
    let mut renders = Vec::new();
    let mut touched_total = 0usize;
    for i in 0..1_000u32 {
        let n = HOSTS + (i * 37) % DEVICES;
        let moved = node(n, 1 + i % 5);
        let t = Instant::now();
        let touched = map.upsert(moved);
        change.push(t.elapsed());
        touched_total += touched.len();
        if i < 50 {
            for name in &touched {
                let t = Instant::now();
                let _ = map.render(name);
                renders.push(t.elapsed());
            }
        }
    }
    // A host's labels changing.
    let mut host_change = Vec::new();
    for i in 0..200u32 {
        let mut h = node(i * 5 % HOSTS, 0);
        if let NodeKind::Host { labels } = &mut h.kind {
            labels.insert("role".into(), format!("r{}", (i * 11) % ROLES));
        }
        let t = Instant::now();
        let _ = map.upsert(h);
        host_change.push(t.elapsed());
    }
    for v in [&mut change, &mut renders, &mut host_change] {
        v.sort();
    }
    println!(
        "one device's groups change (1,000 changes; {} maps changed on average):",
        touched_total / 1_000
    );
    println!(
        "  netmap update         p50 {:>9.1?}  p99 {:>9.1?}",
        pct(&change, 0.5),
        pct(&change, 0.99)
    );
    println!(
        "  one changed map's render (what each affected agent's fetch costs) p50 {:>9.1?}  p99 {:>9.1?}",
        pct(&renders, 0.5),
        pct(&renders, 0.99)
    );
    println!("one host's labels change (200 changes):");
    println!(
        "  netmap update         p50 {:>9.1?}  p99 {:>9.1?}",
        pct(&host_change, 0.5),
        pct(&host_change, 0.99)
    );
}
