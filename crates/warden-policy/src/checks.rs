//! A policy set's tests (`tests.toml`), the shipped starter set, and checking a directory as a
//! whole: validated against the schema, then tested.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{Decided, Directory, Policies, PolicyError, PolicyFile, line_col, load, one};

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

/// The tests file in a policy directory.
pub const TESTS_FILE: &str = "tests.toml";

/// The shipped starter set: admins manage Warden, team members reach their team's hosts,
/// auditors read (`warden policy init DIR` writes it out to edit).
pub const STARTER: &[(&str, &str)] = &[
    ("admins.cedar", include_str!("../starter/admins.cedar")),
    ("ssh.cedar", include_str!("../starter/ssh.cedar")),
    (TESTS_FILE, include_str!("../starter/tests.toml")),
];

/// A policy set checked as a whole: its policies and how its tests went.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The validated policies.
    pub policies: Policies,
    /// Each test's outcome (none when there is no tests file).
    pub results: Vec<TestResult>,
}

impl Checked {
    /// The tests that failed.
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| !r.passed)
    }
}

/// Checks a policy directory's files (name to text): only `*.cedar` files and `tests.toml`
/// belong there, at least one policy file, every policy valid against the schema, and the
/// tests parsed and run. Failing tests are in the result, not an error: the caller decides.
pub fn check_set(files: &BTreeMap<String, String>) -> Result<Checked, PolicyError> {
    let mut policy_files = Vec::new();
    for (name, text) in files {
        let plain = !name.is_empty() && !name.contains(['/', '\\', '\0']) && !name.starts_with('.');
        if !plain {
            return Err(one(format!(
                "`{name}`: a policy file name is a plain file name"
            )));
        }
        if name.ends_with(".cedar") {
            policy_files.push(PolicyFile {
                name: name.clone(),
                text: text.clone(),
            });
        } else if name != TESTS_FILE {
            return Err(one(format!(
                "`{name}`: a policy directory holds *.cedar files and {TESTS_FILE} only"
            )));
        }
    }
    if policy_files.is_empty() {
        return Err(one("no *.cedar files: a policy set needs at least one"));
    }
    let policies = load(&policy_files)?;
    let results = match files.get(TESTS_FILE) {
        Some(text) => run_tests(&policies, &parse_tests(TESTS_FILE, text)?)?,
        None => Vec::new(),
    };
    Ok(Checked { policies, results })
}
