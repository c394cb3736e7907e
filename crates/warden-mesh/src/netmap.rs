//! The netmap compiler: who peers with whom and what each destination lets in.
//!
//! Nothing is evaluated pairwise. Rules are indexed by what their resource names (a host,
//! a tag value, or any host) and by what their principal names (a host, device, person,
//! group, or anyone). Each rule keeps the set of nodes it lets in (`members`) and the set of
//! hosts it lets them reach (`dests`). A node's change touches only the rules its names and
//! tags reach, and reports the nodes whose map changed: the node itself, its peers before and
//! after, and the hosts whose filters name it. Maps are rendered on demand from these sets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::key::PublicKey;
use crate::rules::{Conditions, ConnectRule, Effect, Ports, Principal, Protocol, Resource};

/// A node of the mesh: a host (joined through the agent) or a person's device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Its unique name (`web-1`, `alice-laptop`).
    pub name: String,
    /// Host or device.
    pub kind: NodeKind,
    /// Its WireGuard public key.
    pub key: PublicKey,
    /// Its overlay IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Its overlay IPv6 address.
    pub ipv6: Ipv6Addr,
    /// Where it receives WireGuard traffic, if it is reachable (hosts announce one).
    pub endpoint: Option<SocketAddr>,
}

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A host, with its labels (Cedar tags).
    Host {
        /// Labels such as `role=web`.
        labels: BTreeMap<String, String>,
    },
    /// A person's device.
    Device {
        /// Its owner's login name.
        owner: String,
        /// The groups its owner is in now.
        groups: BTreeSet<String>,
    },
}

/// One peer in a node's map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    /// Its name.
    pub name: String,
    /// Its key.
    pub key: PublicKey,
    /// Its overlay addresses (the peer's allowed IPs).
    pub ipv4: Ipv4Addr,
    /// Its overlay IPv6 address.
    pub ipv6: Ipv6Addr,
    /// Where to reach it, if known.
    pub endpoint: Option<SocketAddr>,
}

/// One inbound filter rule at a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterRule {
    /// The policy it came from.
    pub policy: String,
    /// Allow or deny.
    pub effect: Effect,
    /// Source overlay addresses.
    pub sources: Vec<IpAddr>,
    /// Protocols; `None` is any.
    pub protocols: Option<BTreeSet<Protocol>>,
    /// Destination ports.
    pub ports: Ports,
}

/// Everything one node needs: its peers and what it lets in. Devices let nothing in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMap {
    /// The node's name.
    pub name: String,
    /// Its overlay IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Its overlay IPv6 address.
    pub ipv6: Ipv6Addr,
    /// Its peers, by name.
    pub peers: Vec<PeerEntry>,
    /// Its inbound rules (forbids first).
    pub inbound: Vec<FilterRule>,
}

type Idx = u32;

/// The compiled mesh.
#[derive(Debug, Default)]
pub struct Netmap {
    slots: Vec<Option<Node>>,
    free: Vec<Idx>,
    by_name: BTreeMap<String, Idx>,
    rules: Vec<ConnectRule>,
    /// Rules by the key their principal scope names.
    rules_by_principal: BTreeMap<Principal, Vec<usize>>,
    /// Rules naming one host as resource.
    rules_by_host: BTreeMap<String, Vec<usize>>,
    /// Rules on any host, by one tag value they require.
    rules_by_tag: BTreeMap<(String, String), Vec<usize>>,
    /// Rules on any host requiring no tag value.
    rules_any_host: Vec<usize>,
    /// Per rule: the nodes it lets in.
    members: Vec<BTreeSet<Idx>>,
    /// Per rule: the hosts it applies to.
    dests: Vec<BTreeSet<Idx>>,
    /// Per host: the rules applying to it.
    inbound: BTreeMap<Idx, Vec<usize>>,
}

impl Netmap {
    /// Compiles `nodes` under `rules`.
    pub fn new(rules: Vec<ConnectRule>, nodes: impl IntoIterator<Item = Node>) -> Netmap {
        let mut map = Netmap {
            members: vec![BTreeSet::new(); rules.len()],
            dests: vec![BTreeSet::new(); rules.len()],
            ..Netmap::default()
        };
        for (r, rule) in rules.iter().enumerate() {
            if rule.principal != Principal::Nothing {
                map.rules_by_principal
                    .entry(rule.principal.clone())
                    .or_default()
                    .push(r);
            }
            match &rule.resource {
                Resource::Nothing => {}
                Resource::Host(h) => map.rules_by_host.entry(h.clone()).or_default().push(r),
                Resource::AnyHost => match rule.conditions.resource_tags.iter().next() {
                    Some((k, v)) => map
                        .rules_by_tag
                        .entry((k.clone(), v.clone()))
                        .or_default()
                        .push(r),
                    None => map.rules_any_host.push(r),
                },
            }
        }
        map.rules = rules;
        for node in nodes {
            if map.by_name.contains_key(&node.name) {
                map.remove(&node.name);
            }
            map.insert(node);
        }
        map
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.slot(*self.by_name.get(name)?)
    }

    /// Every node's name.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.by_name.keys()
    }

    /// Adds or changes a node; returns the names of the nodes whose map changed.
    pub fn upsert(&mut self, node: Node) -> BTreeSet<String> {
        if self.node(&node.name) == Some(&node) {
            return BTreeSet::new();
        }
        let mut touched = self.remove(&node.name);
        let name = node.name.clone();
        self.insert(node);
        touched.extend(self.touched_by(&name));
        touched
    }

    /// Removes a node; returns the names of the nodes whose map changed (with its own).
    pub fn remove(&mut self, name: &str) -> BTreeSet<String> {
        let Some(&idx) = self.by_name.get(name) else {
            return BTreeSet::new();
        };
        let touched = self.touched_by(name);
        for r in self.rules_with_member(idx) {
            if let Some(m) = self.members.get_mut(r) {
                m.remove(&idx);
            }
        }
        if let Some(rules) = self.inbound.remove(&idx) {
            for r in rules {
                if let Some(d) = self.dests.get_mut(r) {
                    d.remove(&idx);
                }
            }
        }
        self.by_name.remove(name);
        if let Some(slot) = self.slots.get_mut(idx as usize) {
            *slot = None;
        }
        self.free.push(idx);
        touched
    }

    /// The map of the node called `name`.
    pub fn render(&self, name: &str) -> Option<NodeMap> {
        let &idx = self.by_name.get(name)?;
        let node = self.slot(idx)?;
        let mut peers: BTreeSet<Idx> = BTreeSet::new();
        let mut inbound = Vec::new();
        for &r in self
            .inbound
            .get(&idx)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let (Some(rule), Some(members)) = (self.rules.get(r), self.members.get(r)) else {
                continue;
            };
            let sources: Vec<Idx> = members.iter().copied().filter(|&m| m != idx).collect();
            if sources.is_empty() {
                continue;
            }
            if rule.effect == Effect::Permit {
                peers.extend(&sources);
            }
            let mut ips = Vec::with_capacity(sources.len() * 2);
            for s in &sources {
                if let Some(n) = self.slot(*s) {
                    ips.push(IpAddr::V4(n.ipv4));
                    ips.push(IpAddr::V6(n.ipv6));
                }
            }
            ips.sort_unstable();
            inbound.push(FilterRule {
                policy: rule.policy.clone(),
                effect: rule.effect,
                sources: ips,
                protocols: rule.conditions.protocols.clone(),
                ports: rule.conditions.ports.clone(),
            });
        }
        inbound.sort_by(|a, b| {
            b.effect
                .cmp(&a.effect)
                .then_with(|| a.policy.cmp(&b.policy))
        });
        for r in self.rules_with_member(idx) {
            if self
                .rules
                .get(r)
                .is_some_and(|rule| rule.effect == Effect::Permit)
                && let Some(dests) = self.dests.get(r)
            {
                peers.extend(dests.iter().copied().filter(|&d| d != idx));
            }
        }
        let mut peer_list: Vec<PeerEntry> = peers
            .into_iter()
            .filter_map(|p| self.slot(p))
            .map(|n| PeerEntry {
                name: n.name.clone(),
                key: n.key,
                ipv4: n.ipv4,
                ipv6: n.ipv6,
                endpoint: n.endpoint,
            })
            .collect();
        peer_list.sort_by(|a, b| a.name.cmp(&b.name));
        Some(NodeMap {
            name: node.name.clone(),
            ipv4: node.ipv4,
            ipv6: node.ipv6,
            peers: peer_list,
            inbound,
        })
    }

    /// Whether the compiled rules let `source` reach `dest` with `protocol` on `port`: what
    /// the destination's filter decides for a new flow.
    pub fn allows(&self, source: &str, dest: &str, protocol: Protocol, port: u16) -> bool {
        let (Some(&s), Some(&d)) = (self.by_name.get(source), self.by_name.get(dest)) else {
            return false;
        };
        let mut permitted = false;
        for &r in self.inbound.get(&d).map(Vec::as_slice).unwrap_or_default() {
            let (Some(rule), Some(members)) = (self.rules.get(r), self.members.get(r)) else {
                continue;
            };
            if members.contains(&s) && rule.conditions.admits(protocol, port) {
                match rule.effect {
                    Effect::Forbid => return false,
                    Effect::Permit => permitted = true,
                }
            }
        }
        permitted && s != d
    }

    fn slot(&self, idx: Idx) -> Option<&Node> {
        self.slots.get(idx as usize)?.as_ref()
    }

    fn insert(&mut self, node: Node) {
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.slots.push(None);
                Idx::try_from(self.slots.len() - 1).unwrap_or(Idx::MAX)
            }
        };
        for r in self.candidate_rules_as_member(&node) {
            if self
                .rules
                .get(r)
                .is_some_and(|rule| principal_matches(rule, &node))
                && let Some(m) = self.members.get_mut(r)
            {
                m.insert(idx);
            }
        }
        if let NodeKind::Host { labels } = &node.kind {
            let mut applying = Vec::new();
            for r in self.candidate_rules_as_dest(&node.name, labels) {
                if self
                    .rules
                    .get(r)
                    .is_some_and(|rule| resource_matches(rule, &node.name, labels))
                {
                    applying.push(r);
                    if let Some(d) = self.dests.get_mut(r) {
                        d.insert(idx);
                    }
                }
            }
            if !applying.is_empty() {
                self.inbound.insert(idx, applying);
            }
        }
        self.by_name.insert(node.name.clone(), idx);
        if let Some(slot) = self.slots.get_mut(idx as usize) {
            *slot = Some(node);
        }
    }

    /// Rules whose principal scope could name `node`.
    fn candidate_rules_as_member(&self, node: &Node) -> Vec<usize> {
        let mut keys = vec![Principal::Any];
        match &node.kind {
            NodeKind::Host { .. } => {
                keys.push(Principal::AnyHost);
                keys.push(Principal::Host(node.name.clone()));
            }
            NodeKind::Device { owner, groups } => {
                keys.push(Principal::AnyDevice);
                keys.push(Principal::Device(node.name.clone()));
                keys.push(Principal::User(owner.clone()));
                keys.extend(groups.iter().map(|g| Principal::Group(g.clone())));
            }
        }
        let mut out: Vec<usize> = keys
            .iter()
            .filter_map(|k| self.rules_by_principal.get(k))
            .flatten()
            .copied()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn candidate_rules_as_dest(&self, name: &str, labels: &BTreeMap<String, String>) -> Vec<usize> {
        let mut out: Vec<usize> = self.rules_any_host.clone();
        out.extend(self.rules_by_host.get(name).into_iter().flatten());
        for (k, v) in labels {
            out.extend(
                self.rules_by_tag
                    .get(&(k.clone(), v.clone()))
                    .into_iter()
                    .flatten(),
            );
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn rules_with_member(&self, idx: Idx) -> Vec<usize> {
        let Some(node) = self.slot(idx) else {
            return Vec::new();
        };
        self.candidate_rules_as_member(node)
            .into_iter()
            .filter(|&r| self.members.get(r).is_some_and(|m| m.contains(&idx)))
            .collect()
    }

    /// The names of the nodes whose map mentions `name`, and its own.
    fn touched_by(&self, name: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::from([name.to_owned()]);
        let Some(&idx) = self.by_name.get(name) else {
            return out;
        };
        let mut idxs: BTreeSet<Idx> = BTreeSet::new();
        for r in self.rules_with_member(idx) {
            idxs.extend(self.dests.get(r).into_iter().flatten());
        }
        for &r in self
            .inbound
            .get(&idx)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            idxs.extend(self.members.get(r).into_iter().flatten());
        }
        out.extend(
            idxs.into_iter()
                .filter_map(|i| self.slot(i))
                .map(|n| n.name.clone()),
        );
        out
    }
}

fn principal_matches(rule: &ConnectRule, node: &Node) -> bool {
    let c = &rule.conditions;
    let scope = match (&rule.principal, &node.kind) {
        (Principal::Any, _) => true,
        (Principal::AnyHost | Principal::Host(_), NodeKind::Device { .. }) => false,
        (Principal::AnyHost, NodeKind::Host { .. }) => true,
        (Principal::Host(h), NodeKind::Host { .. }) => *h == node.name,
        (Principal::AnyDevice, NodeKind::Device { .. }) => true,
        (Principal::Device(d), NodeKind::Device { .. }) => *d == node.name,
        (Principal::User(u), NodeKind::Device { owner, .. }) => u == owner,
        (Principal::Group(g), NodeKind::Device { groups, .. }) => groups.contains(g),
        _ => false,
    };
    if !scope {
        return false;
    }
    match &node.kind {
        NodeKind::Host { labels } => {
            Conditions::tags_match(&c.principal_tags, &c.principal_has, labels)
        }
        // Devices carry no tags: a test of the principal's tags fails for them.
        NodeKind::Device { .. } => c.principal_tags.is_empty() && c.principal_has.is_empty(),
    }
}

fn resource_matches(rule: &ConnectRule, name: &str, labels: &BTreeMap<String, String>) -> bool {
    let scope = match &rule.resource {
        Resource::AnyHost => true,
        Resource::Host(h) => h == name,
        Resource::Nothing => false,
    };
    scope
        && Conditions::tags_match(
            &rule.conditions.resource_tags,
            &rule.conditions.resource_has,
            labels,
        )
}
