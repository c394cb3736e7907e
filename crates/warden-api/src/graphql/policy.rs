//! The policy over GraphQL: the active set and its history, applying a new set, and
//! explaining a decision.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, SimpleObject};
use warden_policy::{Object as Resource, Subject, parse_action, parse_ref};
use warden_store::{PolicyVersion, Store};

use super::Capability;
use super::authz::authorize;
use super::{Caller, api_error, bad_input};
use crate::policy::{ApplyError, Engine};

/// Most files one policy set may have.
const MAX_FILES: usize = 1000;

/// A file of a policy set.
#[derive(Debug, Clone, SimpleObject, InputObject)]
#[graphql(input_name = "PolicyFileInput")]
pub struct PolicyFile {
    /// `ssh.cedar` or `tests.toml`.
    pub name: String,
    /// Its text.
    pub text: String,
}

/// A stored policy set.
#[derive(Debug, Clone, SimpleObject)]
pub struct PolicySetVersion {
    /// Its version number.
    pub version: i64,
    /// SHA-256 of its files.
    pub hash: String,
    /// Whether it is the one in force.
    pub active: bool,
    /// How many policies.
    pub policies: i64,
    /// How many tests passed when it was applied.
    pub tests: i64,
    /// Who applied it.
    pub applied_by: String,
    /// When, RFC 3339.
    pub applied_at: String,
    /// Its files (empty in the history list).
    pub files: Vec<PolicyFile>,
}

impl PolicySetVersion {
    fn new(v: PolicyVersion, active: Option<i64>) -> PolicySetVersion {
        PolicySetVersion {
            active: Some(v.version) == active,
            version: v.version,
            hash: v.hash,
            policies: v.policies,
            tests: v.tests,
            applied_by: v.applied_by,
            applied_at: v.applied_at.to_string(),
            files: v
                .files
                .into_iter()
                .map(|(name, text)| PolicyFile { name, text })
                .collect(),
        }
    }
}

/// One policy test's outcome.
#[derive(Debug, Clone, SimpleObject)]
pub struct PolicyTestOutcome {
    /// The test's name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// `allow` or `deny`.
    pub expected: String,
    /// What the policies decided.
    pub got: String,
    /// The policies that determined it (empty: default deny).
    pub determined_by: Vec<String>,
}

/// What `applyPolicy` did.
#[derive(Debug, Clone, SimpleObject)]
pub struct PolicyApplyResult {
    /// The version activated; null for a dry run or an unchanged set.
    pub version: Option<i64>,
    /// SHA-256 of the files.
    pub hash: String,
    /// The set equals the active one: nothing was stored.
    pub unchanged: bool,
    /// Unified diff from the active set.
    pub diff: String,
    /// How many policies.
    pub policies: i64,
    /// The tests, all passed.
    pub tests: Vec<PolicyTestOutcome>,
}

/// A policy that determined or could have determined a decision.
#[derive(Debug, Clone, SimpleObject)]
pub struct ExplainedPolicy {
    /// `ssh.cedar:ops-as-root` or `ssh.cedar#2`.
    pub id: String,
    /// Its file.
    pub file: String,
    /// Its text.
    pub text: String,
}

/// A label of a host.
#[derive(Debug, Clone, SimpleObject)]
pub struct Label {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// A decision, explained.
#[derive(Debug, Clone, SimpleObject)]
pub struct Explanation {
    /// `allow` or `deny`.
    pub decision: String,
    /// The policy version that decided (null: no policy is active).
    pub policy_version: Option<i64>,
    /// One line: what decided and why.
    pub reason: String,
    /// The policies that determined it: permits for an allow, forbids for a deny (none for a
    /// default deny).
    pub determining: Vec<ExplainedPolicy>,
    /// Policies whose scope matched the principal and action but whose conditions did not
    /// decide it (for a default deny: what was tried).
    pub considered: Vec<ExplainedPolicy>,
    /// Evaluation errors (a policy that errs does not apply).
    pub errors: Vec<String>,
    /// The principal, as Cedar names it.
    pub principal: String,
    /// Its groups, now.
    pub principal_groups: Vec<String>,
    /// The resource, as Cedar names it.
    pub resource: String,
    /// Its labels.
    pub resource_labels: Vec<Label>,
}

/// Policy reads.
#[derive(Debug, Default)]
pub struct PolicyQuery;

#[Object]
impl PolicyQuery {
    /// A stored policy set with its files; the active one when `version` is not given.
    async fn policy(
        &self,
        ctx: &Context<'_>,
        version: Option<i64>,
    ) -> async_graphql::Result<Option<PolicySetVersion>> {
        let caller = authorize(ctx, Capability::ReadPolicy, "policy").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let active = store
            .active_policy_version()
            .await
            .map_err(|e| api_error(e, caller))?;
        let found = store
            .policy_version(version)
            .await
            .map_err(|e| api_error(e, caller))?;
        match (found, version) {
            (Some(v), _) => Ok(Some(PolicySetVersion::new(v, active))),
            (None, Some(v)) => Err(bad_input(format!(
                "policy version {v} not found: `warden policy history` lists them"
            ))),
            (None, None) => Ok(None),
        }
    }

    /// Every policy set applied, newest first.
    async fn policy_history(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<PolicySetVersion>> {
        let caller = authorize(ctx, Capability::ReadPolicy, "policy").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let history = store
            .policy_history()
            .await
            .map_err(|e| api_error(e, caller))?;
        let active = history.first().map(|v| v.version);
        Ok(history
            .into_iter()
            .map(|v| PolicySetVersion::new(v, active))
            .collect())
    }

    /// Decides a request with the active policy and Warden's current data, and says why.
    /// `principal` and `resource` are `user:alice`, `service:ci`, `host:db-1`, `api:users`
    /// or Cedar references; `context` a JSON object (`{"login": "root"}` for `ssh`).
    async fn explain_policy(
        &self,
        ctx: &Context<'_>,
        principal: String,
        action: String,
        resource: String,
        context: Option<String>,
    ) -> async_graphql::Result<Explanation> {
        let caller = authorize(ctx, Capability::ReadPolicy, "policy").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let engine = ctx.data::<Arc<Engine>>()?;
        let action = parse_action(&action).map_err(bad_input)?;
        let context: serde_json::Value = match context.as_deref().map(str::trim) {
            None | Some("") => serde_json::json!({}),
            Some(text) => serde_json::from_str(text)
                .map_err(|e| bad_input(format!("invalid context: {e}")))?,
        };
        if !context.is_object() {
            return Err(bad_input(
                "invalid context: a JSON object, like {\"login\": \"root\"}",
            ));
        }
        let subject = principal_of(store, caller, &principal).await?;
        let object = resource_of(store, caller, &resource).await?;
        let active = engine.active();
        let (decided, in_scope) = active
            .policies
            .explain_as(&subject, &action, &object, &context)
            .map_err(bad_input)?;
        let decision = crate::policy::Decision {
            version: active.version,
            decided,
            capped: None,
        };
        let explained = |id: &String| ExplainedPolicy {
            id: id.clone(),
            file: active.policies.file_of(id).unwrap_or_default().to_owned(),
            text: active.policies.text_of(id).unwrap_or_default(),
        };
        let determining: Vec<ExplainedPolicy> =
            decision.decided.reasons.iter().map(explained).collect();
        let considered = in_scope
            .iter()
            .filter(|id| !decision.decided.reasons.contains(id))
            .map(explained)
            .collect();
        let (principal_groups, resource_labels) = match (&subject, &object) {
            (Subject::User { groups, .. }, Resource::Host { labels, .. }) => {
                (groups.clone(), labels.clone())
            }
            (Subject::User { groups, .. }, _) => (groups.clone(), BTreeMap::new()),
            (_, Resource::Host { labels, .. }) => (Vec::new(), labels.clone()),
            _ => (Vec::new(), BTreeMap::new()),
        };
        Ok(Explanation {
            decision: if decision.decided.allow {
                "allow"
            } else {
                "deny"
            }
            .to_owned(),
            policy_version: decision.version,
            reason: decision.reason(&action),
            determining,
            considered,
            errors: decision.decided.errors.clone(),
            principal: subject.uid(),
            principal_groups,
            resource: object.uid(),
            resource_labels: resource_labels
                .into_iter()
                .map(|(key, value)| Label { key, value })
                .collect(),
        })
    }
}

/// The principal named in an explain request, with what Warden knows of it now.
async fn principal_of(
    store: &Store,
    caller: &Caller,
    reference: &str,
) -> async_graphql::Result<Subject> {
    let (kind, id) = parse_ref(reference).map_err(bad_input)?;
    let unknown = || bad_input(format!("unknown principal {kind} `{id}`"));
    match kind.as_str() {
        "User" => {
            let name = warden_model::UserName::new(id.clone())
                .map_err(|e| bad_input(format!("invalid user name `{id}`: {e}")))?;
            let user = store
                .user(&name)
                .await
                .map_err(|e| api_error(e, caller))?
                .ok_or_else(unknown)?;
            let groups = store
                .user_groups(&user.id, caller.audit.now)
                .await
                .map_err(|e| api_error(e, caller))?;
            Ok(Subject::User {
                name: id,
                groups: groups.iter().map(|g| g.as_str().to_owned()).collect(),
                role: None,
            })
        }
        "Service" => {
            let token = store
                .tokens()
                .await
                .map_err(|e| api_error(e, caller))?
                .into_iter()
                .find(|t| t.name.as_str() == id && t.user.is_none() && t.revoked_at.is_none())
                .ok_or_else(unknown)?;
            Ok(Subject::Service {
                name: id,
                role: token.role.as_str().to_owned(),
            })
        }
        _ => Err(bad_input(format!(
            "a principal is a user or a service, not a {kind}"
        ))),
    }
}

/// The resource named in an explain request.
async fn resource_of(
    store: &Store,
    caller: &Caller,
    reference: &str,
) -> async_graphql::Result<Resource> {
    let (kind, id) = parse_ref(reference).map_err(bad_input)?;
    match kind.as_str() {
        "Host" => {
            let host = store
                .host(&id)
                .await
                .map_err(|e| api_error(e, caller))?
                .ok_or_else(|| bad_input(format!("unknown resource Host `{id}`")))?;
            Ok(Resource::Host {
                name: host.name,
                labels: host.labels,
            })
        }
        "Api" => Ok(Resource::Api(id)),
        _ => Err(bad_input(format!(
            "a resource is a host or a part of the API (api:users), not a {kind}"
        ))),
    }
}

/// Policy changes.
#[derive(Debug, Default)]
pub struct PolicyMutation;

#[Object]
impl PolicyMutation {
    /// Checks a policy set against the schema, runs its tests and, when all pass, stores it
    /// as the next version and puts it in force (unless `dryRun`). A set that fails changes
    /// nothing. `expectedVersion`: the version in force when the set was made (0 for none);
    /// if another is in force by now the set is refused as `STALE` (and recorded, unless a
    /// dry run).
    async fn apply_policy(
        &self,
        ctx: &Context<'_>,
        files: Vec<PolicyFile>,
        dry_run: Option<bool>,
        expected_version: Option<i64>,
    ) -> async_graphql::Result<PolicyApplyResult> {
        let caller = authorize(ctx, Capability::ManagePolicy, "policy").await?;
        if let Some(v) = expected_version.filter(|v| *v < 0) {
            return Err(bad_input(format!(
                "expectedVersion is a policy version (0 for none), never negative, not {v}"
            )));
        }
        if files.len() > MAX_FILES {
            return Err(bad_input(format!("too many files: at most {MAX_FILES}")));
        }
        let mut set = BTreeMap::new();
        for file in files {
            if set.insert(file.name.clone(), file.text).is_some() {
                return Err(bad_input(format!("file `{}` given twice", file.name)));
            }
        }
        let store = ctx.data::<Arc<Store>>()?;
        let engine = ctx.data::<Arc<Engine>>()?;
        let applied = engine
            .apply(
                store,
                &caller.audit,
                set,
                dry_run.unwrap_or(false),
                expected_version,
            )
            .await
            .map_err(|e| match e {
                ApplyError::Store(e) => api_error(e, caller),
                e => bad_input(e),
            })?;
        let word = |allow: bool| if allow { "allow" } else { "deny" }.to_owned();
        Ok(PolicyApplyResult {
            version: applied.version,
            hash: applied.hash,
            unchanged: applied.unchanged,
            diff: applied.diff,
            policies: i64::try_from(applied.checked.policies.len()).unwrap_or(i64::MAX),
            tests: applied
                .checked
                .results
                .iter()
                .map(|r| PolicyTestOutcome {
                    name: r.name.clone(),
                    passed: r.passed,
                    expected: word(r.expected),
                    got: word(r.decided.allow),
                    determined_by: r.decided.reasons.clone(),
                })
                .collect(),
        })
    }
}
