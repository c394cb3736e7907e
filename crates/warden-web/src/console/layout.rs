//! The frame every console page shares, the security headers of every HTML response, and the
//! console's static files (compiled into the binary: no build step, nothing fetched).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::{Section, Visitor};

/// Scripts, styles and fetches from this origin only, no inline script or style, no framing,
/// forms posting only here, nothing else loaded.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// [`CSP`] for the page authorizing `warden login`, whose form answers the CLI's loopback
/// listener.
pub(crate) const CSP_CLI_CONSENT: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self' http://127.0.0.1:* http://[::1]:*; frame-ancestors 'none'; base-uri 'none'";

/// An HTML page with the console's security headers.
pub(crate) fn html_response(status: StatusCode, page: Markup) -> Response {
    let mut response = (status, page.into_string()).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The page around `body`: a skip link, the navigation the visitor may use, who is signed in
/// and the sign-out form.
pub(crate) fn frame(
    visitor: Option<&Visitor>,
    current: Section,
    title: &str,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Warden" }
                link rel="icon" href="/static/mark.svg" type="image/svg+xml";
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                @if let Some(v) = visitor {
                    header.top {
                        a.brand href="/console" { img src="/static/mark.svg" alt="" width="20" height="20"; "Warden" }
                        nav.wide aria-label="Console" { (links(v, current)) }
                        // On a phone the navigation folds into a menu (no script needed).
                        details.menu {
                            summary { "Menu" }
                            nav aria-label="Console menu" { (links(v, current)) }
                        }
                        form.signout method="post" action="/auth/logout" {
                            span.who { (v.name()) }
                            input type="hidden" name="csrf" value=(v.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The pages the visitor may open, the current one marked.
fn links(v: &Visitor, current: Section) -> Markup {
    html! {
        ul {
            @for s in &v.sections {
                li {
                    @if *s == current {
                        a href=(s.path()) aria-current="page" { (s.title()) }
                    } @else {
                        a href=(s.path()) { (s.title()) }
                    }
                }
            }
        }
    }
}

/// A page outside the console (sign-in, account), in the same frame without navigation.
pub(crate) fn plain(title: &str, body: Markup) -> Markup {
    frame(None, Section::Account, title, body)
}

/// A static file compiled into the binary.
pub(crate) fn static_asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /static/console.css`.
pub(crate) async fn css() -> Response {
    static_asset(
        "text/css; charset=utf-8",
        include_str!("../../static/console.css"),
    )
}

/// `GET /static/console.js`.
pub(crate) async fn js() -> Response {
    static_asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/console.js"),
    )
}

/// `GET /static/mark.svg` and `GET /favicon.ico`: the product mark.
pub(crate) async fn mark() -> Response {
    static_asset("image/svg+xml", include_str!("../../static/mark.svg"))
}

/// The page a browser gets for an address that leads nowhere (API clients get JSON).
pub fn not_found_page() -> Response {
    let body = html! {
        p { "Nothing is at this address." }
        p { a href="/console" { "Go to the console" } }
    };
    crate::console::html_response(StatusCode::NOT_FOUND, plain("Not found", body))
}

/// `GET /static/player.js`.
pub(crate) async fn player_js() -> Response {
    static_asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/player.js"),
    )
}

/// The page a browser gets for an error the server answered as JSON (a 400 with the API's
/// one-line message, a 403, a 429, a 500 with its request id): the message in the console's
/// frame, with the way back. The status is kept.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "Bad request",
        StatusCode::UNAUTHORIZED => "Sign in first",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::PAYLOAD_TOO_LARGE => "Too large",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        s if s.is_server_error() => "Something went wrong",
        _ => "Refused",
    };
    let body = html! {
        p.notice.error role="alert" { (crate::console::prose(message)) }
        p { a href="/console" { "Go to the console" } }
    };
    crate::console::html_response(status, plain(title, body))
}
