//! Policy apply benchmark (issue 6): `applyPolicy` on a real server over HTTP with 502 policies
//! and a tests file of 1,000 users, 1,000 hosts and 200 tests: the server parses and validates
//! the set, runs the tests, diffs it against the active set, stores the version with its audit
//! event, and activates it. Alternates two sets so each apply is a change. SQLite and PostgreSQL.
//!
//! Run: `cargo bench -p warden --bench policy -- [applies]`
#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "a benchmark")]

use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};
use warden_testkit::{Backend, TestServer, ms};

/// 100 teams × (four `ssh` permits + one forbid) = 500 policies; `variant` changes one login.
fn files(variant: usize) -> Value {
    let mut policies = String::new();
    for g in 0..100 {
        for login in ["deploy", "app", "ops", "debug"] {
            let login = if g == 0 && login == "debug" {
                format!("debug{variant}")
            } else {
                login.to_owned()
            };
            let _ = writeln!(
                policies,
                "permit (principal in Warden::Group::\"team{g}\", action == Warden::Action::\"ssh\", resource)\n\
                 when {{ resource.hasTag(\"team\") && resource.getTag(\"team\") == \"team{g}\" && context.login == \"{login}\" }};"
            );
        }
        let _ = writeln!(
            policies,
            "forbid (principal in Warden::Group::\"team{g}\", action == Warden::Action::\"ssh\", resource)\n\
             when {{ context.login == \"root\" && resource.hasTag(\"env\") && resource.getTag(\"env\") == \"prod\" }};"
        );
    }
    let mut tests = String::new();
    for g in 0..100 {
        let _ = writeln!(tests, "[[group]]\nname = \"team{g}\"");
    }
    for u in 0..1_000 {
        let _ = writeln!(
            tests,
            "[[user]]\nname = \"u{u}\"\ngroups = [\"team{}\"]",
            u % 100
        );
    }
    for h in 0..1_000 {
        let env = if h % 2 == 0 { "prod" } else { "dev" };
        let _ = writeln!(
            tests,
            "[[host]]\nname = \"h{h}\"\nlabels = {{ team = \"team{}\", env = \"{env}\" }}",
            h % 100
        );
    }
    for t in 0..200 {
        let (u, h) = (t * 7 % 1_000, t * 13 % 1_000);
        let expect = if u % 100 == h % 100 { "allow" } else { "deny" };
        let _ = writeln!(
            tests,
            "[[test]]\nname = \"t{t}\"\nprincipal = 'Warden::User::\"u{u}\"'\naction = 'Warden::Action::\"ssh\"'\n\
             resource = 'Warden::Host::\"h{h}\"'\ncontext = {{ login = \"deploy\" }}\nexpect = \"{expect}\""
        );
    }
    // The starter set's admins.cedar keeps the benchmark's admin token allowed to apply.
    let admins = warden_policy::STARTER
        .iter()
        .find(|(name, _)| *name == "admins.cedar")
        .map(|(_, text)| *text)
        .unwrap();
    json!([
        { "name": "admins.cedar", "text": admins },
        { "name": "teams.cedar", "text": policies },
        { "name": "tests.toml", "text": tests },
    ])
}

#[tokio::main]
async fn main() {
    let applies: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let bin = Path::new(env!("CARGO_BIN_EXE_warden"));
    let sets = [files(0), files(1)];
    for backend in Backend::ALL {
        let server = TestServer::start(
            bin,
            backend,
            "[limits]\nper_source_rps = 0\nper_token_rps = 0\nmax_body_bytes = 16777216\n",
        )
        .await;
        let admin = server.token("bench", "admin", None);
        let q = "mutation($f: [PolicyFileInput!]!) { applyPolicy(files: $f) { version policies tests { passed } } }";
        let mut times = Vec::new();
        for i in 0..applies {
            let t = Instant::now();
            let (status, body) = server
                .graphql(Some(&admin), q, json!({ "f": sets[i % 2] }))
                .await;
            times.push(t.elapsed());
            assert_eq!(status, 200, "{body}");
            let applied = &body["data"]["applyPolicy"];
            assert_eq!(applied["policies"], 502, "{body}");
            assert_eq!(applied["version"], i + 2, "{body}");
            assert_eq!(applied["tests"].as_array().unwrap().len(), 200);
        }
        times.sort();
        println!(
            "{backend:?}: applyPolicy of 502 policies with 200 tests (validate + tests + diff + store + activate), {applies} applies over HTTP: p50 {:.0} ms, max {:.0} ms (target under 1 s)",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }
}
