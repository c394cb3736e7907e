//! Break-glass: `warden admin break-glass create|list|revoke|uses|close-review` (over the
//! admin socket), `warden break-glass open` (offline, from the share files), and the two
//! commands sshd runs on a host the agent set up: `principals` (what the host accepts) and
//! `record` (the command a break-glass session is forced through, which records it on the
//! host with util-linux `script` for the agent to upload when Warden is back).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use warden_model::BREAK_GLASS_PRINCIPAL;
use warden_pki::break_glass::{Share, open};

use crate::cli::{AdminBreakGlassCommand, BreakGlassArgs, BreakGlassCommand};
use crate::client::AdminClient;
use crate::output::{cell, json as print_json, table};

const FIELDS: &str =
    "id caPublicKey keySha256 reason createdBy createdAt expiresAt shares threshold revokedAt";
const USE_FIELDS: &str = "id credential host login startedAt endedAt recording recordingSha256 reportedAt closedAt closedBy summary";

/// `value[key]`, or null.
fn at<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).unwrap_or(&Value::Null)
}

/// Writes `bytes` to a new file at `path` with `mode`, refusing to replace one.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `warden admin break-glass …`.
pub async fn admin(
    client: &AdminClient,
    command: AdminBreakGlassCommand,
    json_out: bool,
) -> anyhow::Result<()> {
    match command {
        AdminBreakGlassCommand::Create {
            ttl,
            shares,
            threshold,
            reason,
            out,
        } => {
            // Check the directory first: the shares exist only in this answer.
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let data = client
                .graphql(
                    &format!(
                        "mutation($t: String!, $s: Int!, $h: Int!, $r: String!) {{ createBreakGlass(ttl: $t, shares: $s, threshold: $h, reason: $r) {{ credential {{ {FIELDS} }} shares }} }}"
                    ),
                    json!({ "t": ttl, "s": shares, "h": threshold, "r": reason }),
                )
                .await?;
            let made = data
                .get("createBreakGlass")
                .context("the server answered without the credential")?;
            let credential = at(made, "credential");
            let id = cell(credential, "id");
            let mut written = Vec::new();
            for (i, share) in at(made, "shares")
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let path = out.join(format!("break-glass-{id}-share-{}.txt", i + 1));
                write_new(&path, share.as_str().unwrap_or_default().as_bytes(), 0o600)?;
                written.push(path);
            }
            if json_out {
                print_json(&json!({
                    "credential": credential,
                    "files": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                }));
                return Ok(());
            }
            outln!(
                "break-glass credential {id}: {} of {} shares open it; it works until {}",
                cell(credential, "threshold"),
                cell(credential, "shares"),
                cell(credential, "expiresAt"),
            );
            for path in &written {
                outln!("  {}", path.display());
            }
            outln!(
                "Hand each share to its holder and delete it here. Hosts accept the credential only \
                 while they cannot reach Warden; open it with `warden break-glass open SHARE…`."
            );
            Ok(())
        }
        AdminBreakGlassCommand::List => {
            let data = client
                .graphql(
                    &format!("{{ breakGlassCredentials {{ {FIELDS} }} }}"),
                    json!({}),
                )
                .await?;
            let all = at(&data, "breakGlassCredentials");
            if json_out {
                print_json(all);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = all
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    vec![
                        cell(c, "id"),
                        format!("{} of {}", cell(c, "threshold"), cell(c, "shares")),
                        cell(c, "createdBy"),
                        cell(c, "expiresAt"),
                        cell(c, "revokedAt"),
                        cell(c, "reason"),
                    ]
                })
                .collect();
            table(
                &[
                    "ID",
                    "OPENS WITH",
                    "MADE BY",
                    "EXPIRES",
                    "REVOKED",
                    "REASON",
                ],
                &rows,
            );
            Ok(())
        }
        AdminBreakGlassCommand::Revoke { id } => {
            let data = client
                .graphql(
                    &format!("mutation($i: String!) {{ revokeBreakGlass(id: $i) {{ {FIELDS} }} }}"),
                    json!({ "i": id }),
                )
                .await?;
            if json_out {
                print_json(at(&data, "revokeBreakGlass"));
            } else {
                outln!(
                    "revoked break-glass credential {id}: hosts stop trusting it at their next contact"
                );
            }
            Ok(())
        }
        AdminBreakGlassCommand::Uses { open } => {
            let data = client
                .graphql(
                    &format!(
                        "query($o: Boolean!) {{ breakGlassUses(open: $o) {{ {USE_FIELDS} }} }}"
                    ),
                    json!({ "o": open }),
                )
                .await?;
            let uses = at(&data, "breakGlassUses");
            if json_out {
                print_json(uses);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = uses
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|u| {
                    vec![
                        cell(u, "id"),
                        cell(u, "credential"),
                        cell(u, "host"),
                        cell(u, "login"),
                        cell(u, "startedAt"),
                        if at(u, "closedAt").is_null() {
                            "open".to_owned()
                        } else {
                            format!("closed by {}", cell(u, "closedBy"))
                        },
                    ]
                })
                .collect();
            table(
                &["USE", "CREDENTIAL", "HOST", "LOGIN", "STARTED", "REVIEW"],
                &rows,
            );
            Ok(())
        }
        AdminBreakGlassCommand::CloseReview { id, summary } => {
            let data = client
                .graphql(
                    &format!(
                        "mutation($i: String!, $s: String!) {{ closeBreakGlassReview(id: $i, summary: $s) {{ {USE_FIELDS} }} }}"
                    ),
                    json!({ "i": id, "s": summary }),
                )
                .await?;
            if json_out {
                print_json(at(&data, "closeBreakGlassReview"));
            } else {
                outln!("closed the after-action review of break-glass use {id}");
            }
            Ok(())
        }
    }
}

/// `warden break-glass …`: all local, no server.
pub fn run(args: BreakGlassArgs) -> anyhow::Result<()> {
    match args.command {
        BreakGlassCommand::Open { shares, out } => open_shares(&shares, &out),
        BreakGlassCommand::Principals {
            host_principal,
            spool,
        } => {
            out!("{}", principals(&host_principal, &spool)?);
            Ok(())
        }
        BreakGlassCommand::Record { spool } => {
            let code = record(&spool)?;
            std::process::exit(code);
        }
    }
}

fn open_shares(files: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let mut shares = Vec::with_capacity(files.len());
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        shares.push(Share::parse(&text).with_context(|| file.display().to_string())?);
    }
    let opened = open(&shares)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let key = out.join("id_ed25519");
    let cert = out.join("id_ed25519-cert.pub");
    write_new(&key, opened.private_key.as_bytes(), 0o600)?;
    write_new(&cert, opened.certificate.as_bytes(), 0o644)?;
    outln!(
        "opened break-glass credential {} (works until {}):\n  {}\n  {}\n\
         Hosts accept it only while they cannot reach Warden; every session is recorded on the host:\n  \
         ssh -i {} -o CertificateFile={} root@HOST",
        opened.id,
        opened.expires,
        key.display(),
        cert.display(),
        key.display(),
        cert.display(),
    );
    Ok(())
}

/// What sshd accepts on this host: the proxy's principal, and the break-glass principal with
/// its session forced through the recorder and no forwarding. The CA that signs break-glass
/// certificates is trusted only while the agent cannot reach Warden.
fn principals(host_principal: &str, spool: &Path) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let (exe, spool) = (exe.display().to_string(), spool.display().to_string());
    for part in [&exe, &spool, &host_principal.to_owned()] {
        if part.contains(['"', '\\', '\n']) || part.chars().any(char::is_whitespace) {
            bail!("`{part}` cannot be written into sshd's principals");
        }
    }
    Ok(format!(
        "{host_principal}\n\
         command=\"{exe} break-glass record --spool {spool}\",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc {BREAK_GLASS_PRINCIPAL}\n"
    ))
}

/// The credential a break-glass session logged in with, from sshd's `ExposeAuthInfo` file.
fn credential_used() -> anyhow::Result<String> {
    let path = std::env::var_os("SSH_USER_AUTH").context(
        "cannot tell which break-glass credential was used: sshd's ExposeAuthInfo is off",
    )?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", PathBuf::from(&path).display()))?;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("publickey ")
            && let Ok(cert) = ssh_key::Certificate::from_openssh(rest.trim())
            && let Some(id) = cert.key_id().strip_prefix("break-glass:")
        {
            return Ok(id.to_owned());
        }
    }
    bail!(
        "cannot tell which break-glass credential was used: no break-glass certificate in sshd's record"
    )
}

fn now_rfc3339() -> String {
    warden_model::Timestamp::from_system(std::time::SystemTime::now()).rfc3339_millis()
}

/// Records one break-glass session in `spool` (`ID.json`, `ID.out`, `ID.timing`) and returns
/// its exit code. Fails closed: a session that cannot be recorded does not start.
fn record(spool: &Path) -> anyhow::Result<i32> {
    let credential = credential_used()?;
    let login = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    let id: String = (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let meta = spool.join(format!("{id}.json"));
    let mut record = json!({
        "id": id,
        "credential": credential,
        "login": login,
        "started_at": now_rfc3339(),
        "command": std::env::var("SSH_ORIGINAL_COMMAND").ok(),
    });
    write_new(&meta, record.to_string().as_bytes(), 0o600)
        .context("cannot record this break-glass session, so it does not start")?;
    eprintln!(
        "warden: break-glass session {id} with credential {credential}: recorded on this host and reported to Warden when it is back"
    );
    let mut script = std::process::Command::new("script");
    script
        .args(["-q", "-e", "-f", "-O"])
        .arg(spool.join(format!("{id}.out")))
        .arg("-T")
        .arg(spool.join(format!("{id}.timing")));
    if let Ok(command) = std::env::var("SSH_ORIGINAL_COMMAND") {
        script.arg("-c").arg(command);
    }
    let status = script
        .status()
        .context("cannot run util-linux `script` to record the session, so it does not start")?;
    let code = status.code().unwrap_or(1);
    if let Value::Object(map) = &mut record {
        map.insert("ended_at".to_owned(), json!(now_rfc3339()));
        map.insert("exit_code".to_owned(), json!(code));
    }
    let done = spool.join(format!("{id}.json.tmp"));
    write_new(&done, record.to_string().as_bytes(), 0o600)?;
    std::fs::rename(&done, &meta)?;
    Ok(code)
}

/// Makes the spool: any login may add a session (write and search), none may list or read
/// another's; the sticky bit keeps each to its own files.
pub fn make_spool(spool: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(spool).with_context(|| format!("cannot create {}", spool.display()))?;
    std::fs::set_permissions(spool, std::fs::Permissions::from_mode(0o1733))
        .with_context(|| format!("cannot set the mode of {}", spool.display()))
}

/// A finished (or abandoned) session in the spool, as the agent uploads it: the report's JSON
/// body, with the recording as asciicast v2. `None` while it is still running.
pub fn spooled(
    spool: &Path,
    meta: &Path,
    abandoned_after_secs: u64,
) -> Option<(Value, Vec<PathBuf>)> {
    let text = std::fs::read_to_string(meta).ok()?;
    let record: Value = serde_json::from_str(&text).ok()?;
    let id = at(&record, "id").as_str()?.to_owned();
    let started = humantime::parse_rfc3339_weak(at(&record, "started_at").as_str()?).ok()?;
    let ended = at(&record, "ended_at").as_str().map(str::to_owned);
    let age = std::time::SystemTime::now()
        .duration_since(started)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    if ended.is_none() && age < abandoned_after_secs {
        return None;
    }
    let out = spool.join(format!("{id}.out"));
    let timing = spool.join(format!("{id}.timing"));
    let cast = asciicast(
        &std::fs::read(&out).unwrap_or_default(),
        &std::fs::read_to_string(&timing).unwrap_or_default(),
        started,
    );
    let body = json!({
        "id": id,
        "credential": at(&record, "credential"),
        "login": at(&record, "login"),
        "started_at": at(&record, "started_at"),
        "ended_at": ended,
        "recording": cast,
    });
    Some((body, vec![meta.to_path_buf(), out, timing]))
}

/// A `NAME="value"` field of `script`'s header line (`[TERM="xterm" TTY="/dev/pts/1"
/// COLUMNS="120" LINES="40"]` on a terminal).
fn header_field<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    let start = [' ', '[']
        .iter()
        .find_map(|before| header.find(&format!("{before}{name}=\"")))?
        + name.len()
        + 3;
    let rest = header.get(start..)?;
    rest.get(..rest.find('"')?)
}

/// util-linux `script`'s log (a header line, then the output) and classic timing file
/// (`DELAY BYTES` per chunk) as asciicast v2, sized as the terminal the header names (80x24
/// when it names none).
fn asciicast(out: &[u8], timing: &str, started: std::time::SystemTime) -> String {
    let split = out.iter().position(|b| *b == b'\n');
    let header = String::from_utf8_lossy(split.and_then(|i| out.get(..i)).unwrap_or_default());
    let body = split.and_then(|i| out.get(i + 1..)).unwrap_or_default();
    let size = |name: &str, default: u16| {
        header_field(&header, name)
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(default)
    };
    let term = header_field(&header, "TERM")
        .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or("xterm");
    let start = started
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut cast = format!(
        "{}\n",
        json!({"version": 2, "width": size("COLUMNS", 80), "height": size("LINES", 24), "timestamp": start, "env": {"TERM": term}})
    );
    let (mut at, mut offset) = (0.0_f64, 0_usize);
    for line in timing.lines() {
        let mut parts = line.split_whitespace();
        let (Some(delay), Some(bytes)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(delay), Ok(bytes)) = (delay.parse::<f64>(), bytes.parse::<usize>()) else {
            continue;
        };
        at += delay;
        let end = offset.saturating_add(bytes).min(body.len());
        let chunk = String::from_utf8_lossy(body.get(offset..end).unwrap_or_default());
        cast.push_str(&json!([at, "o", chunk]).to_string());
        cast.push('\n');
        offset = end;
    }
    cast
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_log_becomes_asciicast_with_its_timing() {
        let out =
            b"Script started on 2026-12-06 [COMMAND=\"x\"]\nhello\r\nworld\r\n\nScript done\n";
        let cast = asciicast(out, "0.5 7\n0.25 7\n", std::time::UNIX_EPOCH);
        let lines: Vec<Value> = cast
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(
            (&lines[0]["width"], &lines[0]["height"]),
            (&json!(80), &json!(24))
        );
        assert_eq!(lines[1], json!([0.5, "o", "hello\r\n"]));
        assert_eq!(lines[2], json!([0.75, "o", "world\r\n"]));
        assert_eq!(lines.len(), 3);
        // A timing file that claims more than the log holds stops at its end.
        let short = asciicast(b"header\nab", "0.1 50\n", std::time::UNIX_EPOCH);
        assert!(short.ends_with("[0.1,\"o\",\"ab\"]\n"), "{short}");
        // On a terminal, script names its size and type: the recording keeps them.
        let sized = asciicast(
            b"Script started on 2026-12-06 23:50:00+00:00 [TERM=\"xterm-256color\" TTY=\"/dev/pts/3\" COLUMNS=\"132\" LINES=\"43\"]\nx",
            "0.1 1\n",
            std::time::UNIX_EPOCH,
        );
        let head: Value = serde_json::from_str(sized.lines().next().unwrap()).unwrap();
        assert_eq!(head["width"], 132);
        assert_eq!(head["height"], 43);
        assert_eq!(head["env"]["TERM"], "xterm-256color");
    }

    #[test]
    fn principals_refuse_paths_sshd_would_split() {
        let err = principals("warden-proxy:db", Path::new("/tmp/a b")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`/tmp/a b` cannot be written into sshd's principals"
        );
        let ok = principals("warden-proxy:db", Path::new("/var/spool/bg")).unwrap();
        assert!(ok.starts_with("warden-proxy:db\ncommand=\""), "{ok}");
        assert!(ok.ends_with(" warden-break-glass:emergency\n"), "{ok}");
    }
}
