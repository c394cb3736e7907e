//! `connect` policies as network rules.
//!
//! The policy engine decides one request at a time; a packet filter needs the answer for
//! every source, destination, protocol and port ahead of time. This module reads each Cedar
//! policy that can apply to `connect` (in Cedar's JSON form) and turns it into rules the
//! netmap compiler indexes. Conditions are put in disjunctive normal form; each conjunction
//! becomes a rule. What a condition may test is what a filter can know: tags of the host
//! asking or asked, `context.protocol` and `context.port`. Anything else is refused with the
//! policy's id, never guessed, so the compiled rules decide exactly as Cedar does.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Allow or deny, as the policy says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// `permit`.
    Permit,
    /// `forbid`: wins over every permit.
    Forbid,
}

/// The transport a flow uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP and ICMPv6 echo (its port is 0).
    Icmp,
}

impl Protocol {
    /// The name policies use in `context.protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }

    fn from_name(s: &str) -> Option<Protocol> {
        match s {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "icmp" => Some(Protocol::Icmp),
            _ => None,
        }
    }
}

/// Who a rule is about, from the policy's principal scope. A device is `in` its owner, who
/// is `in` their groups, so `principal in Warden::Group::"eng"` matches the devices of eng's
/// members and `principal in Warden::User::"alice"` matches alice's devices.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Principal {
    /// Any node.
    Any,
    /// Any host.
    AnyHost,
    /// Any device.
    AnyDevice,
    /// One host.
    Host(String),
    /// One device.
    Device(String),
    /// The devices of a person.
    User(String),
    /// The devices of a group's members.
    Group(String),
    /// Nothing the mesh has (such as `principal == Warden::User::"alice"`: a person is never
    /// a node, their devices are).
    Nothing,
}

/// What a rule is about, from the policy's resource scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Resource {
    /// Any host.
    AnyHost,
    /// One host.
    Host(String),
    /// Nothing the mesh has (apps, devices).
    Nothing,
}

/// A set of ports as sorted, disjoint, inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ports(pub Vec<(u16, u16)>);

impl Ports {
    /// Every port.
    pub fn all() -> Ports {
        Ports(vec![(0, u16::MAX)])
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }

    fn from_ranges(mut ranges: Vec<(u16, u16)>) -> Ports {
        ranges.retain(|(lo, hi)| lo <= hi);
        ranges.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match out.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        Ports(out)
    }

    fn intersect(&self, other: &Ports) -> Ports {
        let mut out = Vec::new();
        for &(a, b) in &self.0 {
            for &(c, d) in &other.0 {
                let (lo, hi) = (a.max(c), b.min(d));
                if lo <= hi {
                    out.push((lo, hi));
                }
            }
        }
        Ports::from_ranges(out)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What one conjunction of a policy's conditions asks of a flow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Conditions {
    /// Tags the destination host must carry with these values.
    pub resource_tags: BTreeMap<String, String>,
    /// Tags the destination host must carry, whatever their value.
    pub resource_has: BTreeSet<String>,
    /// Tags the source host must carry with these values (only hosts have tags).
    pub principal_tags: BTreeMap<String, String>,
    /// Tags the source host must carry, whatever their value.
    pub principal_has: BTreeSet<String>,
    /// The protocols allowed; `None` is any.
    pub protocols: Option<BTreeSet<Protocol>>,
    /// The ports allowed.
    pub ports: Ports,
}

impl Conditions {
    fn always() -> Conditions {
        Conditions {
            resource_tags: BTreeMap::new(),
            resource_has: BTreeSet::new(),
            principal_tags: BTreeMap::new(),
            principal_has: BTreeSet::new(),
            protocols: None,
            ports: Ports::all(),
        }
    }

    /// Both at once, or `None` when no flow can satisfy both.
    fn and(&self, other: &Conditions) -> Option<Conditions> {
        let merge = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
            let mut out = a.clone();
            for (k, v) in b {
                match out.get(k) {
                    Some(have) if have != v => return None,
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Some(out)
        };
        let protocols = match (&self.protocols, &other.protocols) {
            (None, p) | (p, None) => p.clone(),
            (Some(a), Some(b)) => Some(a.intersection(b).copied().collect::<BTreeSet<_>>()),
        };
        if protocols.as_ref().is_some_and(BTreeSet::is_empty) {
            return None;
        }
        let ports = self.ports.intersect(&other.ports);
        if ports.is_empty() {
            return None;
        }
        Some(Conditions {
            resource_tags: merge(&self.resource_tags, &other.resource_tags)?,
            resource_has: self
                .resource_has
                .union(&other.resource_has)
                .cloned()
                .collect(),
            principal_tags: merge(&self.principal_tags, &other.principal_tags)?,
            principal_has: self
                .principal_has
                .union(&other.principal_has)
                .cloned()
                .collect(),
            protocols,
            ports,
        })
    }

    /// Whether a flow of `protocol` to `port` satisfies the protocol and port conditions.
    pub fn admits(&self, protocol: Protocol, port: u16) -> bool {
        self.protocols
            .as_ref()
            .is_none_or(|p| p.contains(&protocol))
            && self.ports.contains(port)
    }

    /// Whether tags satisfy the tag conditions on one side.
    pub fn tags_match(
        want: &BTreeMap<String, String>,
        has: &BTreeSet<String>,
        tags: &BTreeMap<String, String>,
    ) -> bool {
        want.iter().all(|(k, v)| tags.get(k) == Some(v)) && has.iter().all(|k| tags.contains_key(k))
    }
}

/// One rule: a policy's scope with one conjunction of its conditions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnectRule {
    /// The policy it came from.
    pub policy: String,
    /// Allow or deny.
    pub effect: Effect,
    /// The sources.
    pub principal: Principal,
    /// The destinations.
    pub resource: Resource,
    /// The rest.
    pub conditions: Conditions,
}

/// A policy that cannot be compiled into network rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy `{policy}`: {reason}")]
pub struct RuleError {
    /// The policy's id.
    pub policy: String,
    /// Why.
    pub reason: String,
}

/// How many conjunctions one policy may expand into.
const MAX_CONJUNCTIONS: usize = 256;

/// The rules of every policy in `policies` (id and Cedar JSON form) that can apply to
/// `connect`. A policy whose action scope is `action` (any) but whose conditions are not
/// about flows is left out when it permits (leaving out a permit only denies more) and
/// refused when it forbids.
pub fn connect_rules(policies: &[(String, Value)]) -> Result<Vec<ConnectRule>, RuleError> {
    let mut out = Vec::new();
    for (id, json) in policies {
        let fail = |reason: String| RuleError {
            policy: id.clone(),
            reason,
        };
        let effect = match json.get("effect").and_then(Value::as_str) {
            Some("permit") => Effect::Permit,
            Some("forbid") => Effect::Forbid,
            _ => return Err(fail("no effect".into())),
        };
        let explicit = match action_scope(json.get("action")) {
            ActionScope::Connect => true,
            ActionScope::Any => false,
            ActionScope::Other => continue,
        };
        let rules = policy_rules(id, effect, json);
        match rules {
            Ok(rules) => out.extend(rules),
            Err(reason) if !explicit && effect == Effect::Permit => {
                let _ = reason;
            }
            Err(reason) => return Err(fail(reason)),
        }
    }
    Ok(out)
}

/// The tag keys the rules test on destinations and sources, with the policies testing them.
pub fn tag_keys(rules: &[ConnectRule]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in rules {
        let c = &rule.conditions;
        for key in c
            .resource_tags
            .keys()
            .chain(&c.resource_has)
            .chain(c.principal_tags.keys())
            .chain(&c.principal_has)
        {
            out.entry(key.clone())
                .or_default()
                .insert(rule.policy.clone());
        }
    }
    out
}

enum ActionScope {
    Connect,
    Any,
    Other,
}

fn action_scope(action: Option<&Value>) -> ActionScope {
    let is_connect = |e: &Value| {
        e.get("type").and_then(Value::as_str) == Some("Warden::Action")
            && e.get("id").and_then(Value::as_str) == Some("connect")
    };
    let Some(action) = action else {
        return ActionScope::Other;
    };
    match action.get("op").and_then(Value::as_str) {
        Some("All") => ActionScope::Any,
        Some("==") if action.get("entity").is_some_and(is_connect) => ActionScope::Connect,
        Some("in") => {
            let named = action
                .get("entities")
                .and_then(Value::as_array)
                .is_some_and(|list| list.iter().any(is_connect))
                || action.get("entity").is_some_and(is_connect);
            if named {
                ActionScope::Connect
            } else {
                ActionScope::Other
            }
        }
        _ => ActionScope::Other,
    }
}

fn policy_rules(id: &str, effect: Effect, json: &Value) -> Result<Vec<ConnectRule>, String> {
    let principal = principal_scope(json.get("principal"))?;
    let resource = resource_scope(json.get("resource"))?;
    let mut dnf = vec![Conditions::always()];
    for condition in json
        .get("conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if condition.get("kind").and_then(Value::as_str) != Some("when") {
            return Err("`unless` clauses cannot be compiled into network rules; write the condition with `when`".into());
        }
        let body = condition.get("body").ok_or("a condition without a body")?;
        dnf = and_all(&dnf, &expr(body)?)?;
    }
    Ok(dnf
        .into_iter()
        .map(|conditions| ConnectRule {
            policy: id.to_owned(),
            effect,
            principal: principal.clone(),
            resource: resource.clone(),
            conditions,
        })
        .collect())
}

fn and_all(a: &[Conditions], b: &[Conditions]) -> Result<Vec<Conditions>, String> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            if let Some(both) = x.and(y) {
                out.push(both);
            }
        }
    }
    if out.len() > MAX_CONJUNCTIONS {
        return Err(format!(
            "its conditions expand into more than {MAX_CONJUNCTIONS} alternatives"
        ));
    }
    Ok(out)
}

fn entity(v: Option<&Value>) -> Option<(&str, &str)> {
    let e = v?;
    Some((e.get("type")?.as_str()?, e.get("id")?.as_str()?))
}

fn principal_scope(scope: Option<&Value>) -> Result<Principal, String> {
    let scope = scope.ok_or("no principal scope")?;
    let op = scope.get("op").and_then(Value::as_str).unwrap_or_default();
    let named = entity(scope.get("entity"));
    let is_type = scope.get("entity_type").and_then(Value::as_str);
    let inside = scope.get("in").and_then(|i| entity(i.get("entity")));
    let by_entity = |exact: bool, (kind, id): (&str, &str)| match (kind, exact) {
        ("Warden::Host", _) => Principal::Host(id.to_owned()),
        ("Warden::Device", _) => Principal::Device(id.to_owned()),
        ("Warden::User", false) => Principal::User(id.to_owned()),
        ("Warden::Group", false) => Principal::Group(id.to_owned()),
        _ => Principal::Nothing,
    };
    Ok(match (op, named, is_type, inside) {
        ("All", ..) => Principal::Any,
        ("==", Some(e), ..) => by_entity(true, e),
        ("in", Some(e), ..) => by_entity(false, e),
        ("is", _, Some("Warden::Host"), None) => Principal::AnyHost,
        ("is", _, Some("Warden::Device"), None) => Principal::AnyDevice,
        ("is", _, Some("Warden::Device"), Some(e)) => match by_entity(false, e) {
            p @ (Principal::User(_) | Principal::Group(_) | Principal::Device(_)) => p,
            _ => Principal::Nothing,
        },
        ("is", _, Some("Warden::Host"), Some(e)) => match by_entity(false, e) {
            p @ Principal::Host(_) => p,
            _ => Principal::Nothing,
        },
        ("is", _, Some(_), _) => Principal::Nothing,
        _ => return Err(format!("a principal scope the mesh cannot read: {scope}")),
    })
}

fn resource_scope(scope: Option<&Value>) -> Result<Resource, String> {
    let scope = scope.ok_or("no resource scope")?;
    let op = scope.get("op").and_then(Value::as_str).unwrap_or_default();
    let named = entity(scope.get("entity"));
    let is_type = scope.get("entity_type").and_then(Value::as_str);
    Ok(match (op, named, is_type) {
        ("All", ..) => Resource::AnyHost,
        ("==" | "in", Some(("Warden::Host", id)), _) => Resource::Host(id.to_owned()),
        ("is", _, Some("Warden::Host")) if scope.get("in").is_none() => Resource::AnyHost,
        ("==" | "in" | "is", ..) => Resource::Nothing,
        _ => return Err(format!("a resource scope the mesh cannot read: {scope}")),
    })
}

/// Which side a tag test reads.
#[derive(Clone, Copy)]
enum Side {
    Principal,
    Resource,
}

fn var(v: &Value) -> Option<&str> {
    v.get("Var").and_then(Value::as_str)
}

fn literal(v: &Value) -> Option<&Value> {
    v.get("Value")
}

fn side(v: &Value) -> Option<Side> {
    match var(v)? {
        "principal" => Some(Side::Principal),
        "resource" => Some(Side::Resource),
        _ => None,
    }
}

/// `context.ATTR`.
fn context_attr(v: &Value) -> Option<&str> {
    let dot = v.get(".")?;
    (var(dot.get("left")?)? == "context").then_some(())?;
    dot.get("attr")?.as_str()
}

/// `SIDE.getTag("KEY")`.
fn get_tag(v: &Value) -> Option<(Side, &str)> {
    let g = v.get("getTag")?;
    Some((side(g.get("left")?)?, literal(g.get("right")?)?.as_str()?))
}

fn binary<'a>(v: &'a Value, op: &str) -> Option<(&'a Value, &'a Value)> {
    let b = v.get(op)?;
    Some((b.get("left")?, b.get("right")?))
}

fn port_of(v: &Value) -> Option<i64> {
    literal(v)?.as_i64()
}

fn clamp(n: i64) -> u16 {
    u16::try_from(n.clamp(0, i64::from(u16::MAX))).unwrap_or(u16::MAX)
}

fn with(f: impl FnOnce(&mut Conditions)) -> Vec<Conditions> {
    let mut c = Conditions::always();
    f(&mut c);
    vec![c]
}

/// The ports `p` with `p OP n`.
fn ports_compared(op: &str, n: i64) -> Vec<Conditions> {
    let max = i64::from(u16::MAX);
    let (lo, hi) = match op {
        "<" => (0, n - 1),
        "<=" => (0, n),
        ">" => (n + 1, max),
        _ => (n, max),
    };
    let (lo, hi) = (lo.max(0), hi.min(max));
    if lo > hi {
        return Vec::new();
    }
    with(|c| c.ports = Ports(vec![(clamp(lo), clamp(hi))]))
}

fn expr(v: &Value) -> Result<Vec<Conditions>, String> {
    if let Some(b) = literal(v).and_then(Value::as_bool) {
        return Ok(if b {
            vec![Conditions::always()]
        } else {
            Vec::new()
        });
    }
    if let Some((l, r)) = binary(v, "&&") {
        return and_all(&expr(l)?, &expr(r)?);
    }
    if let Some((l, r)) = binary(v, "||") {
        let mut out = expr(l)?;
        out.extend(expr(r)?);
        if out.len() > MAX_CONJUNCTIONS {
            return Err(format!(
                "its conditions expand into more than {MAX_CONJUNCTIONS} alternatives"
            ));
        }
        return Ok(out);
    }
    if let Some(h) = v.get("hasTag")
        && let (Some(s), Some(key)) = (
            h.get("left").and_then(side),
            h.get("right").and_then(literal).and_then(Value::as_str),
        )
    {
        let key = key.to_owned();
        return Ok(with(|c| match s {
            Side::Principal => {
                c.principal_has.insert(key);
            }
            Side::Resource => {
                c.resource_has.insert(key);
            }
        }));
    }
    if let Some((l, r)) = binary(v, "==") {
        for (a, b) in [(l, r), (r, l)] {
            if let (Some((s, key)), Some(value)) = (get_tag(a), literal(b).and_then(Value::as_str))
            {
                let (key, value) = (key.to_owned(), value.to_owned());
                return Ok(with(|c| match s {
                    Side::Principal => {
                        c.principal_tags.insert(key, value);
                    }
                    Side::Resource => {
                        c.resource_tags.insert(key, value);
                    }
                }));
            }
            if context_attr(a) == Some("protocol")
                && let Some(p) = literal(b).and_then(Value::as_str)
            {
                return Ok(match Protocol::from_name(p) {
                    Some(p) => with(|c| c.protocols = Some(BTreeSet::from([p]))),
                    None => Vec::new(),
                });
            }
            if context_attr(a) == Some("port")
                && let Some(n) = port_of(b)
            {
                return Ok(if (0..=i64::from(u16::MAX)).contains(&n) {
                    with(|c| c.ports = Ports(vec![(clamp(n), clamp(n))]))
                } else {
                    Vec::new()
                });
            }
        }
    }
    for (op, flipped) in [("<", ">"), ("<=", ">="), (">", "<"), (">=", "<=")] {
        if let Some((l, r)) = binary(v, op) {
            let (attr_side, n, op) = if context_attr(l) == Some("port") {
                (true, port_of(r), op)
            } else {
                (context_attr(r) == Some("port"), port_of(l), flipped)
            };
            if let (true, Some(n)) = (attr_side, n) {
                return Ok(ports_compared(op, n));
            }
        }
    }
    if let Some((set, item)) = binary(v, "contains")
        && let Some(members) = set.get("Set").and_then(Value::as_array)
    {
        match context_attr(item) {
            Some("port") => {
                let mut ranges = Vec::new();
                for m in members {
                    let n = port_of(m).ok_or("a port list holding something other than numbers")?;
                    if (0..=i64::from(u16::MAX)).contains(&n) {
                        ranges.push((clamp(n), clamp(n)));
                    }
                }
                let ports = Ports::from_ranges(ranges);
                return Ok(if ports.is_empty() {
                    Vec::new()
                } else {
                    with(|c| c.ports = ports)
                });
            }
            Some("protocol") => {
                let mut protocols = BTreeSet::new();
                for m in members {
                    let name = literal(m)
                        .and_then(Value::as_str)
                        .ok_or("a protocol list holding something other than strings")?;
                    protocols.extend(Protocol::from_name(name));
                }
                return Ok(if protocols.is_empty() {
                    Vec::new()
                } else {
                    with(|c| c.protocols = Some(protocols))
                });
            }
            _ => {}
        }
    }
    let mut shown = v.to_string();
    if shown.len() > 120 {
        shown.truncate(
            shown
                .char_indices()
                .nth(117)
                .map_or(shown.len(), |(i, _)| i),
        );
        shown.push('…');
    }
    Err(format!(
        "the condition {shown} cannot be compiled into network rules: connect policies may test tags of the host asking or asked (`hasTag`, `getTag(…) == \"…\"`), `context.protocol` and `context.port` (`==`, `<`, `<=`, `>`, `>=`, `[…].contains(context.port)`), joined with `&&` and `||`"
    ))
}
