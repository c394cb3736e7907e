//! Reading the console as a browser does, over plain HTTP: a page, a form's post, and the
//! one-line message a refusal shows.

use reqwest::header::HeaderMap;

/// GET `path` with browser `b`: status, headers, body.
///
/// # Panics
/// When the server cannot be reached.
pub async fn page(b: &reqwest::Client, base: &str, path: &str) -> (u16, HeaderMap, String) {
    let r = b
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let body = r.text().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (status, headers, body)
}

/// POST the form `fields` to `path` with browser `b`: status, body.
///
/// # Panics
/// When the server cannot be reached.
pub async fn submit(
    b: &reqwest::Client,
    base: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let r = b
        .post(format!("{base}{path}"))
        .form(fields)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = r.status().as_u16();
    let body = r
        .text()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    (status, body)
}

/// The one-line message of the first alert on a page, with what it quotes (set as code)
/// in backticks again, as the CLI prints it.
///
/// # Panics
/// When the page has no alert, or the alert holds a literal backtick.
#[must_use]
pub fn alert(body: &str) -> String {
    let after = body
        .split("role=\"alert\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no alert: {body}"));
    let message = after.split("</p>").next().unwrap_or_default();
    // What the message quotes is set as code; no literal backtick reaches the page.
    assert!(!message.contains('`'), "{message}");
    message
        .replace("<code>", "`")
        .replace("</code>", "`")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the hidden field `name` in the form `form` (its `id`) on a page.
///
/// # Panics
/// When the page has no such form or field.
#[must_use]
pub fn hidden(body: &str, form: &str, name: &str) -> String {
    let start = body
        .find(&format!("<form id=\"{form}\""))
        .unwrap_or_else(|| panic!("no form `{form}`: {body}"));
    let rest = body.get(start..).unwrap_or_default();
    let rest = rest.split("</form>").next().unwrap_or_default();
    let marker = format!("name=\"{name}\" value=\"");
    let value = rest
        .split(&marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no field `{name}` in form `{form}`: {rest}"));
    value.split('"').next().unwrap_or_default().to_owned()
}
