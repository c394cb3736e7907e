//! Compliance benchmark (issue 23), the computation without the database: a year of a
//! 1,000-person company (about 5,000,000 audit events of the kinds Warden writes: sign-ins
//! with passkeys, SSH sessions, certificates, grants, reviews, joiners and leavers, policy
//! applies, findings' clocks, and the reads and refusals no test looks at) run through every
//! test of both frameworks; then the evidence bundle for the last quarter of it made, zipped,
//! and verified offline, beside SHA-256 over the same events (the issue's yardstick).
//!
//! Run: `cargo bench -p warden-compliance --bench compliance -- [events per year]`

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    reason = "a benchmark"
)]

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};
use sha2::Digest;
use warden_audit::{
    AuditEvent, Checkpoint, ExportLine, FORMAT, Frontier, Hash, HexHash, NodeId, Outcome,
    SigningKey, inclusion_proof,
};
use warden_compliance::bundle::{self, ContextEvent, Evidence, context_needed};
use warden_compliance::{
    CheckpointSeen, Framework, Observations, Parameters, Period, Settings, TestId, evaluate,
};

const PEOPLE: u64 = 1_000;
const GROUPS: u64 = 50;
const DAY: i64 = 86_400_000;
const START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const ORIGIN: &str = "bench.example/audit";

/// A deterministic generator (xorshift), so every run sees the same year.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Year {
    events: Vec<AuditEvent>,
}

impl Year {
    fn push(&mut self, time: i64, actor: Value, action: &str, target: String, details: Value) {
        let label = match actor.get("name").and_then(Value::as_str) {
            Some(n) => format!("user:{n}"),
            None => actor["kind"].as_str().unwrap_or("system").to_owned(),
        };
        let seq = self.events.len() as u64 + 1;
        self.events.push(AuditEvent {
            seq,
            time,
            actor,
            actor_label: label,
            auth: "web_session".into(),
            action: action.into(),
            target,
            outcome: Outcome::Success,
            reason: None,
            request_id: format!("r{seq}"),
            source: None,
            details,
        });
    }
}

fn person(n: u64, session: &str) -> Value {
    json!({"kind": "user", "name": format!("p{n}"), "token_id": format!("session:{session}")})
}

/// About `target` events over a year.
fn year(target: u64) -> Vec<AuditEvent> {
    let mut y = Year {
        events: Vec::with_capacity(usize::try_from(target).unwrap() + 100_000),
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let system = json!({"kind": "system"});
    y.push(
        START,
        system.clone(),
        "policy.apply",
        "policy:v1".into(),
        json!({"version": 1, "tests": 40}),
    );
    for g in 0..GROUPS {
        y.push(
            START + 1,
            json!({"kind": "operator"}),
            "group.create",
            format!("group:g{g}"),
            json!({}),
        );
    }
    for p in 0..PEOPLE {
        y.push(
            START + 2,
            json!({"kind": "operator"}),
            "user.create",
            format!("user:p{p}"),
            json!({}),
        );
        y.push(
            START + 3 + i64::try_from(p).unwrap(),
            person(p, &format!("e{p}")),
            "passkey.register",
            format!("passkey:c{p}"),
            json!({"session": format!("e{p}")}),
        );
    }
    // Per event a person makes in a day: the per-day budget that gives `target` a year.
    let per_day = target / 365;
    let mut policy = 1;
    for day in 0..365i64 {
        let base = START + day * DAY;
        let mut made = 0;
        let mut n = 0u64;
        while made < per_day {
            n += 1;
            let t = base + i64::try_from(rng.below(u64::try_from(DAY).unwrap() - 60_000)).unwrap();
            let p = rng.below(PEOPLE);
            let sid = format!("d{day}n{n}");
            match rng.below(10) {
                // A sign-in: the IdP, then the passkey.
                0 | 1 => {
                    y.push(
                        t,
                        json!({"kind": "anonymous"}),
                        "auth.login",
                        format!("idp:okta:{p}"),
                        json!({"method": "oidc:okta", "session": sid}),
                    );
                    y.push(
                        t + 900,
                        person(p, &sid),
                        "auth.passkey",
                        format!("passkey:c{p}"),
                        json!({"session": sid}),
                    );
                    made += 2;
                }
                // An SSH session through the proxy, with its certificate and recording.
                2..=4 => {
                    let actor = json!({"kind": "user", "name": format!("p{p}"), "token_id": "t", "role": "member"});
                    y.push(
                        t,
                        actor.clone(),
                        "ssh.issue",
                        format!("ssh-cert:{n}"),
                        json!({"kind": "user", "key_id": format!("session:{sid} user:p{p}")}),
                    );
                    y.push(
                        t + 10,
                        actor,
                        "ssh.session.start",
                        format!("host:h{}", p % 300),
                        json!({"session": sid, "login": "deploy"}),
                    );
                    y.push(t + 600_000, system.clone(), "ssh.session.end", format!("host:h{}", p % 300), json!({"session": sid, "principal": format!("user:p{p}"), "recordings": [], "recording_failures": []}));
                    made += 3;
                }
                // What no test reads: API reads, certificates for hosts, refusals.
                _ => {
                    y.push(
                        t,
                        json!({"kind": "host", "name": format!("h{}", p % 300)}),
                        "x509.issue",
                        format!("x509:{n}"),
                        json!({}),
                    );
                    made += 1;
                }
            }
        }
        // A few grants a day, approved by someone else, expiring on time.
        for g in 0..3u64 {
            let t = base + 3_600_000 * i64::try_from(g + 9).unwrap();
            let who = rng.below(PEOPLE);
            let by = (who + 1 + rng.below(PEOPLE - 1)) % PEOPLE;
            let grant = format!("d{day}g{g}");
            let expires = t + 3_600_000;
            let at = warden_model::Timestamp::from_millis(expires).rfc3339_millis();
            y.push(t, person(by, "a"), "access.approve", format!("request:{grant}"), json!({"requester": format!("p{who}"), "group": format!("g{}", who % GROUPS), "grant": grant, "expires_at": at}));
            y.push(
                expires + 400,
                system.clone(),
                "grant.expire",
                format!("user:p{who}"),
                json!({"grant": grant}),
            );
        }
        // Quarterly reviews of every group; policy changes weekly; joiners and leavers.
        if day % 91 == 30 {
            for g in 0..GROUPS {
                let id = format!("q{day}g{g}");
                y.push(
                    base + 1000,
                    json!({"kind": "operator"}),
                    "review.create",
                    format!("review:{id}"),
                    json!({"scope": format!("groups:g{g}"), "items": 1}),
                );
                y.push(
                    base + 2000,
                    person(g, "r"),
                    "review.keep",
                    format!("review:{id}"),
                    json!({"items": [1]}),
                );
            }
        }
        if day % 7 == 3 {
            policy += 1;
            y.push(
                base + 5000,
                person(1, "pol"),
                "policy.apply",
                format!("policy:v{policy}"),
                json!({"version": policy, "tests": 40}),
            );
        }
        if day % 3 == 0 {
            let p = PEOPLE + u64::try_from(day).unwrap();
            y.push(
                base + 6000,
                json!({"kind": "token", "name": "okta", "role": "scim"}),
                "user.create",
                format!("user:p{p}"),
                json!({"via": "scim"}),
            );
            y.push(
                base + 7000,
                person(p, "j"),
                "passkey.register",
                format!("passkey:j{p}"),
                json!({"session": "j"}),
            );
            // A leaver: the person who joined 30 days before (and only enrolled).
            if day >= 30 {
                y.push(
                    base + 8000,
                    json!({"kind": "token", "name": "okta", "role": "scim"}),
                    "user.disable",
                    format!("user:p{}", p - 30),
                    json!({"via": "scim"}),
                );
            }
        }
        for f in 0..20u64 {
            y.push(
                base + 9000,
                system.clone(),
                "vuln.sla.half",
                format!("finding:{day}-{f}"),
                json!({"severity": "high"}),
            );
        }
    }
    // Each person works from one address.
    for e in &mut y.events {
        if let Some(name) = e.actor.get("name").and_then(Value::as_str) {
            let n: u64 = name.trim_start_matches('p').parse().unwrap_or(0);
            e.source = Some(format!("10.{}.{}.{}", n / 65_536, (n / 256) % 256, n % 256));
        }
    }
    y.events.sort_by_key(|e| e.time);
    for (i, e) in y.events.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
    }
    y.events
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "verify") {
        verify_only(std::path::Path::new(&args[at + 1]));
        return;
    }
    let target: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let made = Instant::now();
    let events = year(target);
    println!(
        "workload: {} audit events over 2026 for {PEOPLE} people (generated in {:.1} s)",
        events.len(),
        made.elapsed().as_secs_f64()
    );
    let observations = Observations {
        settings: Some(Settings {
            web_idle: 1_800_000,
            web_lifetime: 43_200_000,
            ssh_idle: Some(3_600_000),
            ssh_session: Some(DAY),
        }),
        checkpoints: Vec::new(),
        recordings: BTreeMap::new(),
    };
    let end = START + 365 * DAY;
    let whole = Period::recorded(START, end).unwrap();
    for _ in 0..2 {
        let began = Instant::now();
        let results = evaluate(
            &TestId::ALL,
            &events,
            whole,
            Parameters::default(),
            observations.clone(),
            false,
        );
        let took = began.elapsed().as_secs_f64();
        let summary: Vec<String> = results
            .iter()
            .map(|r| format!("{} {}/{}", r.id, r.exception_count, r.population))
            .collect();
        println!(
            "status, every test of both frameworks over the year: {took:.2} s ({:.2} M events/s); exceptions/population: {}",
            events.len() as f64 / took / 1e6,
            summary.join(", ")
        );
    }
    kept(&events, &observations, end);
    quarter(&events, observations, end);
}

/// The server's kept evaluator of the default period (from the midnight 90 days before the
/// end): built once over the year, then brought up to date with 700 new events and asked
/// as of now, five times, and moved a day on.
fn kept(events: &[AuditEvent], observations: &Observations, end: i64) {
    let held = 3_500;
    let (built, new) = events.split_at(events.len() - held);
    let from = end - 90 * DAY;
    let from = from - from.rem_euclid(DAY) - DAY;
    let began = Instant::now();
    let mut kept = warden_compliance::Evaluator::new(
        &TestId::ALL,
        Period::open(from),
        Parameters::default(),
        Observations::default(),
        false,
    );
    for e in built {
        kept.push(e);
    }
    let build = began.elapsed().as_secs_f64();
    let mut rounds = Vec::new();
    for chunk in new.chunks(700) {
        let began = Instant::now();
        for e in chunk {
            kept.push(e);
        }
        let to = chunk.last().unwrap().time + 1;
        let results = kept.results_at(to, observations);
        rounds.push(began.elapsed().as_secs_f64());
        assert_eq!(results.len(), TestId::ALL.len());
    }
    rounds.sort_by(f64::total_cmp);
    let began = Instant::now();
    assert!(kept.start_at(from + DAY));
    let moved = began.elapsed().as_secs_f64();
    println!(
        "kept evaluator of the default period (the last 90 days from midnight): built over {} events in {build:.2} s; then 700 new events and every test as of now, 5 rounds: median {:.1} ms, max {:.1} ms; moved a day on in {:.1} ms",
        built.len(),
        rounds[2] * 1e3,
        rounds[4] * 1e3,
        moved * 1e3
    );
}

/// One offline verification of a zipped bundle, timed, beside SHA-256 over its events.
struct Checked {
    unzipped: f64,
    checked: f64,
    sha: f64,
    /// Only reading the events' JSON (serde_json, nothing kept), on two cores: a floor for
    /// any verifier that reads them.
    scanned: f64,
    events: u64,
    tests: usize,
}

fn verify_timed(zip: &[u8], key: &SigningKey) -> Checked {
    let began = Instant::now();
    let back = bundle::from_zip(zip).unwrap();
    let unzipped = began.elapsed().as_secs_f64();
    let began = Instant::now();
    let verified = bundle::verify(&back, &key.verifier()).unwrap();
    let checked = began.elapsed().as_secs_f64();
    let began = Instant::now();
    let digest = sha2::Sha256::digest(&back["events/period.jsonl"]);
    let sha = began.elapsed().as_secs_f64();
    assert_ne!(digest.len(), 0);
    let began = Instant::now();
    let lines: Vec<&[u8]> = back["events/period.jsonl"].split(|b| *b == b'\n').collect();
    let (head, tail) = lines.split_at(lines.len() / 2);
    let scan = |lines: &[&[u8]]| {
        lines
            .iter()
            .filter(|l| serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok())
            .count()
    };
    let read = std::thread::scope(|scope| {
        let other = scope.spawn(|| scan(tail));
        scan(head) + other.join().unwrap()
    });
    let scanned = began.elapsed().as_secs_f64();
    assert!(read as u64 >= verified.events);
    Checked {
        unzipped,
        checked,
        sha,
        scanned,
        events: verified.events,
        tests: verified.results.len(),
    }
}

/// Verifies a bundle kept by an earlier run (`WARDEN_BENCH_KEEP=PATH`), three times, beside
/// SHA-256 over its events: for profiling the verifier alone.
fn verify_only(path: &std::path::Path) {
    let key = SigningKey::from_seed(ORIGIN, &[5u8; 32]).unwrap();
    let zip = std::fs::read(path).unwrap();
    for _ in 0..3 {
        let c = verify_timed(&zip, &key);
        println!(
            "unzip {:.2} s, verify and recompute {:.2} s ({} events); SHA-256 over the events {:.2} s, only reading their JSON on two cores {:.2} s: {:.3}x SHA-256 (verify alone {:.3}x)",
            c.unzipped,
            c.checked,
            c.events,
            c.sha,
            c.scanned,
            c.sha / (c.unzipped + c.checked),
            c.sha / c.checked
        );
    }
}

/// The bundle for the year's last quarter: made, zipped, unzipped, verified.
fn quarter(events: &[AuditEvent], mut observations: Observations, end: i64) {
    let key = SigningKey::from_seed(ORIGIN, &[5u8; 32]).unwrap();
    let period = Period::recorded(end - 92 * DAY, end).unwrap();
    let params = Parameters::default();
    let began = Instant::now();
    let mut tree = Frontier::new();
    let mut nodes = BTreeMap::new();
    let first = events
        .iter()
        .find(|e| e.time >= period.from().as_millis())
        .unwrap()
        .seq;
    let mut prefix = tree.clone();
    for e in events {
        if e.seq == first {
            prefix = tree.clone();
        }
        nodes.extend(tree.push(e.leaf_hash()));
    }
    let size = events.len() as u64;
    let note = key.sign(&Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: tree.root(),
    });
    println!(
        "log tree of {size} events built in {:.1} s (the server has it already)",
        began.elapsed().as_secs_f64()
    );

    let began = Instant::now();
    let export_head = vec![
        ExportLine::Header {
            format: FORMAT.into(),
            origin: ORIGIN.into(),
            first_seq: first,
            last_seq: size,
            filter: None,
        },
        ExportLine::Prefix {
            size: first - 1,
            frontier: prefix.nodes().iter().map(|h| HexHash(*h)).collect(),
        },
        ExportLine::Checkpoint {
            note,
            consistency: Vec::new(),
        },
    ];
    // The server reads each event with the leaf hash it recorded.
    let period_events: Vec<(AuditEvent, Hash)> = events[usize::try_from(first - 1).unwrap()..]
        .iter()
        .map(|e| (e.clone(), e.leaf_hash()))
        .collect();
    let context: Vec<ContextEvent> = events[..usize::try_from(first - 1).unwrap()]
        .iter()
        .filter(|e| context_needed(e, period, &params))
        .map(|e| ContextEvent {
            event: e.clone(),
            size,
            proof: inclusion_proof(e.seq - 1, size, |id: NodeId| nodes.get(&id).copied())
                .unwrap()
                .into_iter()
                .map(HexHash)
                .collect(),
        })
        .collect();
    observations.checkpoints = vec![CheckpointSeen {
        size,
        time: end - 1,
        consistent: true,
    }];
    let gathered = began.elapsed().as_secs_f64();
    let evidence = Evidence {
        framework: Framework::Soc2,
        period,
        generated_at: end,
        parameters: params,
        observations,
        export_head,
        events: period_events,
        context,
    };
    let context_events = evidence.context.len();
    // The events arrive in pages of 5,000, as the server reads them.
    let mut pages: Vec<Vec<_>> = Vec::new();
    let mut rest = evidence.events.into_iter();
    loop {
        let page: Vec<_> = rest.by_ref().take(5000).collect();
        if page.is_empty() {
            break;
        }
        pages.push(page);
    }
    let began = Instant::now();
    let mut builder = bundle::Builder::new(Evidence {
        events: Vec::new(),
        ..evidence
    });
    for page in pages {
        builder.push(page).unwrap();
    }
    let zip = builder.finish(&key).unwrap();
    let built = began.elapsed().as_secs_f64();
    let event_bytes = bundle::from_zip(&zip).unwrap()["events/period.jsonl"].len();
    if let Some(keep) = std::env::var_os("WARDEN_BENCH_KEEP") {
        std::fs::write(keep, &zip).unwrap();
    }
    println!(
        "bundle for Q4 ({} events in the period, {} context events, {:.0} MB of events): gathered {gathered:.1} s, built from pages of 5,000 (results, files, zip) {built:.1} s to {:.0} MB: {:.1} s in all",
        size - first + 1,
        context_events,
        event_bytes as f64 / 1e6,
        zip.len() as f64 / 1e6,
        gathered + built
    );

    let c = verify_timed(&zip, &key);
    println!(
        "offline verification: unzip {:.1} s, verify and recompute {:.1} s ({} events, {} tests); SHA-256 over the same events {:.2} s ({:.0} MB/s), only reading their JSON on two cores {:.2} s: verification runs at {:.3}x SHA-256's speed (target at least 0.5x)",
        c.unzipped,
        c.checked,
        c.events,
        c.tests,
        c.sha,
        event_bytes as f64 / c.sha / 1e6,
        c.scanned,
        c.sha / (c.unzipped + c.checked)
    );
}
