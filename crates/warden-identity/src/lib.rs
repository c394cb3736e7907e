//! Warden's identities.
//!
//! For now: API tokens. A token is `wdn_<id>_<secret>`: a 128-bit random id that finds the
//! row, and a 256-bit random secret of which only the SHA-256 is stored. Verification compares
//! hashes in constant time and checks revocation, expiry and the owner's state on every use.
//!
//! Threat model: a reader of the database (a backup, a replica) learns no usable token; a
//! caller who guesses ids learns nothing from timing; a revoked or expired token, or one whose
//! user is disabled, stops working at the next request. Tokens are bearer credentials: whoever
//! holds the string is the token, so it is shown exactly once and never logged.

mod token;

pub mod oidc;
pub mod passkey;

pub use token::{
    AuthError, IssuedToken, JoinTokenFormatError, PresentedToken, TokenFormatError, authenticate,
    issue, issue_enrollment_token, issue_join_token, issue_session_token, parse_enrollment_token,
    parse_join_token, parse_session_token, sha256_hex,
};
