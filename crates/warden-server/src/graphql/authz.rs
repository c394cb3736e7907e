//! Role-based authorization, deny by default. The policy engine replaces the table below; the
//! shape (ask before acting, record every denial) stays.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions};
use warden_model::{Actor, Role};
use warden_store::Store;

use super::Caller;

/// What a resolver is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// See who one is.
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
    /// Get an SSH user certificate for oneself.
    OwnSshCertificate,
    /// Revoke SSH certificates.
    RevokeCertificates,
    /// Get X.509 workload certificates for any SPIFFE id outside `/host/`.
    IssueWorkloadCertificates,
    /// Rotate certificate authorities.
    ManageCertificateAuthorities,
    /// Create join tokens for hosts.
    ManageHosts,
}

impl Capability {
    /// The audit action recorded when this capability is denied.
    pub(crate) fn action(self) -> &'static str {
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
        }
    }

    fn is_read(self) -> bool {
        matches!(
            self,
            Capability::ReadDirectory | Capability::ReadTokens | Capability::ReadAudit
        )
    }
}

/// Whether `actor` may use `cap`. Anything not listed is denied.
pub fn permits(actor: &Actor, cap: Capability) -> bool {
    match (actor.role(), cap) {
        (Some(Role::Scim) | None, _) => false,
        (Some(Role::Admin), _) => true,
        (Some(_), Capability::Viewer) => true,
        // A person gets certificates for themselves; a service token acts for no person.
        (Some(Role::Member), Capability::OwnSshCertificate) => matches!(actor, Actor::User { .. }),
        (Some(Role::Auditor), c) => c.is_read(),
        (Some(Role::Member), _) => false,
    }
}

/// Returns the caller if it may use `cap` on `target`; otherwise records the denial and
/// returns a FORBIDDEN error.
pub(crate) async fn authorize<'a>(
    ctx: &Context<'a>,
    cap: Capability,
    target: &str,
) -> async_graphql::Result<&'a Caller> {
    let caller = ctx.data::<Caller>()?;
    let actor = &caller.audit.actor;
    if permits(actor, cap) {
        return Ok(caller);
    }
    let role = actor.role().map_or("none", Role::as_str);
    let reason = format!("role `{role}` may not use {}", cap.action());
    let store = ctx.data::<Arc<Store>>()?;
    if let Err(err) = store
        .record_denial(&caller.audit, cap.action(), target, &reason)
        .await
    {
        // No audit record, no answer: fail closed with an opaque error.
        return Err(super::api_error(err, caller));
    }
    tracing::info!(actor = %actor, action = cap.action(), target, "denied");
    Err(
        async_graphql::Error::new(format!("permission denied: {reason}"))
            .extend_with(|_, e| e.set("code", "FORBIDDEN")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_model::TokenName;

    fn token(role: Role) -> Actor {
        Actor::Token {
            token_id: "t".into(),
            name: TokenName::new("t").unwrap(),
            role,
        }
    }

    #[test]
    fn deny_by_default() {
        use Capability::*;
        let all = [
            Viewer,
            ReadDirectory,
            ReadTokens,
            ManageUsers,
            ManageGroups,
            ManageTokens,
        ];
        for cap in all {
            assert!(permits(&Actor::Operator, cap));
            assert!(permits(&token(Role::Admin), cap));
            assert!(!permits(&token(Role::Scim), cap));
            assert!(!permits(&Actor::Anonymous, cap));
            assert_eq!(
                permits(&token(Role::Auditor), cap),
                matches!(cap, Viewer | ReadDirectory | ReadTokens | ReadAudit)
            );
            assert_eq!(permits(&token(Role::Member), cap), cap == Viewer);
            let member = Actor::User {
                name: warden_model::UserName::new("m").unwrap(),
                token_id: "t".into(),
                role: Role::Member,
            };
            assert_eq!(
                permits(&member, cap),
                matches!(cap, Viewer | OwnSshCertificate)
            );
        }
    }
}
