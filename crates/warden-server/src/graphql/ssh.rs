//! SSH certificates over GraphQL: a user gets one for their own key; an admin revokes.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};
use warden_model::{Actor, Timestamp, Ttl};
use warden_pki::ssh::Kind;
use warden_store::Store;

use super::authz::{Capability, authorize};
use super::{api_error, bad_input};
use crate::ca::{Authorities, IssueError};
use crate::config::SshConfig;

/// An issued SSH certificate.
#[derive(Debug, Clone, SimpleObject)]
pub struct SshCertificate {
    /// Serial, decimal (what a revocation names).
    pub serial: String,
    /// The certificate, one OpenSSH line: save it as `KEY-cert.pub`.
    pub certificate: String,
    /// The logins it allows.
    pub principals: Vec<String>,
    /// When it stops working, RFC 3339.
    pub valid_before: String,
}

/// SSH certificate changes.
#[derive(Debug, Default)]
pub struct SshMutation;

#[Object]
impl SshMutation {
    /// Signs the caller's public key: a user certificate for their own login and the logins
    /// their groups grant (`[ssh.group_logins]`), for `ttl` (at most `ssh.max_ttl`).
    async fn issue_ssh_user_certificate(
        &self,
        ctx: &Context<'_>,
        public_key: String,
        ttl: Option<String>,
    ) -> async_graphql::Result<SshCertificate> {
        let caller = authorize(ctx, Capability::OwnSshCertificate, "ssh-cert:user").await?;
        let Actor::User { name, token_id, .. } = &caller.audit.actor else {
            return Err(bad_input(
                "only a person's token can get a user certificate",
            ));
        };
        let config = ctx.data::<SshConfig>()?;
        let ttl = match ttl {
            Some(t) => t.parse::<Ttl>().map_err(bad_input)?.as_duration(),
            None => config.max_ttl,
        };
        if ttl > config.max_ttl {
            return Err(bad_input(format!(
                "ttl exceeds ssh.max_ttl ({})",
                humantime::format_duration(config.max_ttl)
            )));
        }
        let store = ctx.data::<Arc<Store>>()?;
        let user = store
            .user(name)
            .await
            .map_err(|e| api_error(e, caller))?
            .ok_or_else(|| bad_input(format!("user `{name}` not found")))?;
        let mut principals = vec![name.to_string()];
        for group in store
            .user_groups(&user.id)
            .await
            .map_err(|e| api_error(e, caller))?
        {
            if let Some(logins) = config.group_logins.get(group.as_str()) {
                principals.extend(logins.iter().cloned());
            }
        }
        principals.sort();
        principals.dedup();
        let key_id = format!("user:{name} token:{token_id}");
        let authorities = ctx.data::<Authorities>()?;
        let (serial, certificate) = authorities
            .issue(
                &caller.audit,
                Kind::User,
                &public_key,
                key_id,
                principals.clone(),
                ttl,
            )
            .await
            .map_err(|e| match e {
                IssueError::Request(e) => bad_input(e),
                IssueError::Store(e) => api_error(e, caller),
            })?;
        let valid_before = Timestamp::from_millis(caller.audit.now.as_millis())
            .plus(ttl)
            .to_string();
        Ok(SshCertificate {
            serial: serial.to_string(),
            certificate,
            principals,
            valid_before,
        })
    }

    /// Revokes an SSH certificate by serial; it appears in `/v1/ssh/krl` at once.
    async fn revoke_ssh_certificate(
        &self,
        ctx: &Context<'_>,
        serial: String,
    ) -> async_graphql::Result<bool> {
        let caller = authorize(
            ctx,
            Capability::RevokeCertificates,
            &format!("ssh-cert:{serial}"),
        )
        .await?;
        let serial: u64 = serial
            .trim()
            .parse()
            .map_err(|_| bad_input(format!("invalid serial `{serial}`: a decimal number")))?;
        let store = ctx.data::<Arc<Store>>()?;
        store
            .revoke_ssh_certificate(&caller.audit, serial)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(true)
    }
}
