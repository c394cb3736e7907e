//! A string that must never be printed.

use std::fmt;

/// Holds a secret (a token, a password, a database URL with credentials). `Debug` prints
/// `SecretString(<redacted>)`; there is no `Display`, so it cannot reach a log by accident.
/// Read it with [`SecretString::expose`], and only where it is needed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Grep for this call when reviewing where secrets go.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretString::new("wdn_hunter2");
        assert_eq!(format!("{s:?}"), "SecretString(<redacted>)");
        assert_eq!(s.expose(), "wdn_hunter2");
    }
}
