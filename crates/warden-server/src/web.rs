//! Sign-in for people in a browser: the OIDC flow (`/auth/oidc/{name}/login` and
//! `/callback`), server-side sessions in an HttpOnly, SameSite=Strict cookie, and plain
//! server-rendered pages (`/`, `/account`) with CSRF-protected forms.
//!
//! Every sign-in attempt, success or failure, is audited as `auth.login` with the reason.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::rngs::OsRng;
use serde::Deserialize;
use warden_identity::oidc::{OidcError, OidcProvider, PendingLogin, Provisioning, login_name};
use warden_model::{Actor, Timestamp};
use warden_pki::seal::{open, seal};
use warden_store::{AuditContext, IdpSignIn, NewSession, Outcome, Session, SessionStage};

use crate::config::IdentityConfig;
use crate::edge::RequestId;
use crate::http::{App, detached};

const SESSION_COOKIE: &str = "warden_session";
const LOGIN_COOKIE: &str = "warden_oidc";
/// How long a browser has to come back from the identity provider.
const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

/// The sign-in side of the server: providers and session settings.
#[derive(Debug)]
pub(crate) struct Web {
    providers: BTreeMap<String, Arc<OidcProvider>>,
    identity: IdentityConfig,
    secure: bool,
}

impl Web {
    pub(crate) fn new(identity: &IdentityConfig, public_url: &url::Url) -> Result<Web, String> {
        let base = public_url.as_str().trim_end_matches('/');
        let mut providers = BTreeMap::new();
        for config in &identity.oidc {
            let redirect = format!("{base}/auth/oidc/{}/callback", config.name);
            providers.insert(
                config.name.clone(),
                Arc::new(OidcProvider::new(config.clone(), &redirect)?),
            );
        }
        Ok(Web {
            providers,
            identity: identity.clone(),
            secure: public_url.scheme() == "https",
        })
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A page: no script, no framing, no referrer, nothing from elsewhere.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Warden</title></head><body><main>\n<h1>{}</h1>\n{body}\n</main></body></html>\n",
        escape(title),
        escape(title)
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
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

fn context(
    request_id: String,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> AuditContext {
    AuditContext {
        actor: Actor::Anonymous,
        request_id,
        source: connect.map(|Extension(ConnectInfo(p))| p.ip().to_string()),
        now: Timestamp::from_system(SystemTime::now()),
    }
}

/// Records a refused sign-in and shows its reason.
async fn refuse(
    app: &App,
    ctx: &AuditContext,
    target: &str,
    status: StatusCode,
    reason: &str,
) -> Response {
    let (store, ctx2, target2, reason2) = (
        app.store.clone(),
        ctx.clone(),
        target.to_owned(),
        reason.to_owned(),
    );
    let recorded = detached(async move {
        store
            .record(
                &ctx2,
                "auth.login",
                &target2,
                serde_json::Value::Null,
                Outcome::Failure,
                Some(&reason2),
            )
            .await
    })
    .await;
    if let Err(err) = recorded {
        tracing::error!(error = %err, "cannot record a refused sign-in");
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in failed",
            "<p>Try again later.</p>",
        );
    }
    tracing::info!(reason, "sign-in refused");
    page(
        status,
        "Sign-in failed",
        &format!(
            "<p>{}</p><p><a href=\"/\">Start again</a></p>",
            escape(reason)
        ),
    )
}

/// `GET /`: the sign-in page.
pub(crate) async fn sign_in_page(State(app): State<App>) -> Response {
    let mut list = String::new();
    for name in app.web.providers.keys() {
        list.push_str(&format!(
            "<li><a href=\"/auth/oidc/{0}/login\">Sign in with {0}</a></li>",
            escape(name)
        ));
    }
    if list.is_empty() {
        list.push_str("<li>No identity provider is configured; local accounts sign in with a passkey enrollment link from an admin.</li>");
    }
    page(StatusCode::OK, "Sign in", &format!("<ul>{list}</ul>"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    return_to: Option<String>,
}

/// A path on this server, or `/account`.
fn safe_return(to: Option<String>) -> String {
    match to {
        Some(p)
            if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && p.len() < 512 =>
        {
            p
        }
        _ => "/account".to_owned(),
    }
}

/// `GET /auth/oidc/{name}/login`: off to the identity provider, with the flow's secrets
/// sealed in a cookie only this browser holds.
pub(crate) async fn oidc_login(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(query): Query<LoginQuery>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    let ctx = context(request_id, connect);
    let Some(provider) = app.web.providers.get(&name) else {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown identity provider",
            "<p><a href=\"/\">Back</a></p>",
        );
    };
    let expires = ctx.now.as_millis() + LOGIN_TTL_MS;
    let (url, pending) = match provider.begin(safe_return(query.return_to), expires).await {
        Ok(pair) => pair,
        Err(e) => {
            return refuse(
                &app,
                &ctx,
                &format!("idp:{name}"),
                StatusCode::BAD_GATEWAY,
                &e.to_string(),
            )
            .await;
        }
    };
    let Ok(plain) = serde_json::to_vec(&pending) else {
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in failed",
            "<p>Internal error.</p>",
        );
    };
    let sealed = seal(
        app.authorities.kek(),
        &format!("oidc-login:{name}"),
        &plain,
        &mut OsRng,
    );
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response();
    // Lax: the provider's redirect back is a top-level navigation from another site.
    set_cookie(
        &mut response,
        format!(
            "{LOGIN_COOKIE}={sealed}; Path=/auth/oidc/; HttpOnly; SameSite=Lax; Max-Age=600{}",
            if app.web.secure { "; Secure" } else { "" }
        ),
    );
    response
}

#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

/// `GET /auth/oidc/{name}/callback`.
pub(crate) async fn oidc_callback(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(query): Query<CallbackQuery>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(request_id, connect);
    let target = format!("idp:{name}");
    let Some(provider) = app.web.providers.get(&name).cloned() else {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown identity provider",
            "<p><a href=\"/\">Back</a></p>",
        );
    };
    let bad = StatusCode::BAD_REQUEST;
    if let Some(error) = query.error {
        let detail = query.error_description.unwrap_or_default();
        let reason = format!(
            "the identity provider answered `{}`: {}",
            shorten(&error),
            shorten(&detail)
        );
        return refuse(&app, &ctx, &target, bad, &reason).await;
    }
    // RFC 9207: a provider that names itself must be the one this flow went to (mix-up).
    if let Some(iss) = &query.iss
        && iss.trim_end_matches('/') != provider.config().issuer.trim_end_matches('/')
    {
        let reason = format!(
            "the callback names issuer `{}`, not this provider's",
            shorten(iss)
        );
        return refuse(&app, &ctx, &target, bad, &reason).await;
    }
    let (Some(code), Some(state)) = (query.code, query.state) else {
        return refuse(
            &app,
            &ctx,
            &target,
            bad,
            "the callback has no code or no state",
        )
        .await;
    };
    let Some(sealed) = cookies(&headers).remove(LOGIN_COOKIE) else {
        return refuse(
            &app,
            &ctx,
            &target,
            bad,
            "no sign-in is in progress in this browser (no sign-in cookie)",
        )
        .await;
    };
    let pending: PendingLogin = match open(
        app.authorities.kek(),
        &format!("oidc-login:{name}"),
        &sealed,
    )
    .ok()
    .and_then(|plain| serde_json::from_slice(&plain).ok())
    {
        Some(p) => p,
        None => {
            return refuse(
                &app,
                &ctx,
                &target,
                bad,
                "the sign-in cookie is not valid (tampered or from another provider)",
            )
            .await;
        }
    };
    if pending.expires_at <= ctx.now.as_millis() {
        return refuse(
            &app,
            &ctx,
            &target,
            bad,
            "the sign-in took longer than 10 minutes; start again",
        )
        .await;
    }
    use subtle::ConstantTimeEq;
    if !bool::from(state.as_bytes().ct_eq(pending.state.as_bytes())) {
        return refuse(
            &app,
            &ctx,
            &target,
            bad,
            "state mismatch: the callback does not belong to this browser's sign-in",
        )
        .await;
    }
    let person = match provider.finish(&code, &pending).await {
        Ok(p) => p,
        Err(e) => {
            let status = match e {
                OidcError::Unavailable { .. } => StatusCode::BAD_GATEWAY,
                OidcError::NotAllowed(_) => StatusCode::FORBIDDEN,
                _ => bad,
            };
            return refuse(&app, &ctx, &target, status, &e.to_string()).await;
        }
    };
    let target = format!("idp:{name}:{}", person.subject);
    let login = match login_name(&person) {
        Ok(n) => n,
        Err(e) => return refuse(&app, &ctx, &target, StatusCode::FORBIDDEN, &e.to_string()).await,
    };
    let token = warden_identity::issue_session_token(&mut OsRng);
    let sign_in = IdpSignIn {
        provider: name.clone(),
        subject: person.subject.clone(),
        name: login,
        display_name: person.name.clone(),
        email: person.email.clone(),
        groups: person.groups.clone(),
        amr: person.amr.clone(),
        acr: person.acr.clone(),
        state_hash: warden_identity::sha256_hex(&pending.state),
        just_in_time: provider.config().provisioning == Provisioning::JustInTime,
        session: NewSession {
            id: token.id.clone(),
            secret_hash: token.secret_hash.clone(),
            expires_at: ctx.now.plus(app.web.identity.session_lifetime),
        },
    };
    let (store, ctx2) = (app.store.clone(), ctx.clone());
    let signed = detached(async move { store.sign_in_with_idp(&ctx2, &sign_in).await }).await;
    match signed {
        Ok(_) => {}
        Err(e) if e.is_user_error() => {
            // Recorded as a failure by the store.
            return page(
                StatusCode::FORBIDDEN,
                "Sign-in failed",
                &format!(
                    "<p>{}</p><p><a href=\"/\">Start again</a></p>",
                    escape(&e.to_string())
                ),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in failed");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in failed",
                "<p>Try again later.</p>",
            );
        }
    }
    // A page of our own moves on, so the next request is same-site and carries the Strict
    // session cookie (a redirect chain that began at the provider would not).
    let to = escape(&pending.return_to);
    let mut response = page(
        StatusCode::OK,
        "Signed in",
        &format!(
            "<meta http-equiv=\"refresh\" content=\"0;url={to}\"><p><a href=\"{to}\">Continue</a></p>"
        ),
    );
    let secure = if app.web.secure { "; Secure" } else { "" };
    set_cookie(
        &mut response,
        format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
            token.token.expose()
        ),
    );
    set_cookie(
        &mut response,
        format!("{LOGIN_COOKIE}=; Path=/auth/oidc/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    );
    response
}

fn shorten(s: &str) -> String {
    s.chars().take(200).filter(|c| !c.is_control()).collect()
}

/// The session this browser presents, if it is open: right secret, not ended, not past its
/// lifetime or idle timeout, user not disabled. An idle or expired session is ended (audited).
pub(crate) async fn current_session(
    app: &App,
    headers: &HeaderMap,
    ctx: &AuditContext,
) -> Option<(Session, warden_identity::PresentedToken)> {
    let cookie = cookies(headers).remove(SESSION_COOKIE)?;
    let presented = warden_identity::parse_session_token(&cookie)?;
    let session = app.store.session(presented.id()).await.ok()??;
    if !presented.matches(&session.secret_hash) || session.ended_at.is_some() {
        return None;
    }
    let idle = session.last_seen_at.plus(app.web.identity.idle_timeout);
    let reason = if ctx.now >= session.expires_at {
        Some("expired")
    } else if ctx.now >= idle {
        Some("idle")
    } else if session.user.disabled_at.is_some() {
        Some("user disabled")
    } else {
        None
    };
    if let Some(reason) = reason {
        let (store, ctx2, id) = (
            app.store.clone(),
            AuditContext {
                actor: Actor::System,
                ..ctx.clone()
            },
            session.id.clone(),
        );
        let _ = detached(async move { store.end_session(&ctx2, &id, reason).await }).await;
        return None;
    }
    let _ = app.store.touch_session(&session.id, ctx.now).await;
    Some((session, presented))
}

/// `GET /account`: who is signed in, and what is left to do.
pub(crate) async fn account(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(request_id, connect);
    let Some((session, presented)) = current_session(&app, &headers, &ctx).await else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    };
    let next = match session.stage {
        SessionStage::PasskeyEnrollment => {
            "<p>Register a passkey or security key to continue: Warden accepts only phishing-resistant sign-in.</p>"
        }
        SessionStage::Passkey => "<p>Confirm with your passkey to continue.</p>",
        SessionStage::Active => "<p>You are signed in.</p>",
    };
    let csrf = presented.derive("csrf");
    let body = format!(
        "<p>Signed in as <strong>{}</strong> ({}) through {}.</p>{next}\
         <form method=\"post\" action=\"/auth/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\">Sign out</button></form>",
        escape(session.user.name.as_str()),
        escape(&session.user.display_name),
        escape(&session.method),
    );
    page(StatusCode::OK, "Your account", &body)
}

#[derive(Debug, Deserialize)]
pub(crate) struct LogoutForm {
    csrf: String,
}

/// `POST /auth/logout` with the form's CSRF token.
pub(crate) async fn logout(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LogoutForm>,
) -> Response {
    let ctx = context(request_id, connect);
    let Some((session, presented)) = current_session(&app, &headers, &ctx).await else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    };
    use subtle::ConstantTimeEq;
    if !bool::from(
        form.csrf
            .as_bytes()
            .ct_eq(presented.derive("csrf").as_bytes()),
    ) {
        let (store, ctx2, target) = (
            app.store.clone(),
            ctx.clone(),
            format!("session:{}", session.id),
        );
        let _ = detached(async move {
            store
                .record_denial(&ctx2, "session.end", &target, "CSRF token mismatch")
                .await
        })
        .await;
        return page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<p>The form is stale or forged (CSRF token mismatch).</p>",
        );
    }
    let ctx = AuditContext {
        actor: Actor::User {
            name: session.user.name.clone(),
            token_id: format!("session:{}", session.id),
            role: warden_model::Role::Member,
        },
        ..ctx
    };
    let (store, id) = (app.store.clone(), session.id.clone());
    let _ = detached(async move { store.end_session(&ctx, &id, "logout").await }).await;
    let mut response = page(
        StatusCode::OK,
        "Signed out",
        "<p><a href=\"/\">Sign in again</a></p>",
    );
    set_cookie(
        &mut response,
        format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if app.web.secure { "; Secure" } else { "" }
        ),
    );
    response
}
