//! Every change the audit log records, by name, and what each can change for the processes
//! that follow commits: the SSH proxy (open sessions are checked again) and the mesh (node maps
//! are recomputed).
//!
//! The store writes a change only as a [`Change`], so a new one must be added here, and the
//! compiler then asks what it does: whether it can end someone's access, change the mesh, both,
//! or neither. Records that change nothing (denials, sensitive reads) are not changes and wake
//! nobody.

use std::fmt;
use std::str::FromStr;

/// What a change can do to the consumers of commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// It changes who may do what (people, groups, grants, reviews, the policy): every
    /// consumer must look again.
    WhoMay,
    /// It ends a credential or a session (tokens, certificates, CAs, a kill).
    Credential,
    /// It ends a credential and changes the mesh (a host removed).
    CredentialAndMesh,
    /// It changes the mesh's own nodes or hosts.
    Mesh,
    /// It changes neither (an import, a review's progress, a sign-in).
    Nothing,
}

macro_rules! changes {
    ($($variant:ident = $name:literal, $effect:ident;)*) => {
        /// A change the audit log records, named as in the log (`user.disable`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Change {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Change {
            /// Every change, in the order of their names.
            pub const ALL: &'static [Change] = &[$(Change::$variant),*];

            /// The name in the audit log.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Change::$variant => $name,)*
                }
            }

            const fn effect(self) -> Effect {
                match self {
                    $(Change::$variant => Effect::$effect,)*
                }
            }
        }
    };
}

changes! {
    AccessApprove = "access.approve", WhoMay;
    AccessDeny = "access.deny", Nothing;
    AccessRequest = "access.request", Nothing;
    AuditArchive = "audit.archive", Nothing;
    AuthCliAuthorize = "auth.cli.authorize", Nothing;
    AuthCliToken = "auth.cli.token", Nothing;
    AuthEnroll = "auth.enroll", Nothing;
    AuthLogin = "auth.login", Nothing;
    AuthPasskey = "auth.passkey", Nothing;
    BreakGlassCreate = "break_glass.create", Nothing;
    BreakGlassReviewClose = "break_glass.review.close", Nothing;
    BreakGlassRevoke = "break_glass.revoke", Credential;
    BreakGlassUse = "break_glass.use", Nothing;
    CaCreate = "ca.create", Credential;
    CaRotate = "ca.rotate", Credential;
    ComplianceTestFail = "compliance.test.fail", Nothing;
    ComplianceTestPass = "compliance.test.pass", Nothing;
    GrantExpire = "grant.expire", WhoMay;
    GroupAddMember = "group.add_member", WhoMay;
    GroupCreate = "group.create", WhoMay;
    GroupDelete = "group.delete", WhoMay;
    GroupRelease = "group.release", WhoMay;
    GroupRemoveMember = "group.remove_member", WhoMay;
    GroupSetOwner = "group.set_owner", WhoMay;
    GroupUpdate = "group.update", WhoMay;
    HostJoin = "host.join", Mesh;
    HostJoinTokenCreate = "host.join_token.create", Mesh;
    HostRemove = "host.remove", CredentialAndMesh;
    MeshNodeEnroll = "mesh.node.enroll", Mesh;
    MeshNodeRemove = "mesh.node.remove", Mesh;
    PasskeyLock = "passkey.lock", Nothing;
    PasskeyRegister = "passkey.register", Nothing;
    PasskeyRemove = "passkey.remove", Nothing;
    PasskeyReset = "passkey.reset", Nothing;
    PolicyApply = "policy.apply", WhoMay;
    ReviewClose = "review.close", Nothing;
    ReviewCreate = "review.create", Nothing;
    ReviewKeep = "review.keep", Nothing;
    ReviewRemind = "review.remind", Nothing;
    ReviewRevoke = "review.revoke", WhoMay;
    ReviewVerify = "review.verify", Nothing;
    SessionEnd = "session.end", Nothing;
    SshIssue = "ssh.issue", Nothing;
    SshRevoke = "ssh.revoke", Credential;
    SshRevokeKeyId = "ssh.revoke_key_id", Credential;
    SshSessionEnd = "ssh.session.end", Nothing;
    SshSessionKill = "ssh.session.kill", Credential;
    SshSessionStart = "ssh.session.start", Nothing;
    TokenCreate = "token.create", Credential;
    TokenRevoke = "token.revoke", Credential;
    UserCreate = "user.create", WhoMay;
    UserDelete = "user.delete", WhoMay;
    UserDisable = "user.disable", WhoMay;
    UserEnable = "user.enable", WhoMay;
    UserEnrollLinkCreate = "user.enroll_link.create", WhoMay;
    UserUpdate = "user.update", WhoMay;
    VulnAccept = "vuln.accept", Nothing;
    VulnAcceptExpire = "vuln.accept.expire", Nothing;
    VulnAssetTier = "vuln.asset.tier", Nothing;
    VulnFalsePositive = "vuln.false_positive", Nothing;
    VulnFixAvailable = "vuln.fix.available", Nothing;
    VulnImport = "vuln.import", Nothing;
    VulnRate = "vuln.rate", Nothing;
    VulnReopen = "vuln.reopen", Nothing;
    VulnReport = "vuln.report", Nothing;
    VulnSlaBreach = "vuln.sla.breach", Nothing;
    VulnSlaHalf = "vuln.sla.half", Nothing;
    VulnSlaPolicy = "vuln.sla.policy", Nothing;
    X509Issue = "x509.issue", Nothing;
}

impl Change {
    /// Whether this change can end someone's access: the proxy checks its open sessions again.
    pub const fn ends_access(self) -> bool {
        matches!(
            self.effect(),
            Effect::WhoMay | Effect::Credential | Effect::CredentialAndMesh
        )
    }

    /// Whether this change can change a mesh node's map.
    pub const fn changes_mesh(self) -> bool {
        matches!(
            self.effect(),
            Effect::WhoMay | Effect::Mesh | Effect::CredentialAndMesh
        )
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the changes this version knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an audit change this version of Warden knows")]
pub struct UnknownChange(String);

impl FromStr for Change {
    type Err = UnknownChange;

    fn from_str(s: &str) -> Result<Change, UnknownChange> {
        Change::ALL
            .binary_search_by(|c| c.as_str().cmp(s))
            .ok()
            .and_then(|i| Change::ALL.get(i).copied())
            .ok_or_else(|| UnknownChange(s.to_owned()))
    }
}
