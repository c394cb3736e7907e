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
use warden_store::{AuditContext, IdpSignIn, NewSession, Session, SessionStage};

use crate::Web;
use crate::config::IdentityConfig;
use crate::edge::RequestId;
use crate::request::{deny, detached, record_failure};

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

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let _ = std::fmt::Write::write_str(&mut maud::Escaper::new(&mut out), s);
    out
}

/// A page outside the console (sign-in, account), with the console's look and headers: no
/// inline script, no framing, no referrer, nothing from elsewhere. `body` is HTML made here
/// with every outside value escaped.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    crate::console::html_response(
        status,
        crate::console::plain(title, maud::PreEscaped(body.to_owned())),
    )
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

/// The audit context of a sign-in step: nobody yet, from the peer's address.
pub fn context(
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
pub async fn sign_in_page(State(app): State<Web>) -> Response {
    let mut list = String::new();
    for name in app.sign_in.providers.keys() {
        list.push_str(&format!(
            "<li><a href=\"/auth/oidc/{0}/login\">Sign in with {0}</a></li>",
            escape(name)
        ));
    }
    let local = "<h2>Local account</h2>\
        <p><label for=\"passkey-user\">User name</label> <input id=\"passkey-user\" autocomplete=\"username webauthn\"> \
        <button id=\"passkey-signin\" type=\"button\" data-next=\"/console\">Sign in with a passkey</button></p>\
        <p id=\"passkey-status\" role=\"status\"></p><script src=\"/static/passkey.js\" defer></script>";
    if list.is_empty() {
        return page(StatusCode::OK, "Sign in", local);
    }
    page(
        StatusCode::OK,
        "Sign in",
        &format!("<ul>{list}</ul>{local}"),
    )
}

/// `GET /auth/oidc/{name}/login`'s query: where to go after signing in.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

/// A path on this server, or `/account`.
fn safe_return(to: Option<String>) -> String {
    match to {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                // Browsers drop tabs and newlines from URLs: `/\t/evil` would become `//evil`.
                && !p.chars().any(|c| c.is_control() || c.is_whitespace())
                && p.len() < 512 =>
        {
            p
        }
        _ => "/account".to_owned(),
    }
}

/// `GET /auth/oidc/{name}/login`: off to the identity provider, with the flow's secrets
/// sealed in a cookie only this browser holds.
pub async fn oidc_login(
    State(app): State<Web>,
    Path(name): Path<String>,
    Query(query): Query<LoginQuery>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    let ctx = context(request_id, connect);
    let Some(provider) = app.sign_in.providers.get(&name) else {
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
            if app.sign_in.secure { "; Secure" } else { "" }
        ),
    );
    response
}

/// The identity provider's answer at `/auth/oidc/{name}/callback`.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

/// `GET /auth/oidc/{name}/callback`.
pub async fn oidc_callback(
    State(app): State<Web>,
    Path(name): Path<String>,
    Query(query): Query<CallbackQuery>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(request_id, connect);
    let target = format!("idp:{name}");
    let Some(provider) = app.sign_in.providers.get(&name).cloned() else {
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
    let (person, provider_time) = match provider.finish(&code, &pending).await {
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
        known_as: person
            .preferred_username
            .iter()
            .chain(person.email.iter())
            .cloned()
            .collect(),
        session: NewSession {
            id: token.id.clone(),
            secret_hash: token.secret_hash.clone(),
            expires_at: ctx.now.plus(app.sign_in.identity.session_lifetime),
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
    let secure = if app.sign_in.secure { "; Secure" } else { "" };
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
    // The provider's share of this request, so its own time can be told apart.
    if let Ok(v) = HeaderValue::from_str(&format!(
        "idp;dur={:.3}",
        provider_time.as_secs_f64() * 1000.0
    )) {
        response.headers_mut().insert("server-timing", v);
    }
    response
}

fn shorten(s: &str) -> String {
    s.chars().take(200).filter(|c| !c.is_control()).collect()
}

/// The session this browser presents, if it is open: right secret, not ended, not past its
/// lifetime or idle timeout, user not disabled. An idle or expired session is ended (audited).
pub async fn current_session(
    app: &Web,
    headers: &HeaderMap,
    ctx: &AuditContext,
) -> Option<(Session, warden_identity::PresentedToken)> {
    let cookie = cookies(headers).remove(SESSION_COOKIE)?;
    let presented = warden_identity::parse_session_token(&cookie)?;
    let session = app.store.session(presented.id()).await.ok()??;
    if !presented.matches(&session.secret_hash) || session.ended_at.is_some() {
        return None;
    }
    let idle = session.last_seen_at.plus(app.sign_in.identity.idle_timeout);
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
    // The console's own refresh of a page left open is not activity: the idle timeout holds.
    if !headers.contains_key("x-warden-refresh") {
        let _ = app.store.touch_session(&session.id, ctx.now).await;
    }
    Some((session, presented))
}

/// `GET /account`: who is signed in, and what is left to do.
pub async fn account(
    State(app): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(request_id, connect);
    let Some((session, presented)) = current_session(&app, &headers, &ctx).await else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    };
    let csrf = presented.derive("csrf");
    let next = match session.stage {
        SessionStage::PasskeyEnrollment => format!(
            "<p>Register a passkey or security key to continue: Warden accepts only phishing-resistant sign-in.</p>\
             <p><label for=\"passkey-name\">Name it</label> <input id=\"passkey-name\" value=\"passkey\"> \
             <button id=\"passkey-register\" type=\"button\" data-csrf=\"{csrf}\">Register a passkey</button></p>"
        ),
        SessionStage::Passkey => format!(
            "<p>Confirm with your passkey to continue.</p>\
             <p><button id=\"passkey-confirm\" type=\"button\" data-csrf=\"{csrf}\" data-next=\"/console\">Confirm with your passkey</button></p>"
        ),
        SessionStage::Active => {
            let keys = app
                .store
                .passkeys(&session.user.id)
                .await
                .unwrap_or_default();
            let items: String = keys
                .iter()
                .map(|k| {
                    format!(
                        "<li>{}{} <button type=\"button\" class=\"passkey-remove\" data-passkey=\"{}\" data-csrf=\"{csrf}\">Remove</button></li>",
                        escape(&k.name),
                        if k.locked.is_some() {
                            " (locked: possible clone)"
                        } else {
                            ""
                        },
                        escape(&k.id),
                    )
                })
                .collect();
            format!(
                "<p>You are signed in. <a href=\"/console\">Open the console</a></p><h2>Your passkeys</h2><ul id=\"passkeys\">{items}</ul>\
                 <p><label for=\"passkey-name\">Name</label> <input id=\"passkey-name\" value=\"another passkey\"> \
                 <button id=\"passkey-register\" type=\"button\" data-csrf=\"{csrf}\">Add a passkey</button></p>"
            )
        }
    };
    let next = format!(
        "{next}<p id=\"passkey-status\" role=\"status\"></p><script src=\"/static/passkey.js\" defer></script>"
    );
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

/// `POST /auth/logout`'s form.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

/// `POST /auth/logout` with the form's CSRF token.
pub async fn logout(
    State(app): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LogoutForm>,
) -> Response {
    let ctx = context(request_id, connect);
    let Some((session, presented)) = current_session(&app, &headers, &ctx).await else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    };
    if !csrf_ok(&presented, &form.csrf) {
        let target = format!("session:{}", session.id);
        deny(&app, &ctx, "session.end", &target, CSRF_MISMATCH).await;
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
            role: None,
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
            if app.sign_in.secure { "; Secure" } else { "" }
        ),
    );
    response
}

const CEREMONY_COOKIE: &str = "warden_webauthn";

/// A ceremony in flight, sealed in a cookie until the browser answers.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Ceremony {
    /// `register`, `assert` or `signin`.
    kind: String,
    /// The session it belongs to (register, assert) or the user signing in (signin).
    subject: String,
    /// webauthn-rs state.
    state: String,
    /// When it stops being acceptable, ms.
    expires_at: i64,
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

fn json_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn seal_ceremony(app: &Web, ceremony: &Ceremony) -> Option<String> {
    let plain = serde_json::to_vec(ceremony).ok()?;
    let sealed = seal(
        app.authorities.kek(),
        "webauthn-ceremony",
        &plain,
        &mut OsRng,
    );
    Some(format!(
        "{CEREMONY_COOKIE}={sealed}; Path=/; HttpOnly; SameSite=Strict; Max-Age=300{}",
        if app.sign_in.secure { "; Secure" } else { "" }
    ))
}

fn open_ceremony(
    app: &Web,
    headers: &HeaderMap,
    kind: &str,
    now: Timestamp,
) -> Result<Ceremony, &'static str> {
    let sealed = cookies(headers)
        .remove(CEREMONY_COOKIE)
        .ok_or("no passkey ceremony is in progress in this browser")?;
    let ceremony: Ceremony = open(app.authorities.kek(), "webauthn-ceremony", &sealed)
        .ok()
        .and_then(|plain| serde_json::from_slice(&plain).ok())
        .ok_or("the passkey ceremony cookie is not valid")?;
    if ceremony.kind != kind {
        return Err("the passkey ceremony cookie is for another step");
    }
    if ceremony.expires_at <= now.as_millis() {
        return Err("the passkey ceremony took longer than 5 minutes; start again");
    }
    Ok(ceremony)
}

fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(cookie) = cookie {
        set_cookie(&mut response, cookie);
    }
    response
}

/// A session and its CSRF check for the JSON endpoints.
async fn json_session(
    app: &Web,
    headers: &HeaderMap,
    ctx: &AuditContext,
) -> Result<(Session, warden_identity::PresentedToken), Response> {
    if !json_body(headers) {
        return Err(json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send application/json",
        ));
    }
    let Some((session, presented)) = current_session(app, headers, ctx).await else {
        return Err(json_error(StatusCode::UNAUTHORIZED, "sign in first"));
    };
    let sent = headers
        .get("x-warden-csrf")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !csrf_ok(&presented, sent) {
        let target = format!("session:{}", session.id);
        deny(app, ctx, "passkey.ceremony", &target, CSRF_MISMATCH).await;
        return Err(json_error(StatusCode::FORBIDDEN, CSRF_MISMATCH));
    }
    Ok((session, presented))
}

/// The session, its audit context and its ceremony of `kind`, for a ceremony's finish.
async fn session_ceremony(
    app: &Web,
    headers: &HeaderMap,
    ctx: AuditContext,
    kind: &str,
) -> Result<(Session, AuditContext, Ceremony), Response> {
    let (session, _) = json_session(app, headers, &ctx).await?;
    let ctx = AuditContext {
        actor: session_actor(&session),
        ..ctx
    };
    match open_ceremony(app, headers, kind, ctx.now) {
        Ok(c) if c.subject == session.id => Ok((session, ctx, c)),
        Ok(_) => Err(json_error(
            StatusCode::BAD_REQUEST,
            "the passkey ceremony belongs to another session",
        )),
        Err(m) => Err(json_error(StatusCode::BAD_REQUEST, m)),
    }
}

/// Who acts through a web session: its person, with the session as the credential.
pub fn session_actor(session: &Session) -> Actor {
    Actor::User {
        name: session.user.name.clone(),
        token_id: format!("session:{}", session.id),
        role: None,
    }
}

/// Records a failed passkey step (and locks a credential whose counter went backwards).
async fn passkey_failed(
    app: &Web,
    ctx: &AuditContext,
    action: &'static str,
    target: &str,
    err: &warden_identity::passkey::PasskeyError,
) -> Response {
    use warden_identity::passkey::PasskeyError;
    let reason = err.to_string();
    if let PasskeyError::PossibleClone(id) = err {
        let (store, ctx2, id, why) = (app.store.clone(), ctx.clone(), id.clone(), reason.clone());
        let locked = detached(async move { store.lock_passkey(&ctx2, &id, &why).await }).await;
        if let Err(e) = locked {
            tracing::error!(error = %e, "cannot lock a passkey");
        }
    }
    let _ = record_failure(app, ctx, action, target, &reason).await;
    json_error(StatusCode::FORBIDDEN, &reason)
}

/// `POST /webauthn/register/start`: options to create a passkey for the signed-in user.
pub async fn register_start(
    State(app): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(request_id, connect);
    let (session, _) = match json_session(&app, &headers, &ctx).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if session.stage == SessionStage::Passkey {
        return json_error(
            StatusCode::FORBIDDEN,
            "confirm with an existing passkey before adding another",
        );
    }
    let existing: Vec<String> = match app.store.passkeys(&session.user.id).await {
        Ok(keys) => keys.into_iter().map(|k| k.credential).collect(),
        Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    let started = app.sign_in.passkeys.start_registration(
        &session.user.id,
        session.user.name.as_str(),
        &session.user.display_name,
        &existing,
    );
    start_ceremony(&app, "register", session.id.clone(), ctx.now, started)
}

/// The browser's answer to a passkey registration.
#[derive(Debug, Deserialize)]
pub struct RegisterFinish {
    name: String,
    credential: serde_json::Value,
}

/// `POST /webauthn/register/finish`: store the new passkey; the session is complete.
pub async fn register_finish(
    State(app): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ctx = context(request_id, connect);
    let (session, ctx, ceremony) = match session_ceremony(&app, &headers, ctx, "register").await {
        Ok(parts) => parts,
        Err(r) => return r,
    };
    let Ok(form) = serde_json::from_slice::<RegisterFinish>(&body) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "expected {\"name\": …, \"credential\": …}",
        );
    };
    let name: String = form
        .name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let name = if name.is_empty() {
        "passkey".to_owned()
    } else {
        name
    };
    let response = form.credential.to_string();
    let target = format!("user:{}", session.user.name);
    let credential = match app
        .sign_in
        .passkeys
        .finish_registration(response.as_bytes(), &ceremony.state)
    {
        Ok(c) => c,
        Err(e) => return passkey_failed(&app, &ctx, "passkey.register", &target, &e).await,
    };
    let (store, ctx2, sid, uid) = (
        app.store.clone(),
        ctx.clone(),
        session.id.clone(),
        session.user.id.clone(),
    );
    let stored = detached(async move {
        store
            .register_passkey(&ctx2, &sid, &uid, &credential.id, &name, &credential.json)
            .await
    })
    .await;
    ceremony_done(&app, stored, StatusCode::CONFLICT)
}

/// Answers a ceremony's start: the options, and its state sealed in a cookie for 5 minutes.
fn start_ceremony(
    app: &Web,
    kind: &str,
    subject: String,
    now: Timestamp,
    started: Result<(serde_json::Value, String), warden_identity::passkey::PasskeyError>,
) -> Response {
    match started {
        Ok((options, state)) => {
            let ceremony = Ceremony {
                kind: kind.to_owned(),
                subject,
                state,
                expires_at: now.as_millis() + 300_000,
            };
            with_cookie(
                axum::Json(options).into_response(),
                seal_ceremony(app, &ceremony),
            )
        }
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Answers a ceremony's end: done (its cookie cleared), refused with `refused`, or try again.
fn ceremony_done(
    app: &Web,
    result: Result<(), warden_store::StoreError>,
    refused: StatusCode,
) -> Response {
    match result {
        Ok(()) => with_cookie(
            axum::Json(serde_json::json!({ "ok": true })).into_response(),
            Some(clear_ceremony(app)),
        ),
        Err(e) if e.is_user_error() => json_error(refused, &e.to_string()),
        Err(_) => json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    }
}

fn clear_ceremony(app: &Web) -> String {
    format!(
        "{CEREMONY_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if app.sign_in.secure { "; Secure" } else { "" }
    )
}

fn usable(keys: &[warden_store::StoredPasskey]) -> Vec<String> {
    keys.iter()
        .filter(|k| k.locked.is_none())
        .map(|k| k.credential.clone())
        .collect()
}

/// `POST /webauthn/assert/start`: after the identity provider, prove a registered passkey.
pub async fn assert_start(
    State(app): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let ctx = context(request_id, connect);
    let (session, _) = match json_session(&app, &headers, &ctx).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let keys = match app.store.passkeys(&session.user.id).await {
        Ok(k) => usable(&k),
        Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    if keys.is_empty() {
        return json_error(
            StatusCode::FORBIDDEN,
            "no usable passkey: ask an admin to reset your passkeys",
        );
    }
    let started = app.sign_in.passkeys.start_authentication(&keys);
    start_ceremony(&app, "assert", session.id.clone(), ctx.now, started)
}

/// The browser's answer to a passkey assertion.
#[derive(Debug, Deserialize)]
pub struct AssertFinish {
    credential: serde_json::Value,
}

/// `POST /webauthn/assert/finish`: the session is complete.
pub async fn assert_finish(
    State(app): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ctx = context(request_id, connect);
    let (session, ctx, ceremony) = match session_ceremony(&app, &headers, ctx, "assert").await {
        Ok(parts) => parts,
        Err(r) => return r,
    };
    let Ok(form) = serde_json::from_slice::<AssertFinish>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "expected {\"credential\": …}");
    };
    let keys = match app.store.passkeys(&session.user.id).await {
        Ok(k) => usable(&k),
        Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    let target = format!("user:{}", session.user.name);
    let credential = match app.sign_in.passkeys.finish_authentication(
        form.credential.to_string().as_bytes(),
        &ceremony.state,
        &keys,
    ) {
        Ok(c) => c,
        Err(e) => return passkey_failed(&app, &ctx, "auth.passkey", &target, &e).await,
    };
    let (store, ctx2, sid) = (app.store.clone(), ctx.clone(), session.id.clone());
    let done = detached(async move {
        store
            .passkey_asserted(&ctx2, &credential.id, &credential.json, Some(&sid), None)
            .await
    })
    .await;
    ceremony_done(&app, done, StatusCode::FORBIDDEN)
}

/// The name a person signs in as with a passkey.
#[derive(Debug, Deserialize)]
pub struct SigninStart {
    user: String,
}

/// `POST /auth/passkey/start`: a local account signs in with a passkey.
pub async fn signin_start(
    State(app): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ctx = context(request_id, connect);
    if !json_body(&headers) {
        return json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json");
    }
    let Ok(form) = serde_json::from_slice::<SigninStart>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "expected {\"user\": …}");
    };
    let refused = "no passkey sign-in for this user";
    let Ok(name) = warden_model::UserName::new(form.user.trim()) else {
        return json_error(StatusCode::BAD_REQUEST, "invalid user name");
    };
    let user = match app.store.user(&name).await {
        Ok(user) => user.filter(|u| u.disabled_at.is_none()),
        Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    let keys = match &user {
        Some(user) => match app.store.passkeys(&user.id).await {
            Ok(k) => usable(&k),
            Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
        },
        None => Vec::new(),
    };
    let target = format!("user:{name}");
    match (user, keys.is_empty()) {
        (Some(user), false) => {
            let started = app.sign_in.passkeys.start_authentication(&keys);
            start_ceremony(&app, "signin", user.id.clone(), ctx.now, started)
        }
        // An unknown name, a disabled account and one without a passkey answer as a real one
        // does: a challenge for a stand-in credential that no authenticator holds, the same
        // for the same name every time. Which names exist is not the sign-in page's to tell.
        _ => {
            let _ = record_failure(&app, &ctx, "auth.login", &target, refused).await;
            match decoy_credential(&app, &name).await {
                Some(decoy) => {
                    let started = app.sign_in.passkeys.start_authentication(&[decoy]);
                    // A subject as long as a user id, so the sealed cookie's length does not
                    // tell either; no user has it, so the ceremony cannot finish.
                    let subject: String = {
                        use sha2::Digest;
                        sha2::Sha256::digest(format!("stand-in\n{name}").as_bytes())
                            .iter()
                            .take(16)
                            .map(|b| format!("{b:02x}"))
                            .collect()
                    };
                    start_ceremony(&app, "signin", subject, ctx.now, started)
                }
                // Nobody has a passkey yet: everyone gets the same refusal.
                None => json_error(StatusCode::FORBIDDEN, refused),
            }
        }
    }
}

/// A stored credential's shape with a credential id derived from `name` under the KEK: what a
/// sign-in for a name without a usable passkey is challenged with.
async fn decoy_credential(app: &Web, name: &warden_model::UserName) -> Option<String> {
    use base64::Engine;
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    use sha2::Digest;
    let template = app.store.passkey_template().await.ok()??;
    let mut value: serde_json::Value = serde_json::from_str(&template).ok()?;
    let id = value.pointer_mut("/cred/cred_id")?;
    let text = id.as_str()?;
    let len = URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()?
        .len();
    let secret = app.authorities.kek().to_file_text();
    let mut bytes = Vec::with_capacity(len + 32);
    let mut block = 0u32;
    while bytes.len() < len {
        let mut sha = sha2::Sha256::new();
        sha.update(b"warden sign-in stand-in\n");
        sha.update(secret.as_bytes());
        sha.update(name.as_str().as_bytes());
        sha.update(block.to_be_bytes());
        bytes.extend_from_slice(&sha.finalize());
        block += 1;
    }
    bytes.truncate(len);
    *id = serde_json::Value::String(URL_SAFE_NO_PAD.encode(&bytes));
    Some(value.to_string())
}

/// `POST /auth/passkey/finish`: a fully signed-in session for the local account.
pub async fn signin_finish(
    State(app): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ctx = context(request_id, connect);
    if !json_body(&headers) {
        return json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json");
    }
    let ceremony = match open_ceremony(&app, &headers, "signin", ctx.now) {
        Ok(c) => c,
        Err(m) => return json_error(StatusCode::BAD_REQUEST, m),
    };
    let Ok(form) = serde_json::from_slice::<AssertFinish>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "expected {\"credential\": …}");
    };
    let keys = match app.store.passkeys(&ceremony.subject).await {
        Ok(k) => k,
        Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    let target = format!("user-id:{}", ceremony.subject);
    let credential = match app.sign_in.passkeys.finish_authentication(
        form.credential.to_string().as_bytes(),
        &ceremony.state,
        &usable(&keys),
    ) {
        Ok(c) => c,
        Err(e) => return passkey_failed(&app, &ctx, "auth.login", &target, &e).await,
    };
    let token = warden_identity::issue_session_token(&mut OsRng);
    let session = NewSession {
        id: token.id.clone(),
        secret_hash: token.secret_hash.clone(),
        expires_at: ctx.now.plus(app.sign_in.identity.session_lifetime),
    };
    let (store, ctx2, uid) = (app.store.clone(), ctx.clone(), ceremony.subject.clone());
    let done = detached(async move {
        store
            .passkey_asserted(
                &ctx2,
                &credential.id,
                &credential.json,
                None,
                Some((&uid, &session)),
            )
            .await
    })
    .await;
    match done {
        Ok(()) => {
            let response = axum::Json(serde_json::json!({ "ok": true })).into_response();
            let response = with_cookie(response, Some(clear_ceremony(&app)));
            with_cookie(
                response,
                Some(format!(
                    "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{}",
                    token.token.expose(),
                    if app.sign_in.secure { "; Secure" } else { "" }
                )),
            )
        }
        Err(e) if e.is_user_error() => json_error(StatusCode::FORBIDDEN, &e.to_string()),
        Err(_) => json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    }
}

/// `GET /enroll/{token}`: a local user's one-time link to register their first passkey.
pub async fn enroll(
    State(app): State<Web>,
    Path(token): Path<String>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    let ctx = context(request_id, connect);
    let Some(presented) = warden_identity::parse_enrollment_token(&token) else {
        let _ = record_failure(
            &app,
            &ctx,
            "auth.enroll",
            "enroll-link",
            "malformed enrollment link",
        )
        .await;
        return page(
            StatusCode::BAD_REQUEST,
            "Enrollment failed",
            "<p>This is not an enrollment link.</p>",
        );
    };
    let session_token = warden_identity::issue_session_token(&mut OsRng);
    let session = NewSession {
        id: session_token.id.clone(),
        secret_hash: session_token.secret_hash.clone(),
        expires_at: ctx.now.plus(app.sign_in.identity.session_lifetime),
    };
    let (store, ctx2, id) = (app.store.clone(), ctx.clone(), presented.id().to_owned());
    let used = detached(async move {
        store
            .use_enrollment_link(&ctx2, &id, |hash| presented.matches(hash), &session)
            .await
    })
    .await;
    match used {
        Ok(_) => {}
        Err(e) if e.is_user_error() => {
            return page(
                StatusCode::FORBIDDEN,
                "Enrollment failed",
                &format!("<p>{}</p>", escape(&e.to_string())),
            );
        }
        Err(_) => {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Enrollment failed",
                "<p>Try again later.</p>",
            );
        }
    }
    let mut response = page(
        StatusCode::OK,
        "Welcome",
        "<meta http-equiv=\"refresh\" content=\"0;url=/account\"><p><a href=\"/account\">Continue to register your passkey</a></p>",
    );
    set_cookie(
        &mut response,
        format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{}",
            session_token.token.expose(),
            if app.sign_in.secure { "; Secure" } else { "" }
        ),
    );
    response
}

/// `GET /static/passkey.js`.
pub async fn passkey_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        include_str!("../static/passkey.js"),
    )
        .into_response()
}

/// How long a `warden login` code works.
const CLI_CODE_TTL_MS: i64 = 60_000;
/// How long a CLI credential works.
const CLI_TOKEN_TTL_MS: i64 = 12 * 3600 * 1000;

/// The consent form that lets `warden login` have a token.
#[derive(Debug, Deserialize)]
pub struct CliAuthorize {
    redirect_uri: String,
    state: String,
    code_challenge: String,
    code_challenge_method: Option<String>,
}

/// A loopback redirect (RFC 8252 §7.3): `http://127.0.0.1:PORT/…` or `http://[::1]:PORT/…`.
fn loopback(uri: &str) -> Result<url::Url, String> {
    let url =
        url::Url::parse(uri).map_err(|_| format!("invalid redirect_uri `{}`", shorten(uri)))?;
    let ok = url.scheme() == "http"
        && matches!(url.host_str(), Some("127.0.0.1" | "[::1]"))
        && url.port().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none();
    if ok {
        Ok(url)
    } else {
        Err(format!(
            "redirect_uri `{}` is not a loopback address: use http://127.0.0.1:PORT/…",
            shorten(uri)
        ))
    }
}

fn check_cli_request(q: &CliAuthorize) -> Result<url::Url, String> {
    let url = loopback(&q.redirect_uri)?;
    if q.code_challenge_method.as_deref().unwrap_or("S256") != "S256" {
        return Err("code_challenge_method must be S256".to_owned());
    }
    let b64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if q.code_challenge.len() != 43 || !b64url(&q.code_challenge) {
        return Err("code_challenge must be 43 base64url characters (S256)".to_owned());
    }
    if q.state.is_empty() || q.state.len() > 128 || !b64url(&q.state) {
        return Err("state must be 1-128 base64url characters".to_owned());
    }
    Ok(url)
}

/// `GET /auth/cli`: asks a signed-in person whether to hand the CLI a credential.
pub async fn cli_consent(
    State(app): State<Web>,
    Query(q): Query<CliAuthorize>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = context(request_id, connect);
    if let Err(reason) = check_cli_request(&q) {
        return page(
            StatusCode::BAD_REQUEST,
            "Cannot sign in the CLI",
            &format!("<p>{}</p>", escape(&reason)),
        );
    }
    // Not fully signed in yet: every step comes back here when done.
    let here = escape(&uri.to_string());
    let session = current_session(&app, &headers, &ctx).await;
    let (session, presented) = match session {
        Some((s, p)) if s.stage == SessionStage::Active => (s, p),
        Some((s, p)) => {
            let csrf = p.derive("csrf");
            let (id, label) = if s.stage == SessionStage::Passkey {
                ("passkey-confirm", "Confirm with your passkey")
            } else {
                ("passkey-register", "Register a passkey")
            };
            let body = format!(
                "<p>Before the command line can act as <strong>{}</strong>, finish signing in.</p>\
                 <p><button id=\"{id}\" type=\"button\" data-csrf=\"{csrf}\" data-next=\"{here}\">{label}</button></p>\
                 <p id=\"passkey-status\" role=\"status\"></p><script src=\"/static/passkey.js\" defer></script>",
                escape(s.user.name.as_str())
            );
            return page(StatusCode::UNAUTHORIZED, "Sign in first", &body);
        }
        None => {
            let mut links = String::new();
            for name in app.sign_in.providers.keys() {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("return_to", &uri.to_string())
                    .finish();
                links.push_str(&format!(
                    "<li><a href=\"{}\">Sign in with {}</a></li>",
                    escape(&format!("/auth/oidc/{name}/login?{query}")),
                    escape(name)
                ));
            }
            let body = format!(
                "<p>Sign in in this browser to authorize the command line.</p><ul>{links}</ul>\
                 <p><label for=\"passkey-user\">User name</label> <input id=\"passkey-user\" autocomplete=\"username webauthn\"> \
                 <button id=\"passkey-signin\" type=\"button\" data-next=\"{here}\">Sign in with a passkey</button></p>\
                 <p id=\"passkey-status\" role=\"status\"></p><script src=\"/static/passkey.js\" defer></script>"
            );
            return page(StatusCode::UNAUTHORIZED, "Sign in first", &body);
        }
    };
    let csrf = presented.derive("csrf");
    let body = format!(
        "<p>The Warden command line on this computer asks to act as <strong>{}</strong> for 12 hours.</p>\
         <form method=\"post\" action=\"/auth/cli\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"redirect_uri\" value=\"{}\">\
         <input type=\"hidden\" name=\"state\" value=\"{}\">\
         <input type=\"hidden\" name=\"code_challenge\" value=\"{}\">\
         <button type=\"submit\">Authorize the CLI</button></form>",
        escape(session.user.name.as_str()),
        escape(&q.redirect_uri),
        escape(&q.state),
        escape(&q.code_challenge),
    );
    let mut response = page(StatusCode::OK, "Authorize the CLI", &body);
    // The form's answer redirects to the CLI's loopback listener: let it.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::console::CSP_CLI_CONSENT),
    );
    response
}

/// `warden login`'s request, as the consent page receives it.
#[derive(Debug, Deserialize)]
pub struct CliConsent {
    csrf: String,
    redirect_uri: String,
    state: String,
    code_challenge: String,
}

/// `POST /auth/cli`: the person said yes; a one-time code goes back to the CLI's loopback.
pub async fn cli_authorize(
    State(app): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CliConsent>,
) -> Response {
    let ctx = context(request_id, connect);
    let request = CliAuthorize {
        redirect_uri: form.redirect_uri,
        state: form.state,
        code_challenge: form.code_challenge,
        code_challenge_method: None,
    };
    let mut redirect = match check_cli_request(&request) {
        Ok(url) => url,
        Err(reason) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Cannot sign in the CLI",
                &format!("<p>{}</p>", escape(&reason)),
            );
        }
    };
    let session = current_session(&app, &headers, &ctx).await;
    let Some((session, presented)) = session.filter(|(s, _)| s.stage == SessionStage::Active)
    else {
        return page(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "<p><a href=\"/\">Sign in</a></p>",
        );
    };
    if !csrf_ok(&presented, &form.csrf) {
        let target = format!("user:{}", session.user.name);
        deny(&app, &ctx, "auth.cli.authorize", &target, CSRF_MISMATCH).await;
        return page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<p>The form is stale or forged (CSRF token mismatch).</p>",
        );
    }
    let code = warden_identity::issue_session_token(&mut OsRng);
    let code_text = code.token.expose().to_owned();
    let ctx = AuditContext {
        actor: session_actor(&session),
        ..ctx
    };
    let (store, user, hash, challenge, uri) = (
        app.store.clone(),
        session.user.clone(),
        warden_identity::sha256_hex(&code_text),
        request.code_challenge.clone(),
        request.redirect_uri.clone(),
    );
    let expires = ctx.now.plus(std::time::Duration::from_millis(
        CLI_CODE_TTL_MS.unsigned_abs(),
    ));
    let stored = detached(async move {
        store
            .create_cli_code(&ctx, &user, &hash, &challenge, &uri, expires)
            .await
    })
    .await;
    if stored.is_err() {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Cannot sign in the CLI",
            "<p>Try again.</p>",
        );
    }
    redirect
        .query_pairs_mut()
        .append_pair("code", &code_text)
        .append_pair("state", &request.state);
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, redirect.to_string())],
    )
        .into_response()
}

/// `warden login` trading its one-time code for a token.
#[derive(Debug, Deserialize)]
pub struct CliTokenRequest {
    code: String,
    code_verifier: String,
    redirect_uri: String,
}

/// `POST /auth/cli/token`: the CLI trades its code and PKCE verifier for a credential.
pub async fn cli_token(
    State(app): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ctx = context(request_id, connect);
    if !json_body(&headers) {
        return json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json");
    }
    let Ok(req) = serde_json::from_slice::<CliTokenRequest>(&body) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "expected {\"code\", \"code_verifier\", \"redirect_uri\"}",
        );
    };
    let verifier_ok = (43..=128).contains(&req.code_verifier.len())
        && req
            .code_verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !verifier_ok {
        return json_error(
            StatusCode::BAD_REQUEST,
            "code_verifier must be 43-128 unreserved characters",
        );
    }
    let issued = warden_identity::issue(&mut OsRng);
    let Ok(name) =
        warden_model::TokenName::new(format!("cli-{}", issued.id.get(..12).unwrap_or_default()))
    else {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    };
    let expires_at = ctx.now.plus(std::time::Duration::from_millis(
        CLI_TOKEN_TTL_MS.unsigned_abs(),
    ));
    let token = warden_store::NewToken {
        id: issued.id.clone(),
        name,
        role: warden_model::Role::Member,
        user: None,
        secret_hash: issued.secret_hash.clone(),
        expires_at,
    };
    let (store, ctx2, hash) = (
        app.store.clone(),
        ctx.clone(),
        warden_identity::sha256_hex(&req.code),
    );
    let (verifier, redirect) = (req.code_verifier.clone(), req.redirect_uri.clone());
    let redeemed = detached(async move {
        store
            .redeem_cli_code(
                &ctx2,
                &hash,
                move |challenge, stored_redirect| {
                    use base64::Engine;
                    use sha2::Digest;
                    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(sha2::Sha256::digest(verifier.as_bytes()));
                    use subtle::ConstantTimeEq;
                    if !bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                        return Err("the PKCE verifier does not match the challenge".to_owned());
                    }
                    if stored_redirect != redirect {
                        return Err("redirect_uri does not match the one authorized".to_owned());
                    }
                    Ok(())
                },
                &token,
            )
            .await
    })
    .await;
    match redeemed {
        Ok(user) => axum::Json(serde_json::json!({
            "token": issued.token.expose(),
            "user": user.as_str(),
            "expires_at": expires_at.to_string(),
        }))
        .into_response(),
        Err(e) if e.is_user_error() => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(_) => json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    }
}

/// Which passkey to remove.
#[derive(Debug, Deserialize)]
pub struct RemoveStart {
    passkey: String,
}

/// `POST /webauthn/remove/start`: removing a passkey takes an assertion with another one.
pub async fn remove_start(
    State(app): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ctx = context(request_id, connect);
    let (session, _) = match json_session(&app, &headers, &ctx).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if session.stage != SessionStage::Active {
        return json_error(StatusCode::FORBIDDEN, "finish signing in first");
    }
    let Ok(form) = serde_json::from_slice::<RemoveStart>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "expected {\"passkey\": id}");
    };
    let keys = match app.store.passkeys(&session.user.id).await {
        Ok(k) => k,
        Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    if !keys.iter().any(|k| k.id == form.passkey) {
        return json_error(StatusCode::NOT_FOUND, "no such passkey of yours");
    }
    let others: Vec<warden_store::StoredPasskey> =
        keys.into_iter().filter(|k| k.id != form.passkey).collect();
    let others = usable(&others);
    if others.is_empty() {
        return json_error(
            StatusCode::CONFLICT,
            "this is your only usable passkey: add another before removing it (or ask an admin to reset)",
        );
    }
    let started = app.sign_in.passkeys.start_authentication(&others);
    start_ceremony(
        &app,
        "remove",
        format!("{}|{}", session.id, form.passkey),
        ctx.now,
        started,
    )
}

/// `POST /webauthn/remove/finish`: with another passkey's assertion, the passkey is removed.
pub async fn remove_finish(
    State(app): State<Web>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ctx = context(request_id, connect);
    let (session, _) = match json_session(&app, &headers, &ctx).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let ctx = AuditContext {
        actor: session_actor(&session),
        ..ctx
    };
    let ceremony = match open_ceremony(&app, &headers, "remove", ctx.now) {
        Ok(c) => c,
        Err(m) => return json_error(StatusCode::BAD_REQUEST, m),
    };
    let Some((sid, passkey_id)) = ceremony.subject.split_once('|') else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the passkey ceremony cookie is not valid",
        );
    };
    if sid != session.id {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the passkey ceremony belongs to another session",
        );
    }
    let Ok(form) = serde_json::from_slice::<AssertFinish>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "expected {\"credential\": …}");
    };
    let keys = match app.store.passkeys(&session.user.id).await {
        Ok(k) => k,
        Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    let others: Vec<warden_store::StoredPasskey> =
        keys.into_iter().filter(|k| k.id != passkey_id).collect();
    let target = format!("passkey-id:{passkey_id}");
    let credential = match app.sign_in.passkeys.finish_authentication(
        form.credential.to_string().as_bytes(),
        &ceremony.state,
        &usable(&others),
    ) {
        Ok(c) => c,
        Err(e) => return passkey_failed(&app, &ctx, "passkey.remove", &target, &e).await,
    };
    let (store, ctx2, uid, pid) = (
        app.store.clone(),
        ctx.clone(),
        session.user.id.clone(),
        passkey_id.to_owned(),
    );
    let done = detached(async move {
        store
            .passkey_asserted(&ctx2, &credential.id, &credential.json, None, None)
            .await?;
        store.remove_passkey(&ctx2, &uid, &pid).await
    })
    .await;
    ceremony_done(&app, done, StatusCode::CONFLICT)
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
