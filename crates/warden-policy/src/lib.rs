//! Warden's policy engine: one default-deny Cedar policy set decides SSH logins, network
//! flows and API calls. This crate holds the schema (`Warden` namespace, labels as entity
//! tags), loads a directory's policy files with errors at `file:line:col`, runs a policy
//! directory's tests, and explains decisions. It does no I/O: callers pass file contents.
//!
//! # Threat model
//!
//! **What the crate trusts.** The cedar-policy crate's parser, validator and evaluator. The
//! caller's [`Directory`]: who is in which group, which role a token carries, which labels a
//! host has. A decision is only as current as the directory it is given; keeping it current is
//! the server's job.
//!
//! **What an attacker controls.**
//! - A policy author (an administrator, or whoever can write the policy directory in CI): the
//!   policy text. It is parsed and validated strictly against the built-in schema before
//!   anything is in force. A policy naming an unknown action, entity type or attribute is
//!   refused with its `file:line:col`, and so are two policies with one id. [`load`] returns
//!   the whole set or only errors, never part of a set.
//! - Anyone whose names reach the directory (user names from an identity provider or SCIM,
//!   host names and labels from agents): the entity ids, attributes and tags. They travel as
//!   JSON values into Cedar's entity parser, never as policy text, so a name cannot add a rule.
//!   They are checked against the schema as well.
//! - API callers: the request's principal, action, resource and context. Each is parsed by
//!   Cedar, and a malformed one is an error, not a decision.
//!
//! **What it promises.**
//! - Default deny: no policy that permits, or any `forbid` that applies, means deny.
//! - Every decision names the policies that determined it, for the audit log.
//! - The index that narrows which policies are evaluated never changes a decision. A policy
//!   whose scope does not match cannot be satisfied, and its conditions are not evaluated.
//! - The same inputs give the same decision (no clock, no I/O, no randomness).
//!
//! **What it does not promise.**
//! - A policy whose condition fails to evaluate counts as not applying: Cedar's semantics,
//!   for a `forbid` as for a `permit`. Strict validation makes such errors rare. They are
//!   returned in [`Decided::errors`] for the caller to record.
//! - The role ceiling (what a token of a role may ever do, whatever the policy allows) is
//!   applied by the server on top of the decision, not here.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision, Entities, EntityUid, Policy, PolicyId,
    PolicySet, PrincipalConstraint, Request, RestrictedExpression, Schema, ValidationMode,
    Validator,
};
use miette::Diagnostic;

mod checks;
mod entities;

pub use checks::*;
pub use entities::*;

/// The schema, in Cedar's schema format (`warden policy schema` prints it).
pub const SCHEMA: &str = include_str!("warden.cedarschema");

/// Why policies or tests could not be used: one line each, with a location when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct PolicyError(pub Vec<String>);

fn one(message: impl Into<String>) -> PolicyError {
    PolicyError(vec![message.into()])
}

/// The schema, parsed.
pub fn schema() -> Result<Schema, PolicyError> {
    Schema::from_cedarschema_str(SCHEMA)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| one(format!("the built-in schema is invalid: {e}")))
}

/// A policy file: its name (for messages) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    /// `admins.cedar`.
    pub name: String,
    /// Its contents.
    pub text: String,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// `file:line:col: message` for a diagnostic about `text`.
fn located(file: &str, text: &str, diagnostic: &dyn Diagnostic, message: String) -> String {
    let offset = diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    let one_line = message.replace('\n', " ");
    match offset {
        Some(offset) => {
            let (line, col) = line_col(text, offset);
            match diagnostic.help() {
                Some(help) => format!("{file}:{line}:{col}: {one_line} ({help})"),
                None => format!("{file}:{line}:{col}: {one_line}"),
            }
        }
        None => format!("{file}: {one_line}"),
    }
}

/// A validated policy set, with where each policy came from.
#[derive(Debug, Clone)]
pub struct Policies {
    set: PolicySet,
    schema: Schema,
    origin: BTreeMap<String, String>,
    index: Arc<Index>,
}

/// Policies by the action and principal their scope names, so a decision evaluates only the
/// policies that could apply (a policy whose scope does not match is never satisfied, and
/// its conditions are never evaluated, so leaving it out changes neither the decision nor
/// the errors). Warden's schema has no action groups, so `action in [a, b]` names a and b.
#[derive(Debug, Default)]
struct Index {
    policies: Vec<Policy>,
    by_action: BTreeMap<EntityUid, Scoped>,
    any_action: Scoped,
    /// Policy sets already built for a list of candidates.
    slices: RwLock<BTreeMap<Vec<u32>, Arc<PolicySet>>>,
}

/// Policies for one action (or any), by the principal or group their scope names.
#[derive(Debug, Default)]
struct Scoped {
    any_principal: Vec<u32>,
    by_principal: BTreeMap<EntityUid, Vec<u32>>,
}

/// How many policy slices to keep before starting afresh.
const MAX_SLICES: usize = 4096;

impl Index {
    fn new(set: &PolicySet) -> Index {
        let mut index = Index::default();
        for (n, policy) in (0u32..).zip(set.policies()) {
            index.policies.push(policy.clone());
            let scoped: Vec<&mut Scoped> = match policy.action_constraint() {
                ActionConstraint::Any => vec![&mut index.any_action],
                ActionConstraint::Eq(a) => vec![index.by_action.entry(a).or_default()],
                ActionConstraint::In(actions) => {
                    for a in &actions {
                        index.by_action.entry(a.clone()).or_default();
                    }
                    let wanted: BTreeSet<_> = actions.into_iter().collect();
                    index
                        .by_action
                        .iter_mut()
                        .filter(|(a, _)| wanted.contains(*a))
                        .map(|(_, s)| s)
                        .collect()
                }
            };
            let key = match policy.principal_constraint() {
                PrincipalConstraint::Any | PrincipalConstraint::Is(_) => None,
                PrincipalConstraint::In(p)
                | PrincipalConstraint::Eq(p)
                | PrincipalConstraint::IsIn(_, p) => Some(p),
            };
            for s in scoped {
                match &key {
                    None => s.any_principal.push(n),
                    Some(p) => s.by_principal.entry(p.clone()).or_default().push(n),
                }
            }
        }
        index
    }

    /// The policies that could apply to `principal` (with its ancestors) doing `action`.
    fn candidates(
        &self,
        entities: &Entities,
        principal: &EntityUid,
        action: &EntityUid,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        let mut keys = vec![principal];
        if let Some(ancestors) = entities.ancestors(principal) {
            keys.extend(ancestors);
        }
        for scoped in [self.by_action.get(action), Some(&self.any_action)]
            .into_iter()
            .flatten()
        {
            out.extend_from_slice(&scoped.any_principal);
            for key in &keys {
                if let Some(ids) = scoped.by_principal.get(*key) {
                    out.extend_from_slice(ids);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The policy set holding just `candidates`, built once and kept.
    fn slice(&self, candidates: Vec<u32>) -> Arc<PolicySet> {
        if let Ok(slices) = self.slices.read()
            && let Some(set) = slices.get(&candidates)
        {
            return Arc::clone(set);
        }
        let set = Arc::new(
            PolicySet::from_policies(
                candidates
                    .iter()
                    .filter_map(|&n| self.policies.get(n as usize).cloned()),
            )
            .unwrap_or_else(|_| PolicySet::new()),
        );
        if let Ok(mut slices) = self.slices.write() {
            if slices.len() >= MAX_SLICES {
                slices.clear();
            }
            slices.insert(candidates, Arc::clone(&set));
        }
        set
    }
}

/// Parses every file and validates the whole set against the schema (strict mode). All
/// problems are reported, each as `file:line:col: message`.
pub fn load(files: &[PolicyFile]) -> Result<Policies, PolicyError> {
    let schema = schema()?;
    let mut set = PolicySet::new();
    let mut origin = BTreeMap::new();
    let mut errors = Vec::new();
    let mut texts = BTreeMap::new();
    for file in files {
        texts.insert(file.name.clone(), file.text.clone());
        match PolicySet::from_str(&file.text) {
            Err(parse) => {
                for e in parse.iter() {
                    errors.push(located(&file.name, &file.text, e, e.to_string()));
                }
            }
            Ok(parsed) => {
                for (n, policy) in parsed.policies().enumerate() {
                    // `@id("…")` names a policy; otherwise its file and position in it.
                    let id = match policy.annotation("id") {
                        Some(name) => format!("{}:{name}", file.name),
                        None => format!("{}#{}", file.name, n + 1),
                    };
                    if origin.contains_key(&id) {
                        errors.push(format!("{}: two policies are named `{id}`", file.name));
                        continue;
                    }
                    origin.insert(id.clone(), file.name.clone());
                    if let Err(e) = set.add(policy.new_id(PolicyId::new(&id))) {
                        errors.push(format!("{}: {e}", file.name));
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(PolicyError(errors));
    }
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    for e in result.validation_errors() {
        let id: &str = e.policy_id().as_ref();
        let file = origin.get(id).cloned().unwrap_or_default();
        let text = texts.get(&file).map(String::as_str).unwrap_or_default();
        errors.push(located(&file, text, e, e.to_string()));
    }
    if !errors.is_empty() {
        return Err(PolicyError(errors));
    }
    let index = Arc::new(Index::new(&set));
    Ok(Policies {
        set,
        schema,
        origin,
        index,
    })
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// Allowed?
    pub allow: bool,
    /// The policies that determined it (`file:line`); empty for a default deny.
    pub reasons: Vec<String>,
    /// Policies that failed to evaluate (they count as not applying).
    pub errors: Vec<String>,
}

impl From<&cedar_policy::Response> for Decided {
    fn from(response: &cedar_policy::Response) -> Decided {
        let diagnostics = response.diagnostics();
        Decided {
            allow: response.decision() == Decision::Allow,
            reasons: diagnostics.reason().map(ToString::to_string).collect(),
            errors: diagnostics.errors().map(|e| e.to_string()).collect(),
        }
    }
}

impl Policies {
    /// The number of policies.
    pub fn len(&self) -> usize {
        self.set.policies().count()
    }

    /// Whether there are none (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The schema they were validated against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Every policy's id with its Cedar JSON form, in id order: what the mesh compiles
    /// `connect` rules from.
    pub fn policies_json(&self) -> Result<Vec<(String, serde_json::Value)>, PolicyError> {
        let mut out = Vec::with_capacity(self.len());
        for policy in self.set.policies() {
            let json = policy
                .to_json()
                .map_err(|e| one(format!("policy `{}`: {e}", policy.id())))?;
            out.push((policy.id().to_string(), json));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Decides a request: `principal`, `action` and `resource` are entity references like
    /// `Warden::User::"alice"`; `context` a JSON object.
    pub fn decide(
        &self,
        entities: &Entities,
        principal: &str,
        action: &str,
        resource: &str,
        context: &serde_json::Value,
    ) -> Result<Decided, PolicyError> {
        let parse = |what: &str, s: &str| {
            EntityUid::from_str(s).map_err(|e| {
                one(format!(
                    "invalid {what} `{s}`: {}",
                    e.to_string().replace('\n', " ")
                ))
            })
        };
        let (p, a, r) = (
            parse("principal", principal)?,
            parse("action", action)?,
            parse("resource", resource)?,
        );
        self.decide_uids(entities, p, a, r, context)
    }

    fn decide_uids(
        &self,
        entities: &Entities,
        p: EntityUid,
        a: EntityUid,
        r: EntityUid,
        context: &serde_json::Value,
    ) -> Result<Decided, PolicyError> {
        let context = context_of(context).map_err(|e| {
            one(format!(
                "invalid context for {a}: {}",
                e.to_string().replace('\n', " ")
            ))
        })?;
        let candidates = self.index.candidates(entities, &p, &a);
        let request = Request::new(p, a, r, context, Some(&self.schema)).map_err(|e| {
            one(format!(
                "invalid request: {}",
                e.to_string().replace('\n', " ")
            ))
        })?;
        let slice = self.index.slice(candidates);
        let response = Authorizer::new().is_authorized(&request, &slice, entities);
        Ok(Decided::from(&response))
    }

    /// Decides whether `subject` may do `action` (`ssh`, `manage_users`, …) on `object`,
    /// building the entities the request needs from what Warden knows about both.
    pub fn decide_as(
        &self,
        subject: &Subject,
        action: &str,
        object: &Object,
        context: &serde_json::Value,
    ) -> Result<Decided, PolicyError> {
        let mut list = subject.entities()?;
        // A group the subject is in is already there.
        for entity in object.entities()? {
            if !list.iter().any(|e| e.uid() == entity.uid()) {
                list.push(entity);
            }
        }
        // Built here from typed data, so they match the schema by construction; checking
        // them against it again would cost more than the decision.
        let entities = Entities::from_entities(list, None).map_err(|e| {
            one(format!(
                "invalid entities: {}",
                e.to_string().replace('\n', " ")
            ))
        })?;
        self.decide_uids(
            &entities,
            subject.entity_uid()?,
            uid_of("Action", action)?,
            object.entity_uid()?,
            context,
        )
    }

    /// Like [`Policies::decide_as`], and also names the policies whose scope matched the
    /// principal and action (those that were evaluated): for explaining a default deny.
    pub fn explain_as(
        &self,
        subject: &Subject,
        action: &str,
        object: &Object,
        context: &serde_json::Value,
    ) -> Result<(Decided, Vec<String>), PolicyError> {
        let decided = self.decide_as(subject, action, object, context)?;
        let entities = Entities::from_entities(subject.entities()?, Some(&self.schema))
            .map_err(|e| one(format!("invalid entities: {e}")))?;
        let principal = subject.entity_uid()?;
        let action = uid_of("Action", action)?;
        let in_scope = self
            .index
            .candidates(&entities, &principal, &action)
            .into_iter()
            .filter_map(|n| self.index.policies.get(n as usize))
            .map(|p| p.id().to_string())
            .collect();
        Ok((decided, in_scope))
    }

    /// Decides a request against the whole set, without the index: what `decide` must
    /// always agree with (tests and the benchmark compare the two).
    pub fn decide_unsliced(
        &self,
        entities: &Entities,
        principal: &EntityUid,
        action: &EntityUid,
        resource: &EntityUid,
        context: Context,
    ) -> Result<Decided, PolicyError> {
        let request = Request::new(
            principal.clone(),
            action.clone(),
            resource.clone(),
            context,
            Some(&self.schema),
        )
        .map_err(|e| one(format!("invalid request: {e}")))?;
        let response = Authorizer::new().is_authorized(&request, &self.set, entities);
        Ok(Decided::from(&response))
    }

    /// Where a policy id came from.
    pub fn file_of(&self, id: &str) -> Option<&str> {
        self.origin.get(id).map(String::as_str)
    }

    /// A policy's text, as Cedar prints it.
    pub fn text_of(&self, id: &str) -> Option<String> {
        self.set.policy(&PolicyId::new(id)).map(ToString::to_string)
    }

    /// Every policy id, in order.
    pub fn ids(&self) -> Vec<String> {
        self.origin.keys().cloned().collect()
    }
}

/// Reads an entity reference: Cedar's `Warden::Host::"db-1"`, or the short `host:db-1`
/// (`user:`, `group:`, `service:`, `device:`, `host:`, `app:`, `api:`). Returns the entity
/// type (`Host`) and id.
pub fn parse_ref(s: &str) -> Result<(String, String), PolicyError> {
    const KINDS: [&str; 7] = ["User", "Group", "Service", "Device", "Host", "App", "Api"];
    let s = s.trim();
    let (kind, id) = if s.starts_with("Warden::") {
        let uid = EntityUid::from_str(s).map_err(|e| {
            one(format!(
                "invalid entity `{s}`: {}",
                e.to_string().replace('\n', " ")
            ))
        })?;
        let kind = uid.type_name().to_string();
        let kind = kind.strip_prefix("Warden::").unwrap_or(&kind).to_owned();
        (kind, uid.id().unescaped().to_owned())
    } else {
        let Some((kind, id)) = s.split_once(':') else {
            return Err(one(format!(
                "invalid entity `{s}`: use host:NAME, user:NAME, … or Warden::Host::\"NAME\""
            )));
        };
        let kind = KINDS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(kind))
            .ok_or_else(|| one(format!("unknown entity type `{kind}` in `{s}`")))?;
        ((*kind).to_owned(), id.to_owned())
    };
    if !KINDS.contains(&kind.as_str()) {
        return Err(one(format!("unknown entity type `{kind}` in `{s}`")));
    }
    if id.is_empty() {
        return Err(one(format!("invalid entity `{s}`: the name is empty")));
    }
    Ok((kind, id))
}

/// Reads an action: `ssh` or `Warden::Action::"ssh"`.
pub fn parse_action(s: &str) -> Result<String, PolicyError> {
    let s = s.trim();
    let name = match s.strip_prefix("Warden::Action::") {
        Some(quoted) => serde_json::from_str::<String>(quoted)
            .map_err(|_| one(format!("invalid action `{s}`")))?,
        None => s.to_owned(),
    };
    let schema = schema()?;
    let known = schema.actions().any(|a| a.id().unescaped() == name);
    if known {
        Ok(name)
    } else {
        Err(one(format!(
            "unknown action `{name}`: `warden policy schema` lists them"
        )))
    }
}

/// A request's context. Flat objects of strings, integers and booleans (what Warden's own
/// requests carry) are built directly, which costs a tenth of reading JSON; anything else is
/// read as Cedar's JSON. `Request::new` then checks it against the action's context type.
fn context_of(value: &serde_json::Value) -> Result<Context, Box<dyn std::error::Error>> {
    use serde_json::Value;
    if let Value::Object(map) = value {
        let simple: Option<Vec<(String, RestrictedExpression)>> = map
            .iter()
            .map(|(k, v)| {
                let e = match v {
                    Value::String(s) => RestrictedExpression::new_string(s.clone()),
                    Value::Bool(b) => RestrictedExpression::new_bool(*b),
                    Value::Number(n) => RestrictedExpression::new_long(n.as_i64()?),
                    _ => return None,
                };
                Some((k.clone(), e))
            })
            .collect();
        if let Some(pairs) = simple {
            return Ok(Context::from_pairs(pairs)?);
        }
    }
    Ok(Context::from_json_value(value.clone(), None)?)
}
