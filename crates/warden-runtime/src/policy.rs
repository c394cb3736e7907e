//! The policy engine in the server: the active Cedar policy set (the newest stored version),
//! decisions for people and services built from Warden's own data, and applying new sets.
//!
//! Default deny, fail closed: no policy, a policy that does not load, an unknown principal or
//! an evaluation error all deny. Replicas pick up a newly applied set within a second.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use warden_model::{Actor, Role, Timestamp};
use warden_policy::{Checked, Decided, Object, Policies, PolicyError, Subject};
use warden_store::{AuditContext, NewPolicyVersion, Outcome, PolicyVersion, Store, StoreError};

use crate::StartError;

/// How often a replica looks for a policy set applied elsewhere.
const REFRESH: Duration = Duration::from_secs(1);

/// The policy set in force.
#[derive(Debug)]
pub struct Active {
    /// Its stored version; `None` when none was ever applied (everything is denied).
    pub version: Option<i64>,
    /// Its files.
    pub files: BTreeMap<String, String>,
    /// The loaded policies.
    pub policies: Policies,
}

/// A decision with the policy version that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The policy set's version (`None`: no policy).
    pub version: Option<i64>,
    /// The decision and why.
    pub decided: Decided,
    /// The token role that refused the action before the policy was asked (a role is a
    /// ceiling: see [`Role::permits`]).
    pub capped: Option<Role>,
}

impl Decision {
    /// One line saying why it was denied (or allowed).
    pub fn reason(&self, action: &str) -> String {
        if let Some(role) = self.capped {
            let article = if role == Role::Auditor || role == Role::Admin {
                "an"
            } else {
                "a"
            };
            return format!(
                "{article} {role} token may not `{action}`, whatever its person's groups allow: sign in with a passkey or use a token whose role permits it"
            );
        }
        let version = self.version.map_or_else(
            || "no policy is active".to_owned(),
            |v| format!("policy v{v}"),
        );
        if !self.decided.errors.is_empty() {
            return format!(
                "{version}: `{action}` denied: evaluation errors: {}",
                self.decided.errors.join("; ")
            );
        }
        match (self.decided.allow, self.decided.reasons.is_empty()) {
            (true, _) => format!(
                "{version}: `{action}` permitted by {}",
                self.decided.reasons.join(", ")
            ),
            (false, true) => format!("{version}: no policy permits `{action}` (default deny)"),
            (false, false) => format!(
                "{version}: `{action}` forbidden by {}",
                self.decided.reasons.join(", ")
            ),
        }
    }

    /// The audit details: version, determining policies, errors.
    pub fn details(&self) -> serde_json::Value {
        match self.capped {
            Some(role) => serde_json::json!({
                "policy_version": self.version,
                "role_ceiling": role.as_str(),
            }),
            None => serde_json::json!({
                "policy_version": self.version,
                "determining_policies": self.decided.reasons,
                "errors": self.decided.errors,
            }),
        }
    }
}

/// Why a policy set was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The files are not a valid policy set (one line per problem).
    #[error("{0}")]
    Invalid(PolicyError),
    /// Some tests failed: one line per failing test.
    #[error("policy not applied: {failed} of {total} tests failed:\n{lines}")]
    TestsFailed {
        /// How many failed.
        failed: usize,
        /// How many ran.
        total: usize,
        /// `test `name`: expected allow, got deny (…)` per failure.
        lines: String,
    },
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What applying did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The version activated (`None` for a dry run or an unchanged set).
    pub version: Option<i64>,
    /// The set's hash.
    pub hash: String,
    /// Whether the set is the same as the active one (nothing stored).
    pub unchanged: bool,
    /// Unified diff from the active set.
    pub diff: String,
    /// The checked set (policies and test results).
    pub checked: Checked,
}

/// The engine: the active set behind a lock that is only written when a set changes.
#[derive(Debug)]
pub struct Engine {
    active: RwLock<Arc<Active>>,
}

/// SHA-256 over the files, in name order, each as name, NUL, text, NUL.
pub fn hash_files(files: &BTreeMap<String, String>) -> String {
    let mut sha = Sha256::new();
    for (name, text) in files {
        sha.update(name.as_bytes());
        sha.update([0]);
        sha.update(text.as_bytes());
        sha.update([0]);
    }
    sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn empty() -> Result<Active, PolicyError> {
    Ok(Active {
        version: None,
        files: BTreeMap::new(),
        policies: warden_policy::load(&[])?,
    })
}

/// Loads a stored version. A stored set that no longer loads (a schema change in an upgrade)
/// denies everything until a valid set is applied, and says so in the log.
fn activate(stored: PolicyVersion) -> Result<Active, PolicyError> {
    match warden_policy::check_set(&stored.files) {
        Ok(checked) => Ok(Active {
            version: Some(stored.version),
            files: stored.files,
            policies: checked.policies,
        }),
        Err(e) => {
            tracing::error!(version = stored.version, error = %e, "the stored policy set does not load: everything is denied until a valid set is applied");
            Ok(Active {
                version: Some(stored.version),
                ..empty()?
            })
        }
    }
}

/// A unified diff between two sets of files.
pub fn diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let mut out = String::new();
    for name in names {
        let (a, b) = (
            old.get(name).map_or("", String::as_str),
            new.get(name).map_or("", String::as_str),
        );
        if a == b {
            continue;
        }
        let from = if old.contains_key(name) {
            format!("a/{name}")
        } else {
            "/dev/null".to_owned()
        };
        let to = if new.contains_key(name) {
            format!("b/{name}")
        } else {
            "/dev/null".to_owned()
        };
        let text = similar::TextDiff::from_lines(a, b);
        out.push_str(&text.unified_diff().header(&from, &to).to_string());
    }
    out
}

impl Engine {
    /// Loads the newest stored set. With none stored and `starter` on, first activates the
    /// shipped starter set (audited as Warden's own act).
    pub async fn start(store: &Store, starter: bool) -> Result<Arc<Engine>, StartError> {
        let fail = |e: &dyn std::fmt::Display| StartError(format!("policy: {e}"));
        let engine = Arc::new(Engine {
            active: RwLock::new(Arc::new(empty().map_err(|e| fail(&e))?)),
        });
        if starter
            && store
                .active_policy_version()
                .await
                .map_err(|e| fail(&e))?
                .is_none()
        {
            let files = warden_policy::STARTER
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect();
            let ctx = AuditContext {
                actor: Actor::System,
                request_id: "start".into(),
                source: None,
                now: Timestamp::from_system(std::time::SystemTime::now()),
            };
            match engine.apply(store, &ctx, files, false, None).await {
                Ok(applied) => {
                    tracing::info!(version = ?applied.version, "activated the starter policy set");
                }
                // Another replica starting at the same moment got there first.
                Err(ApplyError::Store(StoreError::Conflict(_))) => {}
                Err(e) => return Err(fail(&e)),
            }
        }
        engine.refresh(store).await.map_err(|e| fail(&e))?;
        Ok(engine)
    }

    /// The set in force.
    pub fn active(&self) -> Arc<Active> {
        match self.active.read() {
            Ok(active) => Arc::clone(&active),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn set(&self, active: Active) {
        let active = Arc::new(active);
        match self.active.write() {
            Ok(mut slot) => *slot = active,
            Err(poisoned) => *poisoned.into_inner() = active,
        }
    }

    /// Loads the newest stored set if it is not the one in force.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let latest = store.active_policy_version().await?;
        if latest == self.active().version {
            return Ok(());
        }
        if let Some(stored) = store.policy_version(latest).await? {
            let version = stored.version;
            let active = activate(stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            self.set(active);
            tracing::info!(version, "policy set activated");
        }
        Ok(())
    }

    /// Follows sets applied through other replicas.
    pub async fn run_refresh(self: Arc<Self>, store: Arc<Store>) {
        let mut every = tokio::time::interval(REFRESH);
        loop {
            every.tick().await;
            if let Err(e) = self.refresh(&store).await {
                tracing::warn!(error = %e, "cannot read the active policy version");
            }
        }
    }

    /// Decides a request; anything that goes wrong is a deny, with the error given. What the
    /// policy allows a subject acting through a token role is then held to the role's ceiling.
    pub fn decide(
        &self,
        subject: &Subject,
        action: &str,
        object: &Object,
        context: &serde_json::Value,
    ) -> Decision {
        let active = self.active();
        let decided = active
            .policies
            .decide_as(subject, action, object, context)
            .unwrap_or_else(|e| Decided {
                allow: false,
                reasons: Vec::new(),
                errors: e.0,
            });
        // The role's ceiling decides only what the policy would allow: a refusal the policy
        // makes anyway keeps the policy's reason.
        if decided.allow
            && let Some(role) = ceiling(subject).filter(|role| !role.permits(action))
        {
            return Decision {
                version: active.version,
                decided: Decided {
                    allow: false,
                    reasons: Vec::new(),
                    errors: Vec::new(),
                },
                capped: Some(role),
            };
        }
        Decision {
            version: active.version,
            decided,
            capped: None,
        }
    }

    /// Checks `files` as a set, runs its tests, and (unless `dry_run`, or the set equals the
    /// active one) stores and activates it as the next version. A set that does not load or
    /// fails a test changes nothing; the refusal is audited. With `expected` (the version the
    /// caller read, 0 for none), a set made against another version than the one in force is
    /// refused as stale: the store's own check that the version it writes is the next one
    /// covers a change after this read.
    pub async fn apply(
        &self,
        store: &Store,
        ctx: &AuditContext,
        files: BTreeMap<String, String>,
        dry_run: bool,
        expected: Option<i64>,
    ) -> Result<Applied, ApplyError> {
        let refuse = async |reason: &str| -> Result<(), StoreError> {
            store
                .record(
                    ctx,
                    "policy.apply",
                    "policy",
                    serde_json::json!({ "hash": hash_files(&files) }),
                    Outcome::Failure,
                    Some(reason),
                )
                .await
        };
        let current = match store.policy_version(None).await? {
            Some(stored) => (stored.version, stored.files),
            None => (0, BTreeMap::new()),
        };
        if let Some(expected) = expected.filter(|v| *v != current.0) {
            let message = format!(
                "the policy changed since it was read (version {} is in force now, not \
                 {expected}): read it again, then decide",
                current.0
            );
            if !dry_run {
                refuse(&message).await?;
            }
            return Err(ApplyError::Store(StoreError::Stale(message)));
        }
        let checked = match warden_policy::check_set(&files) {
            Ok(checked) => checked,
            Err(e) => {
                if !dry_run {
                    refuse(&e.to_string()).await?;
                }
                return Err(ApplyError::Invalid(e));
            }
        };
        // `connect` policies must compile into network rules and name known labels.
        let labels = store.host_label_keys().await?;
        if let Err(reason) = crate::mesh::check_policies(&checked.policies, &labels) {
            if !dry_run {
                refuse(&reason).await?;
            }
            return Err(ApplyError::Invalid(warden_policy::PolicyError(vec![
                reason,
            ])));
        }
        let failures: Vec<String> = checked
            .failures()
            .map(|r| {
                let word = |a: bool| if a { "allow" } else { "deny" };
                let why = if r.decided.reasons.is_empty() {
                    "no policy applies".to_owned()
                } else {
                    r.decided.reasons.join(", ")
                };
                format!(
                    "test `{}`: expected {}, got {} ({why})",
                    r.name,
                    word(r.expected),
                    word(r.decided.allow)
                )
            })
            .collect();
        if !failures.is_empty() {
            let (failed, total) = (failures.len(), checked.results.len());
            if !dry_run {
                refuse(&format!(
                    "policy not applied: {failed} of {total} tests failed: {}",
                    failures.join("; ")
                ))
                .await?;
            }
            return Err(ApplyError::TestsFailed {
                failed,
                total,
                lines: failures.join("\n"),
            });
        }
        let hash = hash_files(&files);
        let unchanged = current.1 == files;
        let diff = diff(&current.1, &files);
        if dry_run || unchanged {
            return Ok(Applied {
                version: None,
                hash,
                unchanged,
                diff,
                checked,
            });
        }
        let mut changes = BTreeMap::new();
        for name in current.1.keys().chain(files.keys()) {
            let change = match (current.1.get(name), files.get(name)) {
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                (Some(a), Some(b)) if a != b => "changed",
                _ => continue,
            };
            changes.insert(name.clone(), change);
        }
        let version = current.0 + 1;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        store
            .apply_policy(
                ctx,
                &NewPolicyVersion {
                    version,
                    hash: hash.clone(),
                    files: files.clone(),
                    policies: count(checked.policies.len()),
                    tests: count(checked.results.len()),
                    changes: serde_json::json!(changes),
                },
            )
            .await?;
        self.set(Active {
            version: Some(version),
            files,
            policies: checked.policies.clone(),
        });
        Ok(Applied {
            version: Some(version),
            hash,
            unchanged: false,
            diff,
            checked,
        })
    }
}

/// The role a subject acts through, if any. A role the model does not know is held to the
/// narrowest ceiling (fail closed).
fn ceiling(subject: &Subject) -> Option<Role> {
    let role = match subject {
        Subject::User { role, .. } => role.as_deref()?,
        Subject::Service { role, .. } => role.as_str(),
    };
    Some(role.parse().unwrap_or(Role::Scim))
}

/// Who `actor` is to the policy engine: a person with their groups now, or a service token.
/// `None` for whoever has no place in policy (anonymous callers, hosts, Warden itself).
pub async fn subject(store: &Store, actor: &Actor) -> Result<Option<Subject>, StoreError> {
    match actor {
        Actor::User { name, role, .. } => {
            let Some(user) = store.user(name).await? else {
                return Ok(None);
            };
            if user.disabled_at.is_some() {
                return Ok(None);
            }
            let now = Timestamp::from_system(std::time::SystemTime::now());
            let groups = store.user_groups(&user.id, now).await?;
            Ok(Some(Subject::User {
                name: name.to_string(),
                groups: groups.iter().map(|g| g.as_str().to_owned()).collect(),
                role: role.map(|r| r.as_str().to_owned()),
            }))
        }
        Actor::Token { name, role, .. } => Ok(Some(Subject::Service {
            name: name.to_string(),
            role: role.as_str().to_owned(),
        })),
        _ => Ok(None),
    }
}
