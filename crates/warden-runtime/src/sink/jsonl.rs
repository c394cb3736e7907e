//! Rotating JSON-lines files: `audit-<first seq, 12 digits>.jsonl`, one canonical event per
//! line, synced to disk before the cursor moves. Nothing is deleted.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;
use warden_audit::AuditEvent;

use super::{Sink, SinkError};
use crate::StartError;
use crate::config::io_cause;

pub(crate) struct JsonlSink {
    dir: PathBuf,
    max_bytes: u64,
    current: Option<(tokio::fs::File, u64)>,
}

impl JsonlSink {
    pub fn new(dir: PathBuf, max_bytes: u64) -> Result<Self, StartError> {
        std::fs::create_dir_all(&dir).map_err(|e| {
            StartError(format!(
                "cannot create audit sink directory {}: {}",
                dir.display(),
                io_cause(&e)
            ))
        })?;
        Ok(JsonlSink {
            dir,
            max_bytes: max_bytes.max(1),
            current: None,
        })
    }

    fn files(&self) -> Result<Vec<PathBuf>, SinkError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| SinkError(format!("cannot list {}: {e}", self.dir.display())))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
            })
            .collect();
        files.sort();
        Ok(files)
    }
}

/// The file beside the event files that holds every checkpoint delivered, one JSON object
/// per line: `{"size": N, "note": "…"}`.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";

impl Sink for JsonlSink {
    async fn deliver_checkpoint(&mut self, size: u64, note: &str) -> Result<(), SinkError> {
        let io = |e: std::io::Error| SinkError(format!("audit checkpoint write failed: {e}"));
        let mut line = serde_json::json!({ "size": size, "note": note }).to_string();
        line.push('\n');
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(CHECKPOINTS_FILE))
            .await
            .map_err(io)?;
        file.write_all(line.as_bytes()).await.map_err(io)?;
        file.sync_data().await.map_err(io)
    }

    async fn resume_after(&mut self) -> Result<u64, SinkError> {
        let Some(last_file) = self.files()?.pop() else {
            return Ok(0);
        };
        let text = tokio::fs::read_to_string(&last_file)
            .await
            .map_err(|e| SinkError(format!("cannot read {}: {e}", last_file.display())))?;
        // A crash can leave a partial last line; only whole lines count.
        let last = text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| v.get("seq").and_then(serde_json::Value::as_u64));
        Ok(last.unwrap_or(0))
    }

    async fn deliver(&mut self, events: &[AuditEvent]) -> Result<(), SinkError> {
        let io = |e: std::io::Error| SinkError(format!("audit file write failed: {e}"));
        for event in events {
            let mut line = event.canonical();
            line.push('\n');
            let len = line.len() as u64;
            let full = self
                .current
                .as_ref()
                .is_some_and(|(_, size)| *size > 0 && size + len > self.max_bytes);
            if full || self.current.is_none() {
                if let Some((file, _)) = self.current.take() {
                    file.sync_data().await.map_err(io)?;
                }
                let path = self.dir.join(format!("audit-{:012}.jsonl", event.seq));
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .await
                    .map_err(io)?;
                let size = file.metadata().await.map_err(io)?.len();
                self.current = Some((file, size));
            }
            if let Some((file, size)) = self.current.as_mut() {
                file.write_all(line.as_bytes()).await.map_err(io)?;
                *size += len;
            }
        }
        if let Some((file, _)) = self.current.as_mut() {
            file.flush().await.map_err(io)?;
            file.sync_data().await.map_err(io)?;
        }
        Ok(())
    }
}
