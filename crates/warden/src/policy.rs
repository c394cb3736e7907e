//! `warden policy schema|check|test`: policy as code, offline.

use std::path::Path;

use anyhow::{anyhow, bail};
use warden_policy::{PolicyFile, load, parse_tests, run_tests};

use crate::cli::PolicyCommand;
use crate::output::table;

/// The `*.cedar` files of `dir`, by name.
fn read_dir(dir: &Path) -> anyhow::Result<Vec<PolicyFile>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow!("cannot read policy directory {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("cedar") {
            continue;
        }
        let bytes =
            std::fs::read(&path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
        let text =
            String::from_utf8(bytes).map_err(|_| anyhow!("{}: not UTF-8 text", path.display()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        files.push(PolicyFile { name, text });
    }
    if files.is_empty() {
        bail!("no *.cedar files in {}", dir.display());
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

pub fn run(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Schema => {
            print!("{}", warden_policy::SCHEMA);
            Ok(())
        }
        PolicyCommand::Check { dir } => {
            let files = read_dir(&dir)?;
            let policies = load(&files).map_err(|e| anyhow!("{e}"))?;
            println!(
                "ok: {} policies in {} files match the schema",
                policies.len(),
                files.len()
            );
            Ok(())
        }
        PolicyCommand::Test { dir } => {
            let files = read_dir(&dir)?;
            let policies = load(&files).map_err(|e| anyhow!("{e}"))?;
            let path = dir.join("tests.toml");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
            let tests = parse_tests("tests.toml", &text).map_err(|e| anyhow!("{e}"))?;
            let results = run_tests(&policies, &tests).map_err(|e| anyhow!("{e}"))?;
            let word = |allow: bool| if allow { "allow" } else { "deny" };
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|r| {
                    vec![
                        if r.passed { "pass" } else { "FAIL" }.to_owned(),
                        r.name.clone(),
                        word(r.expected).to_owned(),
                        word(r.decided.allow).to_owned(),
                        if r.decided.reasons.is_empty() {
                            "(no policy: default deny)".to_owned()
                        } else {
                            r.decided.reasons.join(", ")
                        },
                    ]
                })
                .collect();
            table(
                &["RESULT", "TEST", "EXPECTED", "GOT", "DETERMINED BY"],
                &rows,
            );
            let failed = results.iter().filter(|r| !r.passed).count();
            if failed > 0 {
                bail!("{failed} of {} tests failed", results.len());
            }
            Ok(())
        }
    }
}
