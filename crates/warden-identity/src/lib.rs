//! Warden's identities: API tokens and the other one-time and session secrets ([`issue`] and
//! its siblings), passkeys ([`passkey`], WebAuthn through webauthn-rs) and sign-in through an
//! identity provider ([`oidc`], OpenID Connect).
//!
//! A token is `wdn_<id>_<secret>` (`wss_` for a web session, `wel_` for an enrollment link,
//! `wjt_` for a host join token): a 128-bit random id that finds the row, and a 256-bit random
//! secret of which only the SHA-256 is stored. Verification compares hashes in constant time
//! and checks revocation, expiry and the owner's state on every use.
//!
//! # Threat model
//!
//! **What the crate trusts.**
//! - The random generator its callers pass in, which must be the operating system's.
//! - The store's rows: token hashes, sessions, passkeys' public keys and sign counts.
//! - The identity provider, for who a person is: its metadata and signing keys as discovered
//!   from its issuer URL (refreshed hourly), and the claims of an id_token that verifies.
//! - The caller keeps ceremony and login state ([`passkey`]'s registration and authentication
//!   state, [`oidc::PendingLogin`]) sealed until the browser answers (`warden-web` seals them
//!   under the KEK in a cookie).
//!
//! **What an attacker controls.**
//! - Every presented string: bearer tokens, session cookies, enrollment links and join tokens.
//!   Each is parsed by shape first ([`PresentedToken::parse`] and the `parse_*` functions), then
//!   found by id and checked by hash.
//! - The browser's WebAuthn answers: malformed ones, ones that do not verify (signature,
//!   challenge, origin, user verification) and a sign count that went backwards (a cloned
//!   authenticator) are refused with [`passkey::PasskeyError`].
//! - An OIDC callback's `code` and `state`, and a provider's answers: the id_token's issuer,
//!   audience, expiry, nonce and signature algorithm (from an allow-list) are all checked, and
//!   the PKCE verifier (S256) binds the code to the browser that started the flow.
//! - A reader of the database (a backup, a replica): they find hashes and public keys only.
//!
//! **What it promises.**
//! - No usable secret can be read back from the database, and a guessed id learns nothing
//!   from timing.
//! - A revoked or expired token, or one whose owner is disabled, stops working at the next use.
//! - Every passkey ceremony requires user verification.
//! - Every [`AuthError`] becomes the same generic 401 for the caller; the real reason goes to
//!   the log and the audit trail.
//!
//! **What it does not promise.**
//! - Tokens are bearer credentials: whoever holds the string is the token until it is revoked
//!   or expires. It is shown exactly once and never logged, but nothing binds it to a key the
//!   holder proves.
//! - The identity provider is trusted for who a person is. A person with a passkey must still
//!   use it after the provider, so a compromised provider alone cannot sign in as them; but it
//!   can sign in as a person who has none yet and enroll one, and, where provisioning allows,
//!   create people.
//! - Without a configured list of authenticator models (AAGUIDs chained to their vendors'
//!   attestation roots), attestation is not asked for: any authenticator that verifies the
//!   user is accepted.

mod token;

pub mod oidc;
pub mod passkey;

pub use token::{
    AuthError, IssuedToken, JoinTokenFormatError, PresentedToken, TokenFormatError, authenticate,
    issue, issue_enrollment_token, issue_join_token, issue_session_token, parse_enrollment_token,
    parse_join_token, parse_session_token, sha256_hex,
};
