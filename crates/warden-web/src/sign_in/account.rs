//! The signed-in person's session: reading it from the cookie, the account page, signing out.

use super::*;

/// The session this browser presents, if it is open: right secret, not ended, not past its
/// lifetime or idle timeout, user not disabled. An idle or expired session is ended (audited).
pub async fn current_session(
    app: &Web,
    headers: &HeaderMap,
    ctx: &AuditContext,
) -> Option<(Session, warden_identity::PresentedToken)> {
    let cookie = cookies(headers).remove(SESSION_COOKIE)?;
    let presented = warden_identity::parse_session_token(&cookie)?;
    let session = app.accounts.session(presented.id()).await.ok()??;
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
        let system = AuditContext {
            actor: Actor::System,
            ..ctx.clone()
        };
        let _ = app.accounts.end_session(&system, &session.id, reason).await;
        return None;
    }
    // The console's own refresh of a page left open is not activity: the idle timeout holds.
    if !headers.contains_key("x-warden-refresh")
        && activity_due(
            session.last_seen_at,
            ctx.now,
            app.sign_in.identity.idle_timeout,
        )
    {
        let _ = app.accounts.touch_session(&session.id, ctx.now).await;
    }
    Some((session, presented))
}

/// Whether a request at `now` is noted as the session's activity. It is noted at most once a
/// step (a thirtieth of the idle timeout, at most a minute), not on every request: each note
/// is a write, and on SQLite a page view would wait behind the writer's transactions for it.
/// A session may so end up to a step before its idle timeout, never after it.
pub(super) fn activity_due(last_seen: Timestamp, now: Timestamp, idle: Duration) -> bool {
    let step = (idle / 30).min(Duration::from_secs(60));
    now >= last_seen.plus(step)
}

/// `GET /account`: who is signed in, and what is left to do.
pub async fn account(
    State(app): State<Web>,
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
) -> Response {
    let Some((session, presented)) = current_session(&app, &headers, &ctx).await else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    };
    let csrf = presented.derive("csrf");
    let next = match session.stage {
        SessionStage::PasskeyEnrollment => html! {
            p { "Register a passkey or security key to continue: Warden accepts only phishing-resistant sign-in." }
            p {
                label for="passkey-name" { "Name it" } " "
                input id="passkey-name" value="passkey";
                " "
                button id="passkey-register" type="button" data-csrf=(csrf) { "Register a passkey" }
            }
        },
        SessionStage::Passkey => html! {
            p { "Confirm with your passkey to continue." }
            p {
                button id="passkey-confirm" type="button" data-csrf=(csrf) data-next="/console" {
                    "Confirm with your passkey"
                }
            }
        },
        SessionStage::Active => {
            let keys = app
                .accounts
                .passkeys(&session.user.id)
                .await
                .unwrap_or_default();
            html! {
                p { "You are signed in. " a href="/console" { "Open the console" } }
                h2 { "Your passkeys" }
                ul id="passkeys" {
                    @for k in &keys {
                        li {
                            (k.name)
                            @if k.locked.is_some() { " (locked: possible clone)" }
                            " "
                            button type="button" class="passkey-remove" data-passkey=(k.id) data-csrf=(csrf) { "Remove" }
                        }
                    }
                }
                p {
                    label for="passkey-name" { "Name" } " "
                    input id="passkey-name" value="another passkey";
                    " "
                    button id="passkey-register" type="button" data-csrf=(csrf) { "Add a passkey" }
                }
            }
        }
    };
    let body = html! {
        p {
            "Signed in as " strong { (session.user.name.as_str()) }
            " (" (session.user.display_name) ") through " (session.method) "."
        }
        (next)
        (passkey_status())
        form method="post" action="/auth/logout" {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { "Sign out" }
        }
    };
    page(StatusCode::OK, "Your account", body)
}

/// `POST /auth/logout`'s form.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

/// `POST /auth/logout` with the form's CSRF token.
pub async fn logout(
    State(app): State<Web>,
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LogoutForm>,
) -> Response {
    let Some((session, presented)) = current_session(&app, &headers, &ctx).await else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    };
    if !csrf_ok(&presented, &form.csrf) {
        let target = format!("session:{}", session.id);
        deny(&app, &ctx, "session.end", &target, CSRF_MISMATCH).await;
        return notice(
            StatusCode::FORBIDDEN,
            "Refused",
            "The form is stale or forged (CSRF token mismatch).",
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
    let _ = app.accounts.end_session(&ctx, &session.id, "logout").await;
    let mut response = page(
        StatusCode::OK,
        "Signed out",
        html! { p { a href="/" { "Sign in again" } } },
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
