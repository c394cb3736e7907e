//! `GET /v1/compliance/evidence?framework=F&from=T&to=T`: a signed evidence bundle (zip) for
//! readers of the audit log, on the public listener with a bearer token and on the admin
//! socket. Making one is itself recorded, before a byte is sent.

use axum::extract::{Extension, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use warden_compliance::Framework;
use warden_runtime::compliance::{Asked, ComplianceError, evidence};
use warden_store::{AuditContext, HoldsStore, Outcome};

use crate::edge::RequestId;
use crate::request::{App, Bearer, BearerTarget, detached, graphql_error};

/// Bearer refusals on `/v1/compliance/evidence`, recorded against `compliance`.
#[derive(Debug)]
pub enum EvidenceRequests {}

impl BearerTarget for EvidenceRequests {
    const TARGET: &'static str = "compliance";
}

/// The query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceQuery {
    framework: String,
    from: Option<String>,
    to: Option<String>,
}

/// The bundle for a bearer token that may read the audit log.
pub async fn evidence_bearer(
    State(app): State<App>,
    query: Result<Query<EvidenceQuery>, axum::extract::rejection::QueryRejection>,
    Bearer(audit, _): Bearer<EvidenceRequests>,
) -> Response {
    if let Err(refused) = crate::request::require(
        &app,
        &audit,
        warden_runtime::authz::Capability::ReadAudit,
        "compliance",
    )
    .await
    {
        return refused;
    }
    bundle(app, audit, query).await
}

/// The bundle for the operator, on the admin socket.
pub async fn evidence_operator(
    State(app): State<App>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    query: Result<Query<EvidenceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let audit = crate::request::operator_context(request_id);
    bundle(app, audit, query).await
}

fn time(field: &str, value: Option<String>) -> Result<Option<warden_model::Timestamp>, String> {
    value.map(|v| crate::rfc3339(field, &v)).transpose()
}

async fn bundle(
    app: App,
    audit: AuditContext,
    query: Result<Query<EvidenceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let bad = |m: &str| graphql_error(StatusCode::BAD_REQUEST, m);
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return bad(&format!("invalid evidence request: {}", e.body_text())),
    };
    let framework: Framework = match q.framework.parse() {
        Ok(f) => f,
        Err(e) => return bad(&e.to_string()),
    };
    let asked = match (time("from", q.from), time("to", q.to)) {
        (Ok(from), Ok(to)) => Asked {
            tests: framework.catalog().tests(),
            from,
            to,
            keep_items: true,
        },
        (Err(m), _) | (_, Err(m)) => return bad(&m),
    };
    let made = evidence(
        app.store(),
        &app.audit,
        &app.recordings,
        app.compliance,
        framework,
        &asked,
    )
    .await;
    let (zip, period, first, last) = match made {
        Ok(made) => made,
        Err(ComplianceError::Period(e)) => return bad(&e.to_string()),
        Err(ComplianceError::Empty) => return bad(&ComplianceError::Empty.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "the evidence bundle failed");
            return graphql_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log",
            );
        }
    };
    let details = json!({
        "framework": framework.as_str(),
        "from": period.from().rfc3339_millis(),
        "to": period.to().rfc3339_millis(),
        "first_seq": first,
        "last_seq": last,
        "bytes": zip.len(),
    });
    let (store, ctx) = (app.store().clone(), audit.clone());
    let target = format!("compliance:{framework}");
    let recorded = detached(async move {
        store
            .record(
                &ctx,
                "compliance.evidence",
                &target,
                details,
                Outcome::Success,
                None,
            )
            .await
    })
    .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "cannot record an evidence bundle");
        return graphql_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        );
    }
    ([(header::CONTENT_TYPE, "application/zip")], zip).into_response()
}
