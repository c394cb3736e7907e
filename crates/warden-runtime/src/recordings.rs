//! Where session recordings live: a directory, or an S3-compatible bucket through the
//! `object_store` crate. The proxy always writes to a local directory first, so recording
//! never waits on the network; with a bucket, each finished file is uploaded at the session's
//! end and then removed locally. A file that cannot be uploaded stays in the spool and the
//! session's audit record says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::StartError;

/// A recording read back and checked against the hash the audit log holds.
#[derive(Debug)]
pub enum Checked {
    /// Its bytes, which hash to what the log recorded.
    Intact(Vec<u8>),
    /// Its bytes hash to something else.
    Damaged {
        /// What they hash to.
        sha256: String,
    },
    /// It could not be read.
    Unreadable(String),
}
use crate::config::RecordingsLocation;

/// The recordings store.
#[derive(Debug, Clone)]
pub enum Recordings {
    /// Files in a directory.
    Dir(PathBuf),
    /// Objects under `prefix` in a bucket, written through `spool`.
    Bucket {
        /// The bucket.
        store: Arc<dyn ObjectStore>,
        /// Where recordings go in it.
        prefix: ObjectPath,
        /// `s3://…` as configured, for messages.
        url: String,
        /// Where the proxy writes before uploading.
        spool: PathBuf,
    },
}

impl Recordings {
    /// Opens `location`; a bucket takes its credentials, region and endpoint from AWS_*.
    pub fn open(location: &RecordingsLocation) -> Result<Recordings, StartError> {
        match location {
            RecordingsLocation::Dir(dir) => Ok(Recordings::Dir(dir.clone())),
            RecordingsLocation::Bucket { url, spool } => {
                let bad = |e: &dyn std::fmt::Display| {
                    StartError(format!("invalid `ssh.recordings` `{url}`: {e}"))
                };
                let parsed = url::Url::parse(url).map_err(|e| bad(&e))?;
                // object_store's HTTPS client (reqwest with rustls) uses the process's default
                // crypto provider: ring, as everywhere else in Warden. Installed once; a later
                // call finds it set.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let store = AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| bad(&e))?;
                let prefix =
                    ObjectPath::parse(parsed.path().trim_matches('/')).map_err(|e| bad(&e))?;
                Ok(Recordings::Bucket {
                    store: Arc::new(store),
                    prefix,
                    url: url.clone(),
                    spool: spool.clone(),
                })
            }
        }
    }

    /// Where the proxy writes recordings.
    pub fn local_dir(&self) -> &Path {
        match self {
            Recordings::Dir(dir) => dir,
            Recordings::Bucket { spool, .. } => spool,
        }
    }

    /// Fails unless the bucket answers (a directory is created by the proxy itself): the
    /// proxy does not start when it could not keep what it records.
    pub async fn check(&self) -> Result<(), StartError> {
        if let Recordings::Bucket {
            store, prefix, url, ..
        } = self
        {
            store.list_with_delimiter(Some(prefix)).await.map_err(|e| {
                StartError(format!(
                    "cannot reach the recordings bucket {url}: {}",
                    one_line(&e)
                ))
            })?;
        }
        Ok(())
    }

    /// Uploads what an earlier run of this process left in the spool (it stopped before a
    /// session's end, or an upload failed); run at start, before any session. Returns how many
    /// went up; a file that still cannot go up stays and is logged.
    pub async fn publish_leftovers(&self) -> usize {
        let Recordings::Bucket { spool, .. } = self else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(spool) else {
            return 0;
        };
        let mut sent = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            match self.publish(name).await {
                Ok(()) => sent += 1,
                Err(e) => tracing::error!(error = %e, "a left-over recording was not uploaded"),
            }
        }
        if sent > 0 {
            tracing::warn!(
                files = sent,
                "uploaded recordings left in the spool by an earlier run"
            );
        }
        sent
    }

    fn object(prefix: &ObjectPath, file: &str) -> ObjectPath {
        prefix.clone().join(file)
    }

    /// A finished recording's bytes, checked against the SHA-256 the audit log recorded for
    /// it when its session ended.
    pub async fn read_checked(&self, file: &str, recorded_sha256: &str) -> Checked {
        match self.read(file).await {
            Err(reason) => Checked::Unreadable(reason),
            Ok(bytes) => {
                let sha256: String = <sha2::Sha256 as sha2::Digest>::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                if sha256 == recorded_sha256 {
                    Checked::Intact(bytes)
                } else {
                    Checked::Damaged { sha256 }
                }
            }
        }
    }

    /// A finished recording's bytes.
    pub async fn read(&self, file: &str) -> Result<Vec<u8>, String> {
        match self {
            Recordings::Dir(dir) => std::fs::read(dir.join(file)).map_err(|e| e.to_string()),
            Recordings::Bucket { store, prefix, .. } => {
                let got = store
                    .get(&Self::object(prefix, file))
                    .await
                    .map_err(|e| one_line(&e))?;
                let bytes = got.bytes().await.map_err(|e| one_line(&e))?;
                Ok(bytes.to_vec())
            }
        }
    }

    /// Moves a finished file from the local directory to the bucket (nothing to do for a
    /// directory). On failure the file stays where it is.
    pub async fn publish(&self, file: &str) -> Result<(), String> {
        let Recordings::Bucket {
            store,
            prefix,
            url,
            spool,
        } = self
        else {
            return Ok(());
        };
        let local = spool.join(file);
        let bytes = tokio::fs::read(&local)
            .await
            .map_err(|e| format!("cannot read {}: {e}", local.display()))?;
        store
            .put(&Self::object(prefix, file), bytes.into())
            .await
            .map_err(|e| {
                format!(
                    "cannot upload `{file}` to {url} ({}); it is kept in {}",
                    one_line(&e),
                    spool.display()
                )
            })?;
        if let Err(e) = tokio::fs::remove_file(&local).await {
            tracing::warn!(error = %e, file, "uploaded recording left in the spool");
        }
        Ok(())
    }
}

/// An object_store error on one line.
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}
