//! One user's SSH session on the proxy: the russh server handler that authenticates the
//! Warden certificate, asks the gate, opens the host's session with a certificate minted for
//! it, and opens, relays and records each channel; and what happens when it ends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use russh::keys::Certificate;
use russh::keys::ssh_key::certificate::CertType;
use russh::server::{Auth, ChannelOpenHandle, Msg as ServerMsg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure, Disconnect, Pty, Sig, client, server};
use tokio::sync::{mpsc, oneshot};

use crate::recording::{Recorder, Start};
use crate::relay::{
    Moved, Outcomes, Request, SharedRecorder, Up, downlink, finish_recording, uplink,
};
use crate::{
    Activity, Attempt, Finished, Open, Shared, UPLINK_QUEUE_LIMIT, Upstream, certificate_problem,
    connect_upstream, ed25519, now_secs, parse_keys, signed_by,
};

pub(crate) struct ChannelState {
    pub(crate) queue: mpsc::UnboundedSender<Up>,
    /// Bytes of the user's data in `queue`, not yet taken by the host.
    pub(crate) queued: Arc<AtomicUsize>,
    pub(crate) recorder: SharedRecorder,
    pub(crate) pty: Option<(u32, u32, String)>,
    pub(crate) number: u32,
}

/// The user's side of one session.
pub(crate) struct Downstream {
    pub(crate) shared: Arc<Shared>,
    pub(crate) session: String,
    pub(crate) host: String,
    pub(crate) source: String,
    pub(crate) login: String,
    pub(crate) principal: String,
    /// Why the gate refused, told to the client once authenticated.
    pub(crate) refused: Option<String>,
    /// What the gate admitted, checked again while the session is open.
    pub(crate) admitted: Option<Attempt>,
    /// When the session last moved.
    pub(crate) activity: Activity,
    pub(crate) upstream: Option<client::Handle<Upstream>>,
    pub(crate) channels: BTreeMap<ChannelId, ChannelState>,
    pub(crate) recorded: Outcomes,
}

impl Downstream {
    fn send(&self, channel: ChannelId, op: Up) {
        if let Some(state) = self.channels.get(&channel) {
            let _ = state.queue.send(op);
        }
    }

    /// Relays a channel the user opened to its twin on the host: a task carries the host's
    /// side back, and the user's side goes through an unbounded queue (russh's session loop
    /// must never wait on the host's flow control). Not recording until [`Self::record`].
    fn relay(
        &mut self,
        channel: Channel<ServerMsg>,
        up: Channel<client::Msg>,
        session: &mut Session,
    ) -> ChannelId {
        let id = channel.id();
        // russh also queues every message into the channel; nothing reads it, so drop it.
        let (read, write) = channel.split();
        drop(read);
        let (up_read, up_write) = up.split();
        let (replies_tx, replies_rx) = mpsc::unbounded_channel();
        let (queue, queue_rx) = mpsc::unbounded_channel();
        let recorder: SharedRecorder = Arc::new(Mutex::new(None));
        let number = u32::try_from(self.channels.len()).unwrap_or(u32::MAX);
        let moved = Moved {
            activity: self.activity.clone(),
            epoch: self.shared.epoch,
        };
        tokio::spawn(downlink(
            up_read,
            write,
            session.handle(),
            id,
            replies_tx,
            (recorder.clone(), self.recorded.clone()),
            moved.clone(),
        ));
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(uplink(
            queue_rx,
            up_write,
            replies_rx,
            (recorder.clone(), queued.clone()),
            moved,
        ));
        self.channels.insert(
            id,
            ChannelState {
                queue,
                queued,
                recorder,
                pty: None,
                number,
            },
        );
        id
    }

    /// Starts the channel's recording for `start`; false (and the session ends) if it fails.
    fn record(&mut self, channel: ChannelId, start: &Start) -> bool {
        let Some(state) = self.channels.get(&channel) else {
            return false;
        };
        let meta = serde_json::json!({
            "session": self.session,
            "principal": self.principal,
            "login": self.login,
            "host": self.host,
            "channel": state.number,
        });
        let name = format!("{}-{}", self.session, state.number);
        match Recorder::create(
            &self.shared.config.recordings,
            &name,
            start,
            &meta,
            &self.shared.config.kek,
        ) {
            Ok(recorder) => {
                if let Ok(mut slot) = state.recorder.lock() {
                    *slot = Some(recorder);
                }
                true
            }
            Err(e) => {
                tracing::error!(session = %self.session, error = %e, "recording failed: the session stops");
                if let Ok(mut outcomes) = self.recorded.lock() {
                    outcomes.1.push(e.to_string());
                }
                false
            }
        }
    }

    async fn request(
        &mut self,
        channel: ChannelId,
        request: Request,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let (tx, rx) = oneshot::channel();
        self.send(channel, Up::Request(request, tx));
        if rx.await.unwrap_or(false) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    /// Starts recording, or refuses the request and ends the session when it cannot.
    async fn recorded_request(
        &mut self,
        channel: ChannelId,
        start: Start,
        request: Request,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if !self.record(channel, &start) {
            session.channel_failure(channel)?;
            session.disconnect(
                Disconnect::ByApplication,
                "warden: the session cannot be recorded, so it does not run",
                "",
            )?;
            return Ok(());
        }
        self.request(channel, request, session).await
    }
}

impl server::Handler for Downstream {
    type Error = russh::Error;

    // Plain public keys are refused (russh's default): only Warden certificates get in.

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        cert: &Certificate,
    ) -> Result<Auth, Self::Error> {
        let cas = parse_keys(&self.shared.gate.user_cas());
        // Not a Warden user certificate: a bare refusal, as for any other key.
        if !signed_by(cert, &cas, CertType::User) {
            return Ok(Auth::reject());
        }
        self.login = user.to_owned();
        let key = ed25519();
        let session_key = key
            .public_key()
            .to_openssh()
            .map_err(|e| russh::Error::from(russh::keys::Error::from(e)))?;
        let attempt = Attempt {
            session: self.session.clone(),
            login: user.to_owned(),
            host: self.host.clone(),
            key_id: cert.key_id().to_owned(),
            serial: cert.serial(),
            source: Some(self.source.clone()),
            session_key,
        };
        if let Some(problem) = certificate_problem(cert, user, now_secs()) {
            self.refused = Some(self.shared.gate.refused(&attempt, problem).await);
            return Ok(Auth::Accept);
        }
        match self.shared.gate.admit(&attempt).await {
            Err(reason) => self.refused = Some(reason),
            Ok(admitted) => {
                self.principal = admitted.principal.clone();
                match connect_upstream(&self.shared, &self.host, user, key, &admitted).await {
                    Ok(handle) => {
                        self.upstream = Some(handle);
                        self.admitted = Some(attempt);
                    }
                    Err(reason) => {
                        // Admitted, so recorded as started, but it never reached the host: it
                        // ends on the record now, with why, rather than staying open forever.
                        let finished = Finished {
                            session: self.session.clone(),
                            principal: admitted.principal.clone(),
                            login: user.to_owned(),
                            host: self.host.clone(),
                            recordings: Vec::new(),
                            failures: Vec::new(),
                            reason: Some(format!("the session never reached its host: {reason}")),
                        };
                        self.shared.gate.finished(&finished).await;
                        self.refused = Some(reason);
                    }
                }
            }
        }
        // Accepted either way, so a refusal reaches the user as a message, not as a bare
        // "Permission denied"; a refused session is ended before it can open anything.
        Ok(Auth::Accept)
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        if let Some(reason) = &self.refused {
            session.disconnect(
                Disconnect::ByApplication,
                &format!("warden: access denied: {reason}"),
                "",
            )?;
            return Ok(());
        }
        if let (Ok(mut sessions), Some(attempt)) =
            (self.shared.sessions.lock(), self.admitted.clone())
        {
            sessions.insert(
                self.session.clone(),
                Open {
                    handle: session.handle(),
                    attempt,
                    started: std::time::Instant::now(),
                    activity: self.activity.clone(),
                },
            );
        }
        // A change told while the upstream connection was being made found no open session
        // to end: check once more, now that the recheck loop can see this one.
        if let Some(attempt) = &self.admitted
            && let Err(reason) = self.shared.gate.recheck(attempt).await
        {
            let reason = format!("access ended: {reason}");
            self.shared.ending(&self.session, &reason);
            session.disconnect(Disconnect::ByApplication, &format!("warden: {reason}"), "")?;
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<ServerMsg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(upstream) = &self.upstream else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let Ok(up) = upstream.channel_open_session().await else {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        self.relay(channel, up, session);
        reply.accept().await;
        Ok(())
    }

    /// `ssh -L`: a forward to the host's own ports, when the policy's `connect` allows it;
    /// counted in a recording like a subsystem. Remote and agent forwarding are refused
    /// (russh's defaults).
    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<ServerMsg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(upstream), Some(attempt)) = (&self.upstream, &self.admitted) else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if let Err(reason) = self
            .shared
            .gate
            .forward(attempt, host_to_connect, port_to_connect)
            .await
        {
            tracing::info!(session = %self.session, %reason, "port forward refused");
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let Ok(up) = upstream
            .channel_open_direct_tcpip(
                host_to_connect,
                port_to_connect,
                originator_address,
                originator_port,
            )
            .await
        else {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        let id = self.relay(channel, up, session);
        if !self.record(
            id,
            &Start::Forward(format!("{host_to_connect}:{port_to_connect}")),
        ) {
            self.send(id, Up::Close);
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        width: u32,
        height: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(state) = self.channels.get_mut(&channel) {
            state.pty = Some((width, height, term.to_owned()));
        }
        let request = Request::Pty {
            term: term.to_owned(),
            width,
            height,
            pix_width,
            pix_height,
            modes: modes.to_vec(),
        };
        self.request(channel, request, session).await
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let pty = self.channels.get(&channel).and_then(|s| s.pty.clone());
        let start = Start::Shell {
            width: pty.as_ref().map_or(80, |p| p.0),
            height: pty.as_ref().map_or(24, |p| p.1),
            term: pty.map(|p| p.2),
        };
        self.recorded_request(channel, start, Request::Shell, session)
            .await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let pty = self.channels.get(&channel).and_then(|s| s.pty.clone());
        let start = Start::Exec {
            command: String::from_utf8_lossy(data).into_owned(),
            pty,
        };
        self.recorded_request(channel, start, Request::Exec(data.to_vec()), session)
            .await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let start = Start::Subsystem(name.to_owned());
        self.recorded_request(channel, start, Request::Subsystem(name.to_owned()), session)
            .await
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        width: u32,
        height: u32,
        pix_width: u32,
        pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let recorded = self.channels.get(&channel).is_none_or(|state| {
            let Ok(mut slot) = state.recorder.lock() else {
                return false;
            };
            match slot.as_mut().map(|r| r.resize(width, height)) {
                Some(Err(e)) => {
                    tracing::error!(error = %e, "recording failed: the channel stops");
                    false
                }
                _ => true,
            }
        });
        self.send(
            channel,
            if recorded {
                Up::Window(width, height, pix_width, pix_height)
            } else {
                Up::Close
            },
        );
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.send(channel, Up::Signal(signal));
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(state) = self.channels.get(&channel) {
            let queued = state.queued.fetch_add(data.len(), Ordering::Relaxed) + data.len();
            // The user's window reopens as soon as this returns, so a host that reads slower
            // than the user sends would make the queue grow without end.
            if queued > UPLINK_QUEUE_LIMIT {
                tracing::warn!(session = %self.session, queued, "input outruns the host; ending the session");
                session.disconnect(
                    Disconnect::ByApplication,
                    "warden: input arrives faster than the host takes it (64 MiB waiting)",
                    "",
                )?;
                return Ok(());
            }
        }
        self.send(channel, Up::Data(Bytes::copy_from_slice(data)));
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.send(channel, Up::Eof);
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.send(channel, Up::Close);
        Ok(())
    }
}

impl Drop for Downstream {
    /// The user's session is over (or cut): close the host's side and report the recordings
    /// once every channel has finished writing.
    fn drop(&mut self) {
        let upstream = self.upstream.take();
        let admitted = upstream.is_some();
        let channels = std::mem::take(&mut self.channels);
        let (shared, recorded) = (self.shared.clone(), self.recorded.clone());
        let finished = Finished {
            session: self.session.clone(),
            principal: self.principal.clone(),
            login: self.login.clone(),
            host: self.host.clone(),
            recordings: Vec::new(),
            failures: Vec::new(),
            reason: self
                .shared
                .ended
                .lock()
                .ok()
                .and_then(|mut e| e.remove(&self.session)),
        };
        if let Ok(mut sessions) = self.shared.sessions.lock() {
            sessions.remove(&self.session);
        }
        tokio::spawn(async move {
            for state in channels.values() {
                let _ = state.queue.send(Up::Close);
            }
            if let Some(up) = upstream {
                let _ = up
                    .disconnect(Disconnect::ByApplication, "session ended", "")
                    .await;
            }
            if !admitted {
                return;
            }
            // The relay tasks finish their recordings as the channels close.
            for _ in 0..50 {
                let pending = channels
                    .values()
                    .any(|s| s.recorder.lock().map(|r| r.is_some()).unwrap_or(false));
                if !pending {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let slots: Vec<SharedRecorder> =
                channels.values().map(|s| s.recorder.clone()).collect();
            let outcomes = recorded.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for slot in &slots {
                    finish_recording(slot, &outcomes);
                }
            })
            .await;
            // Transcripts still rendering (their relay tasks took them): the end is audited
            // with them.
            while recorded.lock().map(|r| r.2 > 0).unwrap_or(false) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let (recordings, failures) = recorded
                .lock()
                .map(|mut r| (std::mem::take(&mut r.0), std::mem::take(&mut r.1)))
                .unwrap_or_default();
            shared
                .gate
                .finished(&Finished {
                    recordings,
                    failures,
                    ..finished
                })
                .await;
        });
    }
}
