//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use warden_server::Overrides;

mod admin;
mod hosts;

pub use admin::{
    AdminArgs, AdminBreakGlassCommand, AdminCommand, GroupCommand, HostCommand, JoinTokenCommand,
    SessionCommand, TokenCommand, UserCommand,
};
pub use hosts::{AgentArgs, BreakGlassArgs, BreakGlassCommand, MeshArgs, MeshCommand};

/// Warden: SSO, passkeys, one policy engine, short-lived certificates and a provable audit log.
#[derive(Debug, Parser)]
#[command(name = "warden", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane: GraphQL API, admin socket, metrics, health.
    ///
    /// Settings come from the config file, then WARDEN_* environment variables, then flags.
    Server(ServerArgs),
    /// Apply database migrations and exit.
    Migrate(ServerArgs),
    /// Run only the recording SSH proxy (`listen.ssh_proxy`), beside the servers: the same
    /// config, database and key-encryption key (`kek_file`), its own data directory.
    Proxy(ServerArgs),
    /// Operate a server on this host through its admin socket (users, groups, tokens).
    Admin(AdminArgs),
    /// The tamper-evident audit log: key, tail, query, export, verify.
    Audit(AuditArgs),
    /// SOC 2 and HIPAA controls, tested continuously from what Warden enforces.
    Compliance(ComplianceArgs),
    /// Sign the command line in: authorize it in the browser where you are signed in, get a
    /// 12-hour credential and an SSH certificate.
    Login(LoginArgs),
    /// SSH to a host through Warden's recording proxy, with the `warden login` credential:
    /// `warden ssh [LOGIN@]HOST [COMMAND]`. `warden ssh config` prints an ssh_config block for
    /// stock `ssh`.
    Ssh(SshArgs),
    /// SSH sessions through the proxy: list them, end one.
    Sessions(SessionsArgs),
    /// Replay a recorded SSH session in the terminal with its original timing.
    Play(PlayArgs),
    /// Just-in-time access: ask for a group for a while, list requests, approve or deny them.
    Request(RequestArgs),
    /// Access reviews: start a campaign, decide items, close it, print its report.
    Review(ReviewArgs),
    /// Vulnerabilities with severity SLAs: import scans, list and judge findings, figures,
    /// and a CI gate.
    Vuln(VulnArgs),
    /// The WireGuard mesh: join with this device, print a wg-quick file, show a node's state.
    Mesh(MeshArgs),
    /// Policy as code (Cedar): check and test a directory offline, apply it to the server,
    /// show versions and history, explain decisions.
    Policy(PolicyArgs),
    /// Certificate authorities: rotate a CA with an overlap window.
    Ca(CaArgs),
    /// X.509 workload certificates for mutual TLS.
    Cert(CertArgs),
    /// Run the host agent: join with a one-time token, then keep the host's SSH certificate
    /// and mutual-TLS certificate fresh and sshd pointed at Warden.
    Agent(AgentArgs),
    /// Emergency access when Warden is down: open a break-glass credential from its shares
    /// (no server needed). `warden admin break-glass create` makes one.
    BreakGlass(BreakGlassArgs),
    /// The GraphQL API.
    Api {
        #[command(subcommand)]
        command: ApiCommand,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// TOML configuration file.
    #[arg(long, env = "WARDEN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory: SQLite database, admin socket, lock [default: /var/lib/warden, or ./.warden with --dev].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address [default: 127.0.0.1:8080].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// PostgreSQL URL (postgres://USER@HOST/DB); absent, SQLite in the data directory.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// One-machine defaults: data in ./.warden, listening on 127.0.0.1:8080.
    #[arg(long)]
    pub dev: bool,
}

impl ServerArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            // The environment is read by Config::load; clap's `env` here only documents it.
            config_file: self.config.clone(),
            data_dir: self.data_dir.clone(),
            listen: self.listen.clone(),
            database_url: self.database_url.clone(),
            dev: self.dev,
        }
    }
}

/// Talks to a server over its admin socket, or at a URL with WARDEN_TOKEN.
#[derive(Debug, Args)]
pub struct ServerConnection {
    /// Talk to the server owning this data directory, over its admin socket
    /// [default: ./.warden if it exists, else /var/lib/warden].
    #[arg(long, env = "WARDEN_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Talk to the server at this URL (http://HOST:PORT) with the API token in WARDEN_TOKEN.
    #[arg(long, env = "WARDEN_SERVER", value_name = "URL", global = true)]
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(flatten)]
    pub connection: ServerConnection,
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Add a new key for a CA and keep the old one trusted for an overlap window.
    Rotate {
        /// ssh-user, ssh-host or x509.
        #[arg(long)]
        kind: String,
        /// How long the old key stays trusted [default: the longest lifetime of what it signed].
        #[arg(long)]
        overlap: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CertArgs {
    #[command(flatten)]
    pub connection: ServerConnection,
    #[command(subcommand)]
    pub command: CertCommand,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Get a workload certificate naming a SPIFFE id. Without --csr, a P-256 key is made here
    /// and written to DIR/key.pem; it never leaves this machine.
    Issue {
        /// spiffe://TRUST_DOMAIN/PATH.
        #[arg(long)]
        spiffe_id: String,
        /// Certify the key of this PKCS#10 CSR (PEM) instead of making one.
        #[arg(long, value_name = "FILE")]
        csr: Option<PathBuf>,
        /// Where to write cert.pem, chain.pem, bundle.pem (and key.pem).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Lifetime [default: 24h, at most the server's x509.max_ttl].
        #[arg(long)]
        ttl: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub connection: ServerConnection,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print Warden's Cedar schema.
    Schema,
    /// Write the shipped starter set (policies and tests) into DIR to edit.
    Init { dir: PathBuf },
    /// Parse DIR/*.cedar and validate it against the schema; errors at file:line:col.
    Check { dir: PathBuf },
    /// Run DIR/tests.toml against DIR/*.cedar and print a table of results.
    Test { dir: PathBuf },
    /// Send DIR to the server: it validates, runs the tests, refuses a set that fails, shows
    /// the diff and activates the set as a new version.
    Apply {
        dir: PathBuf,
        /// Check, test and show the diff, but activate nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only if version N is still the one in force (0: none yet); if another is, the set
        /// is refused as stale (and recorded) and nothing changes.
        #[arg(long, value_name = "N")]
        if_version: Option<i64>,
    },
    /// Print the active policy set, or version N.
    #[command(disable_version_flag = true)]
    Show {
        #[arg(long, value_name = "N")]
        version: Option<i64>,
    },
    /// List every policy version applied, newest first.
    History,
    /// Decide a request with the server's active policy and data, and say why.
    Explain {
        /// user:NAME, service:NAME, or a Cedar reference like Warden::User::"alice".
        #[arg(long, value_name = "ENTITY")]
        principal: String,
        /// ssh, connect, manage_users, … (`warden policy schema` lists them).
        #[arg(long, value_name = "ACTION")]
        action: String,
        /// host:NAME, api:NAME, or a Cedar reference.
        #[arg(long, value_name = "ENTITY")]
        resource: String,
        /// The request's context as a JSON object, like '{"login": "root"}'.
        #[arg(long, value_name = "JSON")]
        context: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub connection: ServerConnection,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: SessionsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, newest first.
    List {
        /// Only sessions still open.
        #[arg(long)]
        active: bool,
    },
    /// End an open session at once; its user sees who ended it, and why.
    Kill {
        id: String,
        /// Why, shown to the user and kept in the audit log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Find sessions whose transcript (what the terminal showed) contains TEXT.
    Search { text: String },
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    #[command(flatten)]
    pub connection: ServerConnection,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: RequestCommand,
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Ask for temporary membership of a group; prints the request's id.
    Create {
        /// The group.
        #[arg(long)]
        group: String,
        /// Why, for the approvers and the record.
        #[arg(long)]
        reason: String,
        /// How long the grant lasts once approved, like 30m or 2h (1s to 30d).
        #[arg(long, default_value = "1h")]
        duration: String,
        /// How many approvers must approve (1 to 5).
        #[arg(long, default_value_t = 1)]
        approvals: i32,
    },
    /// Requests you made or may decide, newest first.
    List {
        /// Only pending requests.
        #[arg(long)]
        pending: bool,
    },
    /// Approve a pending request.
    Approve {
        id: String,
        /// Why, for the record.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Deny a pending request.
    Deny {
        id: String,
        /// Why, for the requester and the record.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    #[command(flatten)]
    pub connection: ServerConnection,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: ReviewCommand,
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Start a campaign: who holds the groups in scope, or which API tokens are live, is
    /// frozen and hashed now.
    Create {
        /// What people call it: "Q1 2027 production access".
        #[arg(long)]
        name: Option<String>,
        /// `groups:*` (every group), `groups:ops,web`, `tokens:*` (every live API token, with
        /// its owner and role) or `tokens:admin,scim`.
        #[arg(long, default_value = "groups:*")]
        scope: String,
        /// Who reviews: a user name, `owner` (each group's owner) or `manager` (each person's
        /// manager from SCIM; for a token, its owner's).
        #[arg(long)]
        reviewer: String,
        /// When decisions are due: 2026-12-31, an RFC 3339 time, or a span like 14d.
        #[arg(long)]
        due: String,
        /// Revoke whatever is undecided at the due date.
        #[arg(long)]
        auto_revoke: bool,
    },
    /// Campaigns, newest first (yours to decide, or all with the `review` permission).
    List,
    /// A campaign's items.
    Show { id: String },
    /// Keep or revoke items, with a justification.
    Decide {
        id: String,
        /// Item numbers, like 1,2,5.
        #[arg(long, value_delimiter = ',', required = true)]
        items: Vec<u32>,
        /// Keep them.
        #[arg(long, conflicts_with = "revoke", required_unless_present = "revoke")]
        keep: bool,
        /// Revoke them (applied, then verified).
        #[arg(long)]
        revoke: bool,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Close a campaign; undecided items stay so on the record.
    Close { id: String },
    /// The campaign's report: the population before, what is kept after, every decision.
    Report {
        id: String,
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: String,
    },
}

#[derive(Debug, Args)]
pub struct VulnArgs {
    #[command(flatten)]
    pub connection: ServerConnection,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: VulnCommand,
}

/// What `warden vuln list` shows.
#[derive(Debug, Args)]
pub struct VulnListArgs {
    /// Only open findings past their due date, most overdue first.
    #[arg(long)]
    pub overdue: bool,
    /// At least this severity: critical, high, medium, low, informational.
    #[arg(long)]
    pub severity: Option<String>,
    /// Only on this asset.
    #[arg(long)]
    pub asset: Option<String>,
    /// In these states instead: open, triage, no_fix, fixed, accepted, false_positive.
    #[arg(long, value_delimiter = ',')]
    pub state: Vec<String>,
    /// Only those whose advisory id, title or package contains this, ignoring case.
    #[arg(long)]
    pub text: Option<String>,
    /// The order: number (oldest first), due (soonest first) or severity (most severe first).
    #[arg(long)]
    pub sort: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum VulnCommand {
    /// Import a scanner's output, all or nothing: SARIF 2.1.0, Trivy, Grype, OSV-Scanner or
    /// cargo-audit JSON. A re-import for the same asset and scanner fixes what disappeared and
    /// reopens what came back.
    Import {
        /// The scanner's output file.
        file: PathBuf,
        /// The asset scanned (an image, a service, a repository).
        #[arg(long)]
        asset: String,
        /// auto, sarif, trivy, grype, osv-scanner or cargo-audit.
        #[arg(long, default_value = "auto")]
        format: String,
        /// The scanner's name [default: the format's].
        #[arg(long)]
        scanner: Option<String>,
    },
    /// Live findings (open, in triage, waiting for a fix), by number.
    List(VulnListArgs),
    /// One finding with its clock, scanners and history.
    Show { id: i64 },
    /// Re-rate a finding, with a justification.
    Rate {
        id: i64,
        /// critical, high, medium, low or informational.
        #[arg(long)]
        severity: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Accept a finding's risk until a date (at most 366 days); you are the approver.
    Accept {
        id: i64,
        /// 2027-03-31, an RFC 3339 time, or a span like 30d.
        #[arg(long)]
        until: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Call a finding a false positive.
    FalsePositive {
        id: i64,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Reopen an accepted, false-positive or fixed finding.
    Reopen {
        id: i64,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Remediation figures: open by severity, overdue, mean time to remediate, SLA compliance.
    Stats {
        /// The period: a span back from now (30d), a date or an RFC 3339 time.
        #[arg(long, default_value = "30d")]
        since: String,
        /// Only this asset.
        #[arg(long)]
        asset: Option<String>,
    },
    /// For CI: exit 1 when the asset has open findings that are overdue, unrated or at a
    /// severity or above.
    Gate {
        /// The asset.
        #[arg(long)]
        asset: String,
        /// overdue, unrated, or a severity (a floor), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        fail_on: Vec<String>,
    },
    /// Assets, or put one in an SLA tier.
    Asset {
        /// The asset to change.
        name: Option<String>,
        /// The configured tier to put it in.
        #[arg(long, requires = "name")]
        tier: Option<String>,
    },
    /// File a vulnerability report as a finding (in triage unless rated).
    Report {
        /// The asset it is about.
        #[arg(long)]
        asset: String,
        /// One line.
        #[arg(long)]
        title: String,
        /// A file with the report's text ("-" for stdin).
        #[arg(long)]
        details: PathBuf,
        /// The reporter's rating.
        #[arg(long)]
        severity: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct PlayArgs {
    #[command(flatten)]
    pub connection: ServerConnection,
    /// A session id (its first recording) or a recording file name.
    pub recording: String,
    /// Playback speed: 2 is twice as fast.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
}

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct SshArgs {
    /// The proxy, HOST:PORT [default: the signed-in server's host, port 3022].
    #[arg(long, env = "WARDEN_SSH_PROXY", value_name = "HOST:PORT")]
    pub proxy: Option<String>,
    /// With WARDEN_TOKEN instead of `warden login`: the Warden server's URL.
    #[arg(long, env = "WARDEN_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Relay stdin and stdout to the proxy for HOST (what the ssh_config's ProxyCommand runs).
    #[arg(long, value_name = "HOST", conflicts_with = "target")]
    pub stdio: Option<String>,
    /// `[LOGIN@]HOST`, or `config` to print an ssh_config block.
    pub target: Option<String>,
    /// The command to run (default: an interactive shell); after `config`, host patterns.
    #[arg(allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The Warden server's URL.
    #[arg(long, env = "WARDEN_SERVER", value_name = "URL")]
    pub server: String,
    /// Only print the address to open; do not start a browser.
    #[arg(long)]
    pub no_browser: bool,
}

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Print the GraphQL schema (SDL).
    Schema,
}

#[derive(Debug, Args)]
pub struct ComplianceArgs {
    /// Talk to the server owning this data directory, over its admin socket
    /// [default: ./.warden if it exists, else /var/lib/warden].
    #[arg(long, env = "WARDEN_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Talk to the server at this URL (http://HOST:PORT) with the API token in WARDEN_TOKEN.
    #[arg(long, env = "WARDEN_SERVER", value_name = "URL", global = true)]
    pub server: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: ComplianceCommand,
}

#[derive(Debug, Subcommand)]
pub enum ComplianceCommand {
    /// Each control, its tests, pass or fail, exception counts and the trend over the period;
    /// with --test, one test's exceptions.
    Status {
        /// soc2 or hipaa [default: both].
        #[arg(long)]
        framework: Option<String>,
        /// The period's start, RFC 3339 [default: the midnight UTC 90 days before --to, or when the log began].
        #[arg(long)]
        from: Option<String>,
        /// The period's end, RFC 3339 [default: now].
        #[arg(long)]
        to: Option<String>,
        /// Show one test's exceptions, like leaver-deprovision.
        #[arg(long, value_name = "TEST")]
        test: Option<String>,
        /// Compute now: without a period, status shows the compliance monitor's latest run
        /// (at most two `compliance.monitor_every` old), saying when it ran.
        #[arg(long)]
        fresh: bool,
    },
    /// Write a signed evidence bundle for an auditor: per control the results, the whole
    /// population as CSV, the events with their proofs, a printable report and OSCAL.
    Evidence {
        /// soc2 or hipaa.
        #[arg(long)]
        framework: String,
        /// The period's start, RFC 3339 [default: the midnight UTC 90 days before --to, or when the log began].
        #[arg(long)]
        from: Option<String>,
        /// The period's end, RFC 3339 [default: now].
        #[arg(long)]
        to: Option<String>,
        /// The zip file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Check a bundle offline with the log's public key: every proof, and every result
    /// recomputed from the events inside.
    Verify {
        /// The bundle.
        file: PathBuf,
        /// The log's public key (from `warden audit key`).
        #[arg(long, value_name = "PUBKEY")]
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Talk to the server owning this data directory, over its admin socket
    /// [default: ./.warden if it exists, else /var/lib/warden].
    #[arg(long, env = "WARDEN_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Talk to the server at this URL (http://HOST:PORT) with the API token in WARDEN_TOKEN.
    #[arg(long, env = "WARDEN_SERVER", value_name = "URL", global = true)]
    pub server: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the log's public key (signed-note verifier key).
    Key,
    /// Print the latest events; with -f, keep printing new ones.
    Tail {
        /// Keep following new events.
        #[arg(short, long)]
        follow: bool,
        /// How many recent events to start with.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
    },
    /// Search events.
    Query {
        /// Actor label, like user:alice, token:ci or operator.
        #[arg(long)]
        actor: Option<String>,
        /// Action, like user.create.
        #[arg(long)]
        action: Option<String>,
        /// Target, like user:alice.
        #[arg(long)]
        target: Option<String>,
        /// At or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Write events, signed checkpoints and proofs to one JSONL file.
    Export {
        /// From this sequence number.
        #[arg(long)]
        since_seq: Option<u64>,
        /// Up to this sequence number.
        #[arg(long)]
        until_seq: Option<u64>,
        /// Events at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Events before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Only this actor's events (`user:alice`): a selection, each event with its proof.
        #[arg(long)]
        actor: Option<String>,
        /// Only events of this action (`user.disable`): a selection.
        #[arg(long)]
        action: Option<String>,
        /// Only events on this target (`group:ops`): a selection.
        #[arg(long)]
        target: Option<String>,
        /// Only events with this outcome (success, failure or denied): a selection.
        #[arg(long)]
        outcome: Option<String>,
        /// The file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Evidence of offboarding: people disabled since a time, and how long until none of
    /// their SSH sessions was left open.
    Leavers {
        /// RFC 3339 time, or a span back from now like 30d [default: 90d].
        #[arg(long)]
        since: Option<String>,
    },
    /// Check the log: an export FILE offline with --key, or the running server's whole log.
    Verify {
        /// An export file to check offline.
        file: Option<PathBuf>,
        /// The log's public key (from `warden audit key`); required with FILE.
        #[arg(long, value_name = "PUBKEY")]
        key: Option<String>,
        /// A checkpoint kept outside the database (a signed note, or a line of a JSONL sink's
        /// checkpoints.jsonl): proves the running server's log still extends it.
        #[arg(long, value_name = "NOTE", conflicts_with = "file")]
        checkpoint: Option<PathBuf>,
    },
}
