//! The key id of an SSH certificate Warden issues: who holds it and through what, in the text
//! that the certificate, sshd's log and the KRL carry.
//!
//! Every certificate's key id is made from a [`KeyId`] and read back through
//! [`KeyId::from_str`], so the proxy never guesses a holder from text and a key id that is not
//! one of these is refused rather than half-read.

use std::fmt;
use std::str::FromStr;

use crate::{HostName, TokenName, UserName};

/// The longest token or session id a key id carries.
const MAX_ID_LEN: usize = 128;

/// Who holds a user certificate, or whom a session certificate acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A person (`user:NAME`).
    User(UserName),
    /// A service token acting as itself (`service:NAME`).
    Service(TokenName),
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::User(name) => write!(f, "user:{name}"),
            Holder::Service(name) => write!(f, "service:{name}"),
        }
    }
}

impl FromStr for Holder {
    type Err = KeyIdError;

    fn from_str(s: &str) -> Result<Holder, KeyIdError> {
        let bad = || KeyIdError(s.to_owned());
        if let Some(name) = s.strip_prefix("user:") {
            return UserName::new(name).map(Holder::User).map_err(|_| bad());
        }
        let name = s.strip_prefix("service:").ok_or_else(bad)?;
        TokenName::new(name).map(Holder::Service).map_err(|_| bad())
    }
}

/// The key id of a certificate Warden issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyId {
    /// A user certificate, issued to `holder` through the API token `token_id`:
    /// `user:NAME token:ID` or `service:NAME token:ID`.
    Token {
        /// The person or service.
        holder: Holder,
        /// The token it was issued through; revoking the token ends the certificate's access.
        token_id: String,
    },
    /// The proxy's five-minute certificate for one session to a host, acting for `holder`:
    /// `session:ID user:NAME`.
    Session {
        /// The proxy's session id.
        session: String,
        /// Whom the session is for.
        holder: Holder,
    },
    /// A host's certificate, as it joined: `host:NAME`.
    Host(HostName),
    /// The proxy's host certificate toward one target: `proxy:NAME`.
    Proxy(HostName),
}

/// A key id that is not one Warden makes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Warden certificate key id")]
pub struct KeyIdError(String);

/// A token or session id: printable, no spaces, at most [`MAX_ID_LEN`] bytes.
fn id(s: &str) -> Option<String> {
    let ok = !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| s.to_owned())
}

impl KeyId {
    /// A person's or service's certificate through `token_id`.
    pub fn token(holder: Holder, token_id: &str) -> Result<KeyId, KeyIdError> {
        let token_id =
            id(token_id).ok_or_else(|| KeyIdError(format!("{holder} token:{token_id}")))?;
        Ok(KeyId::Token { holder, token_id })
    }

    /// The proxy's certificate for `session`, acting for `holder`.
    pub fn session(session: &str, holder: Holder) -> Result<KeyId, KeyIdError> {
        let session =
            id(session).ok_or_else(|| KeyIdError(format!("session:{session} {holder}")))?;
        Ok(KeyId::Session { session, holder })
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyId::Token { holder, token_id } => write!(f, "{holder} token:{token_id}"),
            KeyId::Session { session, holder } => write!(f, "session:{session} {holder}"),
            KeyId::Host(name) => write!(f, "host:{name}"),
            KeyId::Proxy(name) => write!(f, "proxy:{name}"),
        }
    }
}

impl FromStr for KeyId {
    type Err = KeyIdError;

    fn from_str(s: &str) -> Result<KeyId, KeyIdError> {
        let bad = || KeyIdError(s.to_owned());
        if let Some(name) = s.strip_prefix("host:") {
            return HostName::new(name).map(KeyId::Host).map_err(|_| bad());
        }
        if let Some(name) = s.strip_prefix("proxy:") {
            return HostName::new(name).map(KeyId::Proxy).map_err(|_| bad());
        }
        if let Some(rest) = s.strip_prefix("session:") {
            let (session, holder) = rest.split_once(' ').ok_or_else(bad)?;
            return KeyId::session(session, holder.parse().map_err(|_| bad())?).map_err(|_| bad());
        }
        let (holder, token_id) = s.split_once(" token:").ok_or_else(bad)?;
        KeyId::token(holder.parse().map_err(|_| bad())?, token_id).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user(name: &str) -> Holder {
        Holder::User(UserName::new(name).unwrap())
    }

    #[test]
    fn each_form_reads_back_as_written() {
        let forms = [
            KeyId::token(user("alice"), "0192f3a1b2c3").unwrap(),
            KeyId::token(
                Holder::Service(TokenName::new("deploy-bot").unwrap()),
                "tok_1",
            )
            .unwrap(),
            KeyId::session("00ab34cd56ef7890", user("alice")).unwrap(),
            KeyId::Host(HostName::new("db-1").unwrap()),
            KeyId::Proxy(HostName::new("web.internal").unwrap()),
        ];
        let texts = [
            "user:alice token:0192f3a1b2c3",
            "service:deploy-bot token:tok_1",
            "session:00ab34cd56ef7890 user:alice",
            "host:db-1",
            "proxy:web.internal",
        ];
        for (id, text) in forms.iter().zip(texts) {
            assert_eq!(id.to_string(), text);
            assert_eq!(&text.parse::<KeyId>().unwrap(), id);
        }
    }

    #[test]
    fn anything_else_is_refused_whole() {
        for bad in [
            "",
            "alice",
            "user:alice",
            "user:alice token:",
            "user:Alice token:1",
            "user:alice token:a b",
            "session:1",
            "session:1 alice",
            "session: user:alice",
            "host:",
            "host:DB 1",
            "robot:x token:1",
            "user:alice token:\u{7f}",
        ] {
            assert_eq!(
                bad.parse::<KeyId>().unwrap_err().to_string(),
                format!("`{bad}` is not a Warden certificate key id"),
                "{bad:?}"
            );
        }
        let long = format!("user:alice token:{}", "x".repeat(MAX_ID_LEN + 1));
        assert!(long.parse::<KeyId>().is_err());
    }

    proptest! {
        /// Whatever text arrives, parsing it either fails or gives a key id that prints as
        /// that very text: no two texts read as one holder.
        #[test]
        fn parsing_is_exact(s in "\\PC{0,80}|(user|service|session|host|proxy):[a-z0-9 ._:-]{0,40}") {
            if let Ok(id) = s.parse::<KeyId>() {
                prop_assert_eq!(id.to_string(), s);
            }
        }
    }
}
