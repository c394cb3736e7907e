//! Signing in through an identity provider: the OIDC login redirect and the callback that
//! opens a session (and provisions or matches the person).

use super::*;

/// `GET /auth/oidc/{name}/login`'s query: where to go after signing in.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

/// A path on this server, or `/account`.
pub(super) fn safe_return(to: Option<String>) -> String {
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
    Anonymous(ctx): Anonymous,
) -> Response {
    let Some(provider) = app.sign_in.providers.get(&name) else {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown identity provider",
            html! { p { a href="/" { "Back" } } },
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
        return notice(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in failed",
            "Internal error.",
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
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
) -> Response {
    let target = format!("idp:{name}");
    let Some(provider) = app.sign_in.providers.get(&name).cloned() else {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown identity provider",
            html! { p { a href="/" { "Back" } } },
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
    let signed = app.accounts.sign_in_with_idp(&ctx, sign_in).await;
    match signed {
        Ok(_) => {}
        Err(e) if e.is_user_error() => {
            // Recorded as a failure by the store.
            return page(
                StatusCode::FORBIDDEN,
                "Sign-in failed",
                start_again(&e.to_string()),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in failed");
            return notice(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in failed",
                "Try again later.",
            );
        }
    }
    // A page of our own moves on, so the next request is same-site and carries the Strict
    // session cookie (a redirect chain that began at the provider would not).
    let to = &pending.return_to;
    let mut response = page(
        StatusCode::OK,
        "Signed in",
        html! {
            meta http-equiv="refresh" content={ "0;url=" (to) };
            p { a href=(to) { "Continue" } }
        },
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

pub(super) fn shorten(s: &str) -> String {
    s.chars().take(200).filter(|c| !c.is_control()).collect()
}
