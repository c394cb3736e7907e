//! `warden admin`: operating a server over its admin socket.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use warden_model::{Role, Ttl};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The server's data directory, where its admin socket is
    /// [default: ./.warden if it exists, else /var/lib/warden].
    #[arg(long, env = "WARDEN_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Users: add, list, disable, enable.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Groups: add, list, add-member, remove-member.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// API tokens: create, list, revoke.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// One-time tokens that admit a host through `warden agent`.
    JoinToken {
        #[command(subcommand)]
        command: JoinTokenCommand,
    },
    /// Web sessions: list, end.
    Session {
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Joined hosts: list, remove.
    Host {
        #[command(subcommand)]
        command: HostCommand,
    },
    /// Emergency access (HIPAA's emergency access procedure): sealed, split SSH credentials
    /// that hosts accept only while they cannot reach Warden; their uses and after-action
    /// reviews.
    BreakGlass {
        #[command(subcommand)]
        command: AdminBreakGlassCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminBreakGlassCommand {
    /// Make a credential: an SSH key and certificate from a CA made for it alone, sealed and
    /// split into share files of which `--threshold` open it (`warden break-glass open`).
    Create {
        /// How long it works, 1m to 366d.
        #[arg(long, default_value = "90d")]
        ttl: String,
        /// How many share files.
        #[arg(long, default_value_t = 1)]
        shares: u8,
        /// How many of them open it.
        #[arg(long, default_value_t = 1)]
        threshold: u8,
        /// Why it exists (recorded).
        #[arg(long)]
        reason: String,
        /// Write the share files here (made if missing; each file mode 0600).
        #[arg(long, short = 'o', value_name = "DIR")]
        out: PathBuf,
    },
    /// Credentials, newest first.
    List,
    /// Revoke a credential: hosts stop trusting it at their next contact.
    Revoke { id: String },
    /// Reported uses, newest first, with their after-action reviews.
    Uses {
        /// Only those whose review is open.
        #[arg(long)]
        open: bool,
    },
    /// Close a use's after-action review with what was done and why.
    CloseReview {
        /// The use's id.
        id: String,
        /// What was done and why.
        #[arg(long)]
        summary: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// List joined hosts.
    List,
    /// Remove a host: its agent can no longer renew and must join again.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum JoinTokenCommand {
    /// Create a join token for a host and print it once.
    Create {
        /// The host's name: its SSH certificate principal and `Warden::Host` id.
        #[arg(long)]
        host: String,
        /// A label for policy, key=value (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Another name or IP address clients use for the host (repeatable).
        #[arg(long = "address", value_name = "ADDR")]
        addresses: Vec<String>,
        /// How long the token works, 1m to 366d.
        #[arg(long, default_value = "1h")]
        ttl: Ttl,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user.
    Add {
        /// Login name: lowercase letters, digits, '.', '_' and '-'.
        name: String,
        /// Name for display.
        #[arg(long)]
        display_name: Option<String>,
        /// Contact address.
        #[arg(long)]
        email: Option<String>,
    },
    /// List users.
    List,
    /// Disable a user: their tokens stop working at once.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
    /// Print a one-time link (24 h) with which a local user registers their first passkey.
    EnrollLink { name: String },
    /// Remove all of a user's passkeys and end their sessions: they enroll again.
    ResetPasskeys { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List open web sessions.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
    },
    /// End a web session at once.
    End { id: String },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a group.
    Add {
        name: String,
        /// What the group is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List groups with their members.
    List,
    /// Put a user in a group.
    AddMember { group: String, user: String },
    /// Take a user out of a group.
    RemoveMember { group: String, user: String },
    /// Make a user the group's owner, who reviews its members in `--reviewer owner` reviews.
    SetOwner {
        group: String,
        user: String,
        /// Only if the owner is still this user: if another changed it, the change is refused
        /// as stale (and recorded), and nothing changes.
        #[arg(long, value_name = "USER", conflicts_with = "if_no_owner")]
        if_owner: Option<String>,
        /// Only if the group still has no owner.
        #[arg(long)]
        if_no_owner: bool,
    },
    /// Leave the group without an owner.
    ClearOwner {
        group: String,
        /// Only if the owner is still this user: if another changed it, the change is refused
        /// as stale (and recorded), and nothing changes.
        #[arg(long, value_name = "USER")]
        if_owner: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it once.
    Create {
        /// Label, unique among live tokens.
        #[arg(long)]
        name: String,
        /// admin, auditor, member or scim.
        #[arg(long)]
        role: Role,
        /// The user the token acts as; absent, it acts as itself (a service).
        #[arg(long)]
        user: Option<String>,
        /// Lifetime, 1m to 366d.
        #[arg(long, default_value = "12h")]
        ttl: Ttl,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id or name.
    Revoke { token: String },
}
