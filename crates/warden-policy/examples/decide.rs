//! Policy engine benchmark (issue 6 targets): 10,000 users in 100 groups, 1,000 hosts with
//! labels, 500 policies. Reports, in one run:
//! - loading (parse + strict validation) the 500 policies;
//! - Warden's decision path (`Policies::decide`: parse the request's names, build and check
//!   the context against the schema, evaluate), p50/p99;
//! - a bare `cedar-policy` evaluation of the same requests with everything prebuilt, p50/p99,
//!   and the ratio.
//!
//! Run: `cargo run --release -p warden-policy --example decide`
#![expect(
    clippy::too_many_lines,
    reason = "a benchmark reads top to bottom: setup, then each measurement"
)]
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a benchmark binary"
)]

use std::str::FromStr;
use std::time::{Duration, Instant};

use cedar_policy::{Authorizer, Context, EntityUid, PolicySet, Request};
use serde_json::json;
use warden_policy::{
    Directory, GroupEntry, HostEntry, Object, PolicyFile, Subject, UserEntry, load,
};

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a rank within the sample, p in 0..=1"
)]
fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn main() {
    let groups: Vec<String> = (0..100).map(|g| format!("team{g}")).collect();
    let dir = Directory {
        groups: groups
            .iter()
            .map(|g| GroupEntry { name: g.clone() })
            .collect(),
        users: (0..10_000)
            .map(|u| UserEntry {
                name: format!("u{u}"),
                groups: vec![groups[u % 100].clone()],
                role: None,
            })
            .collect(),
        hosts: (0..1_000)
            .map(|h| HostEntry {
                name: format!("h{h}"),
                labels: [
                    ("team".to_owned(), format!("team{}", h % 100)),
                    (
                        "env".to_owned(),
                        if h % 2 == 0 { "prod" } else { "dev" }.to_owned(),
                    ),
                ]
                .into(),
            })
            .collect(),
        services: Vec::new(),
    };
    // 500 policies: per team, a permit to its hosts with two logins, plus forbids.
    let mut text = String::new();
    for g in 0..100 {
        for login in ["deploy", "app", "ops", "debug"] {
            text.push_str(&format!(
                "permit (principal in Warden::Group::\"team{g}\", action == Warden::Action::\"ssh\", resource)\n\
                 when {{ resource.hasTag(\"team\") && resource.getTag(\"team\") == \"team{g}\" && context.login == \"{login}\" }};\n"
            ));
        }
        text.push_str(&format!(
            "forbid (principal in Warden::Group::\"team{g}\", action == Warden::Action::\"ssh\", resource)\n\
             when {{ context.login == \"root\" && resource.hasTag(\"env\") && resource.getTag(\"env\") == \"prod\" }};\n"
        ));
    }
    let files = [PolicyFile {
        name: "bench.cedar".into(),
        text: text.clone(),
    }];
    let t = Instant::now();
    let policies = load(&files).unwrap();
    let load_time = t.elapsed();
    assert_eq!(policies.len(), 500);
    let t = Instant::now();
    let entities = dir.entities(policies.schema()).unwrap();
    let entities_time = t.elapsed();

    let n = 20_000;
    let requests: Vec<(String, String, serde_json::Value)> = (0..n)
        .map(|i| {
            let u = (i * 7919) % 10_000;
            let h = (i * 104_729) % 1_000;
            let login = ["deploy", "root", "app", "nobody"][i % 4];
            (
                format!("Warden::User::\"u{u}\""),
                format!("Warden::Host::\"h{h}\""),
                json!({ "login": login }),
            )
        })
        .collect();
    let action = "Warden::Action::\"ssh\"";

    // A first pass builds the policy slices a running server keeps (one per team here); its
    // slowest decision is what a cold slice costs. The measured passes run warm.
    let mut cold = Vec::with_capacity(n);
    for (p, r, c) in &requests {
        let t = Instant::now();
        policies.decide(&entities, p, action, r, c).unwrap();
        cold.push(t.elapsed());
    }
    cold.sort();
    let mut warden = Vec::with_capacity(n);
    let mut allowed = 0;
    for (p, r, c) in &requests {
        let t = Instant::now();
        let d = policies.decide(&entities, p, action, r, c).unwrap();
        warden.push(t.elapsed());
        allowed += usize::from(d.allow);
    }

    // The server's path: the request's entities built from what Warden knows (the user and
    // their groups, the host and its labels), then decided.
    let prepared_server: Vec<(Subject, Object, serde_json::Value)> = (0..n)
        .map(|i| {
            let u = (i * 7919) % 10_000;
            let h = (i * 104_729) % 1_000;
            let login = ["deploy", "root", "app", "nobody"][i % 4];
            (
                Subject::User {
                    name: format!("u{u}"),
                    groups: vec![groups[u % 100].clone()],
                    role: None,
                },
                Object::Host {
                    name: format!("h{h}"),
                    labels: dir.hosts[h].labels.clone(),
                },
                json!({ "login": login }),
            )
        })
        .collect();
    let mut server = Vec::with_capacity(n);
    let mut server_allowed = 0;
    for (s, o, c) in &prepared_server {
        let t = Instant::now();
        let d = policies.decide_as(s, "ssh", o, c).unwrap();
        server.push(t.elapsed());
        server_allowed += usize::from(d.allow);
    }
    assert_eq!(allowed, server_allowed, "both Warden paths decide the same");
    server.sort();

    // Bare cedar-policy: the same requests built beforehand, evaluated on the same set.
    let bare_set = PolicySet::from_str(&text).unwrap();
    let schema = policies.schema().clone();
    let a = EntityUid::from_str(action).unwrap();
    let prepared: Vec<Request> = requests
        .iter()
        .map(|(p, r, c)| {
            let ctx = Context::from_json_value(c.clone(), Some((&schema, &a))).unwrap();
            Request::new(
                EntityUid::from_str(p).unwrap(),
                a.clone(),
                EntityUid::from_str(r).unwrap(),
                ctx,
                None,
            )
            .unwrap()
        })
        .collect();
    let authorizer = Authorizer::new();
    let mut bare = Vec::with_capacity(n);
    let mut bare_allowed = 0;
    for req in &prepared {
        let t = Instant::now();
        let resp = authorizer.is_authorized(req, &bare_set, &entities);
        bare.push(t.elapsed());
        bare_allowed += usize::from(resp.decision() == cedar_policy::Decision::Allow);
    }
    assert_eq!(allowed, bare_allowed, "both paths decide the same");

    // Bare cedar-policy on just the policies that can apply (the user's team's five), every
    // set and request built beforehand: what Warden's index does, minus Warden's own work.
    let team_sets: Vec<PolicySet> = (0..100)
        .map(|g| {
            let marker = format!("Warden::Group::\"team{g}\",");
            let team: Vec<&str> = text
                .split_inclusive(";\n")
                .filter(|p| p.contains(&marker))
                .collect();
            assert_eq!(team.len(), 5);
            PolicySet::from_str(&team.concat()).unwrap()
        })
        .collect();
    let mut bare_slice = Vec::with_capacity(n);
    let mut slice_allowed = 0;
    for (i, req) in prepared.iter().enumerate() {
        let u = (i * 7919) % 10_000;
        let t = Instant::now();
        let resp = authorizer.is_authorized(req, &team_sets[u % 100], &entities);
        bare_slice.push(t.elapsed());
        slice_allowed += usize::from(resp.decision() == cedar_policy::Decision::Allow);
    }
    assert_eq!(allowed, slice_allowed, "the slice decides as the whole set");
    bare_slice.sort();
    warden.sort();
    bare.sort();
    // What `warden policy apply` checks before activating: the 500 policies and a tests file
    // of 1,000 users, 1,000 hosts and 200 tests.
    let mut tests = String::new();
    for g in 0..100 {
        tests.push_str(&format!("[[group]]\nname = \"team{g}\"\n"));
    }
    for u in 0..1_000 {
        tests.push_str(&format!(
            "[[user]]\nname = \"u{u}\"\ngroups = [\"team{}\"]\n",
            u % 100
        ));
    }
    for h in 0..1_000 {
        tests.push_str(&format!(
            "[[host]]\nname = \"h{h}\"\nlabels = {{ team = \"team{}\", env = \"{}\" }}\n",
            h % 100,
            if h % 2 == 0 { "prod" } else { "dev" }
        ));
    }
    for t in 0..200 {
        let (u, h) = (t * 7 % 1_000, t * 13 % 1_000);
        let allowed = u % 100 == h % 100;
        tests.push_str(&format!(
            "[[test]]\nname = \"t{t}\"\nprincipal = 'Warden::User::\"u{u}\"'\naction = 'Warden::Action::\"ssh\"'\nresource = 'Warden::Host::\"h{h}\"'\ncontext = {{ login = \"deploy\" }}\nexpect = \"{}\"\n",
            if allowed { "allow" } else { "deny" }
        ));
    }
    let set = [
        ("bench.cedar".to_owned(), text.clone()),
        ("tests.toml".to_owned(), tests),
    ]
    .into_iter()
    .collect();
    let t = Instant::now();
    let checked = warden_policy::check_set(&set).unwrap();
    let check_time = t.elapsed();
    assert_eq!(checked.results.len(), 200);
    assert_eq!(checked.failures().count(), 0);
    println!(
        "load (parse + strict validation + index) of 500 policies: {:.1} ms",
        load_time.as_secs_f64() * 1e3
    );
    println!(
        "apply's checks: 500 policies validated and 200 tests run against 1,000 users and hosts: {:.1} ms (target under 1 s with activation)",
        check_time.as_secs_f64() * 1e3
    );
    println!(
        "entities for 10,000 users, 100 groups, 1,000 hosts: {:.1} ms",
        entities_time.as_secs_f64() * 1e3
    );
    println!(
        "Warden decision path, {n} ssh requests ({allowed} allowed): p50 {:.1} µs, p99 {:.1} µs (target p99 under 50 µs)",
        pct(&warden, 0.5),
        pct(&warden, 0.99)
    );
    println!(
        "first pass, building the 100 slices: p50 {:.1} µs, p99 {:.1} µs, slowest {:.1} µs",
        pct(&cold, 0.5),
        pct(&cold, 0.99),
        pct(&cold, 1.0)
    );
    println!(
        "Warden server path (entities from Warden's data per request, then decide): p50 {:.1} µs, p99 {:.1} µs (target p99 under 50 µs)",
        pct(&server, 0.5),
        pct(&server, 0.99)
    );
    println!(
        "bare cedar-policy is_authorized over all 500 policies, requests prebuilt: p50 {:.1} µs, p99 {:.1} µs",
        pct(&bare, 0.5),
        pct(&bare, 0.99),
    );
    println!(
        "bare cedar-policy is_authorized over the 5 policies that can apply, sets and requests prebuilt: p50 {:.1} µs, p99 {:.1} µs",
        pct(&bare_slice, 0.5),
        pct(&bare_slice, 0.99),
    );
    println!(
        "Warden's p50 over bare Cedar on the same policies: decision path {:.2}x, server path {:.2}x (target at most 1.5x); over bare Cedar on the whole set: {:.2}x",
        pct(&warden, 0.5) / pct(&bare_slice, 0.5),
        pct(&server, 0.5) / pct(&bare_slice, 0.5),
        pct(&warden, 0.5) / pct(&bare, 0.5)
    );
}
