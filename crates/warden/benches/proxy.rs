//! SSH proxy benchmark (issue 7), side by side in one run with a stock OpenSSH bastion
//! (`ssh -J`, written out as its ProxyCommand `ssh -W`) in front of the same sshd:
//! - bulk output of the kinds users move: `cat` of a 300 MB text log and `tar` of 100 MB of
//!   incompressible files, MB/s (Warden records and seals all of it), and `cat` of 100 MB on a
//!   terminal (`ssh -tt`: Warden also renders it for the transcript);
//! - session setup: `ssh HOST true`, p50 and p99 of N runs each;
//! - concurrency: N sessions at once through the proxy, each recorded; every recording must be
//!   present with the SHA-256 the audit log holds. Reports the server process's (the proxy
//!   runs inside it) CPU time and peak memory.
//!
//! Run: `cargo bench -p warden --bench proxy -- [setups] [concurrent]`; sizes and rounds from
//! `WARDEN_BENCH_TEXT_MB` (300), `WARDEN_BENCH_BINARY_MB` (100), `WARDEN_BENCH_PTY_MB` (100),
//! `WARDEN_BENCH_ROUNDS` (5).
#![expect(
    clippy::too_many_lines,
    reason = "a benchmark reads top to bottom: setup, then each measurement"
)]
#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "a benchmark")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest;
use warden_testkit::{LabOptions, SshLab, Sshd, ms, percentile, ssh_keygen_ed25519, through_proxy};

/// CPU seconds (user + system) and peak RSS in MiB of a process.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    (ticks / 100.0, hwm / 1024.0)
}

/// ssh to db-1's sshd through a stock bastion sshd (`ssh -W`, what `-J` runs).
fn via_bastion(d: &Path, bastion: u16, port: u16) -> Command {
    let key = d.join("id_ed25519");
    let cert = d.join("id_ed25519-cert.pub");
    let common = format!(
        "-F none -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i {} -o CertificateFile={} -o IdentitiesOnly=yes",
        key.display(),
        cert.display()
    );
    let mut command = Command::new("ssh");
    command
        .args(common.split(' '))
        .arg("-o")
        .arg(format!(
            "ProxyCommand=ssh {common} -p {bastion} -W %h:%p root@127.0.0.1"
        ))
        .args(["-p", &port.to_string(), "-l", "root", "127.0.0.1"]);
    command
}

/// `size` bytes of a web server's log, one request a line.
fn log_lines(size: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(size + 100);
    let mut line = 0u64;
    while text.len() < size {
        text.extend_from_slice(
            format!("2026-12-06T10:00:00Z host=db-1 level=info request={line:012} status=200 bytes=4096\n")
                .as_bytes(),
        );
        line += 1;
    }
    text.truncate(size);
    text
}

/// A whole number from the environment, or `default`.
fn mb_arg(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn timed(mut command: Command) -> Duration {
    let t = Instant::now();
    let out = command.stdout(Stdio::null()).output().unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

#[tokio::main]
async fn main() {
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let setups = numbers.first().copied().unwrap_or(20);
    let concurrent = numbers.get(1).copied().unwrap_or(100);
    let bin = Path::new(env!("CARGO_BIN_EXE_warden"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The bastion path logs in to db-1 with alice's own certificate, which the agent's sshd
    // configuration refuses (only the proxy's session certificates get in): turn that off
    // for this comparison.
    // A principals file naming the login itself (what a bastion user's own certificate
    // carries) beside the agent's command (the proxy's principal for db-1): sshd accepts a
    // principal from either.
    std::fs::write(d.join("principals"), "root\n").unwrap();
    let principals = format!(
        "AuthorizedPrincipalsFile {}\n",
        d.join("principals").display()
    );
    let lab = SshLab::start_opts(
        bin,
        d,
        &LabOptions {
            sshd_first: &principals,
            ..LabOptions::default()
        },
    )
    .await;
    let server = &lab.server;
    // The bastion: a stock sshd trusting Warden's user CA, allowed to forward.
    let bastion_dir = d.join("bastion");
    std::fs::create_dir_all(&bastion_dir).unwrap();
    let bastion_key = bastion_dir.join("host_key");
    ssh_keygen_ed25519(&bastion_key);
    let bastion = Sshd::start(
        &bastion_dir,
        &format!(
            "HostKey {}\nTrustedUserCAKeys {}\nAllowTcpForwarding yes\n",
            bastion_key.display(),
            d.join("agent-db-1/user_ca.pub").display()
        ),
    );

    let check = via_bastion(d, bastion.port, lab.port)
        .arg("true")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{} / bastion: {} / host: {}",
        String::from_utf8_lossy(&check.stderr),
        bastion.log(),
        lab.sshd.log()
    );
    // Bulk output, the two kinds users move: text (`cat` of a 300 MB log) and binary (`tar`
    // of 100 MB of incompressible files), each read through both paths, alternating.
    let text_mb = mb_arg("WARDEN_BENCH_TEXT_MB", 300);
    let binary_mb = mb_arg("WARDEN_BENCH_BINARY_MB", 100);
    let payload = d.join("payload.txt");
    let text = log_lines(text_mb * 1_000_000);
    std::fs::write(&payload, &text).unwrap();
    drop(text);
    let tree = d.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for f in 0..10 {
        let mut bytes = Vec::with_capacity(binary_mb * 100_000);
        while bytes.len() < binary_mb * 100_000 {
            // xorshift64: incompressible enough that nothing on the way shrinks it.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.extend_from_slice(&state.to_le_bytes());
        }
        std::fs::write(tree.join(format!("blob-{f}.bin")), bytes).unwrap();
    }
    let rounds = mb_arg("WARDEN_BENCH_ROUNDS", 5);
    let pty_mb = mb_arg("WARDEN_BENCH_PTY_MB", 100);
    let pty_payload = d.join("pty.txt");
    std::fs::write(&pty_payload, log_lines(pty_mb * 1_000_000)).unwrap();
    for (label, command, mb, pty) in [
        (
            format!("text: `cat` of a {text_mb} MB log"),
            format!("cat {}", payload.display()),
            text_mb as f64,
            false,
        ),
        (
            format!("binary: `tar c` of {binary_mb} MB of incompressible files"),
            format!("tar -C {} -cf - .", tree.display()),
            binary_mb as f64,
            false,
        ),
        (
            format!("text on a terminal: `ssh -tt` and `cat` of a {pty_mb} MB log"),
            format!("cat {}", pty_payload.display()),
            pty_mb as f64,
            true,
        ),
    ] {
        let tty: &[&str] = if pty { &["-tt"] } else { &[] };
        let (mut proxy_runs, mut bastion_runs) = (Vec::new(), Vec::new());
        let mut proxy_cpu = 0.0;
        let mut audited = Vec::new();
        for _ in 0..rounds {
            let mut proxy_cmd = through_proxy("ssh", server, d);
            proxy_cmd.args(tty).args(["-l", "root", "db-1", &command]);
            let (before, _) = usage(server.pid().unwrap());
            let ended = server.audit("ssh.session.end").len();
            proxy_runs.push(timed(proxy_cmd));
            // The session's end is audited once its recording is sealed and, on a terminal,
            // its transcript rendered: wait for it, so the bastion's run does not share the
            // cores with that work.
            let t = Instant::now();
            while server.audit("ssh.session.end").len() <= ended {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            audited.push(t.elapsed());
            proxy_cpu += usage(server.pid().unwrap()).0 - before;
            let mut bastion_cmd = via_bastion(d, bastion.port, lab.port);
            bastion_cmd.args(tty).arg(&command);
            bastion_runs.push(timed(bastion_cmd));
        }
        proxy_runs.sort();
        bastion_runs.sort();
        let (proxy_bulk, bastion_bulk) = (proxy_runs[rounds / 2], bastion_runs[rounds / 2]);
        println!(
            "bulk {label} (median of {rounds}): Warden proxy (recorded, sealed) {:.1} MB/s, stock bastion {:.1} MB/s: {:.2}x (target at least 0.9x)",
            mb / proxy_bulk.as_secs_f64(),
            mb / bastion_bulk.as_secs_f64(),
            bastion_bulk.as_secs_f64() / proxy_bulk.as_secs_f64()
        );
        println!(
            "  every run: Warden {:?} s, bastion {:?} s; the proxy (server process) used {:.2} CPU s per transfer",
            proxy_runs
                .iter()
                .map(|d| (d.as_secs_f64() * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            bastion_runs
                .iter()
                .map(|d| (d.as_secs_f64() * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            proxy_cpu / rounds as f64
        );
        audited.sort();
        println!(
            "  the session's end (recording sealed, transcript rendered) audited {:.2} s after the client finished (median)",
            audited[rounds / 2].as_secs_f64()
        );
    }

    // Session setup: `true`, one after another, alternating the two paths.
    let (mut proxy_setup, mut bastion_setup) = (Vec::new(), Vec::new());
    for _ in 0..setups {
        let mut c = through_proxy("ssh", server, d);
        c.args(["-l", "root", "db-1", "true"]);
        proxy_setup.push(timed(c));
        let mut c = via_bastion(d, bastion.port, lab.port);
        c.arg("true");
        bastion_setup.push(timed(c));
    }
    proxy_setup.sort();
    bastion_setup.sort();
    println!(
        "session setup (`ssh HOST true`, {setups} each): Warden proxy p50 {:.0} ms, p99 {:.0} ms; stock bastion p50 {:.0} ms, p99 {:.0} ms: {:.2}x (target at most 1.5x)",
        ms(percentile(&proxy_setup, 0.5)),
        ms(percentile(&proxy_setup, 0.99)),
        ms(percentile(&bastion_setup, 0.5)),
        ms(percentile(&bastion_setup, 0.99)),
        percentile(&proxy_setup, 0.5).as_secs_f64() / percentile(&bastion_setup, 0.5).as_secs_f64()
    );

    // Concurrent recorded sessions.
    let pid = server.pid().unwrap();
    let (cpu_before, _) = usage(pid);
    let ended_before = server.audit("ssh.session.end").len();
    let t = Instant::now();
    let children: Vec<_> = (0..concurrent)
        .map(|i| {
            through_proxy("ssh", server, d)
                .args([
                    "-l",
                    "root",
                    "db-1",
                    &format!("for n in 1 2 3 4 5; do echo session-{i}-$n; sleep 0.2; done"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut failed = 0;
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        if !String::from_utf8_lossy(&out.stdout).contains(&format!("session-{i}-5")) {
            failed += 1;
            eprintln!(
                "session {i} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let wall = t.elapsed();
    let mut ends = Vec::new();
    for _ in 0..200 {
        ends = server.audit("ssh.session.end");
        if ends.len() >= ended_before + concurrent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (cpu_after, peak) = usage(pid);
    let mut damaged = 0;
    let mut checked = 0;
    for end in &ends[ended_before..] {
        for r in end["details"]["recordings"].as_array().unwrap() {
            let path = server
                .data_dir
                .join("recordings")
                .join(r["file"].as_str().unwrap());
            let bytes = std::fs::read(&path).unwrap_or_default();
            let hash = format!("{:x}", sha2::Sha256::digest(&bytes));
            checked += 1;
            if hash != r["sha256"].as_str().unwrap() {
                damaged += 1;
            }
        }
    }
    println!(
        "{concurrent} concurrent recorded sessions (5 lines over 1 s each): {failed} failed, {} ended, {checked} recordings checked, {damaged} damaged or lost; wall {:.1} s; server process CPU {:.2} s, peak RSS {:.0} MiB",
        ends.len() - ended_before,
        wall.as_secs_f64(),
        cpu_after - cpu_before,
        peak
    );
}
