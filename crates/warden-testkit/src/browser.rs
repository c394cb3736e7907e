//! Browser journeys: a Node script in `js/` driving Debian's Chromium through playwright-core,
//! reporting one JSON line per step (`{"step": …, "ok": …, "detail": …}`).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// What a journey reported.
#[derive(Debug)]
pub struct Journey {
    /// The steps, in order.
    pub steps: Vec<Value>,
    /// What the script wrote to stderr, for failure messages.
    pub stderr: String,
}

impl Journey {
    /// Runs `js/SCRIPT` with `args`. Chromium must be installed (`./scripts/test.sh` does).
    pub fn run(script: &str, args: &[&str]) -> Journey {
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "Chromium is needed: ./scripts/test.sh installs Debian's chromium"
        );
        let out = Command::new("node")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("js")
                    .join(script),
            )
            .args(args)
            .output()
            .expect("node runs");
        Journey {
            steps: String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The step called `name`; fails the test, showing every step, when there is none.
    pub fn step(&self, name: &str) -> &Value {
        self.steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {:#?}\n{}", self.steps, self.stderr))
    }

    /// Fails the test when the script itself failed (a step named `error`).
    pub fn assert_no_error(&self) {
        assert!(
            self.steps.iter().all(|s| s["step"] != "error"),
            "{:#?}\n{}",
            self.steps,
            self.stderr
        );
    }
}
