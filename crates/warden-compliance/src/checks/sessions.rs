//! SSH sessions: recorded and intact; limits in force and kept.

use std::collections::BTreeMap;

use serde_json::Value;
use warden_audit::AuditEvent;

use super::{Check, End};
use crate::event::{list, succeeded, text};
use crate::report::{Item, Tally, exception, human, ok};
use crate::report::{Parameters, RecordingState};

/// A session from its start.
#[derive(Debug)]
struct Started {
    time: i64,
    seq: u64,
    who: String,
}

/// Why an ended session's record alone says its recordings are not evidence, if it does.
fn record_fault(e: &AuditEvent) -> Option<String> {
    if let Some(failure) = list(e, "recording_failures").iter().find_map(Value::as_str) {
        return Some(format!("recording failed: {failure}"));
    }
    let reason = text(e, "reason").unwrap_or("");
    reason
        .starts_with("its proxy (")
        .then(|| format!("no recording: {reason}"))
}

/// The recording files an ended session's record names.
fn recording_files(e: &AuditEvent) -> Vec<String> {
    list(e, "recordings")
        .iter()
        .flat_map(|r| {
            let main = r.get("file").and_then(Value::as_str);
            let transcript = r
                .get("transcript")
                .and_then(|t| t.get("file"))
                .and_then(Value::as_str);
            main.into_iter().chain(transcript)
        })
        .map(str::to_owned)
        .collect()
}

/// Why a session's recordings are not evidence as the server found them, if they are not.
fn file_fault(files: &[String], recordings: &BTreeMap<String, RecordingState>) -> Option<String> {
    for file in files {
        match recordings.get(file) {
            Some(RecordingState::Intact) => {}
            Some(RecordingState::Damaged { sha256 }) => {
                return Some(format!(
                    "recording `{file}` is damaged: its SHA-256 is now {sha256}"
                ));
            }
            Some(RecordingState::Missing { reason }) => {
                return Some(format!("recording `{file}` cannot be read: {reason}"));
            }
            None => return Some(format!("recording `{file}` was not checked")),
        }
    }
    None
}

/// A session of the period that ended with recordings, judged when the period closes
/// against what the server then finds on disk.
#[derive(Debug)]
struct Ended {
    item: Item,
    files: Vec<String>,
}

/// `ssh-recorded`: every session the proxy admitted ended on the record with its recordings,
/// each still hashing to what the log recorded (as the server found them).
#[derive(Debug)]
pub(crate) struct SshRecorded {
    /// How long past its maximum a live session may stay on the record.
    longest: i64,
    live: BTreeMap<String, Started>,
    ended: Vec<Ended>,
}

impl SshRecorded {
    pub(crate) fn new(params: Parameters) -> Self {
        SshRecorded {
            longest: params.ssh_session_max + 60 * 60 * 1000,
            live: BTreeMap::new(),
            ended: Vec::new(),
        }
    }
}

impl Check for SshRecorded {
    fn wants(&self, action: &str) -> bool {
        matches!(action, "ssh.session.start" | "ssh.session.end")
    }

    fn see(&mut self, e: &AuditEvent, tally: &mut Tally) {
        if !succeeded(e) {
            return;
        }
        match e.action.as_str() {
            "ssh.session.start" => {
                if let Some(session) = text(e, "session") {
                    self.live.insert(
                        session.to_owned(),
                        Started {
                            time: e.time,
                            seq: e.seq,
                            who: e.actor_label.clone(),
                        },
                    );
                }
            }
            "ssh.session.end" => {
                let Some(session) = text(e, "session") else {
                    return;
                };
                let Some(s) = self.live.remove(session) else {
                    return;
                };
                if !tally.in_period(s.time) {
                    return;
                }
                let subject = format!("session:{session} ({})", s.who);
                let events = vec![s.seq, e.seq];
                if let Some(why) = record_fault(e) {
                    tally.item(exception(subject, s.time, events, why));
                    return;
                }
                let files = recording_files(e);
                if files.is_empty() {
                    tally.item(ok(subject, s.time, events));
                } else {
                    self.ended.push(Ended {
                        item: ok(subject, s.time, events),
                        files,
                    });
                }
            }
            _ => {}
        }
    }

    fn start_at(&mut self, from: i64) {
        self.ended.retain(|e| e.item.time >= from);
    }

    fn finish(&self, end: &End<'_>, tally: &mut Tally) {
        for e in &self.ended {
            let mut item = e.item.clone();
            item.exception = file_fault(&e.files, &end.observations.recordings);
            tally.item(item);
        }
        for (session, s) in &self.live {
            if s.time + self.longest < end.time {
                tally.item(exception(
                    format!("session:{session} ({})", s.who),
                    s.time,
                    vec![s.seq],
                    format!(
                        "still live on the record {} after it began: its end was never recorded",
                        human(end.time - s.time)
                    ),
                ));
            } else {
                tally.pending();
            }
        }
    }
}

/// `session-limits`: the settings in force cut idle and long sessions within the limits, and
/// no SSH session lasted longer than its maximum.
#[derive(Debug)]
pub(crate) struct SessionLimits {
    params: Parameters,
    starts: BTreeMap<String, (i64, u64)>,
}

impl SessionLimits {
    pub(crate) fn new(params: Parameters) -> Self {
        SessionLimits {
            params,
            starts: BTreeMap::new(),
        }
    }

    fn settings_item(&self, end: &End<'_>) -> Item {
        let p = &self.params;
        let subject = "settings".to_owned();
        let time = end.time - 1;
        let Some(s) = end.observations.settings else {
            return exception(
                subject,
                time,
                Vec::new(),
                "the settings in force were not observed",
            );
        };
        let over = |name: &str, value: Option<i64>, max: i64| match value {
            None => Some(format!("`{name}` is off (limit {})", human(max))),
            Some(v) if v > max => Some(format!("`{name}` is {} (limit {})", human(v), human(max))),
            Some(_) => None,
        };
        let faults: Vec<String> = [
            over("identity.idle_timeout", Some(s.web_idle), p.web_idle_max),
            over(
                "identity.session_lifetime",
                Some(s.web_lifetime),
                p.web_lifetime_max,
            ),
            over("ssh.idle_timeout", s.ssh_idle, p.ssh_idle_max),
            over("ssh.max_session", s.ssh_session, p.ssh_session_max),
        ]
        .into_iter()
        .flatten()
        .collect();
        if faults.is_empty() {
            ok(subject, time, Vec::new())
        } else {
            exception(subject, time, Vec::new(), faults.join("; "))
        }
    }
}

impl Check for SessionLimits {
    fn wants(&self, action: &str) -> bool {
        matches!(action, "ssh.session.start" | "ssh.session.end")
    }

    fn see(&mut self, e: &AuditEvent, tally: &mut Tally) {
        if !succeeded(e) {
            return;
        }
        match e.action.as_str() {
            "ssh.session.start" => {
                if let Some(session) = text(e, "session") {
                    self.starts.insert(session.to_owned(), (e.time, e.seq));
                }
            }
            "ssh.session.end" => {
                let Some(session) = text(e, "session") else {
                    return;
                };
                let Some((start, seq)) = self.starts.remove(session) else {
                    return;
                };
                let lasted = e.time - start;
                // The proxy checks its limits each few seconds: a minute of slack.
                let max = self.params.ssh_session_max;
                let subject = format!("session:{session}");
                let mut item = if lasted > max + 60_000 {
                    exception(
                        subject,
                        e.time,
                        vec![seq, e.seq],
                        format!(
                            "lasted {}, over the maximum of {}",
                            human(lasted),
                            human(max)
                        ),
                    )
                } else {
                    ok(subject, e.time, vec![seq, e.seq])
                };
                item.measure = Some(lasted);
                tally.item(item);
            }
            _ => {}
        }
    }

    fn finish(&self, end: &End<'_>, tally: &mut Tally) {
        tally.item(self.settings_item(end));
    }
}
