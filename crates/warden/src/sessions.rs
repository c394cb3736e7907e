//! `warden sessions list|kill` and `warden play`.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::{Value, json};

use crate::cli::{PlayArgs, SessionsArgs, SessionsCommand};
use crate::output::{cell, table};
use crate::pki::connect;

const LIST: &str = "query($active: Boolean) { sshSessions(active: $active, first: 1000) { id principal login host source startedAt endedAt endReason recordings { file sha256 bytes kind command } } }";

pub async fn run(args: SessionsArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    match args.command {
        SessionsCommand::List { active } => {
            let data = client.graphql(LIST, json!({ "active": active })).await?;
            let sessions = data.get("sshSessions").cloned().unwrap_or(Value::Null);
            if args.json {
                crate::output::json(&sessions);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = sessions
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    let files: Vec<String> = s
                        .get("recordings")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .map(|r| cell(r, "file"))
                        .collect();
                    vec![
                        cell(s, "id"),
                        cell(s, "principal"),
                        format!("{}@{}", cell(s, "login"), cell(s, "host")),
                        cell(s, "startedAt"),
                        cell(s, "endedAt"),
                        files.join(","),
                        cell(s, "endReason"),
                    ]
                })
                .collect();
            table(
                &[
                    "SESSION",
                    "WHO",
                    "LOGIN@HOST",
                    "STARTED",
                    "ENDED",
                    "RECORDINGS",
                    "ENDED BECAUSE",
                ],
                &rows,
            );
            Ok(())
        }
        SessionsCommand::Search { text } => {
            let q = "query($t: String!) { sshSessionSearch(text: $t) { file lines session { id principal login host startedAt } } }";
            let data = client.graphql(q, json!({ "t": text })).await?;
            let found = data.get("sshSessionSearch").cloned().unwrap_or(Value::Null);
            if args.json {
                crate::output::json(&found);
                return Ok(());
            }
            for m in found.as_array().map(Vec::as_slice).unwrap_or_default() {
                let s = m.get("session").unwrap_or(&Value::Null);
                outln!(
                    "{} {} {}@{} {} ({})",
                    cell(s, "id"),
                    cell(s, "principal"),
                    cell(s, "login"),
                    cell(s, "host"),
                    cell(s, "startedAt"),
                    cell(m, "file")
                );
                for line in m
                    .get("lines")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    outln!("    {}", line.as_str().unwrap_or_default());
                }
            }
            Ok(())
        }
        SessionsCommand::Kill { id, reason } => {
            let q = "mutation($id: String!, $reason: String) { endSshSession(id: $id, reason: $reason) }";
            let data = client
                .graphql(q, json!({ "id": id, "reason": reason }))
                .await?;
            if data.get("endSshSession").and_then(Value::as_bool) == Some(true) {
                eprintln!("ended session {id}");
            } else {
                eprintln!(
                    "asked for session {id} to end: the proxy holding it ends it within a second, \
                     or, if that proxy has stopped, it ends on the record when the proxy's lease \
                     runs out (ssh.proxy_lease)"
                );
            }
            Ok(())
        }
    }
}

pub async fn play(args: PlayArgs) -> anyhow::Result<()> {
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        bail!("--speed must be a positive number, like 2 for twice as fast");
    }
    let client = connect(&args.connection)?;
    let file = if args.recording.ends_with(".rec") || args.recording.ends_with(".cast") {
        args.recording.clone()
    } else {
        let data = client.graphql(LIST, json!({ "active": false })).await?;
        let sessions = data.get("sshSessions").cloned().unwrap_or(Value::Null);
        let session = sessions
            .as_array()
            .and_then(|all| all.iter().find(|s| cell(s, "id") == args.recording))
            .ok_or_else(|| {
                anyhow!(
                    "no session `{}`: `warden sessions list` shows them",
                    args.recording
                )
            })?;
        session
            .get("recordings")
            .and_then(Value::as_array)
            .and_then(|r| r.iter().find(|r| cell(r, "kind") != "subsystem"))
            .map(|r| cell(r, "file"))
            .ok_or_else(|| anyhow!("session `{}` has no terminal recording", args.recording))?
    };
    let data = client
        .graphql(
            "query($f: String!) { sshRecording(file: $f) }",
            json!({ "f": file }),
        )
        .await?;
    let text = data
        .get("sshRecording")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("the server's answer has no recording"))?;
    replay(text, args.speed)
}

/// Writes the output events of an asciicast v2 recording with their timing.
fn replay(text: &str, speed: f64) -> anyhow::Result<()> {
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap_or_default())
        .map_err(|e| anyhow!("the recording's header is damaged: {e}"))?;
    if header.get("version").and_then(Value::as_u64) != Some(2) {
        bail!("not an asciicast v2 recording");
    }
    let mut stdout = std::io::stdout();
    let mut last = 0.0f64;
    for (n, line) in lines.enumerate() {
        let event: (f64, String, String) = serde_json::from_str(line)
            .map_err(|e| anyhow!("the recording is damaged at event {}: {e}", n + 1))?;
        let (at, code, data) = event;
        if code != "o" {
            continue;
        }
        let wait = ((at - last) / speed).clamp(0.0, 60.0);
        last = at;
        std::thread::sleep(Duration::from_secs_f64(wait));
        let written = stdout
            .write_all(data.as_bytes())
            .and_then(|()| stdout.flush());
        match written {
            // Whoever watched has gone (`warden play … | head`): stop quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
    Ok(())
}
