//! Passkey ceremonies in the browser: registration, the passkey step after the identity
//! provider, signing in with a passkey alone, enrollment links, and removing a passkey. Ceremony
//! state rides in a cookie sealed under the KEK, so any replica can finish what another began.

use super::*;
use warden_api::accounts::{StoreError, StoredPasskey};

pub(super) const CEREMONY_COOKIE: &str = "warden_webauthn";

/// A ceremony in flight, sealed in a cookie until the browser answers.
#[derive(Debug, serde::Serialize, Deserialize)]
pub(super) struct Ceremony {
    /// `register`, `assert` or `signin`.
    kind: String,
    /// The session it belongs to (register, assert) or the user signing in (signin).
    subject: String,
    /// webauthn-rs state.
    state: String,
    /// When it stops being acceptable, ms.
    expires_at: i64,
}

pub(super) fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

pub(super) fn seal_ceremony(app: &Web, ceremony: &Ceremony) -> Option<String> {
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

pub(super) fn open_ceremony(
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

pub(super) fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(cookie) = cookie {
        set_cookie(&mut response, cookie);
    }
    response
}

/// A session and its CSRF check for the JSON endpoints.
pub(super) async fn json_session(
    app: &Web,
    headers: &HeaderMap,
    ctx: &AuditContext,
) -> Result<(Session, warden_identity::PresentedToken), Response> {
    if !declares_json(headers) {
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
pub(super) async fn session_ceremony(
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
pub(super) async fn passkey_failed(
    app: &Web,
    ctx: &AuditContext,
    action: &'static str,
    target: &str,
    err: &warden_identity::passkey::PasskeyError,
) -> Response {
    use warden_identity::passkey::PasskeyError;
    let reason = err.to_string();
    if let PasskeyError::PossibleClone(id) = err {
        let locked = app.accounts.lock_passkey(ctx, id, &reason).await;
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
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
) -> Response {
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
    let existing: Vec<String> = match app.accounts.passkeys(&session.user.id).await {
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
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
    body: Result<JsonBody<RegisterFinish>, BodyRejected>,
) -> Response {
    let (session, ctx, ceremony) = match session_ceremony(&app, &headers, ctx, "register").await {
        Ok(parts) => parts,
        Err(r) => return r,
    };
    let form = match body {
        Ok(JsonBody(form)) => form,
        Err(rejected) => return rejected.into_response(),
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
    let stored = app
        .accounts
        .register_passkey(
            &ctx,
            &session.id,
            &session.user.id,
            &credential.id,
            &name,
            &credential.json,
        )
        .await;
    ceremony_done(&app, stored, StatusCode::CONFLICT)
}

/// Answers a ceremony's start: the options, and its state sealed in a cookie for 5 minutes.
pub(super) fn start_ceremony(
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
pub(super) fn ceremony_done(
    app: &Web,
    result: Result<(), StoreError>,
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

pub(super) fn clear_ceremony(app: &Web) -> String {
    format!(
        "{CEREMONY_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if app.sign_in.secure { "; Secure" } else { "" }
    )
}

pub(super) fn usable(keys: &[StoredPasskey]) -> Vec<String> {
    keys.iter()
        .filter(|k| k.locked.is_none())
        .map(|k| k.credential.clone())
        .collect()
}

/// `POST /webauthn/assert/start`: after the identity provider, prove a registered passkey.
pub async fn assert_start(
    State(app): State<Web>,
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
) -> Response {
    let (session, _) = match json_session(&app, &headers, &ctx).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let keys = match app.accounts.passkeys(&session.user.id).await {
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
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
    body: Result<JsonBody<AssertFinish>, BodyRejected>,
) -> Response {
    let (session, ctx, ceremony) = match session_ceremony(&app, &headers, ctx, "assert").await {
        Ok(parts) => parts,
        Err(r) => return r,
    };
    let form = match body {
        Ok(JsonBody(form)) => form,
        Err(rejected) => return rejected.into_response(),
    };
    let keys = match app.accounts.passkeys(&session.user.id).await {
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
    let done = app
        .accounts
        .passkey_asserted(
            &ctx,
            (&credential.id, &credential.json, credential.user_verified),
            Some(&session.id),
            None,
        )
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
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
    body: Result<JsonBody<SigninStart>, BodyRejected>,
) -> Response {
    if !declares_json(&headers) {
        return json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json");
    }
    let form = match body {
        Ok(JsonBody(form)) => form,
        Err(rejected) => return rejected.into_response(),
    };
    let refused = "no passkey sign-in for this user";
    let Ok(name) = warden_model::UserName::new(form.user.trim()) else {
        return json_error(StatusCode::BAD_REQUEST, "invalid user name");
    };
    let user = match app.accounts.user(&name).await {
        Ok(user) => user.filter(|u| u.disabled_at.is_none()),
        Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    let keys = match &user {
        Some(user) => match app.accounts.passkeys(&user.id).await {
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
pub(super) async fn decoy_credential(app: &Web, name: &warden_model::UserName) -> Option<String> {
    use base64::Engine;
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    use sha2::Digest;
    let template = app.accounts.passkey_template().await.ok()??;
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
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
    body: Result<JsonBody<AssertFinish>, BodyRejected>,
) -> Response {
    if !declares_json(&headers) {
        return json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json");
    }
    let ceremony = match open_ceremony(&app, &headers, "signin", ctx.now) {
        Ok(c) => c,
        Err(m) => return json_error(StatusCode::BAD_REQUEST, m),
    };
    let form = match body {
        Ok(JsonBody(form)) => form,
        Err(rejected) => return rejected.into_response(),
    };
    let keys = match app.accounts.passkeys(&ceremony.subject).await {
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
    let done = app
        .accounts
        .passkey_asserted(
            &ctx,
            (&credential.id, &credential.json, credential.user_verified),
            None,
            Some((&ceremony.subject, &session)),
        )
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
    Anonymous(ctx): Anonymous,
) -> Response {
    let Some(presented) = warden_identity::parse_enrollment_token(&token) else {
        let _ = record_failure(
            &app,
            &ctx,
            "auth.enroll",
            "enroll-link",
            "malformed enrollment link",
        )
        .await;
        return notice(
            StatusCode::BAD_REQUEST,
            "Enrollment failed",
            "This is not an enrollment link.",
        );
    };
    let session_token = warden_identity::issue_session_token(&mut OsRng);
    let session = NewSession {
        id: session_token.id.clone(),
        secret_hash: session_token.secret_hash.clone(),
        expires_at: ctx.now.plus(app.sign_in.identity.session_lifetime),
    };
    let id = presented.id().to_owned();
    let used = app
        .accounts
        .use_enrollment_link(&ctx, &id, move |hash| presented.matches(hash), &session)
        .await;
    match used {
        Ok(_) => {}
        Err(e) if e.is_user_error() => {
            return notice(StatusCode::FORBIDDEN, "Enrollment failed", &e.to_string());
        }
        Err(_) => {
            return notice(
                StatusCode::SERVICE_UNAVAILABLE,
                "Enrollment failed",
                "Try again later.",
            );
        }
    }
    let mut response = page(
        StatusCode::OK,
        "Welcome",
        html! {
            meta http-equiv="refresh" content="0;url=/account";
            p { a href="/account" { "Continue to register your passkey" } }
        },
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
        include_str!("../../static/passkey.js"),
    )
        .into_response()
}

/// Which passkey to remove.
#[derive(Debug, Deserialize)]
pub struct RemoveStart {
    passkey: String,
}

/// `POST /webauthn/remove/start`: removing a passkey takes an assertion with another one.
pub async fn remove_start(
    State(app): State<Web>,
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
    body: Result<JsonBody<RemoveStart>, BodyRejected>,
) -> Response {
    let (session, _) = match json_session(&app, &headers, &ctx).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if session.stage != SessionStage::Active {
        return json_error(StatusCode::FORBIDDEN, "finish signing in first");
    }
    let form = match body {
        Ok(JsonBody(form)) => form,
        Err(rejected) => return rejected.into_response(),
    };
    let keys = match app.accounts.passkeys(&session.user.id).await {
        Ok(k) => k,
        Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    if !keys.iter().any(|k| k.id == form.passkey) {
        return json_error(StatusCode::NOT_FOUND, "no such passkey of yours");
    }
    let others: Vec<StoredPasskey> = keys.into_iter().filter(|k| k.id != form.passkey).collect();
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
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
    body: Result<JsonBody<AssertFinish>, BodyRejected>,
) -> Response {
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
    let form = match body {
        Ok(JsonBody(form)) => form,
        Err(rejected) => return rejected.into_response(),
    };
    let keys = match app.accounts.passkeys(&session.user.id).await {
        Ok(k) => k,
        Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "try again"),
    };
    let others: Vec<StoredPasskey> = keys.into_iter().filter(|k| k.id != passkey_id).collect();
    let target = format!("passkey-id:{passkey_id}");
    let credential = match app.sign_in.passkeys.finish_authentication(
        form.credential.to_string().as_bytes(),
        &ceremony.state,
        &usable(&others),
    ) {
        Ok(c) => c,
        Err(e) => return passkey_failed(&app, &ctx, "passkey.remove", &target, &e).await,
    };
    let done = app
        .accounts
        .remove_passkey(
            &ctx,
            &session.user.id,
            passkey_id,
            (&credential.id, &credential.json, credential.user_verified),
        )
        .await;
    ceremony_done(&app, done, StatusCode::CONFLICT)
}
