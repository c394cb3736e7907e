use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warden_model::{Actor, SecretString, Timestamp};
use warden_store::{Store, StoreError, TokenCredential, TokenOwner};

const PREFIX: &str = "wdn_";
const JOIN_PREFIX: &str = "wjt_";
const SESSION_PREFIX: &str = "wss_";
const ENROLL_PREFIX: &str = "wel_";
const ID_HEX_LEN: usize = 32;
const SECRET_BYTES: usize = 32;

/// A freshly made token: the string to hand over once, and what the store keeps.
#[derive(Debug)]
pub struct IssuedToken {
    /// The token's id (public).
    pub id: String,
    /// The whole token string, to show the user once.
    pub token: SecretString,
    /// SHA-256 of the secret part, hex, to store.
    pub secret_hash: String,
}

/// Makes a new token from `rng`, which must be a cryptographically secure generator.
pub fn issue(rng: &mut impl RngCore) -> IssuedToken {
    issue_prefixed(PREFIX, rng)
}

/// Makes a one-time host join token, `wjt_<id>_<secret>`, from a secure `rng`.
pub fn issue_join_token(rng: &mut impl RngCore) -> IssuedToken {
    issue_prefixed(JOIN_PREFIX, rng)
}

/// Makes a web session token, `wss_<id>_<secret>` (the session cookie), from a secure `rng`.
pub fn issue_session_token(rng: &mut impl RngCore) -> IssuedToken {
    issue_prefixed(SESSION_PREFIX, rng)
}

/// Splits a session cookie's value; `None` when it is not shaped like one.
pub fn parse_session_token(s: &str) -> Option<PresentedToken> {
    PresentedToken::parse_prefixed(SESSION_PREFIX, s)
}

/// Makes a one-time enrollment link token, `wel_<id>_<secret>`, from a secure `rng`.
pub fn issue_enrollment_token(rng: &mut impl RngCore) -> IssuedToken {
    issue_prefixed(ENROLL_PREFIX, rng)
}

/// Splits an enrollment link's token; `None` when it is not shaped like one.
pub fn parse_enrollment_token(s: &str) -> Option<PresentedToken> {
    PresentedToken::parse_prefixed(ENROLL_PREFIX, s)
}

/// A string that is not shaped like a join token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed join token: expected wjt_<32 hex digits>_<43 base64url characters>")]
pub struct JoinTokenFormatError;

/// Splits a presented join token, refusing anything not shaped like one.
pub fn parse_join_token(s: &str) -> Result<PresentedToken, JoinTokenFormatError> {
    PresentedToken::parse_prefixed(JOIN_PREFIX, s).ok_or(JoinTokenFormatError)
}

fn issue_prefixed(prefix: &str, rng: &mut impl RngCore) -> IssuedToken {
    let mut id = [0u8; ID_HEX_LEN / 2];
    rng.fill_bytes(&mut id);
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut secret);
    let id = hex(&id);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    IssuedToken {
        token: SecretString::new(format!("{prefix}{id}_{secret}")),
        secret_hash: hash(&secret),
        id,
    }
}

/// A token as presented in an `Authorization: Bearer` header, split into its parts.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedToken {
    id: String,
    secret: String,
}

impl fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A string that is not shaped like a Warden token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed API token: expected wdn_<32 hex digits>_<43 base64url characters>")]
pub struct TokenFormatError;

impl PresentedToken {
    /// Splits a presented token, refusing anything not shaped like one.
    pub fn parse(s: &str) -> Result<Self, TokenFormatError> {
        Self::parse_prefixed(PREFIX, s).ok_or(TokenFormatError)
    }

    fn parse_prefixed(prefix: &str, s: &str) -> Option<Self> {
        let rest = s.strip_prefix(prefix)?;
        let (id, secret) = rest.split_at_checked(ID_HEX_LEN)?;
        let secret = secret.strip_prefix('_')?;
        let id_ok = id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let secret_ok = secret.len() == 43
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !(id_ok && secret_ok) {
            return None;
        }
        Some(Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// A value derived from the secret for `purpose` (a session's CSRF token), hex: whoever
    /// cannot read the secret cannot compute it.
    pub fn derive(&self, purpose: &str) -> String {
        hash(&format!("{purpose}\n{}", self.secret))
    }

    /// Whether the secret hashes to `secret_hash`, compared in constant time.
    pub fn matches(&self, secret_hash: &str) -> bool {
        bool::from(hash(&self.secret).as_bytes().ct_eq(secret_hash.as_bytes()))
    }

    /// The token's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Why a token was not accepted. Every variant becomes the same generic 401 for the caller;
/// the variant goes to the log and the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not shaped like a token.
    #[error(transparent)]
    Malformed(#[from] TokenFormatError),
    /// No token has this id.
    #[error("no token with id `{0}`")]
    Unknown(String),
    /// The id exists but the secret is wrong.
    #[error("wrong secret for token `{0}`")]
    WrongSecret(String),
    /// Revoked.
    #[error("token `{0}` is revoked")]
    Revoked(String),
    /// Past its expiry.
    #[error("token `{0}` has expired")]
    Expired(String),
    /// The user it acts as is disabled.
    #[error("the user of token `{0}` is disabled")]
    UserDisabled(String),
    /// The store failed: not the caller's fault.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuthError {
    /// Whether the refusal names a token that exists (a wrong secret, a revoked or expired
    /// token, a disabled owner): someone holds or guesses a real token's id, which is always
    /// worth a record, unlike made-up or malformed tokens.
    pub fn names_a_token(&self) -> bool {
        matches!(
            self,
            AuthError::WrongSecret(_)
                | AuthError::Revoked(_)
                | AuthError::Expired(_)
                | AuthError::UserDisabled(_)
        )
    }
}

/// Checks a presented token against the store at time `now` and says who it acts as.
pub async fn authenticate(
    store: &Store,
    presented: &str,
    now: Timestamp,
) -> Result<Actor, AuthError> {
    let presented = PresentedToken::parse(presented)?;
    let Some(cred) = store.token_credential(presented.id()).await? else {
        return Err(AuthError::Unknown(presented.id));
    };
    check(&presented, &cred, now)?;
    let token = cred.token;
    Ok(match token.user {
        Some(name) => Actor::User {
            name,
            token_id: token.id,
            role: (!token.passkey).then_some(token.role),
        },
        None => Actor::Token {
            token_id: token.id,
            name: token.name,
            role: token.role,
        },
    })
}

fn check(
    presented: &PresentedToken,
    cred: &TokenCredential,
    now: Timestamp,
) -> Result<(), AuthError> {
    let id = || presented.id.clone();
    if !presented.matches(&cred.secret_hash) {
        return Err(AuthError::WrongSecret(id()));
    }
    if cred.token.revoked_at.is_some() {
        return Err(AuthError::Revoked(id()));
    }
    if now >= cred.token.expires_at {
        return Err(AuthError::Expired(id()));
    }
    if cred.owner == (TokenOwner::User { disabled: true }) {
        return Err(AuthError::UserDisabled(id()));
    }
    Ok(())
}

/// SHA-256 of `text`, hex.
pub fn sha256_hex(text: &str) -> String {
    hash(text)
}

fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn issued_tokens_parse_and_hash_to_what_is_stored() {
        let mut rng = StdRng::seed_from_u64(7);
        let issued = issue(&mut rng);
        assert_eq!(issued.token.expose().len(), 4 + 32 + 1 + 43);
        let presented = PresentedToken::parse(issued.token.expose()).unwrap();
        assert_eq!(presented.id(), issued.id);
        assert_eq!(hash(&presented.secret), issued.secret_hash);
        assert!(!format!("{presented:?}").contains(&presented.secret));
    }

    #[test]
    fn refuses_malformed_tokens() {
        for bad in [
            "",
            "wdn_",
            "Bearer x",
            "wdn_0123",
            &format!("wdn_{}_{}", "g".repeat(32), "a".repeat(43)),
        ] {
            assert_eq!(PresentedToken::parse(bad), Err(TokenFormatError), "{bad}");
        }
        assert_eq!(
            TokenFormatError.to_string(),
            "malformed API token: expected wdn_<32 hex digits>_<43 base64url characters>"
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,100}") {
            let _ = PresentedToken::parse(&s);
        }

        #[test]
        fn join_token_parse_never_panics(s in "\\PC{0,100}") {
            let _ = parse_join_token(&s);
        }

        #[test]
        fn every_join_token_parses_and_matches_only_its_hash(seed in any::<u64>()) {
            let issued = issue_join_token(&mut StdRng::seed_from_u64(seed));
            let presented = parse_join_token(issued.token.expose()).unwrap();
            prop_assert!(presented.matches(&issued.secret_hash));
            prop_assert!(!presented.matches(&hash("other")));
            prop_assert!(PresentedToken::parse(issued.token.expose()).is_err());
        }

        #[test]
        fn every_issued_token_parses(seed in any::<u64>()) {
            let issued = issue(&mut StdRng::seed_from_u64(seed));
            prop_assert!(PresentedToken::parse(issued.token.expose()).is_ok());
        }
    }
}
