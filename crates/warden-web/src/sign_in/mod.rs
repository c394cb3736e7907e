//! Sign-in for people in a browser: the OIDC flow (`/auth/oidc/{name}/login` and
//! `/callback`), server-side sessions in an HttpOnly, SameSite=Strict cookie, and plain
//! server-rendered pages (`/`, `/account`) with CSRF-protected forms.
//!
//! Every sign-in attempt, success or failure, is audited as `auth.login` with the reason.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use rand::rngs::OsRng;
use serde::Deserialize;
use warden_api::accounts::{IdpSignIn, NewSession, Session, SessionStage};
use warden_identity::oidc::{OidcError, OidcProvider, PendingLogin, Provisioning, login_name};
use warden_model::{Actor, Timestamp};
use warden_pki::seal::{open, seal};
use warden_runtime::request::AuditContext;

use crate::Web;
use crate::config::IdentityConfig;
use crate::request::{Anonymous, BodyRejected, JsonBody, declares_json, deny, record_failure};

mod account;
mod cli;
mod oidc;
mod passkeys;

pub use account::*;
pub use cli::*;
pub use oidc::*;
pub use passkeys::*;

const SESSION_COOKIE: &str = "warden_session";
const LOGIN_COOKIE: &str = "warden_oidc";
/// The refusal of a form or ceremony step without the session's CSRF token.
pub const CSRF_MISMATCH: &str = "CSRF token mismatch";

/// Whether `sent` is the session's CSRF token (compared in constant time).
pub fn csrf_ok(presented: &warden_identity::PresentedToken, sent: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(sent.as_bytes().ct_eq(presented.derive("csrf").as_bytes()))
}

/// How long a browser has to come back from the identity provider.
const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

/// The sign-in side of the server: providers and session settings.
#[derive(Debug)]
pub struct SignIn {
    providers: BTreeMap<String, Arc<OidcProvider>>,
    passkeys: warden_identity::passkey::Passkeys,
    identity: IdentityConfig,
    secure: bool,
}

impl SignIn {
    /// The providers of `identity`, with redirect URLs under `public_url`, and the passkey
    /// ceremonies for its origin.
    pub fn new(identity: &IdentityConfig, public_url: &url::Url) -> Result<SignIn, String> {
        let base = public_url.as_str().trim_end_matches('/');
        let mut providers = BTreeMap::new();
        for config in &identity.oidc {
            let redirect = format!("{base}/auth/oidc/{}/callback", config.name);
            providers.insert(
                config.name.clone(),
                Arc::new(OidcProvider::new(config.clone(), &redirect)?),
            );
        }
        Ok(SignIn {
            passkeys: warden_identity::passkey::Passkeys::new(
                public_url,
                identity.authenticators.clone(),
            )?,
            providers,
            identity: identity.clone(),
            secure: public_url.scheme() == "https",
        })
    }
}

/// A page outside the console (sign-in, account), with the console's look and headers: no
/// inline script, no framing, no referrer, nothing from elsewhere.
fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    crate::console::html_response(status, crate::console::plain(title, body))
}

/// A page that says one thing: a refusal, or where to go next.
fn notice(status: StatusCode, title: &str, text: &str) -> Response {
    page(status, title, html! { p { (text) } })
}

fn cookies(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn set_cookie(response: &mut Response, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Records a refused sign-in and shows its reason.
async fn refuse(
    app: &Web,
    ctx: &AuditContext,
    target: &str,
    status: StatusCode,
    reason: &str,
) -> Response {
    // No record, no answer but "try later": fail closed.
    if record_failure(app, ctx, "auth.login", target, reason)
        .await
        .is_err()
    {
        return notice(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in failed",
            "Try again later.",
        );
    }
    tracing::info!(reason, "sign-in refused");
    page(status, "Sign-in failed", start_again(reason))
}

/// A refusal's reason, and the way back to the start.
fn start_again(reason: &str) -> Markup {
    html! {
        p { (reason) }
        p { a href="/" { "Start again" } }
    }
}

/// The passkey sign-in form, continuing to `next`.
fn passkey_sign_in(next: &str) -> Markup {
    html! {
        p {
            label for="passkey-user" { "User name" } " "
            input id="passkey-user" autocomplete="username webauthn";
            " "
            button id="passkey-signin" type="button" data-next=(next) { "Sign in with a passkey" }
        }
        (passkey_status())
    }
}

/// Where the passkey script reports, and the script.
fn passkey_status() -> Markup {
    html! {
        p id="passkey-status" role="status" {}
        script src="/static/passkey.js" defer {}
    }
}

/// `GET /`: the sign-in page.
pub async fn sign_in_page(State(app): State<Web>) -> Response {
    let providers = &app.sign_in.providers;
    page(
        StatusCode::OK,
        "Sign in",
        html! {
            @if !providers.is_empty() {
                ul {
                    @for name in providers.keys() {
                        li { a href={ "/auth/oidc/" (name) "/login" } { "Sign in with " (name) } }
                    }
                }
            }
            h2 { "Local account" }
            (passkey_sign_in("/console"))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn returns_stay_on_this_server() {
        for ok in ["/console", "/console/audit?actor=user%3Aalice"] {
            assert_eq!(super::safe_return(Some(ok.to_owned())), ok);
        }
        // Browsers drop tabs and newlines from URLs, so these would leave for evil.example.
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "https://evil.example",
            "/ /x",
        ] {
            assert_eq!(
                super::safe_return(Some(bad.to_owned())),
                "/account",
                "{bad:?}"
            );
        }
        assert_eq!(super::safe_return(None), "/account");
    }

    #[test]
    fn activity_is_noted_once_a_step() {
        let seen = Timestamp::from_millis(1_000_000);
        let at = |ms: i64| Timestamp::from_millis(1_000_000 + ms);
        // 30 minutes idle: a minute's step.
        let idle = Duration::from_secs(1800);
        assert!(!account::activity_due(seen, at(0), idle));
        assert!(!account::activity_due(seen, at(59_999), idle));
        assert!(account::activity_due(seen, at(60_000), idle));
        // 2 seconds idle: a step of 66 ms, so a request every half second keeps it open.
        let idle = Duration::from_secs(2);
        assert!(!account::activity_due(seen, at(65), idle));
        assert!(account::activity_due(seen, at(66), idle));
        // 12 hours idle: still a minute at most.
        assert!(account::activity_due(
            seen,
            at(60_000),
            Duration::from_secs(43_200)
        ));
    }

    #[test]
    fn loopback_redirects_only() {
        assert!(loopback("http://127.0.0.1:4711/callback").is_ok());
        assert!(loopback("http://[::1]:4711/cb").is_ok());
        for bad in [
            "https://127.0.0.1:4711/cb",
            "http://127.0.0.1/cb",
            "http://localhost:4711/cb",
            "http://evil.example:4711/cb",
            "http://user@127.0.0.1:4711/cb",
            "http://127.0.0.1:4711/cb#x",
            "not a url",
        ] {
            assert!(loopback(bad).is_err(), "{bad}");
        }
        assert_eq!(safe_return(Some("//evil.example".into())), "/account");
        assert_eq!(safe_return(Some("https://evil.example".into())), "/account");
        assert_eq!(safe_return(Some("/account?x=1".into())), "/account?x=1");
    }

    proptest! {
        #[test]
        fn outside_text_parsers_never_panic(s in "\\PC{0,120}") {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&s) {
                headers.insert(header::COOKIE, v);
            }
            let _ = cookies(&headers);
            let _ = loopback(&s);
            let back = safe_return(Some(s.clone()));
            prop_assert!(back.starts_with('/') && !back.starts_with("//"));
            let _ = warden_identity::parse_session_token(&s);
            let _ = warden_identity::parse_enrollment_token(&s);
        }
    }
}
