//! Warden's policy engine: one default-deny Cedar policy set decides SSH logins, network
//! flows and API calls. This crate holds the schema (`Warden` namespace, labels as entity
//! tags), loads a directory's policy files with errors at `file:line:col`, runs a policy
//! directory's tests, and explains decisions. It does no I/O: callers pass file contents.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityUid, PolicyId, PolicySet, Request, Schema,
    ValidationMode, Validator,
};
use miette::Diagnostic;
use serde::Deserialize;
use serde_json::json;

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
    Ok(Policies {
        set,
        schema,
        origin,
    })
}

/// Who exists, for evaluating requests: users in groups, hosts with labels.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    /// Groups.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupEntry>,
    /// Users and their groups.
    #[serde(default, rename = "user")]
    pub users: Vec<UserEntry>,
    /// Hosts and their labels.
    #[serde(default, rename = "host")]
    pub hosts: Vec<HostEntry>,
}

/// A group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    /// Its name.
    pub name: String,
}

/// A user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Login name.
    pub name: String,
    /// Group names.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// Its name.
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Directory {
    /// The Cedar entities, checked against the schema.
    pub fn entities(&self, schema: &Schema) -> Result<Entities, PolicyError> {
        let uid = |kind: &str, id: &str| json!({ "type": format!("Warden::{kind}"), "id": id });
        let mut list = Vec::new();
        for g in &self.groups {
            list.push(json!({ "uid": uid("Group", &g.name), "attrs": {}, "parents": [] }));
        }
        for u in &self.users {
            let parents: Vec<_> = u.groups.iter().map(|g| uid("Group", g)).collect();
            list.push(json!({ "uid": uid("User", &u.name), "attrs": {}, "parents": parents }));
        }
        for h in &self.hosts {
            list.push(json!({ "uid": uid("Host", &h.name), "attrs": {}, "parents": [], "tags": h.labels }));
        }
        Entities::from_json_value(serde_json::Value::Array(list), Some(schema)).map_err(|e| {
            one(format!(
                "invalid directory: {}",
                e.to_string().replace('\n', " ")
            ))
        })
    }

    fn known(&self) -> BTreeSet<String> {
        let mut known = BTreeSet::new();
        for g in &self.groups {
            known.insert(format!("Warden::Group::\"{}\"", g.name));
        }
        for u in &self.users {
            known.insert(format!("Warden::User::\"{}\"", u.name));
        }
        for h in &self.hosts {
            known.insert(format!("Warden::Host::\"{}\"", h.name));
        }
        known
    }
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
        let context =
            Context::from_json_value(context.clone(), Some((&self.schema, &a))).map_err(|e| {
                one(format!(
                    "invalid context for {action}: {}",
                    e.to_string().replace('\n', " ")
                ))
            })?;
        let request = Request::new(p, a, r, context, Some(&self.schema)).map_err(|e| {
            one(format!(
                "invalid request: {}",
                e.to_string().replace('\n', " ")
            ))
        })?;
        let response = Authorizer::new().is_authorized(&request, &self.set, entities);
        let diagnostics = response.diagnostics();
        Ok(Decided {
            allow: response.decision() == Decision::Allow,
            reasons: diagnostics.reason().map(ToString::to_string).collect(),
            errors: diagnostics.errors().map(|e| e.to_string()).collect(),
        })
    }

    /// Where a policy id came from.
    pub fn file_of(&self, id: &str) -> Option<&str> {
        self.origin.get(id).map(String::as_str)
    }
}

/// A policy test: a request and the decision it must get.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What it checks.
    pub name: String,
    /// `Warden::User::"alice"`.
    pub principal: String,
    /// `Warden::Action::"ssh"`.
    pub action: String,
    /// `Warden::Host::"db-1"`.
    pub resource: String,
    /// The request's context.
    #[serde(default)]
    pub context: toml::Table,
    /// `allow` or `deny`.
    pub expect: String,
}

/// A tests file: the directory the tests run against, and the tests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Who exists.
    #[serde(flatten)]
    pub directory: Directory,
    /// The tests.
    #[serde(default, rename = "test")]
    pub tests: Vec<TestCase>,
}

/// Parses a tests file (`tests.toml`).
pub fn parse_tests(name: &str, text: &str) -> Result<TestFile, PolicyError> {
    let file: TestFile = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let (l, c) = line_col(text, s.start);
                format!(":{l}:{c}")
            })
            .unwrap_or_default();
        one(format!("{name}{at}: {}", e.message()))
    })?;
    let known = file.directory.known();
    for t in &file.tests {
        for (what, value) in [("principal", &t.principal), ("resource", &t.resource)] {
            let is_api = value.starts_with("Warden::Api::");
            if !is_api && !known.contains(value) {
                return Err(one(format!(
                    "{name}: test `{}`: unknown {what} {value}",
                    t.name
                )));
            }
        }
        if t.expect != "allow" && t.expect != "deny" {
            return Err(one(format!(
                "{name}: test `{}`: expect must be allow or deny, not `{}`",
                t.name, t.expect
            )));
        }
    }
    Ok(file)
}

/// One test's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The test's name.
    pub name: String,
    /// Passed?
    pub passed: bool,
    /// What it expected.
    pub expected: bool,
    /// The decision and why.
    pub decided: Decided,
}

/// Runs every test against `policies`.
pub fn run_tests(policies: &Policies, file: &TestFile) -> Result<Vec<TestResult>, PolicyError> {
    let entities = file.directory.entities(policies.schema())?;
    file.tests
        .iter()
        .map(|t| {
            let context = serde_json::to_value(&t.context)
                .map_err(|e| one(format!("test `{}`: {e}", t.name)))?;
            let decided = policies
                .decide(&entities, &t.principal, &t.action, &t.resource, &context)
                .map_err(|e| one(format!("test `{}`: {e}", t.name)))?;
            let expected = t.expect == "allow";
            Ok(TestResult {
                name: t.name.clone(),
                passed: decided.allow == expected,
                expected,
                decided,
            })
        })
        .collect()
}
