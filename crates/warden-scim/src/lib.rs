//! SCIM 2.0 (RFC 7643 and 7644) without I/O: the schemas Warden serves, filters, PATCH, and
//! request bodies made canonical. The store compiles [`Filter`]s to SQL; the server's
//! `/scim/v2` routes hold the HTTP side.
//!
//! Threat model: everything here parses outside input from an identity provider's SCIM
//! client. Nothing panics (property tests feed the parsers arbitrary input), sizes and nesting
//! are bounded, unknown attributes are refused rather than stored, and errors quote the
//! client's text escaped and cut to 80 characters.

mod error;
pub mod filter;
mod patch;
mod resource;
pub mod schema;

pub use error::{ScimError, ScimType};
pub use filter::{AttrPath, CompareOp, Filter};
pub use patch::{Op, PATCH_OP, Patch};
pub use resource::canonical;

/// The error message's URN.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The list response's URN.
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
