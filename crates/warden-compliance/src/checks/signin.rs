//! Sign-in: passkeys proved every browser session, every person enrolled one in time, and
//! every account was one person in one place.

use std::collections::BTreeMap;

use warden_audit::AuditEvent;

use super::{Check, End};
use crate::event::{acting_session, person, succeeded, target, text};
use crate::report::Parameters;
use crate::report::{Item, Tally, exception, human, ok};

/// A passkey's proof, unless its event says the authenticator did not verify the user (events
/// from before the flag was recorded rest on the ceremonies, which require it).
fn verified(who: String, e: &AuditEvent, events: Vec<u64>) -> Item {
    if e.details
        .get("user_verified")
        .and_then(serde_json::Value::as_bool)
        == Some(false)
    {
        exception(
            who,
            e.time,
            events,
            "the passkey was used without user verification",
        )
    } else {
        ok(who, e.time, events)
    }
}

/// A browser session from its opening until a passkey proves it (then it is forgotten).
#[derive(Debug)]
struct Opened {
    seq: u64,
    /// Whether it was already counted as an exception.
    flagged: bool,
}

/// `signin-passkey`: every browser session a sign-in opened was proved by a passkey (whose
/// ceremonies Warden runs with user verification required) before it acted.
#[derive(Debug, Default)]
pub(crate) struct SigninPasskey {
    sessions: BTreeMap<String, Opened>,
    /// Credential → its holder, from registrations, to name passkey-only sign-ins.
    holders: BTreeMap<String, String>,
}

impl Check for SigninPasskey {
    fn wants(&self, _action: &str) -> bool {
        // Any action a browser session takes may be one taken before its passkey.
        true
    }

    fn see(&mut self, e: &AuditEvent, tally: &mut Tally) {
        if !succeeded(e) {
            return;
        }
        match e.action.as_str() {
            "auth.login" | "auth.enroll" => {
                let Some(session) = text(e, "session") else {
                    return;
                };
                // A passkey sign-in is its own proof.
                if let Some(credential) = target(e, "passkey:") {
                    let holder = self.holders.get(credential).map_or_else(
                        || format!("passkey:{credential}"),
                        |user| format!("user:{user}"),
                    );
                    tally.item(verified(holder, e, vec![e.seq]));
                } else {
                    self.sessions.insert(
                        session.to_owned(),
                        Opened {
                            seq: e.seq,
                            flagged: false,
                        },
                    );
                }
            }
            "auth.passkey" | "passkey.register" => {
                if e.action == "passkey.register"
                    && let (Some(credential), Some(user)) = (target(e, "passkey:"), person(e))
                {
                    self.holders.insert(credential.to_owned(), user.to_owned());
                }
                // `auth.passkey` without a session confirms a removal: not a sign-in.
                let Some(session) = text(e, "session") else {
                    return;
                };
                let Some(opened) = self.sessions.get_mut(session) else {
                    return;
                };
                let who = person(e).map_or_else(|| e.actor_label.clone(), |u| format!("user:{u}"));
                tally.item(verified(who, e, vec![opened.seq, e.seq]));
                // A proven session may act as it likes: it is forgotten.
                self.sessions.remove(session);
            }
            // Ending a session (logging out) needs no proof.
            "session.end" | "passkey.lock" => {}
            action => {
                let Some(session) = acting_session(e) else {
                    return;
                };
                let Some(opened) = self.sessions.get_mut(session) else {
                    return;
                };
                if !opened.flagged {
                    opened.flagged = true;
                    let who = person(e).unwrap_or("?");
                    tally.item(exception(
                        format!("user:{who}"),
                        e.time,
                        vec![opened.seq, e.seq],
                        format!("a browser session acted (`{action}`) before a passkey proved it"),
                    ));
                }
            }
        }
    }

    fn finish(&self, _end: &End<'_>, _tally: &mut Tally) {}
}

/// An account waiting for its first passkey.
#[derive(Debug)]
struct Waiting {
    since: i64,
    seq: u64,
    after: &'static str,
}

/// `passkey-enrollment`: every account made (or whose passkeys were reset) held a passkey
/// within the enrollment window.
#[derive(Debug)]
pub(crate) struct PasskeyEnrollment {
    window: i64,
    waiting: BTreeMap<String, Waiting>,
}

impl PasskeyEnrollment {
    pub(crate) fn new(params: Parameters) -> Self {
        PasskeyEnrollment {
            window: params.enrollment_window,
            waiting: BTreeMap::new(),
        }
    }

    fn overdue(&self, user: &str, w: &Waiting, seqs: Vec<u64>) -> Item {
        exception(
            format!("user:{user}"),
            w.since + self.window,
            seqs,
            format!("no passkey within {} {}", human(self.window), w.after),
        )
    }
}

impl Check for PasskeyEnrollment {
    fn wants(&self, action: &str) -> bool {
        matches!(
            action,
            "user.create" | "passkey.reset" | "passkey.register" | "user.disable" | "user.delete"
        )
    }

    fn see(&mut self, e: &AuditEvent, tally: &mut Tally) {
        if !succeeded(e) {
            return;
        }
        match e.action.as_str() {
            "user.create" | "passkey.reset" => {
                let Some(user) = target(e, "user:") else {
                    return;
                };
                let after = if e.action == "user.create" {
                    "of the account being made"
                } else {
                    "of its passkeys being reset"
                };
                self.waiting.insert(
                    user.to_owned(),
                    Waiting {
                        since: e.time,
                        seq: e.seq,
                        after,
                    },
                );
            }
            "passkey.register" => {
                let Some(user) = person(e) else {
                    return;
                };
                let Some(w) = self.waiting.remove(user) else {
                    return;
                };
                let took = e.time - w.since;
                let mut item = if took > self.window {
                    exception(
                        format!("user:{user}"),
                        e.time,
                        vec![w.seq, e.seq],
                        format!(
                            "first passkey {} {}, over the window of {}",
                            human(took),
                            w.after.replacen("of ", "after ", 1),
                            human(self.window)
                        ),
                    )
                } else {
                    ok(format!("user:{user}"), e.time, vec![w.seq, e.seq])
                };
                item.measure = Some(took);
                tally.item(item);
            }
            "user.disable" | "user.delete" => {
                // A person who leaves before enrolling is not owed a passkey, unless their
                // window had already run out.
                let Some(user) = target(e, "user:") else {
                    return;
                };
                if let Some(w) = self.waiting.remove(user)
                    && e.time > w.since + self.window
                {
                    tally.item(self.overdue(user, &w, vec![w.seq]));
                }
            }
            _ => {}
        }
    }

    fn finish(&self, end: &End<'_>, tally: &mut Tally) {
        for (user, w) in &self.waiting {
            if w.since + self.window < end.time {
                tally.item(self.overdue(user, w, vec![w.seq]));
            } else {
                tally.pending();
            }
        }
    }
}

/// A live SSH session, for telling one account in two places.
#[derive(Debug)]
struct Live {
    user: String,
    source: Option<String>,
    seq: u64,
}

/// `unique-identity`: every SSH session was one named person's: never one account live from
/// two addresses at once, never a service identity in an interactive shell.
#[derive(Debug, Default)]
pub(crate) struct UniqueIdentity {
    live: BTreeMap<String, Live>,
    /// Sessions already counted as an exception at their start.
    flagged: std::collections::BTreeSet<String>,
    starts: BTreeMap<String, u64>,
}

impl Check for UniqueIdentity {
    fn wants(&self, action: &str) -> bool {
        matches!(action, "ssh.session.start" | "ssh.session.end")
    }

    fn see(&mut self, e: &AuditEvent, tally: &mut Tally) {
        if !succeeded(e) {
            return;
        }
        match e.action.as_str() {
            "ssh.session.start" => {
                let Some(session) = text(e, "session") else {
                    return;
                };
                self.starts.insert(session.to_owned(), e.seq);
                let Some(user) = person(e) else {
                    return;
                };
                let elsewhere = self
                    .live
                    .values()
                    .find(|l| l.user == user && l.source != e.source);
                if let Some(other) = elsewhere {
                    tally.item(exception(
                        format!("user:{user}"),
                        e.time,
                        vec![other.seq, e.seq],
                        format!(
                            "one account live from two places at once: {} and {}",
                            other.source.as_deref().unwrap_or("unknown"),
                            e.source.as_deref().unwrap_or("unknown")
                        ),
                    ));
                    self.flagged.insert(session.to_owned());
                }
                self.live.insert(
                    session.to_owned(),
                    Live {
                        user: user.to_owned(),
                        source: e.source.clone(),
                        seq: e.seq,
                    },
                );
            }
            "ssh.session.end" => {
                let Some(session) = text(e, "session") else {
                    return;
                };
                self.live.remove(session);
                let start = self.starts.remove(session);
                if self.flagged.remove(session) {
                    return;
                }
                let principal = text(e, "principal").unwrap_or("?");
                let seqs = start.into_iter().chain([e.seq]).collect();
                let shell = crate::event::list(e, "recordings")
                    .iter()
                    .any(|r| r.get("kind").and_then(|k| k.as_str()) == Some("shell"));
                if shell && principal.starts_with("service:") {
                    tally.item(exception(
                        principal,
                        e.time,
                        seqs,
                        "a service identity opened an interactive shell: people need their own account",
                    ));
                } else {
                    tally.item(ok(principal, e.time, seqs));
                }
            }
            _ => {}
        }
    }

    fn finish(&self, _end: &End<'_>, _tally: &mut Tally) {}
}
