//! SSH sessions through the recording proxy: list them, read a recording (checked against the
//! hash the audit log holds), end one.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};
use warden_store::Store;

use super::Capability;
use super::authz::authorize;
use super::{api_error, bad_input};
use crate::recordings::{Checked, Recordings};

/// The proxy running in this server, if it started.
#[derive(Debug, Clone)]
pub struct Proxy(pub Option<warden_proxy::Proxy>);

/// One recording of a session.
#[derive(Debug, Clone, SimpleObject)]
pub struct SshRecording {
    /// Its file name (what `sshRecording` and `warden play` take).
    pub file: String,
    /// SHA-256 recorded when the session ended.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: i64,
    /// `shell`, `exec` or `subsystem`.
    pub kind: String,
    /// The command or subsystem.
    pub command: Option<String>,
    /// The transcript's file name (channels with a pty; sealed like the recording). Without a
    /// pty the recording's output is the transcript.
    pub transcript: Option<String>,
}

/// A session whose transcript holds the text searched for.
#[derive(Debug, Clone, SimpleObject)]
pub struct SshSessionMatch {
    /// The session.
    pub session: SshSessionInfo,
    /// The recording whose transcript matched.
    pub file: String,
    /// The matching lines (at most 5).
    pub lines: Vec<String>,
}

/// A session through the proxy.
#[derive(Debug, Clone, SimpleObject)]
pub struct SshSessionInfo {
    /// Its id.
    pub id: String,
    /// Who (`user:alice`).
    pub principal: String,
    /// The login on the host.
    pub login: String,
    /// The host.
    pub host: String,
    /// Where the user connected from.
    pub source: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339; null while open.
    pub ended_at: Option<String>,
    /// Why Warden ended it, if it did.
    pub end_reason: Option<String>,
    /// Its recordings (known once it ended).
    pub recordings: Vec<SshRecording>,
}

fn recordings(value: &serde_json::Value) -> Vec<SshRecording> {
    value
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let text = |k: &str| r.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            SshRecording {
                file: text("file").unwrap_or_default(),
                sha256: text("sha256").unwrap_or_default(),
                bytes: r
                    .get("bytes")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0),
                kind: text("kind").unwrap_or_default(),
                command: text("command"),
                transcript: r
                    .pointer("/transcript/file")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            }
        })
        .collect()
}

fn info(s: warden_store::SshSession) -> SshSessionInfo {
    SshSessionInfo {
        recordings: recordings(&s.recordings),
        id: s.id,
        principal: s.principal,
        login: s.login,
        host: s.host,
        source: s.source,
        started_at: s.started_at.to_string(),
        ended_at: s.ended_at.map(|t| t.to_string()),
        end_reason: s.end_reason,
    }
}

/// A recording file name as the proxy makes them: `<16 hex>-<channel>.rec` (`.cast` before
/// recordings were sealed).
fn session_of(file: &str) -> Option<&str> {
    let stem = file
        .strip_suffix(warden_proxy::recording::RECORDING_SUFFIX)
        .or_else(|| file.strip_suffix(LEGACY_SUFFIX))?;
    let (session, channel) = stem.split_once('-')?;
    let ok = session.len() == 16
        && session.chars().all(|c| c.is_ascii_hexdigit())
        && !channel.is_empty()
        && channel.chars().all(|c| c.is_ascii_digit());
    ok.then_some(session)
}

/// What recordings were named when they were plain asciicast files.
const LEGACY_SUFFIX: &str = ".cast";

/// A recording's bytes, refused in one line unless they hash to what the audit log recorded.
async fn intact(ctx: &Context<'_>, file: &str, expected: &str) -> async_graphql::Result<Vec<u8>> {
    match ctx.data::<Recordings>()?.read_checked(file, expected).await {
        Checked::Intact(bytes) => Ok(bytes),
        Checked::Unreadable(e) => Err(bad_input(format!("recording `{file}` cannot be read: {e}"))),
        Checked::Damaged { sha256 } => Err(bad_input(format!(
            "recording `{file}` is damaged: its SHA-256 is {sha256}, the audit log recorded {expected}"
        ))),
    }
}

/// A recording's or transcript's file, opened under the KEK: its plaintext, or, for a file
/// written before recordings were sealed, its bytes as they are. A file cut short (its
/// session or the process stopped before it closed) is refused.
fn opened(bytes: Vec<u8>, file: &str, kek: &warden_pki::seal::Kek) -> Result<Vec<u8>, String> {
    use warden_proxy::recording::{OpenError, open};
    match open(&bytes, file, kek) {
        Ok(o) if o.complete => Ok(o.plaintext.to_vec()),
        Ok(_) => Err("it was cut short before its session ended".to_owned()),
        Err(OpenError::NotARecording) if !file.ends_with(".rec") => Ok(bytes),
        Err(e) => Err(e.to_string()),
    }
}

/// What a recording's terminal showed, for search: its transcript when it has one (a pty),
/// else its output.
async fn shown(
    recordings: &Recordings,
    kek: &Arc<warden_pki::seal::Kek>,
    recording: &SshRecording,
) -> Option<String> {
    let file = recording
        .transcript
        .clone()
        .unwrap_or(recording.file.clone());
    let bytes = recordings.read(&file).await.ok()?;
    let transcript = recording.transcript.is_some();
    let kek = kek.clone();
    // Opening and decoding a large recording is CPU work: off the async workers.
    tokio::task::spawn_blocking(move || {
        let plain = opened(bytes, &file, &kek).ok()?;
        if transcript || file.ends_with(LEGACY_SUFFIX) {
            Some(String::from_utf8_lossy(&plain).into_owned())
        } else {
            warden_proxy::recording::frames::output_text(&plain).ok()
        }
    })
    .await
    .ok()
    .flatten()
}

/// A break-glass session's recording (asciicast, sealed under the KEK by the server when the
/// host reported it), checked against the hash in `break_glass.use`.
async fn break_glass_recording(
    ctx: &Context<'_>,
    caller: &super::Caller,
    use_id: &str,
    file: &str,
) -> async_graphql::Result<String> {
    let store = ctx.data::<Arc<Store>>()?;
    let used = store
        .break_glass_use(use_id)
        .await
        .map_err(|e| api_error(e, caller))?
        .ok_or_else(|| bad_input(format!("no break-glass use `{use_id}`")))?;
    let Some(expected) = used.recording_sha256 else {
        return Err(bad_input(format!(
            "break-glass use `{use_id}` was reported without a recording"
        )));
    };
    let bytes = intact(ctx, file, &expected).await?;
    let kek = ctx.data::<crate::ca::Authorities>()?.shared_kek();
    let named = file.to_owned();
    tokio::task::spawn_blocking(move || {
        let plain = opened(bytes, &named, &kek)?;
        String::from_utf8(plain).map_err(|_| "not UTF-8".to_owned())
    })
    .await
    .map_err(|e| bad_input(e.to_string()))?
    .map_err(|e| bad_input(format!("recording `{file}` does not open: {e}")))
}

/// Session reads.
#[derive(Debug, Default)]
pub struct SshSessionQuery;

#[Object]
impl SshSessionQuery {
    /// Sessions through the proxy, newest first; narrowed to a person (`user:alice`, or
    /// `alice`), a host, and a start time from `since` (inclusive) to `until` (RFC 3339).
    #[expect(
        clippy::too_many_arguments,
        reason = "a GraphQL field with its filter arguments"
    )]
    async fn ssh_sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only sessions still open.")] active: Option<bool>,
        principal: Option<String>,
        host: Option<String>,
        since: Option<String>,
        until: Option<String>,
        #[graphql(default = 50)] first: i64,
    ) -> async_graphql::Result<Vec<SshSessionInfo>> {
        let caller = authorize(ctx, Capability::ReadAudit, "ssh-sessions").await?;
        if !(1..=1000).contains(&first) {
            return Err(bad_input("first must be between 1 and 1000"));
        }
        let given = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let principal = given(principal).map(|p| {
            if p.contains(':') {
                p
            } else {
                format!("user:{p}")
            }
        });
        let filter = warden_store::SessionFilter {
            active_only: active.unwrap_or(false),
            principal,
            host: given(host),
            since: super::audit::time("since", given(since))?,
            until: super::audit::time("until", given(until))?,
        };
        let store = ctx.data::<Arc<Store>>()?;
        let sessions = store
            .ssh_sessions_matching(&filter, first)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(sessions.into_iter().map(info).collect())
    }

    /// One session by id.
    async fn ssh_session(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> async_graphql::Result<Option<SshSessionInfo>> {
        let caller = authorize(ctx, Capability::ReadAudit, &format!("ssh-session:{id}")).await?;
        let store = ctx.data::<Arc<Store>>()?;
        let session = store
            .ssh_session(&id)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(session.map(info))
    }

    /// Sessions whose transcripts (what the terminal showed) contain `text`, ignoring case,
    /// newest first, among the latest `within` sessions.
    async fn ssh_session_search(
        &self,
        ctx: &Context<'_>,
        text: String,
        #[graphql(default = 1000)] within: i64,
    ) -> async_graphql::Result<Vec<SshSessionMatch>> {
        let caller = authorize(ctx, Capability::ReadAudit, "ssh-sessions").await?;
        let needle = text.trim().to_lowercase();
        if needle.is_empty() || needle.len() > 200 {
            return Err(bad_input("search text: 1 to 200 characters"));
        }
        if !(1..=10_000).contains(&within) {
            return Err(bad_input("within must be between 1 and 10000"));
        }
        let store = ctx.data::<Arc<Store>>()?;
        let recordings = ctx.data::<Recordings>()?;
        let sessions = store
            .ssh_sessions(false, within)
            .await
            .map_err(|e| api_error(e, caller))?;
        let mut found = Vec::new();
        let kek = ctx.data::<crate::ca::Authorities>()?.shared_kek();
        for session in sessions.into_iter().map(info) {
            for r in &session.recordings {
                if !matches!(r.kind.as_str(), "shell" | "exec") {
                    continue;
                }
                let Some(body) = shown(recordings, &kek, r).await else {
                    continue;
                };
                let lines: Vec<String> = body
                    .lines()
                    .filter(|l| l.to_lowercase().contains(&needle))
                    .take(5)
                    .map(str::to_owned)
                    .collect();
                if !lines.is_empty() {
                    found.push(SshSessionMatch {
                        session: session.clone(),
                        file: r.file.clone(),
                        lines,
                    });
                }
            }
        }
        Ok(found)
    }

    /// A recording's asciicast text, after checking its file against the SHA-256 the audit
    /// log recorded when its session ended, and opening it under the KEK.
    async fn ssh_recording(
        &self,
        ctx: &Context<'_>,
        file: String,
    ) -> async_graphql::Result<String> {
        let caller = authorize(ctx, Capability::ReadAudit, &format!("recording:{file}")).await?;
        if let Some(use_id) = file
            .strip_prefix("break-glass-")
            .and_then(|f| f.strip_suffix(".cast.rec"))
        {
            return break_glass_recording(ctx, caller, use_id, &file).await;
        }
        let session = session_of(&file).ok_or_else(|| {
            bad_input(format!(
                "invalid recording name `{file}`: `warden sessions list` shows them"
            ))
        })?;
        let store = ctx.data::<Arc<Store>>()?;
        let stored = store
            .ssh_session(session)
            .await
            .map_err(|e| api_error(e, caller))?
            .ok_or_else(|| bad_input(format!("no session `{session}`")))?;
        let expected = recordings(&stored.recordings)
            .into_iter()
            .find(|r| r.file == file)
            .ok_or_else(|| {
                bad_input(format!(
                    "recording `{file}` is not finished: its session is still open or ended without it"
                ))
            })?;
        let bytes = intact(ctx, &file, &expected.sha256).await?;
        let kek = ctx.data::<crate::ca::Authorities>()?.shared_kek();
        let named = file.clone();
        let cast = tokio::task::spawn_blocking(move || {
            let plain = opened(bytes, &named, &kek)?;
            if named.ends_with(LEGACY_SUFFIX) {
                return String::from_utf8(plain).map_err(|_| "not UTF-8".to_owned());
            }
            warden_proxy::recording::frames::asciicast(&plain).map_err(|e| e.to_string())
        })
        .await
        .map_err(|_| async_graphql::Error::new("internal error"))?;
        cast.map_err(|e| bad_input(format!("recording `{file}` is damaged: {e}")))
    }
}

/// Session changes.
#[derive(Debug, Default)]
pub struct SshSessionMutation;

#[Object]
impl SshSessionMutation {
    /// Ends an open session. True when this process's proxy held it and ended it at once;
    /// false when the end is requested of the proxy that holds it (`warden proxy` or another
    /// server), which ends it at its next check, within a second, or, when that proxy has
    /// stopped, of the timers, which end it on the record when the proxy's lease runs out.
    /// The user sees why: who ended it, and `reason` when given (one line of at most 500
    /// bytes).
    async fn end_ssh_session(
        &self,
        ctx: &Context<'_>,
        id: String,
        reason: Option<String>,
    ) -> async_graphql::Result<bool> {
        let caller = authorize(ctx, Capability::ManageHosts, &format!("ssh-session:{id}")).await?;
        let proxy = ctx.data::<Proxy>()?;
        let store = ctx.data::<Arc<Store>>()?;
        let reason = match reason.as_deref().map(str::trim) {
            None => format!("session ended by {}", caller.audit.actor),
            Some(why)
                if !why.is_empty() && why.len() <= 500 && !why.chars().any(char::is_control) =>
            {
                format!("session ended by {}: {why}", caller.audit.actor)
            }
            Some(_) => {
                return Err(super::bad_input(
                    "give a reason: one line of at most 500 bytes",
                ));
            }
        };
        store
            .request_ssh_session_end(&caller.audit, &id, &reason)
            .await
            .map_err(|e| api_error(e, caller))?;
        // At once when this process's proxy holds it; otherwise the proxy that does (or this
        // one, a moment later, when the session is still being admitted) sees the request.
        Ok(match &proxy.0 {
            Some(proxy) => proxy.end_session(&id, &reason).await,
            None => false,
        })
    }
}
