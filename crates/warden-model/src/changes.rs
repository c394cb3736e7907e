//! What committed changes wake, for the processes that follow commits: the SSH proxy (open
//! sessions are checked again) and the mesh (node maps are recomputed). Commits arrive as
//! names (in-process, and across processes through PostgreSQL's NOTIFY); each is read as a
//! [`Change`], which knows its effect. A name this version does not know (a newer replica's,
//! or `*`, "anything may have changed") wakes everything: a consumer never misses a change by
//! failing to read it.

use crate::Change;

/// Whether the committed change `action` can end someone's access.
pub fn ends_access(action: &str) -> bool {
    action.parse::<Change>().map_or(true, Change::ends_access)
}

/// Whether the committed change `action` can change a mesh node's map.
pub fn changes_mesh(action: &str) -> bool {
    action.parse::<Change>().map_or(true, Change::changes_mesh)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every change that takes access away from a person.
    const TAKE_ACCESS_AWAY: &[Change] = &[
        Change::UserDisable,
        Change::UserDelete,
        Change::UserUpdate,
        Change::GroupRemoveMember,
        Change::GroupDelete,
        Change::GroupRelease,
        Change::GrantExpire,
        Change::ReviewRevoke,
        Change::PolicyApply,
    ];

    #[test]
    fn every_access_ending_change_wakes_every_consumer() {
        for change in TAKE_ACCESS_AWAY {
            let name = change.as_str();
            assert!(ends_access(name), "{name} does not wake the proxy");
            assert!(changes_mesh(name), "{name} does not refresh the mesh");
        }
        for change in [
            Change::TokenRevoke,
            Change::SshRevoke,
            Change::SshRevokeKeyId,
            Change::CaRotate,
            Change::SshSessionKill,
            Change::HostRemove,
        ] {
            assert!(
                ends_access(change.as_str()),
                "{change} does not wake the proxy"
            );
        }
        for change in [
            Change::MeshNodeRemove,
            Change::HostJoin,
            Change::HostRemove,
            Change::AccessApprove,
        ] {
            assert!(
                changes_mesh(change.as_str()),
                "{change} does not refresh the mesh"
            );
        }
    }

    #[test]
    fn unknown_names_wake_everything() {
        for name in ["*", "user.rename", "a change from a newer replica"] {
            assert!(ends_access(name), "{name}");
            assert!(changes_mesh(name), "{name}");
        }
    }

    #[test]
    fn reads_and_unrelated_changes_wake_nothing() {
        for change in [
            Change::VulnImport,
            Change::SshSessionStart,
            Change::SshIssue,
            Change::AuditArchive,
            Change::AuthLogin,
            Change::ReviewCreate,
        ] {
            assert!(!ends_access(change.as_str()), "{change}");
            assert!(!changes_mesh(change.as_str()), "{change}");
        }
    }

    #[test]
    fn every_change_reads_back_by_its_name() {
        let mut names: Vec<&str> = Change::ALL.iter().map(|c| c.as_str()).collect();
        let listed = names.clone();
        names.sort_unstable();
        assert_eq!(names, listed, "Change::ALL must stay in name order");
        for change in Change::ALL {
            assert_eq!(change.as_str().parse::<Change>(), Ok(*change));
        }
        assert_eq!(
            "user.rename".parse::<Change>().unwrap_err().to_string(),
            "`user.rename` is not an audit change this version of Warden knows"
        );
    }
}
