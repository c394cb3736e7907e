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
