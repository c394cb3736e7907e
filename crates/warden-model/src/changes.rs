//! What a committed audit action can change, for the processes that follow commits: the SSH
//! proxy (open sessions are checked again) and the mesh (node maps are recomputed). One list
//! of who-may-do-what actions serves both, so a new way to end access reaches every consumer.

/// Actions that change who may do what: people, groups and their members, grants (approved,
/// expired, revoked), reviews that revoke, SCIM provisioning, the policy.
const WHO_MAY: &[&str] = &[
    "user.",
    "group.",
    "grant.",
    "scim.",
    "policy.",
    "access.approve",
    "review.revoke",
];

/// Actions that end a credential or a session: tokens, certificates, CAs, hosts, a kill.
const CREDENTIALS: &[&str] = &[
    "token.",
    "ca.",
    "ssh.revoke",
    "ssh.session.kill",
    "host.remove",
];

/// Actions that change the mesh itself: its nodes, and the hosts and their labels.
const MESH: &[&str] = &["mesh.", "host."];

fn any_of(action: &str, lists: &[&[&str]]) -> bool {
    action == "*"
        || lists
            .iter()
            .flat_map(|list| list.iter())
            .any(|prefix| action.starts_with(prefix))
}

/// Whether `action` can end someone's access (`*` stands for "anything may have changed").
pub fn ends_access(action: &str) -> bool {
    any_of(action, &[WHO_MAY, CREDENTIALS])
}

/// Whether `action` can change a mesh node's map.
pub fn changes_mesh(action: &str) -> bool {
    any_of(action, &[WHO_MAY, MESH])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every action that takes access away from a person, as the store names them.
    const TAKE_ACCESS_AWAY: &[&str] = &[
        "user.disable",
        "user.delete",
        "user.update",
        "group.remove_member",
        "group.delete",
        "group.release",
        "grant.expire",
        "review.revoke",
        "policy.apply",
    ];

    #[test]
    fn every_access_ending_action_wakes_every_consumer() {
        for action in TAKE_ACCESS_AWAY {
            assert!(ends_access(action), "{action} does not wake the proxy");
            assert!(changes_mesh(action), "{action} does not refresh the mesh");
        }
        for action in [
            "token.revoke",
            "ssh.revoke",
            "ca.rotate",
            "ssh.session.kill",
            "host.remove",
        ] {
            assert!(ends_access(action), "{action} does not wake the proxy");
        }
        for action in [
            "mesh.node.remove",
            "host.join",
            "host.remove",
            "access.approve",
            "*",
        ] {
            assert!(changes_mesh(action), "{action} does not refresh the mesh");
        }
    }

    #[test]
    fn reads_and_unrelated_changes_wake_nothing() {
        for action in [
            "vuln.import",
            "ssh.session.start",
            "ssh.issue",
            "audit.archive",
            "auth.login",
        ] {
            assert!(!ends_access(action), "{action}");
            assert!(!changes_mesh(action), "{action}");
        }
    }
}
