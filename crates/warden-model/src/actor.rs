//! Who did something, and how they proved it. Every audit event carries one.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Role, TokenName, UserName};

/// How an actor authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A bearer API token.
    ApiToken,
    /// A browser session, opened by signing in with a passkey (the console).
    WebSession,
    /// A client certificate from Warden's X.509 CA, over the mutual-TLS listener.
    MutualTls,
    /// A one-time host join token.
    JoinToken,
    /// The admin unix socket in the data directory: file permissions are the proof.
    UnixSocket,
    /// Not authenticated (a denied request, or Warden itself).
    None,
}

/// Who performed an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A person or service account acting through an API token issued for them.
    User {
        /// The user the token acts as.
        name: UserName,
        /// The token's id (`session:ID` for a console session).
        token_id: String,
        /// The token's role, which caps what it may do whatever the person's groups allow.
        /// `None` for a credential the person got by signing in with their passkey (a console
        /// session, `warden login`): it acts with the person's own rights.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<Role>,
    },
    /// An API token not tied to a user: it acts as itself.
    Token {
        /// The token's id.
        token_id: String,
        /// The token's name.
        name: TokenName,
        /// The token's role.
        role: Role,
    },
    /// The operator on the server host, through the admin socket.
    Operator,
    /// A joined host, proven by its agent's mutual-TLS certificate or its join token.
    Host {
        /// The host's name.
        name: crate::HostName,
        /// How it proved itself.
        method: AuthMethod,
    },
    /// An unauthenticated caller.
    Anonymous,
    /// Warden itself (migrations, expiry sweeps).
    System,
}

impl Actor {
    /// How this actor authenticated.
    pub fn auth_method(&self) -> AuthMethod {
        match self {
            Actor::User { token_id, .. } if token_id.starts_with("session:") => {
                AuthMethod::WebSession
            }
            Actor::User { .. } | Actor::Token { .. } => AuthMethod::ApiToken,
            Actor::Operator => AuthMethod::UnixSocket,
            Actor::Host { method, .. } => *method,
            Actor::Anonymous | Actor::System => AuthMethod::None,
        }
    }

    /// The role in force, if the actor acts through a role. The operator is an admin.
    pub fn role(&self) -> Option<Role> {
        match self {
            Actor::User { role, .. } => *role,
            Actor::Token { role, .. } => Some(*role),
            Actor::Operator => Some(Role::Admin),
            Actor::Host { .. } | Actor::Anonymous | Actor::System => None,
        }
    }
}

impl fmt::Display for Actor {
    /// A compact label for audit listings: `user:alice`, `token:ci`, `operator`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User { name, .. } => write!(f, "user:{name}"),
            Actor::Token { name, .. } => write!(f, "token:{name}"),
            Actor::Operator => f.write_str("operator"),
            Actor::Host { name, .. } => write!(f, "host:{name}"),
            Actor::Anonymous => f.write_str("anonymous"),
            Actor::System => f.write_str("system"),
        }
    }
}
