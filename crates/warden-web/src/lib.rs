//! Warden in the browser: the sign-in pages (OIDC, passkeys, enrollment, the CLI's consent)
//! and the console under `/console`. Pages are maud templates; what they show they read
//! through the GraphQL schema ([`warden_api::graphql`]) as the caller, so the browser sees
//! what the API would let the same person see.
//!
//! The pages cannot reach the database. `App`'s store is a private field, lent only through
//! `warden_store::HoldsStore`, and this crate cannot name that trait: it does not depend on
//! `warden-store` (the layering test keeps it so). The services are there; the store is not:
//!
//! ```
//! fn services(app: &warden_runtime::request::App) {
//!     let _ = (&app.policy, &app.audit, &app.authorities);
//! }
//! ```
//!
//! ```compile_fail
//! fn field(app: &warden_runtime::request::App) {
//!     let _ = &app.store;
//! }
//! ```
//!
//! ```compile_fail
//! fn lent(app: &warden_runtime::request::App) {
//!     let _ = app.store();
//! }
//! ```

pub mod console;
pub mod sign_in;

use warden_api::graphql;
use warden_runtime::{config, request};

use std::sync::Arc;

use warden_api::accounts::Accounts;
use warden_api::graphql::Api;
use warden_runtime::request::App;

/// What the browser pages share: the services ([`App`], which this dereferences to), the
/// GraphQL API the console reads and writes through, the accounts the sign-in pages act on,
/// the sign-in state and the settings page's view of the configuration. The server keeps one
/// and hands it to these routes as their state.
///
/// None of it reaches the database: `App` lends the store only to crates that depend on
/// `warden-store`, and this crate does not.
#[derive(Clone)]
pub struct Web {
    /// The services.
    pub app: App,
    /// The API the console's pages query as their viewer.
    pub api: Api,
    /// The accounts the sign-in pages act on.
    pub accounts: Accounts,
    /// Identity providers and passkey ceremonies.
    pub sign_in: Arc<sign_in::SignIn>,
    /// What the settings page shows.
    pub settings: Arc<console::Settings>,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Web {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

impl axum::extract::FromRef<Web> for App {
    fn from_ref(web: &Web) -> App {
        web.app.clone()
    }
}
