//! Break-glass in GraphQL: `createBreakGlass` (on the admin socket only: the operator makes
//! emergency credentials, and the shares are shown once), `revokeBreakGlass`,
//! `breakGlassCredentials`, `breakGlassUses` and `closeBreakGlassReview` (a use's mandatory
//! after-action review).

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};
use warden_model::{Actor, BREAK_GLASS_PRINCIPAL, Timestamp, Ttl};
use warden_pki::break_glass::{Mint, mint};
use warden_store::{BreakGlass, BreakGlassUse, NewBreakGlass, Store};

use super::Capability;
use super::authz::authorize;
use super::{api_error, bad_input, forbidden};

/// A break-glass credential as recorded (never its key).
#[derive(Debug, Clone, SimpleObject)]
pub struct BreakGlassInfo {
    /// Its id.
    pub id: String,
    /// The throwaway CA's public key that hosts trust while cut off from Warden.
    pub ca_public_key: String,
    /// The certified key's SHA-256 fingerprint.
    pub key_sha256: String,
    /// Why it was made.
    pub reason: String,
    /// Who made it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// When it stops working, RFC 3339.
    pub expires_at: String,
    /// Shares made.
    pub shares: u8,
    /// Shares that open it.
    pub threshold: u8,
    /// RFC 3339.
    pub revoked_at: Option<String>,
}

impl From<BreakGlass> for BreakGlassInfo {
    fn from(b: BreakGlass) -> Self {
        BreakGlassInfo {
            id: b.id,
            ca_public_key: b.ca_public,
            key_sha256: b.key_sha256,
            reason: b.reason,
            created_by: b.created_by,
            created_at: b.created_at.rfc3339_millis(),
            expires_at: b.expires_at.rfc3339_millis(),
            shares: b.shares,
            threshold: b.threshold,
            revoked_at: b.revoked_at.map(Timestamp::rfc3339_millis),
        }
    }
}

/// A new credential with its share files, shown once.
#[derive(Debug, Clone, SimpleObject)]
pub struct NewBreakGlassInfo {
    /// The credential.
    pub credential: BreakGlassInfo,
    /// The share files' text, share 1 first: hand each to its holder; any `threshold` of them
    /// open the credential with `warden break-glass open`, with no server.
    pub shares: Vec<String>,
}

/// One use a host reported, with its after-action review.
#[derive(Debug, Clone, SimpleObject)]
pub struct BreakGlassUseInfo {
    /// The use's id.
    pub id: String,
    /// The credential used.
    pub credential: String,
    /// The host.
    pub host: String,
    /// The login.
    pub login: String,
    /// RFC 3339, by the host's clock.
    pub started_at: String,
    /// RFC 3339.
    pub ended_at: Option<String>,
    /// The recording's file, for `sshRecording`.
    pub recording: Option<String>,
    /// Its SHA-256.
    pub recording_sha256: Option<String>,
    /// When the host reported it, RFC 3339.
    pub reported_at: String,
    /// When its review was closed, RFC 3339; null while open.
    pub closed_at: Option<String>,
    /// Who closed it.
    pub closed_by: Option<String>,
    /// What the review found.
    pub summary: Option<String>,
}

impl From<BreakGlassUse> for BreakGlassUseInfo {
    fn from(u: BreakGlassUse) -> Self {
        BreakGlassUseInfo {
            id: u.id,
            credential: u.credential,
            host: u.host,
            login: u.login,
            started_at: u.started_at.rfc3339_millis(),
            ended_at: u.ended_at.map(Timestamp::rfc3339_millis),
            recording: u.recording,
            recording_sha256: u.recording_sha256,
            reported_at: u.reported_at.rfc3339_millis(),
            closed_at: u.closed_at.map(Timestamp::rfc3339_millis),
            closed_by: u.closed_by,
            summary: u.summary,
        }
    }
}

/// Reading break-glass credentials and uses.
#[derive(Debug, Default)]
pub struct BreakGlassQuery;

#[Object]
impl BreakGlassQuery {
    /// Every break-glass credential, newest first (`read_audit`).
    async fn break_glass_credentials(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<BreakGlassInfo>> {
        let caller = authorize(ctx, Capability::ReadAudit, "break-glass").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let all = store
            .break_glass_credentials()
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Uses hosts reported, newest first; with `open`, only those whose after-action review
    /// is still open (`read_audit`).
    async fn break_glass_uses(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] open: bool,
    ) -> async_graphql::Result<Vec<BreakGlassUseInfo>> {
        let caller = authorize(ctx, Capability::ReadAudit, "break-glass").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let uses = store
            .break_glass_uses(open)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(uses.into_iter().map(Into::into).collect())
    }
}

/// Making, revoking and reviewing break-glass credentials.
#[derive(Debug, Default)]
pub struct BreakGlassMutation;

#[Object]
impl BreakGlassMutation {
    /// Makes a break-glass credential valid for `ttl` (1m to 366d), split into `shares` of
    /// which `threshold` open it, for `reason`. On the admin socket only; the shares are in
    /// this answer and nowhere else.
    async fn create_break_glass(
        &self,
        ctx: &Context<'_>,
        ttl: String,
        #[graphql(default = 1)] shares: u8,
        #[graphql(default = 1)] threshold: u8,
        reason: String,
    ) -> async_graphql::Result<NewBreakGlassInfo> {
        let caller =
            authorize(ctx, Capability::ManageCertificateAuthorities, "break-glass").await?;
        let store = ctx.data::<Arc<Store>>()?;
        if caller.audit.actor != Actor::Operator {
            let reason = "break-glass credentials are made on the admin socket only";
            store
                .record_denial(&caller.audit, "break_glass.create", "break-glass", reason)
                .await
                .map_err(|e| api_error(e, caller))?;
            return Err(forbidden(reason));
        }
        let ttl: Ttl = ttl.parse().map_err(bad_input)?;
        if reason.trim().is_empty() {
            return Err(bad_input("a break-glass credential needs a reason"));
        }
        let now = caller.audit.now;
        let expires_at = now.plus(ttl.as_duration());
        let id = warden_store::write::new_id();
        let secs = |t: Timestamp| u64::try_from(t.as_millis() / 1000).unwrap_or_default();
        let minted = mint(
            &Mint {
                id: &id,
                principal: BREAK_GLASS_PRINCIPAL,
                // A minute's allowance for hosts whose clocks run behind.
                valid_after: secs(now).saturating_sub(60),
                valid_before: secs(expires_at),
                shares,
                threshold,
            },
            &expires_at.rfc3339_millis(),
            &mut rand::rngs::OsRng,
        )
        .map_err(bad_input)?;
        let credential = store
            .create_break_glass(
                &caller.audit,
                NewBreakGlass {
                    id,
                    ca_public: minted.ca_public_key.clone(),
                    key_sha256: minted.fingerprint.clone(),
                    reason,
                    expires_at,
                    shares,
                    threshold,
                },
            )
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(NewBreakGlassInfo {
            credential: credential.into(),
            shares: minted.shares.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// Revokes a break-glass credential: hosts stop trusting it at their next contact.
    async fn revoke_break_glass(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> async_graphql::Result<BreakGlassInfo> {
        let caller =
            authorize(ctx, Capability::ManageCertificateAuthorities, "break-glass").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let revoked = store
            .revoke_break_glass(&caller.audit, &id)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(revoked.into())
    }

    /// Closes a use's after-action review with a summary of what was done and why (`review`).
    async fn close_break_glass_review(
        &self,
        ctx: &Context<'_>,
        id: String,
        summary: String,
    ) -> async_graphql::Result<BreakGlassUseInfo> {
        let caller = authorize(ctx, Capability::Review, "break-glass").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let closed = store
            .close_break_glass_review(&caller.audit, &id, summary.trim())
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(closed.into())
    }
}
