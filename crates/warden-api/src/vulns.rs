//! Scan imports over HTTP (`POST /v1/vuln/import`, the raw file as the body, so large files
//! need no re-encoding) and `/.well-known/security.txt` (RFC 9116). GraphQL's `importScan`
//! takes the same path for files small enough to send as a string.
//!
//! An import is parsed off the async threads, then written in one transaction: a file that
//! does not parse changes nothing, and the refusal is recorded (`vuln.import`, failure).

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use warden_store::{AuditContext, HoldsStore, Outcome, Store, StoreError};
use warden_vuln::{Format, SlaTiers};
use warden_vuln_store::{ImportSummary, NewImport, VulnStore};

use crate::config::SecurityTxt;
use crate::edge::RequestId;
use crate::request::{App, Bearer, BearerTarget, detached, graphql_error};

/// What to import, besides the file.
#[derive(Debug, Clone, Deserialize)]
pub struct ImportParams {
    /// The asset scanned.
    pub asset: String,
    /// The scanner's name; the format's by default.
    pub scanner: Option<String>,
    /// `auto` (the default) or a format's name.
    pub format: Option<String>,
    /// The file's name, for errors and the record.
    pub file: Option<String>,
}

/// Why an import was refused.
#[derive(Debug)]
pub enum ImportError {
    /// The caller's mistake: one line, nothing imported (and recorded).
    Bad(String),
    /// The store failed.
    Store(StoreError),
}

/// An asset's name: 1 to 128 of letters, digits and `. _ - : / @`.
pub fn check_asset(asset: &str) -> Result<(), String> {
    let ok = !asset.is_empty()
        && asset.len() <= 128
        && asset
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-:/@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid asset name `{}`: 1 to 128 letters, digits and . _ - : / @",
            shown(asset)
        ))
    }
}

fn check_scanner(scanner: &str) -> Result<(), String> {
    let ok = !scanner.is_empty()
        && scanner.len() <= 64
        && scanner
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid scanner name `{}`: 1 to 64 lowercase letters, digits and . _ -",
            shown(scanner)
        ))
    }
}

/// Outside text as errors show it: at most 60 characters, escaped.
fn shown(s: &str) -> String {
    s.chars().take(60).flat_map(char::escape_debug).collect()
}

/// Parses and imports a scan, all or nothing; a refusal is recorded.
pub async fn import(
    store: &std::sync::Arc<Store>,
    sla: &SlaTiers,
    max_bytes: usize,
    audit: &AuditContext,
    params: ImportParams,
    body: Bytes,
) -> Result<(Format, ImportSummary), ImportError> {
    let file = params
        .file
        .as_deref()
        .map(|f| f.chars().filter(|c| !c.is_control()).take(200).collect())
        .unwrap_or_else(|| "upload".to_owned());
    let checked = check_asset(&params.asset)
        .and_then(|()| params.scanner.as_deref().map_or(Ok(()), check_scanner))
        .and_then(|()| {
            Format::from_name(params.format.as_deref().unwrap_or("auto")).map_err(|e| e.0)
        })
        .and_then(|format| {
            if body.len() > max_bytes {
                Err(format!(
                    "{file}: {} MiB is more than the {} MiB an import may be (vuln.max_import_bytes)",
                    body.len().div_ceil(1024 * 1024),
                    max_bytes / (1024 * 1024)
                ))
            } else {
                Ok(format)
            }
        });
    let parsed = match checked {
        Ok(format) => {
            let name = file.clone();
            tokio::task::spawn_blocking(move || {
                let text = std::str::from_utf8(&body)
                    .map_err(|e| format!("{name}: not UTF-8 text at byte {}", e.valid_up_to()))?;
                let sha256 = format!("{:x}", Sha256::digest(text.as_bytes()));
                warden_vuln::parse(format, &name, text)
                    .map(|(f, findings)| (f, findings, sha256))
                    .map_err(|e| e.0)
            })
            .await
            .unwrap_or_else(|e| Err(format!("{file}: the parser failed: {e}")))
        }
        Err(e) => Err(e),
    };
    let target = format!("asset:{}", shown(&params.asset));
    let (format, findings, sha256) = match parsed {
        Ok(p) => p,
        Err(why) => {
            let (store, ctx, why2) = (store.clone(), audit.clone(), why.clone());
            detached(async move {
                store
                    .record(
                        &ctx,
                        "vuln.import",
                        &target,
                        json!({ "file": file }),
                        Outcome::Failure,
                        Some(&why2),
                    )
                    .await
            })
            .await
            .map_err(ImportError::Store)?;
            return Err(ImportError::Bad(why));
        }
    };
    let new = NewImport {
        asset: params.asset,
        scanner: params.scanner.unwrap_or_else(|| format.as_str().to_owned()),
        format: format.as_str().to_owned(),
        file_name: file,
        sha256,
        findings,
    };
    let (store, ctx, sla) = (store.clone(), audit.clone(), sla.clone());
    let summary = detached(async move { store.vulns().import(&ctx, &sla, new).await })
        .await
        .map_err(|e| {
            if e.is_user_error() {
                ImportError::Bad(e.to_string())
            } else {
                ImportError::Store(e)
            }
        })?;
    Ok((format, summary))
}

/// The import's answer as JSON (the REST body and the CLI's `--json`).
pub fn summary_json(format: Format, s: &ImportSummary) -> serde_json::Value {
    json!({
        "import": s.id,
        "format": format.as_str(),
        "findings": s.findings,
        "opened": s.opened,
        "reopened": s.reopened,
        "fixed": s.fixed,
        "unchanged": s.unchanged,
        "fix_available": s.fix_available,
    })
}

async fn run_import(
    app: App,
    audit: AuditContext,
    params: Result<Query<ImportParams>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Response {
    let params = match params {
        Ok(Query(p)) => p,
        Err(e) => {
            return graphql_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid import parameters: {}", e.body_text()),
            );
        }
    };
    match import(
        app.store(),
        &app.vuln.sla,
        app.vuln.max_import_bytes,
        &audit,
        params,
        body,
    )
    .await
    {
        Ok((format, summary)) => axum::Json(summary_json(format, &summary)).into_response(),
        Err(ImportError::Bad(why)) => graphql_error(StatusCode::BAD_REQUEST, &why),
        Err(ImportError::Store(e)) => {
            tracing::error!(error = %e, "scan import failed");
            graphql_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log",
            )
        }
    }
}

/// Bearer refusals on `POST /v1/vuln/import`, recorded against `vulns`.
#[derive(Debug)]
pub enum VulnImports {}

impl BearerTarget for VulnImports {
    const TARGET: &'static str = "vulns";
}

/// `POST /v1/vuln/import` with a bearer token that may `import_vulns`. Nothing of the body is
/// read until the caller is known and allowed: then it is streamed in, bounded by
/// `vuln.max_import_bytes`, [`UPLOAD_DEADLINE`] and `limits.imports_per_source` uploads at once
/// from one source.
pub async fn import_bearer(
    State(app): State<App>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    params: Result<Query<ImportParams>, axum::extract::rejection::QueryRejection>,
    Bearer(audit, _): Bearer<VulnImports>,
    body: Body,
) -> Response {
    let source = connect
        .as_ref()
        .map(|Extension(ConnectInfo(peer))| peer.ip());
    if let Err(refused) = crate::request::require(
        &app,
        &audit,
        warden_runtime::authz::Capability::ImportVulns,
        "vulns",
    )
    .await
    {
        return refused;
    }
    let _slot = match source {
        Some(ip) => match app.imports.take(ip) {
            Some(slot) => Some(slot),
            None => {
                app.metrics.reject("http", "imports_per_source");
                let mut resp = graphql_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "too many scan uploads in progress from {ip}: wait for one to finish (limits.imports_per_source)"
                    ),
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                return resp;
            }
        },
        None => None,
    };
    match upload(body, app.vuln.max_import_bytes).await {
        Ok(bytes) => run_import(app, audit, params, bytes).await,
        Err(refused) => refused,
    }
}

/// `POST /v1/vuln/import` on the admin socket, as the operator.
pub async fn import_operator(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    params: Result<Query<ImportParams>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Response {
    let audit = crate::request::operator_context(request_id);
    match upload(body, app.vuln.max_import_bytes).await {
        Ok(bytes) => run_import(app, audit, params, bytes).await,
        Err(refused) => refused,
    }
}

/// How long an allowed caller has to send a scan file.
pub const UPLOAD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// Reads an upload's body, at most `max_bytes` and within [`UPLOAD_DEADLINE`].
async fn upload(body: Body, max_bytes: usize) -> Result<Bytes, Response> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, max_bytes);
    let too_large = || {
        graphql_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the file is more than the {} MiB an import may be (vuln.max_import_bytes)",
                max_bytes / (1024 * 1024)
            ),
        )
    };
    match tokio::time::timeout(UPLOAD_DEADLINE, limited.collect()).await {
        Err(_) => Err(graphql_error(
            StatusCode::REQUEST_TIMEOUT,
            &format!("the upload took longer than {}s", UPLOAD_DEADLINE.as_secs()),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if crate::request::over_length_limit(e.as_ref()) => Err(too_large()),
        Ok(Err(e)) => Err(graphql_error(
            StatusCode::BAD_REQUEST,
            &format!("the upload was cut short: {e}"),
        )),
    }
}

/// The body of `/.well-known/security.txt`, RFC 9116.
pub fn security_txt_body(txt: &SecurityTxt, canonical: &str) -> String {
    let mut out = String::new();
    for c in &txt.contact {
        out.push_str(&format!("Contact: {c}\n"));
    }
    // RFC 9116 2.5.5: the Internet date/time format, to the second.
    let expires = txt.expires.rfc3339_millis();
    let expires = match expires.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => expires,
    };
    out.push_str(&format!("Expires: {expires}\n"));
    for (field, value) in [
        ("Encryption", &txt.encryption),
        ("Acknowledgments", &txt.acknowledgments),
        ("Preferred-Languages", &txt.preferred_languages),
        ("Policy", &txt.policy),
    ] {
        if let Some(v) = value {
            out.push_str(&format!("{field}: {v}\n"));
        }
    }
    out.push_str(&format!(
        "Canonical: {canonical}/.well-known/security.txt\n"
    ));
    out
}

/// `GET /.well-known/security.txt`: 404 when `[security_txt]` is not configured.
pub async fn security_txt(State(app): State<App>) -> Response {
    match &app.security_txt {
        Some(txt) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            security_txt_body(txt, &app.public_url),
        )
            .into_response(),
        None => graphql_error(StatusCode::NOT_FOUND, "not found"),
    }
}
