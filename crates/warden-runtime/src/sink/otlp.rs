//! OpenTelemetry logs over OTLP/HTTP (protobuf): each event is one log record whose body is the
//! canonical event JSON, with the sequence number, action, actor, target and outcome as
//! attributes, under the resource `service.name` and the scope `warden.audit`.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use warden_audit::{AuditEvent, Outcome};

use super::{Sink, SinkError};
use crate::StartError;

pub(crate) struct OtlpSink {
    authority: String,
    path: String,
    service_name: String,
}

impl OtlpSink {
    pub fn new(endpoint: &str, service_name: &str) -> Result<Self, StartError> {
        let url = url::Url::parse(endpoint)
            .map_err(|e| StartError(format!("invalid OTLP endpoint `{endpoint}`: {e}")))?;
        if url.scheme() != "http" {
            return Err(StartError(format!(
                "invalid OTLP endpoint `{endpoint}`: only http:// is supported; put a collector or proxy on the host for TLS"
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| StartError(format!("invalid OTLP endpoint `{endpoint}`: no host")))?;
        let port = url.port_or_known_default().unwrap_or(4318);
        let path = match url.path() {
            "" | "/" => "/v1/logs".to_owned(),
            p => p.to_owned(),
        };
        Ok(OtlpSink {
            authority: format!("{host}:{port}"),
            path,
            service_name: service_name.to_owned(),
        })
    }

    fn request(&self, events: &[AuditEvent]) -> ExportLogsServiceRequest {
        let text = |key: &str, value: String| KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value)),
            }),
            ..Default::default()
        };
        let records = events
            .iter()
            .map(|e| {
                let (number, severity) = match e.outcome {
                    Outcome::Success => (SeverityNumber::Info, "INFO"),
                    Outcome::Failure => (SeverityNumber::Info2, "INFO2"),
                    Outcome::Denied => (SeverityNumber::Warn, "WARN"),
                };
                let nanos = u64::try_from(e.time).unwrap_or(0).saturating_mul(1_000_000);
                LogRecord {
                    time_unix_nano: nanos,
                    observed_time_unix_nano: nanos,
                    severity_number: number as i32,
                    severity_text: severity.to_owned(),
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(e.canonical())),
                    }),
                    attributes: vec![
                        KeyValue {
                            key: "warden.audit.seq".to_owned(),
                            value: Some(AnyValue {
                                value: Some(Value::IntValue(
                                    i64::try_from(e.seq).unwrap_or(i64::MAX),
                                )),
                            }),
                            ..Default::default()
                        },
                        text("warden.audit.action", e.action.clone()),
                        text("warden.audit.actor", e.actor_label.clone()),
                        text("warden.audit.target", e.target.clone()),
                        text("warden.audit.outcome", e.outcome.as_str().to_owned()),
                    ],
                    event_name: e.action.clone(),
                    ..Default::default()
                }
            })
            .collect();
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![text("service.name", self.service_name.clone())],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "warden.audit".to_owned(),
                        ..Default::default()
                    }),
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

impl OtlpSink {
    /// A checkpoint as one log record: event name `audit.checkpoint`, the note in JSON.
    fn checkpoint_request(&self, size: u64, note: &str) -> ExportLogsServiceRequest {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let mut request = self.request(&[]);
        let record = LogRecord {
            time_unix_nano: now,
            observed_time_unix_nano: now,
            severity_number: SeverityNumber::Info as i32,
            severity_text: "INFO".to_owned(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(
                    serde_json::json!({ "size": size, "note": note }).to_string(),
                )),
            }),
            event_name: "audit.checkpoint".to_owned(),
            ..Default::default()
        };
        if let Some(scope) = request
            .resource_logs
            .first_mut()
            .and_then(|r| r.scope_logs.first_mut())
        {
            scope.log_records.push(record);
        }
        request
    }

    async fn send(&self, body: Vec<u8>) -> Result<(), SinkError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            SinkError(format!("OTLP {what} to {} failed: {e}", self.authority))
        };
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|e| fail("connection", &e))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| fail("handshake", &e))?;
            tokio::spawn(conn);
            let request = hyper::Request::post(&self.path)
                .header("host", &self.authority)
                .header("content-type", "application/x-protobuf")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| fail("request", &e))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| fail("request", &e))?;
            let status = response.status();
            let _ = response.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(fail("export", &status))
            }
        };
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .map_err(|_| SinkError(format!("OTLP export to {} timed out", self.authority)))?
    }
}

impl Sink for OtlpSink {
    async fn deliver(&mut self, events: &[AuditEvent]) -> Result<(), SinkError> {
        self.send(self.request(events).encode_to_vec()).await
    }

    async fn deliver_checkpoint(&mut self, size: u64, note: &str) -> Result<(), SinkError> {
        self.send(self.checkpoint_request(size, note).encode_to_vec())
            .await
    }
}
