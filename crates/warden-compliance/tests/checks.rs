//! Each test over events shaped as Warden's log writes them: a passing item and each planted
//! exception found by name, and a property that no sequence of events makes a test panic or
//! count inconsistently.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test assertions"
)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};
use warden_audit::{AuditEvent, Outcome};
use warden_compliance::{
    CheckpointSeen, Observations, Parameters, Period, RecordingState, Settings, TestId, TestResult,
    evaluate,
};

const T0: i64 = 1_790_000_000_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// Builds a log: each event gets the next sequence number.
#[derive(Default)]
struct Log(Vec<AuditEvent>);

impl Log {
    fn add(&mut self, time: i64, actor: Value, action: &str, target: &str, details: Value) -> u64 {
        let seq = self.0.len() as u64 + 1;
        let label = match actor.get("kind").and_then(Value::as_str) {
            Some("user") => format!("user:{}", actor["name"].as_str().unwrap()),
            Some(other) => other.to_owned(),
            None => "anonymous".to_owned(),
        };
        self.0.push(AuditEvent {
            seq,
            time,
            actor,
            actor_label: label,
            auth: "none".into(),
            action: action.into(),
            target: target.into(),
            outcome: Outcome::Success,
            reason: None,
            request_id: format!("r{seq}"),
            source: Some("127.0.0.1".into()),
            details,
        });
        seq
    }

    fn run(&self, id: TestId, end: i64, observations: Observations) -> TestResult {
        let params = Parameters {
            review_every: 30 * DAY,
            ..Parameters::default()
        };
        let period = Period::recorded(T0, end).unwrap();
        evaluate(&[id], &self.0, period, params, observations, true)
            .pop()
            .unwrap()
    }
}

fn person(name: &str) -> Value {
    json!({"kind": "user", "name": name, "token_id": "t1", "role": "admin"})
}

fn in_session(name: &str, session: &str) -> Value {
    json!({"kind": "user", "name": name, "token_id": format!("session:{session}")})
}

fn system() -> Value {
    json!({"kind": "system"})
}

fn operator() -> Value {
    json!({"kind": "operator"})
}

fn host(name: &str) -> Value {
    json!({"kind": "host", "name": name, "method": "mutual_tls"})
}

fn anonymous() -> Value {
    json!({"kind": "anonymous"})
}

fn reasons(r: &TestResult) -> Vec<(String, String)> {
    r.exceptions
        .iter()
        .map(|i| (i.subject.clone(), i.exception.clone().unwrap()))
        .collect()
}

#[test]
fn signin_passkey_finds_a_session_that_acted_before_its_passkey() {
    let mut log = Log::default();
    log.add(
        T0 + 1,
        anonymous(),
        "auth.login",
        "idp:dex:1",
        json!({"method": "oidc:dex", "session": "s1"}),
    );
    log.add(
        T0 + 2,
        in_session("alice", "s1"),
        "auth.passkey",
        "passkey:c1",
        json!({"session": "s1"}),
    );
    log.add(
        T0 + 3,
        anonymous(),
        "auth.login",
        "passkey:c1",
        json!({"session": "s2"}),
    );
    log.add(
        T0 + 4,
        anonymous(),
        "auth.login",
        "idp:dex:2",
        json!({"method": "oidc:dex", "session": "s3"}),
    );
    log.add(
        T0 + 5,
        in_session("bob", "s3"),
        "access.request",
        "group:ops",
        json!({}),
    );
    log.add(
        T0 + 6,
        anonymous(),
        "auth.login",
        "passkey:c9",
        json!({"session": "s4", "user_verified": false}),
    );
    let r = log.run(TestId::SigninPasskey, T0 + HOUR, Observations::default());
    assert_eq!(r.population, 4);
    assert_eq!(
        reasons(&r),
        [
            (
                "user:bob".to_owned(),
                "a browser session acted (`access.request`) before a passkey proved it".to_owned()
            ),
            (
                "passkey:c9".to_owned(),
                "the passkey was used without user verification".to_owned()
            ),
        ]
    );
}

#[test]
fn passkey_enrollment_counts_the_window_from_the_account() {
    let mut log = Log::default();
    log.add(T0, person("admin"), "user.create", "user:alice", json!({}));
    log.add(T0, person("admin"), "user.create", "user:bob", json!({}));
    log.add(
        T0 + DAY,
        in_session("alice", "s"),
        "passkey.register",
        "passkey:c",
        json!({"session": "s"}),
    );
    log.add(
        T0 + 2 * DAY,
        person("admin"),
        "user.create",
        "user:carol",
        json!({}),
    );
    let r = log.run(
        TestId::PasskeyEnrollment,
        T0 + 8 * DAY,
        Observations::default(),
    );
    assert_eq!(
        reasons(&r),
        [(
            "user:bob".to_owned(),
            "no passkey within 7 days of the account being made".to_owned()
        )]
    );
    assert_eq!((r.population, r.pending), (2, 1));
    assert_eq!(r.items[0].measure, Some(DAY));
}

#[test]
fn leavers_are_timed_from_the_disable_to_the_last_session_closed() {
    let mut log = Log::default();
    log.add(
        T0,
        person("carol"),
        "ssh.session.start",
        "host:db",
        json!({"session": "a"}),
    );
    log.add(
        T0 + MIN,
        person("okta"),
        "user.disable",
        "user:carol",
        json!({"via": "scim"}),
    );
    log.add(
        T0 + MIN + 2 * HOUR,
        system(),
        "ssh.session.end",
        "host:db",
        json!({"session": "a", "principal": "user:carol"}),
    );
    log.add(
        T0 + 3 * HOUR,
        person("okta"),
        "user.disable",
        "user:dave",
        json!({"via": "scim"}),
    );
    log.add(
        T0 + 4 * HOUR,
        person("okta"),
        "user.disable",
        "user:erin",
        json!({"via": "scim"}),
    );
    log.add(
        T0 + 4 * HOUR + 5 * MIN,
        in_session("erin", "s"),
        "access.request",
        "group:ops",
        json!({}),
    );
    let r = log.run(TestId::LeaverDeprovision, T0 + DAY, Observations::default());
    assert_eq!(
        reasons(&r),
        [
            (
                "user:carol".to_owned(),
                "the last SSH session closed 2 h after the disable (limit 1 h)".to_owned()
            ),
            (
                "user:erin".to_owned(),
                "used after being disabled: `access.request` 5 min later".to_owned()
            ),
        ]
    );
    assert_eq!(r.population, 3);
    let dave = r.items.iter().find(|i| i.subject == "user:dave").unwrap();
    assert_eq!(dave.measure, Some(0));
}

#[test]
fn grants_need_another_person_and_an_end_on_time() {
    let mut log = Log::default();
    let approve = |grant: &str, requester: &str, expires: &str| json!({"requester": requester, "group": "ops", "grant": grant, "expires_at": expires, "approvals": 1, "needed": 1});
    log.add(
        T0,
        person("bob"),
        "access.approve",
        "request:1",
        approve("g1", "alice", "2026-09-22T13:00:00.000Z"),
    );
    log.add(
        T0,
        json!({"kind": "operator"}),
        "access.approve",
        "request:2",
        approve("g2", "carol", "2026-09-22T13:00:00.000Z"),
    );
    let expires = 1_790_082_000_000; // 2026-09-21T13:00:00Z
    log.add(
        expires + 500,
        system(),
        "grant.expire",
        "user:alice",
        json!({"grant": "g1"}),
    );
    log.add(
        expires + 5 * MIN,
        system(),
        "grant.expire",
        "user:carol",
        json!({"grant": "g2"}),
    );
    let approval = log.run(TestId::GrantApproval, T0 + DAY, Observations::default());
    assert_eq!(
        reasons(&approval),
        [(
            "grant:g2".to_owned(),
            "approved by `operator`, not by a named person".to_owned()
        )]
    );
    let expiry = log.run(TestId::GrantExpiry, T0 + DAY, Observations::default());
    assert_eq!(
        reasons(&expiry),
        [(
            "grant:g2".to_owned(),
            "`carol` in `ops` ended 5 min late (grace 1 min)".to_owned()
        )]
    );
    assert_eq!(expiry.population, 2);
}

#[test]
fn an_unreviewed_group_and_an_unverified_revocation_are_exceptions() {
    let mut log = Log::default();
    log.add(T0, person("admin"), "group.create", "group:ops", json!({}));
    log.add(T0, person("admin"), "group.create", "group:web", json!({}));
    log.add(
        T0 + DAY,
        person("admin"),
        "review.create",
        "review:q1",
        json!({"scope": "groups:ops", "items": 2}),
    );
    log.add(
        T0 + 2 * DAY,
        person("rita"),
        "review.keep",
        "review:q1",
        json!({"items": [1]}),
    );
    log.add(
        T0 + 2 * DAY,
        person("rita"),
        "review.revoke",
        "review:q1",
        json!({"items": [2], "revoked": ["alice:ops"]}),
    );
    let r = log.run(TestId::AccessReview, T0 + 31 * DAY, Observations::default());
    assert_eq!(
        reasons(&r),
        [
            (
                "review:q1 item 2".to_owned(),
                "a revocation was never verified".to_owned()
            ),
            (
                "group:web".to_owned(),
                "no completed review for 31 days (interval 30 days)".to_owned()
            ),
        ]
    );
    assert!(
        r.items
            .iter()
            .any(|i| i.subject == "group:ops" && i.exception.is_none())
    );
}

#[test]
fn a_review_campaign_past_its_due_date_is_an_exception() {
    let mut log = Log::default();
    log.add(T0, person("admin"), "group.create", "group:ops", json!({}));
    log.add(
        T0 + DAY,
        person("admin"),
        "review.create",
        "review:late",
        json!({"scope": "groups:ops", "items": 3, "due_at": "2026-09-23T14:13:20.000Z"}),
    );
    log.add(
        T0 + DAY,
        person("admin"),
        "review.create",
        "review:open",
        json!({"scope": "groups:ops", "items": 2, "due_at": "2026-09-30T00:00:00.000Z"}),
    );
    log.add(
        T0 + 2 * DAY,
        person("rita"),
        "review.keep",
        "review:late",
        json!({"items": [1]}),
    );
    let r = log.run(TestId::AccessReview, T0 + 3 * DAY, Observations::default());
    assert_eq!(
        reasons(&r),
        [(
            "review:late".to_owned(),
            "missed its due date: 2 of 3 item(s) undecided".to_owned()
        )]
    );
    // The campaign still open before its due date is pending, as is the group's next review.
    assert_eq!(r.pending, 2);
}

#[test]
fn a_session_recording_damaged_lost_or_unchecked_is_an_exception() {
    let mut log = Log::default();
    let recording =
        |file: &str| json!([{"file": file, "sha256": "00", "kind": "shell", "transcript": null}]);
    for (i, s) in ["ok", "bad", "lost", "unchecked"].iter().enumerate() {
        let at = T0 + i64::try_from(i).unwrap() * MIN;
        log.add(
            at,
            person("alice"),
            "ssh.session.start",
            "host:db",
            json!({"session": s}),
        );
    }
    log.add(
        T0 + HOUR,
        system(),
        "ssh.session.end",
        "host:db",
        json!({"session": "ok", "recordings": recording("ok.rec")}),
    );
    log.add(
        T0 + HOUR,
        system(),
        "ssh.session.end",
        "host:db",
        json!({"session": "bad", "recordings": recording("bad.rec")}),
    );
    log.add(T0 + HOUR, system(), "ssh.session.end", "host:db", json!({"session": "lost", "recordings": [], "reason": "its proxy (p1) stopped: its lease ran out at 2026-09-22T13:00:00.000Z"}));
    log.add(
        T0 + HOUR,
        system(),
        "ssh.session.end",
        "host:db",
        json!({"session": "unchecked", "recordings": recording("x.rec")}),
    );
    let observations = Observations {
        recordings: BTreeMap::from([
            ("ok.rec".to_owned(), RecordingState::Intact),
            (
                "bad.rec".to_owned(),
                RecordingState::Damaged {
                    sha256: "ff".into(),
                },
            ),
        ]),
        ..Observations::default()
    };
    let r = log.run(TestId::SshRecorded, T0 + DAY, observations);
    assert_eq!(r.population, 4);
    assert_eq!(
        reasons(&r)
            .into_iter()
            .map(|(_, why)| why)
            .collect::<Vec<_>>(),
        [
            "recording `bad.rec` is damaged: its SHA-256 is now ff",
            "no recording: its proxy (p1) stopped: its lease ran out at 2026-09-22T13:00:00.000Z",
            "recording `x.rec` was not checked",
        ]
    );
}

#[test]
fn policy_versions_need_tests_and_no_gaps() {
    let mut log = Log::default();
    log.add(
        T0,
        system(),
        "policy.apply",
        "policy:v1",
        json!({"version": 1, "tests": 12}),
    );
    log.add(
        T0 + 1,
        person("admin"),
        "policy.apply",
        "policy:v2",
        json!({"version": 2, "tests": 0}),
    );
    log.add(
        T0 + 2,
        person("admin"),
        "policy.apply",
        "policy:v4",
        json!({"version": 4, "tests": 3}),
    );
    let r = log.run(TestId::PolicyChange, T0 + DAY, Observations::default());
    assert_eq!(
        reasons(&r),
        [
            (
                "policy:v2".to_owned(),
                "applied with no policy tests".to_owned()
            ),
            (
                "policy:v4".to_owned(),
                "follows v2: the versions between are missing from the log".to_owned()
            ),
        ]
    );
}

#[test]
fn a_breached_finding_is_an_exception_and_an_accepted_one_is_not() {
    let mut log = Log::default();
    log.add(
        T0,
        system(),
        "vuln.sla.half",
        "finding:1",
        json!({"severity": "critical", "due_at": "2026-09-22T00:00:00.000Z"}),
    );
    log.add(T0 + HOUR, system(), "vuln.sla.breach", "finding:1", json!({"asset": "web", "advisory": "CVE-1", "severity": "critical", "due_at": "2026-09-22T00:00:00.000Z"}));
    log.add(
        T0,
        system(),
        "vuln.sla.half",
        "finding:2",
        json!({"severity": "high"}),
    );
    log.add(
        T0 + HOUR,
        person("rita"),
        "vuln.accept",
        "finding:2",
        json!({"until": "2026-12-01T00:00:00.000Z", "reason": "no fix yet"}),
    );
    // A finding found without a fix: its clock starts when the fix is published, and it is
    // in the population from then, met so far.
    log.add(
        T0 + 2 * HOUR,
        system(),
        "vuln.fix.available",
        "finding:3",
        json!({"severity": "high", "fixed_in": "1.3", "due_at": "2026-09-29T00:00:00.000Z"}),
    );
    let r = log.run(TestId::VulnSla, T0 + DAY, Observations::default());
    assert_eq!(
        reasons(&r),
        [(
            "finding:1".to_owned(),
            "critical `CVE-1` on `web` passed its due date 2026-09-22T00:00:00.000Z without a fix or an acceptance".to_owned()
        )]
    );
    assert_eq!(r.population, 3);
}

#[test]
fn the_log_needs_every_event_under_a_timely_consistent_checkpoint() {
    let mut log = Log::default();
    log.add(T0, system(), "user.create", "user:a", json!({}));
    log.add(T0 + MIN, system(), "user.create", "user:b", json!({}));
    log.add(T0 + 2 * HOUR, system(), "user.create", "user:c", json!({}));
    log.0.push(AuditEvent {
        seq: 5,
        ..log.0[2].clone()
    });
    let observations = Observations {
        checkpoints: vec![
            CheckpointSeen {
                size: 1,
                time: T0 + 10_000,
                consistent: true,
            },
            CheckpointSeen {
                size: 3,
                time: T0 + 3 * HOUR,
                consistent: true,
            },
            CheckpointSeen {
                size: 5,
                time: T0 + 3 * HOUR,
                consistent: false,
            },
        ],
        ..Observations::default()
    };
    let r = log.run(TestId::AuditIntegrity, T0 + DAY, observations);
    assert_eq!(
        reasons(&r),
        [
            (
                "checkpoint:3".to_owned(),
                "signed 3.0 h after the oldest event it covers (limit 1 h)".to_owned()
            ),
            (
                "events 4–4".to_owned(),
                "events are missing from the log".to_owned()
            ),
            (
                "checkpoint:5".to_owned(),
                "its signature does not verify, or it does not extend the checkpoint before"
                    .to_owned()
            ),
        ]
    );
}

#[test]
fn session_limits_need_the_settings_and_sessions_within_them() {
    let mut log = Log::default();
    log.add(
        T0,
        person("alice"),
        "ssh.session.start",
        "host:db",
        json!({"session": "long"}),
    );
    log.add(
        T0 + 30 * HOUR,
        system(),
        "ssh.session.end",
        "host:db",
        json!({"session": "long"}),
    );
    let observations = Observations {
        settings: Some(Settings {
            web_idle: 30 * MIN,
            web_lifetime: 12 * HOUR,
            ssh_idle: Some(HOUR),
            ssh_session: None,
        }),
        ..Observations::default()
    };
    let r = log.run(TestId::SessionLimits, T0 + 2 * DAY, observations);
    assert_eq!(
        reasons(&r),
        [
            (
                "session:long".to_owned(),
                "lasted 30 h, over the maximum of 1 day".to_owned()
            ),
            (
                "settings".to_owned(),
                "`ssh.max_session` is off (limit 1 day)".to_owned()
            ),
        ]
    );
}

fn arb_event() -> impl Strategy<Value = (i64, u8, u8, u8, u8)> {
    (0..(3 * DAY), 0..16u8, 0..4u8, 0..4u8, 0..3u8)
}

const ACTIONS: [&str; 16] = [
    "auth.login",
    "auth.passkey",
    "passkey.register",
    "user.create",
    "user.disable",
    "user.enable",
    "ssh.session.start",
    "ssh.session.end",
    "access.approve",
    "grant.expire",
    "group.create",
    "review.create",
    "review.revoke",
    "review.verify",
    "policy.apply",
    "vuln.sla.breach",
];

/// A log of random events, well or badly shaped, in time order from `T0`.
fn random_log(mut raw: Vec<(i64, u8, u8, u8, u8)>) -> Log {
    let mut log = Log::default();
    raw.sort_by_key(|e| e.0);
    for (time, action, who, thing, shape) in raw {
        let name = ["alice", "bob", "carol", "dave"][usize::from(who)];
        let id = format!("{thing}");
        let details = match shape {
            0 => json!({"session": id, "grant": id, "requester": name, "group": "ops",
                "expires_at": "2026-09-22T13:00:00.000Z", "version": thing, "tests": thing,
                "items": [thing], "scope": "groups:*", "verified": [thing],
                "recordings": [{"file": format!("{thing}.cast")}]}),
            1 => json!(null),
            _ => json!({"session": 7, "items": "x", "expires_at": "soon"}),
        };
        let actor = if who == 3 {
            system()
        } else {
            in_session(name, &id)
        };
        log.add(
            T0 + time,
            actor,
            ACTIONS[usize::from(action)],
            &format!("user:{name}"),
            details,
        );
    }
    log
}

proptest! {
    /// Any sequence of events, well or badly shaped, gives each test a consistent count and
    /// the same result twice; nothing panics.
    #[test]
    fn any_events_give_consistent_results(raw in proptest::collection::vec(arb_event(), 0..80)) {
        let log = random_log(raw);
        let period = Period::recorded(T0 + DAY, T0 + 2 * DAY).unwrap();
        let run = || evaluate(&TestId::ALL, &log.0, period, Parameters::default(), Observations::default(), true);
        let results = run();
        prop_assert_eq!(&results, &run());
        for r in &results {
            prop_assert!(r.exception_count <= r.population);
            prop_assert_eq!(r.items.len() as u64, r.population);
            prop_assert_eq!(r.days.values().map(|d| d.0).sum::<u64>(), r.population);
            prop_assert!(r.items.iter().all(|i| period.holds(i.time)));
        }
    }

    /// An evaluator kept up to date (events pushed as they come, asked as of several ends,
    /// its start moved to later midnights) answers as a fresh evaluator of the same period.
    #[test]
    fn a_kept_evaluator_answers_as_a_fresh_one(
        raw in proptest::collection::vec(arb_event(), 0..80),
        mut asks in proptest::collection::vec(1..(4 * DAY), 1..5),
        moves in 0..3i64,
    ) {
        let log = random_log(raw);
        let n = log.0.len() as u64;
        let observations = Observations {
            settings: None,
            checkpoints: [(n / 3, 1), (2 * n / 3, 2)]
                .into_iter()
                .map(|(size, days)| CheckpointSeen {
                    size,
                    time: T0 + days * DAY,
                    consistent: days == 1,
                })
                .collect(),
            recordings: BTreeMap::from([
                ("0.cast".to_owned(), RecordingState::Intact),
                ("1.cast".to_owned(), RecordingState::Damaged { sha256: "00".into() }),
            ]),
        };
        let params = Parameters::default();
        let mut kept = warden_compliance::Evaluator::new(
            &TestId::ALL,
            Period::open(T0),
            params,
            Observations::default(),
            false,
        );
        let midnight = T0 - T0.rem_euclid(DAY) + DAY;
        let mut starts: Vec<i64> = (0..moves).map(|i| midnight + i * DAY).collect();
        starts.reverse();
        let mut from = T0;
        let mut next = 0;
        asks.sort_unstable();
        for ask in asks {
            let to = T0 + ask;
            while let Some(e) = log.0.get(next).filter(|e| e.time < to) {
                kept.push(e);
                next += 1;
            }
            if starts.last().is_some_and(|s| *s < to) {
                from = starts.pop().unwrap();
                prop_assert!(kept.start_at(from));
            }
            let period = Period::recorded(from, to).unwrap();
            let fresh = evaluate(&TestId::ALL, &log.0, period, params, observations.clone(), false);
            prop_assert_eq!(kept.results_at(to, &observations), fresh);
        }
    }
}

#[test]
fn an_emergency_access_is_an_exception_until_its_review_closes() {
    let mut log = Log::default();
    log.add(
        T0,
        operator(),
        "break_glass.create",
        "break-glass:bg1",
        json!({"shares": 3, "threshold": 2}),
    );
    for (id, recorded) in [("u1", true), ("u2", true), ("u3", false)] {
        let mut details = json!({"use": id, "host": "db-1", "login": "root"});
        if recorded {
            details["recording_sha256"] = json!("ab".repeat(32));
        }
        log.add(
            T0 + HOUR,
            host("db-1"),
            "break_glass.use",
            "break-glass:bg1",
            details,
        );
    }
    log.add(
        T0 + 2 * HOUR,
        person("rita"),
        "break_glass.review.close",
        "break-glass-use:u1",
        json!({"summary": "restored the database during the outage"}),
    );
    let r = log.run(TestId::EmergencyAccess, T0 + DAY, Observations::default());
    assert_eq!(
        reasons(&r),
        [
            (
                "break-glass-use:u2".to_owned(),
                "emergency access to `db-1` as `root` has no closed after-action review".to_owned()
            ),
            (
                "break-glass-use:u3".to_owned(),
                "emergency access to `db-1` as `root` has no recording".to_owned()
            ),
        ]
    );
    assert_eq!(r.population, 4);
}
