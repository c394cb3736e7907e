//! The relay between the user's channel and the host's: input goes up through a queue, in
//! order, with the host's answers to pty, shell, exec and subsystem requests; output comes
//! down. Both directions pass through the channel's recorder ([`tee`]) before they move, and a
//! recording that cannot be written stops the channel. When the channel closes, its recording
//! is finished ([`finish_recording`]) on a blocking thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use russh::server::Msg as ServerMsg;
use russh::{ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Pty, Sig, client, server};
use tokio::sync::{mpsc, oneshot};

use crate::recording::{Recorded, Recorder};
use crate::{Activity, HANDSHAKE_TIMEOUT};

/// A request that needs the host's answer.
pub(crate) enum Request {
    Pty {
        term: String,
        width: u32,
        height: u32,
        pix_width: u32,
        pix_height: u32,
        modes: Vec<(Pty, u32)>,
    },
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
}

/// What the user's side sends to the host, in order.
pub(crate) enum Up {
    Data(Bytes),
    Eof,
    Window(u32, u32, u32, u32),
    Signal(Sig),
    Request(Request, oneshot::Sender<bool>),
    Close,
}

/// A channel's recorder, shared by its two directions.
pub(crate) type SharedRecorder = Arc<Mutex<Option<Recorder>>>;

/// Recordings finished, recording failures, and recordings still being finished (their
/// transcripts rendered), of one session.
pub(crate) type Outcomes = Arc<Mutex<(Vec<Recorded>, Vec<String>, usize)>>;

/// Closes a channel's recording (once) and keeps what it holds. Blocks while a pty channel's
/// transcript is rendered: call it on a blocking thread.
pub(crate) fn finish_recording(recorder: &SharedRecorder, outcomes: &Outcomes) {
    // Taken and counted as finishing under the slot's lock, so whoever finds the slot empty
    // also finds it counted.
    let taken = recorder.lock().ok().and_then(|mut slot| {
        let taken = slot.take();
        if taken.is_some()
            && let Ok(mut outcomes) = outcomes.lock()
        {
            outcomes.2 += 1;
        }
        taken
    });
    if let Some(recorder) = taken {
        let result = recorder.finish();
        if let Ok(mut outcomes) = outcomes.lock() {
            match result {
                Ok(recorded) => outcomes.0.push(recorded),
                Err(e) => outcomes.1.push(e.to_string()),
            }
            outcomes.2 = outcomes.2.saturating_sub(1);
        }
    }
}

/// Marks its session as active.
#[derive(Clone)]
pub(crate) struct Moved {
    pub(crate) activity: Activity,
    pub(crate) epoch: std::time::Instant,
}

impl Moved {
    fn now(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Records `data` as input or output; false when the recording failed (the channel stops).
pub(crate) fn tee(recorder: &SharedRecorder, input: bool, data: &[u8]) -> bool {
    let Ok(mut slot) = recorder.lock() else {
        return false;
    };
    match slot.as_mut() {
        None => true,
        Some(r) => {
            let written = if input { r.input(data) } else { r.output(data) };
            match written {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "recording failed: the channel stops");
                    false
                }
            }
        }
    }
}

/// The user's side to the host's, in order. Never blocks the user's session loop on the
/// host's flow control (the queue is unbounded; the host's window paces the writes).
pub(crate) async fn uplink(
    mut queue: mpsc::UnboundedReceiver<Up>,
    up: ChannelWriteHalf<client::Msg>,
    mut replies: mpsc::UnboundedReceiver<bool>,
    (recorder, queued): (SharedRecorder, Arc<AtomicUsize>),
    moved: Moved,
) {
    while let Some(op) = queue.recv().await {
        let sent = match op {
            Up::Data(data) => {
                moved.now();
                if !tee(&recorder, true, &data) {
                    break;
                }
                let len = data.len();
                let sent = up.data_bytes(data).await;
                queued.fetch_sub(len, Ordering::Relaxed);
                sent
            }
            Up::Eof => up.eof().await,
            Up::Window(w, h, pw, ph) => up.window_change(w, h, pw, ph).await,
            Up::Signal(sig) => up.signal(sig).await,
            Up::Close => break,
            Up::Request(request, done) => {
                let sent = match request {
                    Request::Pty {
                        term,
                        width,
                        height,
                        pix_width,
                        pix_height,
                        modes,
                    } => {
                        up.request_pty(true, &term, width, height, pix_width, pix_height, &modes)
                            .await
                    }
                    Request::Shell => up.request_shell(true).await,
                    Request::Exec(command) => up.exec(true, command).await,
                    Request::Subsystem(name) => up.request_subsystem(true, name).await,
                };
                let ok = sent.is_ok()
                    && tokio::time::timeout(HANDSHAKE_TIMEOUT, replies.recv())
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or(false);
                let _ = done.send(ok);
                Ok(())
            }
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = up.close().await;
}

/// The host's side to the user's.
pub(crate) async fn downlink(
    mut up: ChannelReadHalf,
    down: ChannelWriteHalf<ServerMsg>,
    handle: server::Handle,
    id: ChannelId,
    replies: mpsc::UnboundedSender<bool>,
    (recorder, outcomes): (SharedRecorder, Outcomes),
    moved: Moved,
) {
    while let Some(message) = up.wait().await {
        let sent = match message {
            ChannelMsg::Data { data } => {
                moved.now();
                if !tee(&recorder, false, &data) {
                    break;
                }
                down.data_bytes(data).await
            }
            ChannelMsg::ExtendedData { data, ext } => {
                moved.now();
                if !tee(&recorder, false, &data) {
                    break;
                }
                down.extended_data_bytes(ext, data).await
            }
            ChannelMsg::Success => {
                let _ = replies.send(true);
                Ok(())
            }
            ChannelMsg::Failure => {
                let _ = replies.send(false);
                Ok(())
            }
            ChannelMsg::ExitStatus { exit_status } => down.exit_status(exit_status).await,
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                let _ = handle
                    .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                    .await;
                Ok(())
            }
            ChannelMsg::Eof => down.eof().await,
            ChannelMsg::Close => break,
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = down.close().await;
    let _ = tokio::task::spawn_blocking(move || finish_recording(&recorder, &outcomes)).await;
}
