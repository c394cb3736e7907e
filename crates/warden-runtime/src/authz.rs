//! Authorization through the policy engine, deny by default: each capability a caller
//! needs is a Cedar action on a part of Warden's API (`manage_users` on
//! `Warden::Api::"users"`), decided for the caller with their groups as they are now. Every
//! denial is recorded with the policies that determined it. The admin socket's operator is
//! never asked, so a bad policy cannot lock the operator out.

use warden_model::Actor;
use warden_policy::Object;
use warden_store::{AuditContext, Outcome, Store, StoreError};

use crate::policy::{Engine, subject};

/// What a resolver is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// See who one is (any authenticated caller).
    Viewer,
    /// Read users and groups.
    ReadDirectory,
    /// Read API tokens (never their secrets).
    ReadTokens,
    /// Add, disable and enable users.
    ManageUsers,
    /// Add groups and change membership.
    ManageGroups,
    /// Create and revoke API tokens.
    ManageTokens,
    /// Read the audit log, its checkpoints and proofs, and export it.
    ReadAudit,
    /// Get an SSH user certificate for oneself (a person; each login is then decided by the
    /// `ssh` action).
    OwnSshCertificate,
    /// Revoke SSH certificates.
    RevokeCertificates,
    /// Get X.509 workload certificates for any SPIFFE id outside `/host/`.
    IssueWorkloadCertificates,
    /// Rotate certificate authorities.
    ManageCertificateAuthorities,
    /// Create join tokens for hosts.
    ManageHosts,
    /// Read policy versions and explain decisions.
    ReadPolicy,
    /// Apply policy sets.
    ManagePolicy,
    /// Start and close access reviews, and see them all.
    Review,
    /// Read vulnerability findings, their figures and the CI gate.
    ReadVulns,
    /// Re-rate findings, accept their risk, call them false positives, set asset tiers.
    ManageVulns,
    /// Import scans and file disclosure reports.
    ImportVulns,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 18] = [
        Capability::Viewer,
        Capability::ReadDirectory,
        Capability::ReadTokens,
        Capability::ManageUsers,
        Capability::ManageGroups,
        Capability::ManageTokens,
        Capability::ReadAudit,
        Capability::OwnSshCertificate,
        Capability::RevokeCertificates,
        Capability::IssueWorkloadCertificates,
        Capability::ManageCertificateAuthorities,
        Capability::ManageHosts,
        Capability::ReadPolicy,
        Capability::ManagePolicy,
        Capability::Review,
        Capability::ReadVulns,
        Capability::ManageVulns,
        Capability::ImportVulns,
    ];

    /// The audit action recorded when this capability is denied.
    pub fn action(self) -> &'static str {
        match self {
            Capability::Viewer => "api.viewer",
            Capability::ReadDirectory => "api.read_directory",
            Capability::ReadTokens => "api.read_tokens",
            Capability::ManageUsers => "api.manage_users",
            Capability::ManageGroups => "api.manage_groups",
            Capability::ManageTokens => "api.manage_tokens",
            Capability::ReadAudit => "api.read_audit",
            Capability::OwnSshCertificate => "ssh.own_certificate",
            Capability::RevokeCertificates => "ssh.revoke",
            Capability::IssueWorkloadCertificates => "x509.issue",
            Capability::ManageCertificateAuthorities => "ca.rotate",
            Capability::ManageHosts => "host.manage",
            Capability::ReadPolicy => "policy.read",
            Capability::ManagePolicy => "policy.manage",
            Capability::Review => "review.manage",
            Capability::ReadVulns => "vuln.read",
            Capability::ManageVulns => "vuln.manage",
            Capability::ImportVulns => "vuln.import",
        }
    }

    /// The Cedar action and the `Warden::Api` resource it is asked on; `None` for what needs
    /// only an authenticated caller.
    pub fn cedar(self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            Capability::Viewer | Capability::OwnSshCertificate => return None,
            Capability::ReadDirectory => ("read_directory", "directory"),
            Capability::ReadTokens => ("read_directory", "tokens"),
            Capability::ManageUsers => ("manage_users", "users"),
            Capability::ManageGroups => ("manage_groups", "groups"),
            Capability::ManageTokens => ("manage_tokens", "tokens"),
            Capability::ReadAudit => ("read_audit", "audit"),
            Capability::RevokeCertificates => ("manage_cas", "certificates"),
            Capability::IssueWorkloadCertificates => ("issue_certificates", "certificates"),
            Capability::ManageCertificateAuthorities => ("manage_cas", "cas"),
            Capability::ManageHosts => ("manage_hosts", "hosts"),
            Capability::ReadPolicy => ("read_policy", "policy"),
            Capability::ManagePolicy => ("manage_policy", "policy"),
            Capability::Review => ("review", "reviews"),
            Capability::ReadVulns => ("read_vulns", "vulns"),
            Capability::ManageVulns => ("manage_vulns", "vulns"),
            Capability::ImportVulns => ("import_vulns", "vulns"),
        })
    }
}

/// Why a check did not pass.
#[derive(Debug)]
pub enum Refused {
    /// Denied (and recorded): the reason, naming the policies.
    Denied(String),
    /// The decision or its record could not be made: fail closed.
    Store(StoreError),
}

/// A refusal decided but not yet recorded.
#[derive(Debug)]
pub struct Denial {
    /// Why, naming the policies.
    pub reason: String,
    /// What the record carries: the policy version and the determining policies.
    pub details: serde_json::Value,
}

/// Decides whether the caller behind `audit` may use `cap`; `Ok(Some(_))` when not.
pub async fn decide(
    engine: &Engine,
    store: &Store,
    audit: &AuditContext,
    cap: Capability,
) -> Result<Option<Denial>, StoreError> {
    let actor = &audit.actor;
    let denial = |reason: String, details| Ok(Some(Denial { reason, details }));
    match (actor, cap.cedar()) {
        (Actor::Operator, _) => Ok(None),
        (Actor::Anonymous | Actor::Host { .. } | Actor::System, _) => denial(
            format!("{actor} may not use {}", cap.action()),
            serde_json::Value::Null,
        ),
        (_, None) => Ok(None),
        (_, Some((action, api))) => match subject(store, actor).await? {
            None => denial(
                format!("{actor} is not a known, enabled principal"),
                serde_json::Value::Null,
            ),
            Some(subject) => {
                let decision = engine.decide(
                    &subject,
                    action,
                    &Object::Api(api.to_owned()),
                    &serde_json::json!({}),
                );
                if decision.decided.allow {
                    return Ok(None);
                }
                denial(decision.reason(action), decision.details())
            }
        },
    }
}

/// Decides whether the caller behind `audit` may use `cap` (on `target`, for the record);
/// records a denial with the policy version and the determining policies.
pub async fn check(
    engine: &Engine,
    store: &Store,
    audit: &AuditContext,
    cap: Capability,
    target: &str,
) -> Result<(), Refused> {
    let Some(denial) = decide(engine, store, audit, cap)
        .await
        .map_err(Refused::Store)?
    else {
        return Ok(());
    };
    store
        .record(
            audit,
            cap.action(),
            target,
            denial.details,
            Outcome::Denied,
            Some(&denial.reason),
        )
        .await
        .map_err(Refused::Store)?;
    tracing::info!(actor = %audit.actor, action = cap.action(), target, reason = %denial.reason, "denied");
    Err(Refused::Denied(denial.reason))
}
