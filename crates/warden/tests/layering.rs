//! The crate layering, checked from `cargo metadata`: each crate stands on a floor, and its
//! dependencies come from the floors below it, never from its own or one above. ARCHITECTURE.md
//! ("Layering") gives the same table; a new crate must be added to both. Two lines are drawn
//! through it: only the store crates speak SQL, and the browser pages cannot reach the store.

#![expect(clippy::expect_used, reason = "test helpers fail the test")]

use std::collections::BTreeMap;
use std::process::Command;

/// Every workspace crate and its floor, from the ground up.
const FLOORS: &[(&str, u8)] = &[
    // The vocabulary every other crate speaks.
    ("warden-model", 0),
    // Sans-I/O cores: parsers, policy, cryptography, compilers. No database, no network.
    ("warden-audit", 1),
    ("warden-pki", 1),
    ("warden-policy", 1),
    ("warden-scim", 1),
    ("warden-vuln", 1),
    ("warden-mesh", 1),
    // Sans-I/O over the audit core: compliance tests computed from the log's events.
    ("warden-compliance", 2),
    // I/O over one resource each: the database, SSH connections.
    ("warden-store", 3),
    ("warden-proxy", 3),
    // Over the store: identity (sign-in, tokens, passkeys) and the findings' tables.
    ("warden-identity", 4),
    ("warden-vuln-store", 4),
    // The capability services as the server runs them, and the request context.
    ("warden-runtime", 5),
    // The APIs (GraphQL, agent, mesh, SCIM, imports).
    ("warden-api", 6),
    // The browser pages, reading through the API.
    ("warden-web", 7),
    // The composition root.
    ("warden-server", 8),
    // The binary.
    ("warden", 9),
];

/// Used only by tests: any crate may take it as a dev-dependency, none as a dependency.
const TEST_ONLY: &str = "warden-testkit";

fn workspace() -> BTreeMap<String, Vec<(String, bool)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = metadata
        .get("packages")
        .and_then(serde_json::Value::as_array)
        .expect("packages");
    packages
        .iter()
        .map(|p| {
            let name = p.get("name").and_then(|n| n.as_str()).expect("name");
            let deps = p
                .get("dependencies")
                .and_then(serde_json::Value::as_array)
                .expect("dependencies")
                .iter()
                .filter_map(|d| {
                    let dep = d.get("name")?.as_str()?;
                    let dev = d.get("kind").and_then(|k| k.as_str()) == Some("dev");
                    Some((dep.to_owned(), dev))
                })
                .collect();
            (name.to_owned(), deps)
        })
        .collect()
}

fn floor(name: &str) -> Option<u8> {
    FLOORS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

#[test]
fn every_crate_depends_only_on_floors_below_it() {
    let crates = workspace();
    let mut wrong = Vec::new();
    for (name, deps) in &crates {
        if name == TEST_ONLY {
            continue;
        }
        let Some(own) = floor(name) else {
            wrong.push(format!(
                "{name} has no floor: add it to FLOORS and ARCHITECTURE.md"
            ));
            continue;
        };
        for (dep, dev) in deps.iter().filter(|(d, _)| d.starts_with("warden")) {
            if dep == TEST_ONLY {
                if !dev {
                    wrong.push(format!("{name} depends on {TEST_ONLY} outside its tests"));
                }
                continue;
            }
            if *dev {
                continue;
            }
            match floor(dep) {
                Some(theirs) if theirs < own => {}
                Some(theirs) => wrong.push(format!(
                    "{name} (floor {own}) depends on {dep} (floor {theirs}): only lower floors may be used"
                )),
                None => wrong.push(format!("{dep}, used by {name}, has no floor")),
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_floor_table_names_only_crates_that_exist() {
    let crates = workspace();
    for (name, _) in FLOORS {
        assert!(
            crates.contains_key(*name),
            "{name} is in FLOORS but not in the workspace"
        );
    }
}

#[test]
fn only_the_store_crates_speak_sql() {
    let crates = workspace();
    let speakers: Vec<&String> = crates
        .iter()
        // The test kit makes and drops the tests' PostgreSQL databases.
        .filter(|(name, _)| name.as_str() != TEST_ONLY)
        .filter(|(_, deps)| deps.iter().any(|(d, dev)| d == "sqlx" && !dev))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        speakers,
        ["warden-store", "warden-vuln-store"],
        "crates that depend on sqlx"
    );
}

/// `App` lends the store through `warden_store::HoldsStore`, which a crate can name only if it
/// depends on `warden-store`: without that dependency the pages cannot reach the database,
/// and read and write through the API instead.
#[test]
fn the_browser_pages_cannot_reach_the_store() {
    let crates = workspace();
    let web = crates
        .get("warden-web")
        .expect("warden-web is in the workspace");
    let store: Vec<_> = web.iter().filter(|(d, _)| d == "warden-store").collect();
    assert!(
        store.is_empty(),
        "warden-web depends on warden-store: {store:?}"
    );
}
