//! `warden login`: the consent page, the one-time code handed to the CLI's loopback
//! listener, and the exchange of that code for an API token.

use super::*;

/// How long a `warden login` code works.
pub(super) const CLI_CODE_TTL_MS: i64 = 60_000;
/// How long a CLI credential works.
pub(super) const CLI_TOKEN_TTL_MS: i64 = 12 * 3600 * 1000;

/// The consent form that lets `warden login` have a token.
#[derive(Debug, Deserialize)]
pub struct CliAuthorize {
    redirect_uri: String,
    state: String,
    code_challenge: String,
    code_challenge_method: Option<String>,
}

/// A loopback redirect (RFC 8252 §7.3): `http://127.0.0.1:PORT/…` or `http://[::1]:PORT/…`.
pub(super) fn loopback(uri: &str) -> Result<url::Url, String> {
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

pub(super) fn check_cli_request(q: &CliAuthorize) -> Result<url::Url, String> {
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

/// `GET /.well-known/oauth-authorization-server` (RFC 8414): where `warden login` sends the
/// browser and where it trades the code. The browser's address is the public URL, the one
/// origin passkeys work at, whichever address the CLI was given for the server.
pub async fn cli_metadata(State(app): State<Web>) -> Response {
    let base = app.app.public_url.trim_end_matches('/');
    axum::Json(serde_json::json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/auth/cli"),
        "token_endpoint": format!("{base}/auth/cli/token"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
    }))
    .into_response()
}

/// `GET /auth/cli`: asks a signed-in person whether to hand the CLI a credential.
pub async fn cli_consent(
    State(app): State<Web>,
    Query(q): Query<CliAuthorize>,
    Anonymous(ctx): Anonymous,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(reason) = check_cli_request(&q) {
        return notice(StatusCode::BAD_REQUEST, "Cannot sign in the CLI", &reason);
    }
    // Not fully signed in yet: every step comes back here when done.
    let here = uri.to_string();
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
            let body = html! {
                p {
                    "Before the command line can act as " strong { (s.user.name.as_str()) }
                    ", finish signing in."
                }
                p {
                    button id=(id) type="button" data-csrf=(csrf) data-next=(here) { (label) }
                }
                (passkey_status())
            };
            return page(StatusCode::UNAUTHORIZED, "Sign in first", body);
        }
        None => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", &here)
                .finish();
            let body = html! {
                p { "Sign in in this browser to authorize the command line." }
                ul {
                    @for name in app.sign_in.providers.keys() {
                        li {
                            a href={ "/auth/oidc/" (name) "/login?" (query) } { "Sign in with " (name) }
                        }
                    }
                }
                (passkey_sign_in(&here))
            };
            return page(StatusCode::UNAUTHORIZED, "Sign in first", body);
        }
    };
    let csrf = presented.derive("csrf");
    let body = html! {
        p {
            "The Warden command line on this computer asks to act as "
            strong { (session.user.name.as_str()) } " for 12 hours."
        }
        form method="post" action="/auth/cli" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="redirect_uri" value=(q.redirect_uri);
            input type="hidden" name="state" value=(q.state);
            input type="hidden" name="code_challenge" value=(q.code_challenge);
            button type="submit" { "Authorize the CLI" }
        }
    };
    let mut response = page(StatusCode::OK, "Authorize the CLI", body);
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
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CliConsent>,
) -> Response {
    let request = CliAuthorize {
        redirect_uri: form.redirect_uri,
        state: form.state,
        code_challenge: form.code_challenge,
        code_challenge_method: None,
    };
    let mut redirect = match check_cli_request(&request) {
        Ok(url) => url,
        Err(reason) => {
            return notice(StatusCode::BAD_REQUEST, "Cannot sign in the CLI", &reason);
        }
    };
    let session = current_session(&app, &headers, &ctx).await;
    let Some((session, presented)) = session.filter(|(s, _)| s.stage == SessionStage::Active)
    else {
        return page(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            html! { p { a href="/" { "Sign in" } } },
        );
    };
    if !csrf_ok(&presented, &form.csrf) {
        let target = format!("user:{}", session.user.name);
        deny(&app, &ctx, "auth.cli.authorize", &target, CSRF_MISMATCH).await;
        return notice(
            StatusCode::FORBIDDEN,
            "Refused",
            "The form is stale or forged (CSRF token mismatch).",
        );
    }
    let code = warden_identity::issue_session_token(&mut OsRng);
    let code_text = code.token.expose().to_owned();
    let ctx = AuditContext {
        actor: session_actor(&session),
        ..ctx
    };
    let expires = ctx.now.plus(std::time::Duration::from_millis(
        CLI_CODE_TTL_MS.unsigned_abs(),
    ));
    let stored = app
        .accounts
        .create_cli_code(
            &ctx,
            &session.user,
            &warden_identity::sha256_hex(&code_text),
            (&request.code_challenge, &request.redirect_uri),
            expires,
        )
        .await;
    if stored.is_err() {
        return notice(
            StatusCode::SERVICE_UNAVAILABLE,
            "Cannot sign in the CLI",
            "Try again.",
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
    Anonymous(ctx): Anonymous,
    headers: HeaderMap,
    body: Result<JsonBody<CliTokenRequest>, BodyRejected>,
) -> Response {
    if !declares_json(&headers) {
        return json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json");
    }
    let req = match body {
        Ok(JsonBody(req)) => req,
        Err(rejected) => return rejected.into_response(),
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
    let token = warden_api::accounts::NewToken {
        id: issued.id.clone(),
        name,
        role: warden_model::Role::Member,
        user: None,
        secret_hash: issued.secret_hash.clone(),
        expires_at,
    };
    let (verifier, redirect) = (req.code_verifier.clone(), req.redirect_uri.clone());
    let redeemed = app
        .accounts
        .redeem_cli_code(
            &ctx,
            &warden_identity::sha256_hex(&req.code),
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
            token,
        )
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
