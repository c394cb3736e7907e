//! API token roles.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What an API token may do before the policy engine exists: a coarse role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every operation.
    Admin,
    /// Read everything, change nothing.
    Auditor,
    /// Its own identity and nothing more.
    Member,
    /// Only the SCIM provisioning endpoints under `/scim/v2`.
    Scim,
}

impl Role {
    /// Every role, in the order help texts list them.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Auditor, Role::Member, Role::Scim];

    /// The role's name as the CLI and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Member => "member",
            Role::Scim => "scim",
        }
    }
}

impl Role {
    /// Whether a token of this role may ever be allowed the Cedar action `action`: the role is
    /// a ceiling, asked before the policy, so a `member` token acting for an admin cannot do
    /// what only the admin's groups allow. A person's full rights need their own passkey-backed
    /// session (the console, `warden login`) or a token with a role that reaches that far.
    pub fn permits(self, action: &str) -> bool {
        match self {
            Role::Admin => true,
            Role::Auditor => READS.contains(&action),
            Role::Member => OWN.contains(&action),
            Role::Scim => false,
        }
    }
}

/// What an auditor token may do: read, never change.
const READS: [&str; 4] = ["read_directory", "read_audit", "read_policy", "read_vulns"];

/// What a member token may do: act as its person at hosts and the mesh, and decide access
/// requests the policy lets the person decide. Requests, certificates for oneself and one's own
/// review items need no Cedar action at all.
const OWN: [&str; 3] = ["ssh", "connect", "approve"];

/// An unknown role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`: expected admin, auditor, member or scim")]
pub struct RoleError(String);

impl FromStr for Role {
    type Err = RoleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| RoleError(s.chars().take(40).collect()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ceilings() {
        assert!(Role::Admin.permits("manage_tokens"));
        assert!(Role::Auditor.permits("read_audit"));
        assert!(!Role::Auditor.permits("manage_users"));
        assert!(!Role::Auditor.permits("ssh"));
        assert!(Role::Member.permits("ssh"));
        assert!(!Role::Member.permits("manage_tokens"));
        assert!(!Role::Member.permits("read_directory"));
        assert!(!Role::Scim.permits("ssh"));
        assert!(!Role::Member.permits("no_such_action"));
    }

    #[test]
    fn round_trips_and_refuses_unknown() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert_eq!(
            "root".parse::<Role>().unwrap_err().to_string(),
            "unknown role `root`: expected admin, auditor, member or scim"
        );
    }
}
