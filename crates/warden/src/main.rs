//! `warden`: one binary for the server and every command. This crate only parses the command
//! line and dispatches; the work is in the library crates.

/// `println!` for the CLI's output: quiet once its reader has gone ([`output::write`]).
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the CLI's output: quiet once its reader has gone ([`output::write`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}

mod admin;
mod agent;
mod audit;
mod break_glass;
mod cli;
mod client;
mod compliance;
mod http;
mod login;
mod mesh;
mod output;
mod pki;
mod policy;
mod request;
mod review;
mod sessions;
mod ssh;
mod vuln;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use warden_server::{Config, Server};

use crate::cli::{ApiCommand, Cli, Command, ServerArgs};

/// mimalloc: the server's threads allocate and free per database row and per event at once,
/// where the system allocator's locks cost more than the work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => match output::failed() {
            None => ExitCode::SUCCESS,
            Some(why) => {
                eprintln!("error: cannot write the output: {why}");
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            // One line: the context chain joined by ": ".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server(args) => server(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Proxy(args) => proxy(args).await,
        Command::Admin(args) => admin::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Compliance(args) => compliance::run(args).await,
        Command::Login(args) => login::run(args).await,
        Command::Ssh(args) => ssh::run(args).await,
        Command::Sessions(args) => sessions::run(args).await,
        Command::Play(args) => sessions::play(args).await,
        Command::Request(args) => request::run(args).await,
        Command::Vuln(args) => vuln::run(args).await,
        Command::Mesh(args) => mesh::run(args).await,
        Command::Review(args) => review::run(args).await,
        Command::Policy(args) => policy::run(args).await,
        Command::Ca(args) => pki::ca(args).await,
        Command::Cert(args) => pki::cert(args).await,
        Command::Agent(args) => agent::run(args).await,
        Command::BreakGlass(args) => break_glass::run(args),
        Command::Api {
            command: ApiCommand::Schema,
        } => {
            out!("{}", warden_server::graphql::sdl());
            Ok(())
        }
    }
}

fn load_config(args: &ServerArgs) -> anyhow::Result<Config> {
    Ok(Config::load(&args.overrides(), |k| std::env::var(k).ok())?)
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = load_config(&args)?;
    warden_server::logging::init(&config.log);
    let server = Server::start(config).await?;
    // Before saying "ready": a SIGTERM from then on must stop the server gracefully.
    let shutdown = shutdown_signal();
    let addr = server.http_addr()?;
    let config = server.config();
    let data_dir = config.data_dir.display();
    outln!(
        "Warden {} ready in {} ms",
        env!("CARGO_PKG_VERSION"),
        started.elapsed().as_millis()
    );
    outln!("  listening on   http://{addr}");
    outln!("  agent mTLS     https://{}", server.mtls_addr()?);
    match server.ssh_proxy_addr() {
        Ok(addr) => outln!("  ssh proxy      {addr}"),
        Err(why) => outln!("  ssh proxy      off: {why}"),
    }
    outln!("  console        {}", config.public_url);
    outln!("  GraphQL API    http://{addr}/graphql");
    outln!("  health         http://{addr}/healthz");
    outln!("  metrics        http://{addr}/metrics");
    outln!("  admin socket   {}", server.admin_socket().display());
    outln!("  database       {}", config.database);
    if let Some(link) = server.dev_first_admin().await? {
        // The link makes an admin: printed only to a person at a terminal, never into a log
        // that stdout was redirected to.
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            outln!("First admin: open this one-time link to register your passkey (24 h):");
            outln!("  {link}");
        } else {
            let path = config.data_dir.join("first-admin-link");
            write_private(&path, &format!("{link}\n"))?;
            outln!(
                "First admin: the one-time link to register your passkey (24 h) is in {} (mode 0600)",
                path.display()
            );
        }
    }
    outln!("First admin token:");
    outln!(
        "  warden admin --data-dir {data_dir} token create --name first-admin --role admin --ttl 1h"
    );
    tracing::info!(
        listen = %addr,
        admin_socket = %server.admin_socket().display(),
        database = %config.database,
        "ready"
    );
    server.run(shutdown).await;
    Ok(())
}

/// Writes `text` to a new file only its owner can read.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

async fn proxy(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = load_config(&args)?;
    warden_server::logging::init(&config.log);
    let database = config.database.to_string();
    let proxy = warden_server::ProxyServer::start(config).await?;
    let shutdown = shutdown_signal();
    let addr = proxy.addr()?;
    outln!(
        "Warden {} proxy ready in {} ms",
        env!("CARGO_PKG_VERSION"),
        started.elapsed().as_millis()
    );
    outln!("  ssh proxy      {addr}");
    outln!("  database       {database}");
    tracing::info!(listen = %addr, "ssh proxy ready");
    proxy.run(shutdown).await;
    Ok(())
}

async fn migrate(args: ServerArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    let _lock = warden_server::lock_data_dir(&config.data_dir)?;
    let store = warden_server::open_store(&config).await?;
    store.close().await;
    outln!("database {} is up to date", config.database);
    Ok(())
}

/// Completes on the first SIGINT or SIGTERM.
/// Completes on the first SIGINT or SIGTERM. The handlers are installed here, at once, so a
/// signal that arrives right after the server says it is ready is not lost (or fatal).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).context("cannot watch SIGTERM");
    let int = signal(SignalKind::interrupt()).context("cannot watch SIGINT");
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "signals unavailable; stop with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
}
