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

/// A journey the test takes part in while it runs: the script reports its steps as it goes,
/// and at a `wait` step (its `ask`) it waits for the test to act and answer
/// ([`LiveJourney::answer`], a file in the signals directory).
#[derive(Debug)]
pub struct LiveJourney {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    steps: Vec<Value>,
    signals: tempfile::TempDir,
    stderr: std::path::PathBuf,
}

impl LiveJourney {
    /// Starts `js/SCRIPT` with `args` and, last, the directory of its signals.
    pub fn start(script: &str, args: &[&str]) -> LiveJourney {
        use std::io::BufRead;
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "Chromium is needed: ./scripts/test.sh installs Debian's chromium"
        );
        let signals = tempfile::tempdir().expect("a temporary directory");
        // stderr goes to a file: a pipe nobody reads while the test waits on stdout could
        // fill and stall the script.
        let stderr = signals.path().join("stderr.log");
        let mut child = Command::new("node")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("js")
                    .join(script),
            )
            .args(args)
            .arg(signals.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("a log file"))
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().expect("piped stdout");
        LiveJourney {
            child,
            lines: std::io::BufReader::new(stdout).lines(),
            steps: Vec::new(),
            signals,
            stderr,
        }
    }

    /// Reads steps until the script asks for `name` (a `wait` step naming it); returns what
    /// it passed along. Fails the test, showing every step, if the script fails or ends first.
    pub fn asked(&mut self, name: &str) -> Value {
        loop {
            let Some(Ok(line)) = self.lines.next() else {
                panic!(
                    "the journey ended before asking for {name}: {:#?}\n{}",
                    self.steps,
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            };
            let Ok(step) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            self.steps.push(step.clone());
            let kind = step.get("step").and_then(Value::as_str);
            let detail = step.get("detail");
            if kind == Some("error") {
                panic!(
                    "the journey failed before asking for {name}: {:#?}\n{}",
                    self.steps,
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            if kind == Some("wait")
                && detail.and_then(|d| d.get("name")).and_then(Value::as_str) == Some(name)
            {
                return detail
                    .and_then(|d| d.get("detail"))
                    .cloned()
                    .unwrap_or(Value::Null);
            }
        }
    }

    /// Tells the script the test has done what it asked for `name`.
    pub fn answer(&self, name: &str, text: &str) {
        // Written whole, then renamed: the script never reads half an answer.
        let part = self.signals.path().join(format!("{name}.part"));
        std::fs::write(&part, text).expect("the answer is written");
        std::fs::rename(&part, self.signals.path().join(name)).expect("the answer is renamed");
    }

    /// Waits for the script to end; every step it reported.
    pub fn finish(mut self) -> Journey {
        for line in self.lines.by_ref().map_while(Result::ok) {
            if let Ok(step) = serde_json::from_str(&line) {
                self.steps.push(step);
            }
        }
        let _ = self.child.wait();
        Journey {
            steps: self.steps,
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }
}
