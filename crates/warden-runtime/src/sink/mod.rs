//! Export sinks: the audit log copied, as it grows, to JSONL files, a syslog collector or an
//! OTLP collector; and webhooks, which POST chosen events (notifications).
//!
//! Each sink runs in a task of its own and reads committed events from the store after its
//! durable cursor (`audit_sink_cursors`), so a slow or dead sink never blocks a writer and never
//! loses an event: it falls behind, retries with backoff, and catches up. Delivery is at least
//! once; the JSONL sink also resumes after the last event it finds in its files.

mod jsonl;
#[cfg(feature = "otlp")]
mod otlp;
mod syslog;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use warden_audit::AuditEvent;
use warden_store::Store;

use crate::config::SinkConfig;
use crate::metrics::Metrics;

/// Events per delivery.
const BATCH: u64 = 500;
/// How often an idle sink looks for new events.
const POLL: Duration = Duration::from_millis(250);
/// How often a sink looks for a newer checkpoint to deliver.
const CHECKPOINT_POLL: Duration = Duration::from_secs(2);
/// Longest wait between retries of a failing sink.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a delivery failed; the sink retries.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Somewhere events go.
pub trait Sink: Send {
    /// Delivers events in order; returns only when they are as durable as the sink makes them.
    fn deliver(
        &mut self,
        events: &[AuditEvent],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Delivers the signed checkpoint of the first `size` events, once those events are
    /// delivered: a copy outside the database proves a later truncation. Webhooks, which are
    /// notifications rather than copies, keep none.
    fn deliver_checkpoint(
        &mut self,
        size: u64,
        note: &str,
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        let _ = (size, note);
        async { Ok(()) }
    }

    /// The last sequence number the sink itself knows it holds, if it can tell.
    fn resume_after(&mut self) -> impl Future<Output = Result<u64, SinkError>> + Send {
        async { Ok(0) }
    }
}

/// A configured sink, built (directories made, CA certificates read) but not yet running.
#[derive(Debug)]
pub struct Prepared(Kind);

/// The sink a [`Prepared`] holds.
enum Kind {
    Jsonl(String, jsonl::JsonlSink),
    Syslog(String, syslog::SyslogSink),
    Webhook(String, webhook::WebhookSink),
    #[cfg(feature = "otlp")]
    Otlp(String, otlp::OtlpSink),
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Jsonl(name, _) => write!(f, "jsonl sink {name}"),
            Kind::Syslog(name, _) => write!(f, "syslog sink {name}"),
            Kind::Webhook(name, _) => write!(f, "webhook sink {name}"),
            #[cfg(feature = "otlp")]
            Kind::Otlp(name, _) => write!(f, "otlp sink {name}"),
        }
    }
}

/// Builds every configured sink; a bad one stops the server from starting.
pub fn prepare(configs: &[SinkConfig]) -> Result<Vec<Prepared>, crate::StartError> {
    configs
        .iter()
        .map(|config| {
            let name = config.name().to_owned();
            Ok(Prepared(match config {
                SinkConfig::Jsonl { dir, max_bytes, .. } => {
                    Kind::Jsonl(name, jsonl::JsonlSink::new(dir.clone(), *max_bytes)?)
                }
                SinkConfig::Syslog {
                    address,
                    tls,
                    ca_file,
                    server_name,
                    app_name,
                    ..
                } => Kind::Syslog(
                    name,
                    syslog::SyslogSink::new(
                        address,
                        *tls,
                        ca_file.as_deref(),
                        server_name.as_deref(),
                        app_name,
                    )?,
                ),
                SinkConfig::Webhook {
                    url,
                    format,
                    actions,
                    ..
                } => {
                    let format = match format.as_str() {
                        "json" => webhook::Format::Json,
                        "slack" => webhook::Format::Slack,
                        other => {
                            return Err(crate::StartError(format!(
                                "audit sink `{name}`: unknown webhook format `{other}`: use json or slack"
                            )));
                        }
                    };
                    let sink = webhook::WebhookSink::new(&name, url, format, actions)?;
                    Kind::Webhook(name, sink)
                }
                #[cfg(feature = "otlp")]
                SinkConfig::Otlp { endpoint, service_name, .. } => {
                    Kind::Otlp(name, otlp::OtlpSink::new(endpoint, service_name)?)
                }
                #[cfg(not(feature = "otlp"))]
                SinkConfig::Otlp { .. } => {
                    return Err(crate::StartError(format!(
                        "audit sink `{name}` is OTLP, and this build has no OTLP support (cargo feature `otlp`)"
                    )));
                }
            }))
        })
        .collect()
}

/// Starts one task per sink.
pub fn spawn_all(
    sinks: Vec<Prepared>,
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
) -> Vec<tokio::task::JoinHandle<()>> {
    sinks
        .into_iter()
        .map(|sink| {
            let (store, metrics) = (store.clone(), metrics.clone());
            match sink.0 {
                Kind::Jsonl(name, sink) => tokio::spawn(run(name, sink, store, metrics)),
                Kind::Syslog(name, sink) => tokio::spawn(run(name, sink, store, metrics)),
                Kind::Webhook(name, sink) => tokio::spawn(run(name, sink, store, metrics)),
                #[cfg(feature = "otlp")]
                Kind::Otlp(name, sink) => tokio::spawn(run(name, sink, store, metrics)),
            }
        })
        .collect()
}

async fn run(name: String, mut sink: impl Sink, store: Arc<Store>, metrics: Arc<Metrics>) {
    let mut backoff = Duration::from_secs(1);
    let mut cursor = loop {
        let stored = store
            .sink_cursor(&name)
            .await
            .map_err(|e| SinkError(e.to_string()));
        let held = sink.resume_after().await;
        match (stored, held) {
            (Ok(stored), Ok(held)) => break stored.max(held),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(sink = %name, error = %e, "audit sink cannot start; retrying");
                metrics.sink_error(&name);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    tracing::info!(sink = %name, cursor, "audit sink started");
    let mut checkpoint_sent = 0;
    let mut checkpoint_looked = tokio::time::Instant::now();
    loop {
        metrics.sink_cursor(&name, cursor);
        if checkpoint_looked.elapsed() >= CHECKPOINT_POLL {
            checkpoint_looked = tokio::time::Instant::now();
            match store.latest_checkpoint().await {
                Ok(Some(c)) if c.size > checkpoint_sent && c.size <= cursor => {
                    match sink.deliver_checkpoint(c.size, &c.note).await {
                        Ok(()) => checkpoint_sent = c.size,
                        Err(e) => {
                            metrics.sink_error(&name);
                            tracing::warn!(sink = %name, error = %e, "audit sink cannot deliver a checkpoint");
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(sink = %name, error = %e, "audit sink cannot read the checkpoints")
                }
            }
        }
        let events = match store.event_range(cursor + 1, cursor + BATCH).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(sink = %name, error = %e, "audit sink cannot read the log");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let Some(last) = events.last().map(|(e, _)| e.seq) else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        let events: Vec<AuditEvent> = events.into_iter().map(|(e, _)| e).collect();
        match sink.deliver(&events).await {
            Ok(()) => {
                backoff = Duration::from_secs(1);
                cursor = last;
                if let Err(e) = store.set_sink_cursor(&name, cursor).await {
                    tracing::warn!(sink = %name, error = %e, "cannot save the audit sink cursor");
                }
            }
            Err(e) => {
                metrics.sink_error(&name);
                tracing::warn!(sink = %name, error = %e, retry_in = ?backoff, "audit sink delivery failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
