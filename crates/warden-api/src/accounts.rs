//! The sign-in API: what the browser's sign-in pages do for a person before there is an API
//! caller. Open, refresh and end browser sessions; register, confirm, lock and remove
//! passkeys; take an identity provider's sign-in or an enrollment link; authorize and redeem
//! `warden login`'s one-time code.
//!
//! The pages hold an [`Accounts`], not the store, so this list is all they can read or
//! change. Every change is audited by the store in its own transaction and runs to completion
//! in a task of its own ([`detached`]): a browser that goes away cannot cut it short.

use std::sync::Arc;

use warden_model::{Timestamp, UserName};
use warden_store::{AuditContext, Store};
pub use warden_store::{
    IdpSignIn, NewSession, NewToken, Session, SessionStage, StoreError, StoredPasskey, User,
};

use crate::request::detached;

/// The sign-in pages' way to the accounts they act on.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<Store>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

impl Accounts {
    /// The accounts in `store`.
    pub fn new(store: Arc<Store>) -> Accounts {
        Accounts { store }
    }

    /// The browser session `id`, ended or not.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        self.store.session(id).await
    }

    /// Notes activity on session `id` at `now` (not audited: it changes no access).
    pub async fn touch_session(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        self.store.touch_session(id, now).await
    }

    /// Ends session `id`, audited as `session.end` with `reason`.
    pub async fn end_session(
        &self,
        ctx: &AuditContext,
        id: &str,
        reason: &'static str,
    ) -> Result<(), StoreError> {
        let (store, ctx, id) = (self.store.clone(), ctx.clone(), id.to_owned());
        detached(async move { store.end_session(&ctx, &id, reason).await }).await
    }

    /// The person called `name`, disabled or not.
    pub async fn user(&self, name: &UserName) -> Result<Option<User>, StoreError> {
        self.store.user(name).await
    }

    /// The passkeys of the person with id `user_id`, locked ones included.
    pub async fn passkeys(&self, user_id: &str) -> Result<Vec<StoredPasskey>, StoreError> {
        self.store.passkeys(user_id).await
    }

    /// One stored credential's shape, for sign-in's stand-ins (`None`: no passkey exists).
    pub async fn passkey_template(&self) -> Result<Option<String>, StoreError> {
        self.store.passkey_template().await
    }

    /// Stores a new passkey for the person of session `session_id`, completing the session.
    pub async fn register_passkey(
        &self,
        ctx: &AuditContext,
        session_id: &str,
        user_id: &str,
        credential_id: &str,
        name: &str,
        credential: &str,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        let (ctx, sid, uid) = (ctx.clone(), session_id.to_owned(), user_id.to_owned());
        let (cid, name, credential) = (
            credential_id.to_owned(),
            name.to_owned(),
            credential.to_owned(),
        );
        detached(async move {
            store
                .register_passkey(&ctx, &sid, &uid, &cid, &name, &credential)
                .await
        })
        .await
    }

    /// Records a passkey's assertion (its new counter). With `session_id`, that session passes
    /// its passkey step; with `new_session`, that person is signed in with it.
    pub async fn passkey_asserted(
        &self,
        ctx: &AuditContext,
        (credential_id, credential, user_verified): (&str, &str, bool),
        session_id: Option<&str>,
        new_session: Option<(&str, &NewSession)>,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        let (ctx, cid, credential) = (ctx.clone(), credential_id.to_owned(), credential.to_owned());
        let sid = session_id.map(str::to_owned);
        let new = new_session.map(|(uid, s)| (uid.to_owned(), s.clone()));
        detached(async move {
            let new = new.as_ref().map(|(uid, s)| (uid.as_str(), s));
            store
                .passkey_asserted(
                    &ctx,
                    (&cid, &credential, user_verified),
                    sid.as_deref(),
                    new,
                )
                .await
        })
        .await
    }

    /// Removes passkey `passkey_id` of the person with id `user_id`, confirmed by another of
    /// their passkeys (`credential_id`, whose assertion is recorded first).
    pub async fn remove_passkey(
        &self,
        ctx: &AuditContext,
        user_id: &str,
        passkey_id: &str,
        (credential_id, credential, user_verified): (&str, &str, bool),
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        let (ctx, uid, pid) = (ctx.clone(), user_id.to_owned(), passkey_id.to_owned());
        let (cid, credential) = (credential_id.to_owned(), credential.to_owned());
        detached(async move {
            store
                .passkey_asserted(&ctx, (&cid, &credential, user_verified), None, None)
                .await?;
            store.remove_passkey(&ctx, &uid, &pid).await
        })
        .await
    }

    /// Locks the passkey with WebAuthn credential id `credential_id` (a possible clone).
    pub async fn lock_passkey(
        &self,
        ctx: &AuditContext,
        credential_id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        let (ctx, cid, reason) = (ctx.clone(), credential_id.to_owned(), reason.to_owned());
        detached(async move { store.lock_passkey(&ctx, &cid, &reason).await }).await
    }

    /// Signs a person in from an identity provider's answer (provisioning them if allowed).
    pub async fn sign_in_with_idp(
        &self,
        ctx: &AuditContext,
        sign_in: IdpSignIn,
    ) -> Result<(User, SessionStage), StoreError> {
        let (store, ctx) = (self.store.clone(), ctx.clone());
        detached(async move { store.sign_in_with_idp(&ctx, &sign_in).await }).await
    }

    /// Uses enrollment link `id` (its secret checked by `check`), opening `session`.
    pub async fn use_enrollment_link(
        &self,
        ctx: &AuditContext,
        id: &str,
        check: impl FnOnce(&str) -> bool + Send + 'static,
        session: &NewSession,
    ) -> Result<User, StoreError> {
        let store = self.store.clone();
        let (ctx, id, session) = (ctx.clone(), id.to_owned(), session.clone());
        detached(async move { store.use_enrollment_link(&ctx, &id, check, &session).await }).await
    }

    /// Stores `warden login`'s one-time code (its hash) for `user`, bound to the PKCE
    /// `challenge` and `redirect_uri`, until `expires_at`.
    pub async fn create_cli_code(
        &self,
        ctx: &AuditContext,
        user: &User,
        code_hash: &str,
        (challenge, redirect_uri): (&str, &str),
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let (store, ctx, user) = (self.store.clone(), ctx.clone(), user.clone());
        let (hash, challenge, uri) = (
            code_hash.to_owned(),
            challenge.to_owned(),
            redirect_uri.to_owned(),
        );
        detached(async move {
            store
                .create_cli_code(&ctx, &user, &hash, &challenge, &uri, expires_at)
                .await
        })
        .await
    }

    /// Redeems a one-time code (its hash) for `token`, if `check` accepts the code's challenge
    /// and redirect; the person it was issued to.
    pub async fn redeem_cli_code(
        &self,
        ctx: &AuditContext,
        code_hash: &str,
        check: impl FnOnce(&str, &str) -> Result<(), String> + Send + 'static,
        token: NewToken,
    ) -> Result<UserName, StoreError> {
        let (store, ctx, hash) = (self.store.clone(), ctx.clone(), code_hash.to_owned());
        detached(async move { store.redeem_cli_code(&ctx, &hash, check, &token).await }).await
    }
}
