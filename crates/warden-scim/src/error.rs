//! SCIM errors (RFC 7644 §3.12): an HTTP status, an optional `scimType` and a one-line detail.

/// The `scimType` of a 400 (or 409) error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    /// The filter cannot be parsed or names what is not supported.
    InvalidFilter,
    /// The request would change a unique attribute to a value in use.
    Uniqueness,
    /// The request changes an attribute that cannot be changed.
    Mutability,
    /// The request body does not fit the schema.
    InvalidSyntax,
    /// A PATCH path cannot be parsed.
    InvalidPath,
    /// A PATCH path or filter matches nothing where something is needed.
    NoTarget,
    /// A value has the wrong type or is out of range.
    InvalidValue,
}

impl ScimType {
    /// The keyword RFC 7644 gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
        }
    }
}

/// A refusal, shown to the SCIM client in the RFC's error format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    /// HTTP status.
    pub status: u16,
    /// The kind of 400 or 409.
    pub scim_type: Option<ScimType>,
    /// What was wrong, on one line.
    pub detail: String,
}

impl ScimError {
    /// A 400 of the given kind.
    pub fn bad(scim_type: ScimType, detail: impl Into<String>) -> ScimError {
        ScimError {
            status: 400,
            scim_type: Some(scim_type),
            detail: detail.into(),
        }
    }

    /// A 400 `invalidFilter`.
    pub fn filter(detail: impl Into<String>) -> ScimError {
        ScimError::bad(ScimType::InvalidFilter, detail)
    }

    /// A 400 `invalidSyntax`.
    pub fn syntax(detail: impl Into<String>) -> ScimError {
        ScimError::bad(ScimType::InvalidSyntax, detail)
    }

    /// A 400 `invalidValue`.
    pub fn value(detail: impl Into<String>) -> ScimError {
        ScimError::bad(ScimType::InvalidValue, detail)
    }

    /// A 400 `invalidPath`.
    pub fn path(detail: impl Into<String>) -> ScimError {
        ScimError::bad(ScimType::InvalidPath, detail)
    }

    /// A 404.
    pub fn not_found(detail: impl Into<String>) -> ScimError {
        ScimError {
            status: 404,
            scim_type: None,
            detail: detail.into(),
        }
    }

    /// A 409 `uniqueness`.
    pub fn uniqueness(detail: impl Into<String>) -> ScimError {
        ScimError {
            status: 409,
            scim_type: Some(ScimType::Uniqueness),
            detail: detail.into(),
        }
    }

    /// A 412: the resource changed since the client's ETag.
    pub fn precondition(detail: impl Into<String>) -> ScimError {
        ScimError {
            status: 412,
            scim_type: None,
            detail: detail.into(),
        }
    }

    /// The RFC 7644 error body.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "schemas": [crate::ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(map)) = (self.scim_type, body.as_object_mut()) {
            map.insert("scimType".into(), t.as_str().into());
        }
        body
    }
}
