//! Warden's domain types.
//!
//! Everything that crosses a boundary (CLI argument, GraphQL input, configuration, database row)
//! is parsed into one of these types first, so the rest of the code never holds an unchecked
//! name, role or duration. This crate does no I/O and never reads the clock: time comes in as
//! a [`Timestamp`] from the caller.

mod action;
mod actor;
pub mod changes;
pub mod forwarded;
mod key_id;
mod names;
pub mod proxy_protocol;
mod role;
mod secret;
mod time;
mod words;

pub use action::{Change, UnknownChange};
pub use actor::{Actor, AuthMethod};
pub use key_id::{Holder, KeyId, KeyIdError};
pub use names::{
    BREAK_GLASS_PRINCIPAL, GroupName, HostName, Login, MAX_NAME_LEN, NameError, TokenName,
    UserName, derive_name, proxy_principal,
};
pub use role::{Role, RoleError};
pub use secret::SecretString;
pub use time::{Timestamp, Ttl, TtlError};
pub use words::count;
