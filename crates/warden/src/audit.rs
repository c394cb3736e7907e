//! `warden audit`: the log's key, tail, query, export and verification.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use warden_audit::VerifierKey;

use crate::cli::{AuditArgs, AuditCommand};
use crate::client::AdminClient;
use crate::output::{cell, json as print_json, table};

const EVENT_FIELDS: &str =
    "seq time actor auth action target outcome reason requestId source details";

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    // Offline verification needs no server at all.
    if let AuditCommand::Verify {
        file: Some(file),
        key,
        ..
    } = &args.command
    {
        let key = key
            .as_deref()
            .ok_or_else(|| anyhow!("verifying a file needs the log's public key: --key PUBKEY"))?;
        return verify_file(file, key, args.json);
    }
    let client = crate::pki::client_for(args.server.as_deref(), args.data_dir.as_deref())?;
    match args.command {
        AuditCommand::Key => {
            let key = client.get("/v1/audit/public_key").await?;
            out!("{}", String::from_utf8_lossy(&key));
            Ok(())
        }
        AuditCommand::Tail { follow, lines } => tail(&client, follow, lines, args.json).await,
        AuditCommand::Query {
            actor,
            action,
            target,
            since,
            until,
            limit,
        } => {
            let vars = json!({ "actor": actor, "action": action, "target": target, "since": since, "until": until });
            let mut events = Vec::new();
            let mut after = None;
            while events.len() < limit as usize {
                let want = (limit as usize - events.len()).min(1000);
                let page = fetch(&client, &vars, after, want).await?;
                let done = page.len() < want;
                after = page
                    .last()
                    .and_then(|e| e.get("seq"))
                    .and_then(Value::as_u64)
                    .or(after);
                events.extend(page);
                if done {
                    break;
                }
            }
            print_events(&events, args.json);
            Ok(())
        }
        AuditCommand::Export {
            since_seq,
            until_seq,
            since,
            until,
            actor,
            action,
            target,
            outcome,
            output,
        } => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            if let Some(s) = since_seq {
                query.append_pair("since_seq", &s.to_string());
            }
            if let Some(u) = until_seq {
                query.append_pair("until_seq", &u.to_string());
            }
            for (name, value) in [("since", since), ("until", until)] {
                if let Some(v) = value {
                    query.append_pair(name, &humantime_check(&v)?);
                }
            }
            for (name, value) in [
                ("actor", actor),
                ("action", action),
                ("target", target),
                ("outcome", outcome),
            ] {
                if let Some(v) = value {
                    query.append_pair(name, &v);
                }
            }
            let path = format!("/v1/audit/export?{}", query.finish());
            let body = client.get(&path).await?;
            std::fs::write(&output, &body)
                .with_context(|| format!("cannot write {}", output.display()))?;
            let events = body
                .split(|b| *b == b'\n')
                .filter(|l| l.starts_with(b"{\"type\":\"event\""))
                .count();
            eprintln!("wrote {events} events to {}", output.display());
            Ok(())
        }
        AuditCommand::Leavers { since } => {
            let q = "query($s: String) { leavers(since: $s) { user disabledAt disabledBy sessionsOpenThen sessionsStillOpen lastSessionClosedAt deprovisionedInMs } }";
            let data = client.graphql(q, json!({ "s": since })).await?;
            let leavers = data.get("leavers").cloned().unwrap_or(Value::Null);
            if args.json {
                print_json(&leavers);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = leavers
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|l| {
                    let took = match l.get("deprovisionedInMs").and_then(Value::as_i64) {
                        Some(ms) => format!("{ms} ms"),
                        None => "still open".to_owned(),
                    };
                    vec![
                        cell(l, "user"),
                        cell(l, "disabledAt"),
                        cell(l, "disabledBy"),
                        cell(l, "sessionsOpenThen"),
                        cell(l, "lastSessionClosedAt"),
                        took,
                    ]
                })
                .collect();
            table(
                &[
                    "USER",
                    "DISABLED",
                    "BY",
                    "SESSIONS OPEN",
                    "LAST CLOSED",
                    "DEPROVISIONED IN",
                ],
                &rows,
            );
            Ok(())
        }
        AuditCommand::Verify {
            file: _,
            key,
            checkpoint: Some(note),
        } => {
            let served = String::from_utf8_lossy(&client.get("/v1/audit/public_key").await?)
                .trim()
                .to_owned();
            let key = parse_key(&key.unwrap_or(served))?;
            extends(&client, &key, &note, args.json).await
        }
        AuditCommand::Verify { file: _, key, .. } => {
            let served = String::from_utf8_lossy(&client.get("/v1/audit/public_key").await?)
                .trim()
                .to_owned();
            let key = key.unwrap_or(served);
            let body = client.get("/v1/audit/export").await?;
            report(
                warden_audit::verify(body.as_ref(), &parse_key(&key)?),
                args.json,
            )
        }
    }
}

/// Proves the server's log still extends the checkpoint in `note`: the newest checkpoint is
/// signed by `key` and a consistency proof leads from the old tree to it.
async fn extends(
    client: &AdminClient,
    key: &VerifierKey,
    note: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(note)
        .with_context(|| format!("cannot read checkpoint {}", note.display()))?;
    // A JSONL sink keeps `{"size": N, "note": "…"}` lines; the last one is the newest.
    let text = match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) if line.trim_start().starts_with('{') => serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.get("note")?.as_str().map(str::to_owned))
            .ok_or_else(|| {
                anyhow!(
                    "{}: not a checkpoint line: expected {{\"size\", \"note\"}}",
                    note.display()
                )
            })?,
        _ => text,
    };
    let old = key
        .open(&text)
        .with_context(|| format!("checkpoint {}", note.display()))?;
    let data = client
        .graphql("{ auditCheckpoint { size note } }", Value::Null)
        .await?;
    let latest = data
        .pointer("/auditCheckpoint/note")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("the server has no signed checkpoint"))?;
    let new = key.open(latest).context("the server's newest checkpoint")?;
    if old.size > new.size {
        anyhow::bail!(
            "the log was truncated: it holds {} events, but the checkpoint kept outside holds {}",
            new.size,
            old.size
        );
    }
    let proof = client
        .graphql(
            "query($a: Int!, $b: Int!) { auditConsistencyProof(fromSize: $a, toSize: $b) }",
            json!({ "a": old.size, "b": new.size }),
        )
        .await?;
    let hashes = proof
        .get("auditConsistencyProof")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("the server sent no consistency proof"))?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|h| warden_audit::HexHash::try_from(h.to_owned()).ok())
                .map(|h| h.0)
                .ok_or_else(|| anyhow!("the consistency proof holds a malformed hash"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !warden_audit::verify_consistency(old.size, new.size, &old.root, &new.root, &hashes) {
        anyhow::bail!(
            "the log was rewritten: its checkpoint of {} events is not an extension of the one of {} events kept outside",
            new.size,
            old.size
        );
    }
    if json {
        print_json(&json!({ "extends": true, "from_size": old.size, "to_size": new.size }));
    } else {
        outln!(
            "ok: the log of {} events extends the checkpoint of {} events",
            new.size,
            old.size
        );
    }
    Ok(())
}

/// Times go to the server as RFC 3339; checking here gives the error before any request.
fn humantime_check(value: &str) -> anyhow::Result<String> {
    humantime::parse_rfc3339_weak(value)
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .map_err(|_| anyhow!("invalid time `{value}`: use RFC 3339, like 2026-11-29T10:00:00Z"))
}

fn parse_key(key: &str) -> anyhow::Result<VerifierKey> {
    Ok(key.parse::<VerifierKey>()?)
}

fn verify_file(file: &Path, key: &str, json: bool) -> anyhow::Result<()> {
    let key = parse_key(key)?;
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    report(warden_audit::verify(std::io::BufReader::new(f), &key), json)
}

fn report(
    result: Result<warden_audit::Report, warden_audit::VerifyError>,
    json: bool,
) -> anyhow::Result<()> {
    let r = result.map_err(|e| anyhow!("verification failed: {e}"))?;
    if json {
        print_json(&json!({
            "ok": true, "events": r.events, "first_seq": r.first_seq, "last_seq": r.last_seq,
            "checkpoints": r.checkpoints, "signed_size": r.signed_size, "selection": r.selection,
        }));
    } else if let Some(filter) = &r.selection {
        let by: Vec<String> = [
            ("actor", &filter.actor),
            ("action", &filter.action),
            ("target", &filter.target),
            ("outcome", &filter.outcome),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some(format!("{name}={}", value.as_deref()?)))
        .collect();
        outln!(
            "ok: {} selected by {} among events {} to {}, each in the signed log of {} events \
             (a selection does not show that no matching event is left out)",
            match r.events {
                1 => "1 event".to_owned(),
                n => format!("{n} events"),
            },
            by.join(" "),
            r.first_seq,
            r.last_seq,
            r.signed_size
        );
    } else {
        outln!(
            "ok: events {} to {} ({} events) match {} signed checkpoint(s), up to tree size {}",
            r.first_seq,
            r.last_seq,
            r.events,
            r.checkpoints,
            r.signed_size
        );
    }
    Ok(())
}

async fn fetch(
    client: &AdminClient,
    vars: &Value,
    after: Option<u64>,
    first: usize,
) -> anyhow::Result<Vec<Value>> {
    let q = format!(
        "query($actor: String, $action: String, $target: String, $since: String, $until: String, $after: Int, $first: Int!) {{ \
         auditEvents(actor: $actor, action: $action, target: $target, since: $since, until: $until, afterSeq: $after, first: $first) \
         {{ {EVENT_FIELDS} }} }}"
    );
    let mut vars = vars.clone();
    if let Some(obj) = vars.as_object_mut() {
        obj.insert("after".into(), json!(after));
        obj.insert("first".into(), json!(first));
    }
    let data = client.graphql(&q, vars).await?;
    Ok(data
        .get("auditEvents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

async fn tail(client: &AdminClient, follow: bool, lines: u32, json: bool) -> anyhow::Result<()> {
    let size = client
        .graphql("{ auditCheckpoint { size } }", Value::Null)
        .await?;
    let size = size
        .pointer("/auditCheckpoint/size")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut after = size.saturating_sub(u64::from(lines));
    let vars = json!({});
    loop {
        let events = fetch(client, &vars, Some(after), 1000).await?;
        if let Some(last) = events
            .last()
            .and_then(|e| e.get("seq"))
            .and_then(Value::as_u64)
        {
            after = last;
        }
        if json {
            for e in &events {
                outln!("{e}");
            }
        } else if !events.is_empty() {
            print_rows(&events);
        }
        std::io::stdout().flush().ok();
        if !follow {
            return Ok(());
        }
        if events.len() < 1000 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn print_events(events: &[Value], json: bool) {
    if json {
        print_json(&Value::Array(events.to_vec()));
    } else {
        print_rows(events);
    }
}

fn print_rows(events: &[Value]) {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                cell(e, "seq"),
                cell(e, "time"),
                cell(e, "actor"),
                cell(e, "action"),
                cell(e, "target"),
                cell(e, "outcome"),
                cell(e, "reason"),
            ]
        })
        .collect();
    table(
        &[
            "SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "REASON",
        ],
        &rows,
    );
}
