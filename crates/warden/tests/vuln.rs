//! Vulnerability SLAs end to end through the CLI and the real server on both backends:
//! imports of real scanner outputs, re-imports that fix and reopen, the CI gate, judgement
//! (re-rating, acceptance, false positives) with its history and audit events, reports,
//! figures, security.txt, SLA alerts reaching a webhook, and the exact error for each known
//! bad input with nothing imported.
#![expect(
    clippy::too_many_lines,
    reason = "an end-to-end journey reads in order, one step after another"
)]
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test"
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use warden_testkit::{Backend, TestServer, webhook_receiver};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../warden-vuln/tests/fixtures")
        .join(path)
}

/// `warden vuln ARGS…` with `token`; stdout on success, stderr on failure.
fn vuln(server: &TestServer, token: &str, args: &[&str]) -> Result<String, String> {
    let mut full = vec!["vuln"];
    full.extend_from_slice(args);
    let out = server.remote(token, &full);
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr).trim_end().to_owned())
    }
}

fn json(server: &TestServer, token: &str, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.push("--json");
    serde_json::from_str(&vuln(server, token, &full).unwrap()).unwrap()
}

fn findings(server: &TestServer, token: &str, asset: &str) -> Vec<Value> {
    json(server, token, &["list", "--asset", asset])["findings"]
        .as_array()
        .unwrap()
        .clone()
}

const CONFIG: &str = "[limits]\nper_source_rps = 0\n\
    [vuln.sla.internet]\ncritical = \"12h\"\n\
    [security_txt]\ncontact = [\"mailto:security@example.com\", \"https://example.com/security\"]\n\
    expires = \"2099-01-01T00:00:00Z\"\npolicy = \"https://example.com/disclosure\"\npreferred_languages = \"en, de\"\n";

#[tokio::test]
async fn import_reimport_gate_judge_and_report() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, CONFIG).await;
        let ci = server.token("ci", "admin", None);
        let trivy = fixture("trivy/scheme_2_many_vulns.json");
        let trivy = trivy.to_str().unwrap();

        let out = vuln(&server, &ci, &["import", trivy, "--asset", "teamdojo"]).unwrap();
        assert!(
            out.starts_with(&format!("imported {trivy} (trivy) into `teamdojo`: 5 findings: 5 new, 0 reopened, 0 fixed, 0 unchanged (import ")),
            "{out}"
        );
        let list = findings(&server, &ci, "teamdojo");
        assert_eq!(list.len(), 5);
        let critical = list.iter().find(|f| f["severity"] == "critical").unwrap();
        let id = critical["id"].as_i64().unwrap().to_string();
        assert_eq!(critical["state"], "open");
        let left = critical["secondsRemaining"].as_i64().unwrap();
        assert!((86_390..=86_400).contains(&left), "{left}");
        // Two Grype matches of one CVE at two paths: one finding.
        let out = vuln(
            &server,
            &ci,
            &[
                "import",
                fixture("grype/same_cve_different_paths.json")
                    .to_str()
                    .unwrap(),
                "--asset",
                "debian",
            ],
        )
        .unwrap();
        assert!(out.contains(": 1 finding: 1 new,"), "{out}");
        // Grype says `not-fixed`: the Critical waits for a fix, with no clock.
        let shown = vuln(
            &server,
            &ci,
            &["list", "--asset", "debian", "--state", "no_fix"],
        )
        .unwrap();
        assert!(shown.contains("CVE-"), "{shown}");

        // The gate: critical fails (exit 1, the reason, the finding); overdue passes.
        let err = vuln(
            &server,
            &ci,
            &["gate", "--asset", "teamdojo", "--fail-on", "critical"],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "error: gate failed for `teamdojo`: 1 open at critical or above"
        );
        let ok = vuln(
            &server,
            &ci,
            &[
                "gate",
                "--asset",
                "teamdojo",
                "--fail-on",
                "overdue,unrated",
            ],
        )
        .unwrap();
        assert_eq!(
            ok,
            "gate passed for `teamdojo`: nothing open on overdue, unrated\n"
        );

        // An internet-facing tier shortens the critical's clock to 12 hours.
        let out = vuln(&server, &ci, &["asset", "teamdojo", "--tier", "internet"]).unwrap();
        assert!(out.contains("teamdojo  internet  5"), "{out}");
        let f = json(&server, &ci, &["show", &id]);
        assert!(f["secondsRemaining"].as_i64().unwrap() <= 43_200);

        // Judgement: re-rating needs a reason and is recorded; acceptance; false positive.
        let f = json(
            &server,
            &ci,
            &[
                "rate",
                &id,
                "--severity",
                "high",
                "--reason",
                "not reachable from outside",
            ],
        );
        assert_eq!(
            (f["severity"].as_str(), f["disclosedSeverity"].as_str()),
            (Some("high"), Some("critical"))
        );
        assert_eq!(f["ratedBy"], "token:ci");
        vuln(
            &server,
            &ci,
            &["gate", "--asset", "teamdojo", "--fail-on", "critical"],
        )
        .unwrap();
        let f = json(
            &server,
            &ci,
            &[
                "accept",
                &id,
                "--until",
                "30d",
                "--reason",
                "WAF rule 7 blocks it",
            ],
        );
        assert_eq!(
            (f["state"].as_str(), f["decidedBy"].as_str()),
            (Some("accepted"), Some("token:ci"))
        );
        let other = list.iter().find(|f| f["severity"] == "high").unwrap()["id"]
            .as_i64()
            .unwrap()
            .to_string();
        let f = json(
            &server,
            &ci,
            &[
                "false-positive",
                &other,
                "--reason",
                "the package is not installed",
            ],
        );
        assert_eq!(f["state"], "false_positive");
        let shown = vuln(&server, &ci, &["show", &id]).unwrap();
        assert!(
            shown.contains("severity:       high (disclosed critical)"),
            "{shown}"
        );
        assert!(
            shown.contains("token:ci  rated  {\"from\":\"critical\""),
            "{shown}"
        );
        assert!(shown.contains("token:ci  accepted  {\"until\":"), "{shown}");

        // A re-import without one finding fixes it; with it again, reopens it.
        let all = std::fs::read_to_string(fixture("trivy/scheme_2_many_vulns.json")).unwrap();
        let mut doc: Value = serde_json::from_str(&all).unwrap();
        let medium = doc["Results"][0]["Vulnerabilities"]
            .as_array_mut()
            .unwrap()
            .remove(0);
        assert_eq!(medium["VulnerabilityID"], "CVE-2020-15999");
        let dir = tempfile::tempdir().unwrap();
        let less = dir.path().join("less.json");
        std::fs::write(&less, doc.to_string()).unwrap();
        let out = vuln(
            &server,
            &ci,
            &["import", less.to_str().unwrap(), "--asset", "teamdojo"],
        )
        .unwrap();
        assert!(
            out.contains(": 4 findings: 0 new, 0 reopened, 1 fixed, 4 unchanged"),
            "{out}"
        );
        let out = vuln(&server, &ci, &["import", trivy, "--asset", "teamdojo"]).unwrap();
        assert!(
            out.contains(": 5 findings: 0 new, 1 reopened, 0 fixed, 4 unchanged"),
            "{out}"
        );
        let events = server.audit("vuln.import");
        assert_eq!(events.len(), 4);
        assert_eq!(events[2]["details"]["fixed"], 1);

        // Bad input: one line naming the file and position, nothing imported, the refusal
        // recorded; a member may not import.
        let truncated = dir.path().join("truncated.json");
        std::fs::write(&truncated, &all[..2000]).unwrap();
        let err = vuln(
            &server,
            &ci,
            &["import", truncated.to_str().unwrap(), "--asset", "teamdojo"],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "error: truncated.json: not JSON at line 54 column 22: EOF while parsing a string"
        );
        let err = vuln(
            &server,
            &ci,
            &["import", trivy, "--asset", "teamdojo", "--format", "grype"],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "error: scheme_2_many_vulns.json: not a Grype report at line 281 column 1: missing field `matches`"
        );
        let err = vuln(
            &server,
            &ci,
            &["import", trivy, "--asset", "teamdojo", "--format", "nessus"],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "error: unknown format `nessus`: expected auto, sarif, trivy, grype, osv-scanner or cargo-audit"
        );
        let err = vuln(&server, &ci, &["import", trivy, "--asset", "team dojo"]).unwrap_err();
        assert_eq!(
            err,
            "error: invalid asset name `team dojo`: 1 to 128 letters, digits and . _ - : / @"
        );
        let err = vuln(
            &server,
            &ci,
            &["import", "/nonexistent/scan.json", "--asset", "x"],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "error: cannot read /nonexistent/scan.json: No such file or directory (os error 2)"
        );
        let err = vuln(
            &server,
            &ci,
            &["rate", &id, "--severity", "severe", "--reason", "x"],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "error: unknown severity `severe`: expected critical, high, medium, low or informational"
        );
        let err = vuln(
            &server,
            &ci,
            &["rate", &id, "--severity", "low", "--reason", " "],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "error: give a justification: one line of at most 500 bytes"
        );
        let err = vuln(
            &server,
            &ci,
            &["accept", &id, "--until", "2020-01-01", "--reason", "x"],
        )
        .unwrap_err();
        assert_eq!(err, "error: the due date `2020-01-01` has passed");
        let err = vuln(
            &server,
            &ci,
            &["rate", "99999", "--severity", "low", "--reason", "x"],
        )
        .unwrap_err();
        assert_eq!(err, "error: finding `99999` not found");
        let err = vuln(
            &server,
            &ci,
            &["gate", "--asset", "teamdojo", "--fail-on", "sometimes"],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "error: unknown gate condition `sometimes`: use overdue, unrated, critical, high, medium, low or informational"
        );
        server.admin(&["user", "add", "mallory"]);
        let mallory = server.token("mallory-cli", "member", Some("mallory"));
        let err = vuln(&server, &mallory, &["import", trivy, "--asset", "teamdojo"]).unwrap_err();
        assert_eq!(
            err,
            "error: permission denied: policy v1: no policy permits `import_vulns` (default deny)"
        );
        let err = vuln(&server, &mallory, &["list"]).unwrap_err();
        assert_eq!(
            err,
            "error: permission denied: policy v1: no policy permits `read_vulns` (default deny)"
        );
        let events = server.audit("vuln.import");
        let outcomes: Vec<&str> = events
            .iter()
            .map(|e| e["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(
            outcomes,
            [
                "success", "success", "success", "success", "failure", "failure", "failure",
                "failure", "denied"
            ]
        );
        assert_eq!(
            events[4]["reason"],
            "truncated.json: not JSON at line 54 column 22: EOF while parsing a string"
        );
        assert_eq!(
            findings(&server, &ci, "teamdojo").len(),
            3,
            "nothing imported (5, one accepted, one false positive)"
        );

        // Disclosure intake: a report becomes a finding in triage.
        let report = dir.path().join("report.txt");
        std::fs::write(&report, "Reflected XSS in /search?q=<script>.\nSteps: …").unwrap();
        let f = json(
            &server,
            &ci,
            &[
                "report",
                "--asset",
                "web",
                "--title",
                "XSS in search",
                "--details",
                report.to_str().unwrap(),
            ],
        );
        assert_eq!(
            (f["state"].as_str(), f["source"].as_str()),
            (Some("triage"), Some("report"))
        );
        assert!(f["details"].as_str().unwrap().starts_with("Reflected XSS"));
        let err = vuln(
            &server,
            &ci,
            &["gate", "--asset", "web", "--fail-on", "unrated"],
        )
        .unwrap_err();
        assert_eq!(err, "error: gate failed for `web`: 1 unrated, in triage");

        // Figures.
        let stats = json(&server, &ci, &["stats", "--since", "1d"]);
        let open: Vec<(String, i64)> = stats["open"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["severity"].as_str().unwrap().to_owned(),
                    o["count"].as_i64().unwrap(),
                )
            })
            .collect();
        // The Grype Critical waits for a fix: not open, counted apart.
        assert_eq!(
            open,
            [
                ("critical".to_owned(), 0),
                ("high".to_owned(), 0),
                ("medium".to_owned(), 3),
                ("low".to_owned(), 0),
                ("informational".to_owned(), 0)
            ]
        );
        assert_eq!(
            (
                stats["triage"].as_i64(),
                stats["noFix"].as_i64(),
                stats["accepted"].as_i64(),
                stats["overdue"].as_i64()
            ),
            (Some(1), Some(1), Some(1), Some(0))
        );
        let human = vuln(&server, &ci, &["stats"]).unwrap();
        assert!(
            human.contains("compliance: - (nothing was due in the period)"),
            "{human}"
        );

        // The dashboard's kept figures: computed by the reader on a small installation, so
        // they are up to date and equal the live figures over the same 30 days.
        let fields = "open { severity count } triage noFix overdue accepted dueFixed dueFixedOnTime dueMissedOpen compliance remediated { severity fixed meanSeconds }";
        let (_, kept) = server
            .graphql(
                Some(&ci),
                &format!("{{ vulnFigures {{ computedAt upToDate stats {{ since until {fields} }} burndown {{ at open overdue }} assets {{ name tier open overdue }} }} }}"),
                json!({}),
            )
            .await;
        let kept = &kept["data"]["vulnFigures"];
        assert_eq!(kept["upToDate"], true, "{kept}");
        let until = kept["stats"]["until"].as_str().unwrap();
        let since = kept["stats"]["since"].as_str().unwrap();
        assert_eq!(kept["computedAt"].as_str(), Some(until));
        let (_, live) = server
            .graphql(
                Some(&ci),
                &format!("query($s: String!) {{ vulnStats(since: $s) {{ {fields} }} vulnAssets {{ name tier open overdue }} }}"),
                json!({ "s": since }),
            )
            .await;
        let mut kept_stats = kept["stats"].clone();
        kept_stats.as_object_mut().unwrap().remove("since");
        kept_stats.as_object_mut().unwrap().remove("until");
        assert_eq!(kept_stats, live["data"]["vulnStats"]);
        assert_eq!(kept["assets"], live["data"]["vulnAssets"]);
        assert_eq!(kept["burndown"].as_array().unwrap().len(), 31);
        let (_, web) = server
            .graphql(
                Some(&ci),
                "{ vulnFigures(asset: \"web\") { stats { triage } assets { name } } none: vulnFigures(asset: \"nothing-here\") { computedAt } }",
                json!({}),
            )
            .await;
        assert_eq!(web["data"]["vulnFigures"]["stats"]["triage"], 1, "{web}");
        assert_eq!(
            web["data"]["vulnFigures"]["assets"],
            kept["assets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| json!({ "name": a["name"] }))
                .collect::<Value>()
        );
        assert_eq!(web["data"]["none"], Value::Null);
        let (_, bad) = server
            .graphql(
                Some(&ci),
                "{ vulnFigures(asset: \"Web App\") { computedAt } }",
                json!({}),
            )
            .await;
        let (_, bad_live) = server
            .graphql(
                Some(&ci),
                "{ vulnStats(asset: \"Web App\") { triage } }",
                json!({}),
            )
            .await;
        assert_eq!(
            bad["errors"][0]["message"],
            bad_live["errors"][0]["message"]
        );
        assert!(
            bad["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Web App"),
            "{bad}"
        );
        // The narrowest token that may read them (an auditor's) does; a member's may not,
        // and its refusal is recorded.
        let auditor = server.token("figures-reader", "auditor", None);
        let (_, read) = server
            .graphql(Some(&auditor), "{ vulnFigures { upToDate } }", json!({}))
            .await;
        assert_eq!(read["data"]["vulnFigures"]["upToDate"], true, "{read}");
        let member = server.token("figures-member", "member", None);
        let (_, refused) = server
            .graphql(Some(&member), "{ vulnFigures { upToDate } }", json!({}))
            .await;
        assert_eq!(
            refused["errors"][0]["message"],
            "permission denied: policy v1: no policy permits `read_vulns` (default deny)",
            "{refused}"
        );
        assert!(
            server
                .audit("vuln.read")
                .iter()
                .any(|e| e["outcome"] == "denied" && e["actor"] == "token:figures-member"),
            "the refusal is recorded"
        );

        // security.txt (RFC 9116).
        let (status, headers, body) = server.get("/.well-known/security.txt").await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
        assert_eq!(
            body,
            format!(
                "Contact: mailto:security@example.com\nContact: https://example.com/security\nExpires: 2099-01-01T00:00:00Z\n\
                 Preferred-Languages: en, de\nPolicy: https://example.com/disclosure\nCanonical: {}/.well-known/security.txt\n",
                server.url.replace("127.0.0.1", "localhost")
            )
        );
    }
}

/// The real cargo-audit on a lockfile pinning smallvec 1.5.0, against the offline advisory
/// database in scripts/advisory-db: its report imports as a critical finding that fails the
/// gate.
#[tokio::test]
async fn a_real_cargo_audit_report_fails_the_gate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("audit.json");
    let out = std::process::Command::new("cargo-audit")
        .args(["audit", "--no-fetch", "--json", "--db"])
        .arg(root.join("scripts/advisory-db"))
        .arg("-f")
        .arg(fixture("pinned/Cargo.lock"))
        .output()
        .unwrap_or_else(|e| panic!("cargo-audit must be installed (scripts/test.sh does): {e}"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    std::fs::write(&report, &out.stdout).unwrap();
    let server = TestServer::start(bin(), Backend::Sqlite, "").await;
    let ci = server.token("ci", "admin", None);
    let done = vuln(
        &server,
        &ci,
        &["import", report.to_str().unwrap(), "--asset", "pinned"],
    )
    .unwrap();
    assert!(
        done.contains("(cargo-audit) into `pinned`: 1 finding: 1 new"),
        "{done}"
    );
    let f = &findings(&server, &ci, "pinned")[0];
    assert_eq!(
        (f["advisory"].as_str(), f["severity"].as_str()),
        (Some("RUSTSEC-2021-0003"), Some("critical"))
    );
    assert_eq!(f["package"], "pkg:cargo/smallvec@1.5.0");
    assert_eq!(f["aliases"][0], "CVE-2021-25900");
    let err = vuln(
        &server,
        &ci,
        &["gate", "--asset", "pinned", "--fail-on", "high"],
    )
    .unwrap_err();
    assert_eq!(
        err,
        "error: gate failed for `pinned`: 1 open at high or above"
    );
}

#[tokio::test]
async fn sla_alerts_and_expiring_acceptances_reach_a_webhook() {
    let (port, got) = webhook_receiver().await;
    let config = format!(
        "[limits]\nper_source_rps = 0\n[vuln.sla.default]\nlow = \"4s\"\n\
         [[audit.sink]]\nkind = \"webhook\"\nname = \"chat\"\nurl = \"http://127.0.0.1:{port}/slack\"\nformat = \"slack\"\nactions = [\"vuln.sla.*\", \"vuln.accept.expire\", \"vuln.fix.available\"]\n"
    );
    let server = TestServer::start(bin(), Backend::Sqlite, &config).await;
    let ci = server.token("ci", "admin", None);
    // Trivy before 0.37 writes no `FixedVersion` when no fix is published: every finding of
    // the legacy file waits for one, and no clock runs.
    let legacy = fixture("trivy/legacy_many_vulns.json");
    vuln(
        &server,
        &ci,
        &["import", legacy.to_str().unwrap(), "--asset", "debian"],
    )
    .unwrap();
    let waiting = findings(&server, &ci, "debian");
    assert_eq!(waiting.len(), 93);
    assert!(
        waiting
            .iter()
            .all(|f| f["noFix"] == true && f["dueAt"].is_null()),
        "{waiting:#?}"
    );
    let stats = json(&server, &ci, &["stats", "--asset", "debian"]);
    assert_eq!((&stats["noFix"], &stats["triage"]), (&json!(92), &json!(1)));
    // The fixes are published: the next scan shows a fixed version for each, and each clock
    // starts then, announced on its own.
    let mut published: Value =
        serde_json::from_str(&std::fs::read_to_string(&legacy).unwrap()).unwrap();
    for target in published.as_array_mut().unwrap() {
        for v in target["Vulnerabilities"].as_array_mut().unwrap() {
            v["FixedVersion"] = json!("99.0");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let rescan = dir.path().join("rescan.json");
    std::fs::write(&rescan, published.to_string()).unwrap();
    let summary = json(
        &server,
        &ci,
        &["import", rescan.to_str().unwrap(), "--asset", "debian"],
    );
    assert_eq!(summary["fix_available"], 93, "{summary}");
    let low = findings(&server, &ci, "debian")
        .into_iter()
        .filter(|f| f["severity"] == "low")
        .collect::<Vec<_>>();
    assert_eq!(low.len(), 65);
    // Accept one low for 5 s: it is accepted at its half-way mark (no alert) and reopens past
    // its 4 s, overdue at once.
    let id = low[0]["id"].as_i64().unwrap().to_string();
    json(
        &server,
        &ci,
        &[
            "accept",
            &id,
            "--until",
            "5s",
            "--reason",
            "rebuild pending",
        ],
    );
    let mut messages = Vec::new();
    for _ in 0..400 {
        messages = got.lock().unwrap().clone();
        let breaches = messages
            .iter()
            .filter(|(_, b)| b["text"].as_str().unwrap().contains("is overdue"))
            .count();
        if breaches >= 65 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let texts: Vec<String> = messages
        .iter()
        .map(|(_, b)| b["text"].as_str().unwrap().to_owned())
        .collect();
    let halves = texts
        .iter()
        .filter(|t| t.contains("has used half its time"))
        .count();
    let breaches = texts.iter().filter(|t| t.contains("is overdue")).count();
    let expired = texts
        .iter()
        .filter(|t| t.contains("accepted risk of"))
        .count();
    assert_eq!((halves, breaches, expired), (64, 65, 1), "{texts:#?}");
    let fixes: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains("is out in 99.0"))
        .collect();
    assert_eq!(fixes.len(), 93, "{texts:#?}");
    assert!(
        fixes[0].contains("its SLA clock starts (`warden vuln show "),
        "{}",
        fixes[0]
    );
    let one = texts.iter().find(|t| t.contains("is overdue")).unwrap();
    assert!(
        one.starts_with("Warden: low `CVE-")
            && one.contains("` on `debian` (")
            && one.contains("`warden vuln show "),
        "{one}"
    );
    let overdue = json(&server, &ci, &["list", "--overdue", "--asset", "debian"]);
    assert_eq!(overdue["total"], 65);
    let err = vuln(
        &server,
        &ci,
        &["gate", "--asset", "debian", "--fail-on", "overdue"],
    )
    .unwrap_err();
    assert_eq!(err, "error: gate failed for `debian`: 65 overdue");
}

/// `warden ARGS…` with its standard output a pipe nobody reads any more (`… | head -1` after
/// head has gone): its exit status and standard error.
fn into_closed_pipe(server: &TestServer, token: &str, args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(bin())
        .args(args)
        .args(["--server", &server.url])
        .env("WARDEN_TOKEN", token)
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .output()
        .unwrap();
    (out.status.code(), text(&out.stderr))
}

/// Output into a pipe whose reader has gone ends quietly: no panic, no backtrace, and each
/// command keeps its own exit status, the gate's contract included.
#[tokio::test]
async fn output_into_a_closed_pipe_ends_quietly_with_the_commands_own_status() {
    let server = TestServer::start(bin(), Backend::Sqlite, CONFIG).await;
    let ci = server.token("ci", "admin", None);
    let trivy = fixture("trivy/scheme_2_many_vulns.json");
    vuln(
        &server,
        &ci,
        &["import", trivy.to_str().unwrap(), "--asset", "teamdojo"],
    )
    .unwrap();
    // The gate and the list as an auditor, the narrowest role that reads findings.
    let reader = server.token("reader", "auditor", None);
    for (args, want) in [
        (
            &[
                "vuln",
                "gate",
                "--asset",
                "teamdojo",
                "--fail-on",
                "critical",
            ][..],
            (
                Some(1),
                "error: gate failed for `teamdojo`: 1 open at critical or above\n",
            ),
        ),
        (
            &[
                "vuln",
                "gate",
                "--asset",
                "teamdojo",
                "--fail-on",
                "overdue",
            ],
            (Some(0), ""),
        ),
        (&["vuln", "list", "--asset", "teamdojo"], (Some(0), "")),
        (
            &["vuln", "list", "--asset", "teamdojo", "--json"],
            (Some(0), ""),
        ),
    ] {
        let (status, stderr) = into_closed_pipe(&server, &reader, args);
        assert_eq!((status, stderr.as_str()), want, "{args:?}");
    }
    // A member token may not read findings: the refusal, one line, exit 1, and no panic.
    let member = server.token("someone", "member", None);
    let (status, stderr) = into_closed_pipe(
        &server,
        &member,
        &[
            "vuln",
            "gate",
            "--asset",
            "teamdojo",
            "--fail-on",
            "critical",
        ],
    );
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.starts_with("error: permission denied: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // A command that needs no server: the GraphQL schema, 40 kB in one write.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(bin())
        .args(["api", "schema"])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(0), String::new())
    );
}

/// Every page of `sort`, `first` at a time, as (id, severity rank, due) tuples.
async fn all_pages(
    server: &TestServer,
    token: &str,
    sort: &str,
    text: Option<&str>,
    first: u32,
) -> Vec<Value> {
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let (_, answer) = server
            .graphql(
                Some(token),
                "query($s: String, $t: String, $f: Int!, $a: String) { vulnFindings(sort: $s, text: $t, first: $f, after: $a) { total next findings { id severity dueAt advisory title package } } }",
                json!({ "s": sort, "t": text, "f": first, "a": after }),
            )
            .await;
        let page = &answer["data"]["vulnFindings"];
        seen.extend(page["findings"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return seen,
        }
    }
}

/// The findings table's search and orders: text matches advisory ids, titles and packages
/// in any case (and LIKE's wildcards only literally); `due` and `severity` orders page by
/// keyset with no finding lost or repeated, the same as in one page; a bad order is refused.
#[tokio::test]
async fn findings_are_searched_and_sorted_server_side() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, CONFIG).await;
        let ci = server.token("ci", "admin", None);
        let reader = server.token("report", "auditor", None);
        for (file, asset) in [
            ("trivy/scheme_2_many_vulns.json", "web"),
            ("grype/fix_available.json", "api"),
            ("cargo_audit/many_findings.json", "svc"),
            ("osv_scanner/some_findings.json", "lib"),
        ] {
            let file = fixture(file);
            vuln(
                &server,
                &ci,
                &["import", file.to_str().unwrap(), "--asset", asset],
            )
            .unwrap();
        }
        let rank = |f: &Value| match f["severity"].as_str() {
            Some("critical") => 0,
            Some("high") => 1,
            Some("medium") => 2,
            Some("low") => 3,
            Some("informational") => 4,
            _ => 5,
        };
        let due = |f: &Value| f["dueAt"].as_str().unwrap_or("9999").to_owned();
        for sort in ["number", "due", "severity"] {
            let whole = all_pages(&server, &reader, sort, None, 1000).await;
            assert!(whole.len() > 10, "{sort}: {}", whole.len());
            let paged = all_pages(&server, &reader, sort, None, 7).await;
            let ids = |list: &[Value]| list.iter().map(|f| f["id"].clone()).collect::<Vec<_>>();
            assert_eq!(
                ids(&paged),
                ids(&whole),
                "{sort}: pages lose or repeat findings"
            );
            for pair in whole.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                let ordered = match sort {
                    "number" => a["id"].as_i64() < b["id"].as_i64(),
                    "due" => (due(a), a["id"].as_i64()) < (due(b), b["id"].as_i64()),
                    _ => (rank(a), due(a), a["id"].as_i64()) < (rank(b), due(b), b["id"].as_i64()),
                };
                assert!(ordered, "{sort}: {a} before {b}");
            }
        }
        // One state, in each order: the same findings.
        let mut counts = Vec::new();
        for sort in ["number", "due", "severity"] {
            let (_, answer) = server
                .graphql(
                    Some(&reader),
                    "query($s: String) { vulnFindings(states: [\"open\"], sort: $s, first: 1000) { total findings { id } } }",
                    json!({ "s": sort }),
                )
                .await;
            let page = &answer["data"]["vulnFindings"];
            counts.push((
                page["total"].clone(),
                page["findings"].as_array().map(Vec::len),
            ));
        }
        assert!(counts[0].1 > Some(0), "{counts:?}");
        assert!(counts.windows(2).all(|w| w[0] == w[1]), "{counts:?}");
        let everything = all_pages(&server, &reader, "number", None, 1000).await;
        // A piece of one package's name, in another case than it is written.
        let package = everything
            .iter()
            .find_map(|f| f["package"].as_str().filter(|p| p.len() > 12))
            .unwrap();
        let word = package[5..11].to_uppercase();
        let word = word.as_str();
        let expected: Vec<Value> = everything
            .iter()
            .filter(|f| {
                ["advisory", "title", "package"].iter().any(|k| {
                    f[*k]
                        .as_str()
                        .is_some_and(|s| s.to_lowercase().contains(&word.to_lowercase()))
                })
            })
            .map(|f| f["id"].clone())
            .collect();
        assert!(!expected.is_empty(), "the fixture mentions {word}");
        let found: Vec<Value> = all_pages(&server, &reader, "number", Some(word), 1000)
            .await
            .iter()
            .map(|f| f["id"].clone())
            .collect();
        assert_eq!(
            found, expected,
            "search is case-blind over advisory, title and package"
        );
        for literal in ["%", "_", "100%_x"] {
            let found = all_pages(&server, &reader, "number", Some(literal), 1000).await;
            let by_hand = everything
                .iter()
                .filter(|f| {
                    ["advisory", "title", "package"]
                        .iter()
                        .any(|k| f[*k].as_str().is_some_and(|s| s.contains(literal)))
                })
                .count();
            assert_eq!(found.len(), by_hand, "`{literal}` is matched literally");
        }
        let (_, bad) = server
            .graphql(
                Some(&reader),
                "{ vulnFindings(sort: \"newest\") { total } }",
                json!({}),
            )
            .await;
        assert_eq!(
            bad["errors"][0]["message"],
            "unknown order `newest`: use number, due or severity"
        );
        let err = vuln(&server, &reader, &["list", "--sort", "newest"]).unwrap_err();
        assert_eq!(
            err,
            "error: unknown order `newest`: use number, due or severity"
        );
        let listed = json(
            &server,
            &reader,
            &["list", "--text", word, "--sort", "severity"],
        );
        assert_eq!(
            listed["findings"].as_array().unwrap().len(),
            expected.len(),
            "{listed}"
        );
    }
}
