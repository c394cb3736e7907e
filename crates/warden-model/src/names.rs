//! Names people see and type: users, groups, tokens.
//!
//! User and group names become Cedar entity ids, SSH principals and Unix logins later, so they
//! are deliberately narrow: lowercase ASCII letters, digits, `.`, `_` and `-`, starting with a
//! letter or digit, at most 64 bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest name accepted anywhere in Warden.
pub const MAX_NAME_LEN: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} `{value}` is invalid: {rule}")]
pub struct NameError {
    kind: &'static str,
    value: String,
    rule: &'static str,
}

const LOGIN_RULE: &str =
    "use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit";
const TOKEN_RULE: &str =
    "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit";

fn check(
    kind: &'static str,
    value: &str,
    rule: &'static str,
    allowed: fn(u8) -> bool,
) -> Result<(), NameError> {
    let bytes = value.as_bytes();
    let fits = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.iter().copied().all(allowed);
    if fits {
        Ok(())
    } else {
        // Shown back to the user: keep it printable and short.
        let shown: String = value
            .chars()
            .take(80)
            .flat_map(char::escape_debug)
            .collect();
        Err(NameError {
            kind,
            value: shown,
            rule,
        })
    }
}

const HOST_RULE: &str =
    "use 1-64 lowercase letters, digits, '.' or '-', starting with a letter or digit";

fn host_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-')
}

fn login_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
}

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $rule:expr, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses `value`, refusing anything outside the naming rule.
            pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                check($kind, &value, $rule, $allowed)?;
                Ok(Self(value))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A user's login name: `Warden::User::"alice"`.
    UserName, "user name", LOGIN_RULE, login_byte
);
name_type!(
    /// A group's name: `Warden::Group::"ops"`.
    GroupName, "group name", LOGIN_RULE, login_byte
);
name_type!(
    /// A host's name, as it joined: `Warden::Host::"db-1"` and its certificate's principal.
    HostName, "host name", HOST_RULE, host_byte
);
name_type!(
    /// A Unix account on a host, as `ssh LOGIN@HOST` names it and a certificate principal
    /// carries it.
    Login, "login", LOGIN_RULE, login_byte
);
name_type!(
    /// The label an operator gives an API token.
    TokenName, "token name", TOKEN_RULE, token_byte
);

/// A name made from outside text (an identity provider's `preferred_username`, a SCIM
/// `userName` or group `displayName`): lowercased, each run of characters outside the naming
/// rule replaced by one `-`, trimmed to start and end with a letter or digit, cut to 64
/// bytes. Parse the result with the name type's `new`: it may still be empty.
pub fn derive_name(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        let keep = c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let c = if keep { c } else { '-' };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        if out.is_empty() && !c.is_ascii_alphanumeric() {
            continue;
        }
        out.push(c);
        if out.len() >= MAX_NAME_LEN {
            break;
        }
    }
    while out.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        out.pop();
    }
    out
}

/// The principal of break-glass certificates (`warden admin break-glass create`). Like the
/// proxy's, it holds a `:`, so no person's certificate carries it; and hosts trust the CA that
/// signs it only while they cannot reach Warden.
pub const BREAK_GLASS_PRINCIPAL: &str = "warden-break-glass:emergency";

/// The one principal a host's sshd accepts (what its `AuthorizedPrincipalsCommand` prints): the certificates
/// Warden's proxy mints for a session on `host`. It cannot be a [`Login`] (it holds a `:`), so
/// no person's certificate carries it, and a person's own certificate cannot bypass the proxy.
pub fn proxy_principal(host: &str) -> String {
    format!("warden-proxy:{host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_logins() {
        for ok in ["alice", "a", "bob.smith", "svc_ci-2", "0day"] {
            assert!(UserName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_names_with_exact_message() {
        let err = UserName::new("Alice").unwrap_err();
        assert_eq!(
            err.to_string(),
            "user name `Alice` is invalid: use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
        );
        assert!(UserName::new("").is_err());
        assert!(UserName::new("-x").is_err());
        assert!(UserName::new("a b").is_err());
        assert!(UserName::new("x".repeat(65)).is_err());
        assert!(GroupName::new("ops/admin").is_err());
        assert!(TokenName::new("CI-Deploy").is_ok());
        assert!(Login::new(proxy_principal("db-1")).is_err());
    }

    #[test]
    fn error_escapes_control_characters() {
        let err = GroupName::new("a\nb").unwrap_err();
        assert!(err.to_string().starts_with("group name `a\\nb` is invalid"));
    }

    #[test]
    fn derives_names_from_outside_text() {
        assert_eq!(
            derive_name("Alice.Smith@Example.com"),
            "alice.smith-example.com"
        );
        assert_eq!(derive_name("Engineering Team (EU)"), "engineering-team-eu");
        assert_eq!(derive_name("__ops__"), "ops");
        assert_eq!(derive_name("Ünïcode"), "n-code");
        assert_eq!(derive_name("!!!"), "");
        assert_eq!(derive_name(&"a".repeat(100)).len(), MAX_NAME_LEN);
    }

    proptest! {
        #[test]
        fn derived_names_are_valid_or_empty(s in "\\PC{0,100}") {
            let name = derive_name(&s);
            prop_assert!(name.is_empty() || UserName::new(name).is_ok());
        }

        #[test]
        fn parse_never_panics_and_round_trips(s in "\\PC{0,80}") {
            if let Ok(n) = UserName::new(s.clone()) {
                prop_assert_eq!(n.as_str(), s.as_str());
                prop_assert!(n.as_str().len() <= MAX_NAME_LEN);
            }
        }

        #[test]
        fn valid_shapes_always_parse(s in "[a-z0-9][a-z0-9._-]{0,63}") {
            prop_assert!(UserName::new(s).is_ok());
        }
    }
}
