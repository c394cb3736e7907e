//! The resource schemas Warden serves (RFC 7643 §4 and §8.7): the core User with the
//! enterprise extension, and the core Group. They drive validation (unknown attributes are
//! refused, names are made canonical), case sensitivity in filters, and `/Schemas`.

use serde_json::{Value, json};

/// The core User schema's URN.
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension's URN.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The core Group schema's URN.
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// An attribute's data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    String,
    /// `true` or `false`.
    Boolean,
    /// A URI.
    Reference,
    /// An RFC 3339 time.
    DateTime,
    /// Sub-attributes.
    Complex,
}

/// Who may write an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// The client may write it.
    ReadWrite,
    /// Only Warden writes it; clients' values are ignored.
    ReadOnly,
    /// The client may write it but it is never returned (`password`: Warden has no passwords
    /// and drops it).
    WriteOnly,
}

/// One attribute of a schema.
#[derive(Debug)]
pub struct Attr {
    /// Canonical name.
    pub name: &'static str,
    /// Data type.
    pub kind: Kind,
    /// Whether it holds a list.
    pub multi: bool,
    /// Whether its text compares case-sensitively.
    pub case_exact: bool,
    /// Who may write it.
    pub mutability: Mutability,
    /// Whether a resource must have it.
    pub required: bool,
    /// Sub-attributes of a complex attribute.
    pub subs: &'static [Attr],
}

const fn text(name: &'static str) -> Attr {
    Attr {
        name,
        kind: Kind::String,
        multi: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        required: false,
        subs: &[],
    }
}

const fn exact(name: &'static str) -> Attr {
    Attr {
        case_exact: true,
        ..text(name)
    }
}

const fn boolean(name: &'static str) -> Attr {
    Attr {
        kind: Kind::Boolean,
        ..text(name)
    }
}

const fn reference(name: &'static str) -> Attr {
    Attr {
        kind: Kind::Reference,
        case_exact: true,
        ..text(name)
    }
}

const fn complex(name: &'static str, subs: &'static [Attr]) -> Attr {
    Attr {
        kind: Kind::Complex,
        subs,
        ..text(name)
    }
}

const fn multi(name: &'static str, subs: &'static [Attr]) -> Attr {
    Attr {
        multi: true,
        ..complex(name, subs)
    }
}

const fn read_only(attr: Attr) -> Attr {
    Attr {
        mutability: Mutability::ReadOnly,
        ..attr
    }
}

/// `value`, `display`, `type`, `primary`: the usual sub-attributes of a multi-valued attribute.
const VALUED: &[Attr] = &[
    text("value"),
    text("display"),
    text("type"),
    boolean("primary"),
];

const ADDRESS: &[Attr] = &[
    text("formatted"),
    text("streetAddress"),
    text("locality"),
    text("region"),
    text("postalCode"),
    text("country"),
    text("type"),
    boolean("primary"),
];

const NAME: &[Attr] = &[
    text("formatted"),
    text("familyName"),
    text("givenName"),
    text("middleName"),
    text("honorificPrefix"),
    text("honorificSuffix"),
];

const USER_GROUP: &[Attr] = &[
    exact("value"),
    reference("$ref"),
    text("display"),
    text("type"),
];

const USER_ATTRS: &[Attr] = &[
    exact("id"),
    exact("externalId"),
    Attr {
        required: true,
        ..text("userName")
    },
    complex("name", NAME),
    text("displayName"),
    text("nickName"),
    reference("profileUrl"),
    text("title"),
    text("userType"),
    text("preferredLanguage"),
    text("locale"),
    text("timezone"),
    boolean("active"),
    Attr {
        mutability: Mutability::WriteOnly,
        case_exact: true,
        ..text("password")
    },
    multi("emails", VALUED),
    multi("phoneNumbers", VALUED),
    multi("ims", VALUED),
    multi("photos", VALUED),
    multi("addresses", ADDRESS),
    read_only(multi("groups", USER_GROUP)),
    multi("entitlements", VALUED),
    multi("roles", VALUED),
    multi("x509Certificates", VALUED),
];

const MANAGER: &[Attr] = &[exact("value"), reference("$ref"), text("displayName")];

const ENTERPRISE_ATTRS: &[Attr] = &[
    text("employeeNumber"),
    text("costCenter"),
    text("organization"),
    text("division"),
    text("department"),
    complex("manager", MANAGER),
];

const MEMBER: &[Attr] = &[
    exact("value"),
    reference("$ref"),
    text("display"),
    text("type"),
];

const GROUP_ATTRS: &[Attr] = &[
    exact("id"),
    exact("externalId"),
    Attr {
        required: true,
        ..text("displayName")
    },
    multi("members", MEMBER),
];

const META: Attr = read_only(complex(
    "meta",
    &[
        text("resourceType"),
        Attr {
            kind: Kind::DateTime,
            ..text("created")
        },
        Attr {
            kind: Kind::DateTime,
            ..text("lastModified")
        },
        reference("location"),
        exact("version"),
    ],
));

/// A resource type: its core schema and the extensions it takes.
#[derive(Debug)]
pub struct ResourceSchema {
    /// `User` or `Group`.
    pub name: &'static str,
    /// The core schema's URN.
    pub urn: &'static str,
    /// The core schema's attributes.
    pub attrs: &'static [Attr],
    /// Extensions: URN and attributes.
    pub extensions: &'static [(&'static str, &'static [Attr])],
}

/// Users.
pub static USERS: ResourceSchema = ResourceSchema {
    name: "User",
    urn: USER,
    attrs: USER_ATTRS,
    extensions: &[(ENTERPRISE, ENTERPRISE_ATTRS)],
};

/// Groups.
pub static GROUPS: ResourceSchema = ResourceSchema {
    name: "Group",
    urn: GROUP,
    attrs: GROUP_ATTRS,
    extensions: &[],
};

/// The attribute named `name` (any case) among `attrs`.
pub fn find<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

impl ResourceSchema {
    /// The attribute a filter or path names, with the extension it belongs to (`None` for the
    /// core schema). `meta` is found too, for filters on `meta.lastModified`.
    pub fn attr(
        &self,
        schema: Option<&str>,
        name: &str,
    ) -> Option<(Option<&'static str>, &'static Attr)> {
        match schema {
            None => find(self.attrs, name)
                .map(|a| (None, a))
                .or_else(|| name.eq_ignore_ascii_case("meta").then_some((None, &META))),
            Some(urn) if urn.eq_ignore_ascii_case(self.urn) => self.attr(None, name),
            Some(urn) => self
                .extension(urn)
                .and_then(|(ext, attrs)| find(attrs, name).map(|a| (Some(ext), a))),
        }
    }

    /// The extension whose URN is `urn` (any case).
    pub fn extension(&self, urn: &str) -> Option<(&'static str, &'static [Attr])> {
        self.extensions
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(urn))
            .copied()
    }

    /// The `/Schemas` resources for this type (RFC 7643 §7).
    pub fn definitions(&self) -> Vec<Value> {
        let mut out = vec![definition(self.urn, self.name, self.attrs)];
        for (urn, attrs) in self.extensions {
            out.push(definition(urn, "EnterpriseUser", attrs));
        }
        out
    }

    /// The `/ResourceTypes` resource for this type.
    pub fn resource_type(&self, base: &str) -> Value {
        let endpoint = format!("/{}s", self.name);
        let extensions: Vec<Value> = self
            .extensions
            .iter()
            .map(|(urn, _)| json!({ "schema": urn, "required": false }))
            .collect();
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name,
            "name": self.name,
            "endpoint": endpoint,
            "schema": self.urn,
            "schemaExtensions": extensions,
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{base}/ResourceTypes/{}", self.name),
            },
        })
    }
}

fn definition(urn: &str, name: &str, attrs: &[Attr]) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": urn,
        "name": name,
        "attributes": attrs.iter().map(describe).collect::<Vec<_>>(),
        "meta": { "resourceType": "Schema" },
    })
}

fn describe(attr: &Attr) -> Value {
    let kind = match attr.kind {
        Kind::String => "string",
        Kind::Boolean => "boolean",
        Kind::Reference => "reference",
        Kind::DateTime => "dateTime",
        Kind::Complex => "complex",
    };
    let (mutability, returned) = match attr.mutability {
        _ if attr.name == "id" => ("readOnly", "always"),
        Mutability::ReadWrite => ("readWrite", "default"),
        Mutability::ReadOnly => ("readOnly", "default"),
        Mutability::WriteOnly => ("writeOnly", "never"),
    };
    let uniqueness = match attr.name {
        "id" => "global",
        "userName" | "displayName" if attr.required => "server",
        _ => "none",
    };
    let mut out = json!({
        "name": attr.name,
        "type": kind,
        "multiValued": attr.multi,
        "required": attr.required,
        "caseExact": attr.case_exact,
        "mutability": mutability,
        "returned": returned,
        "uniqueness": uniqueness,
    });
    if let Some(map) = out.as_object_mut() {
        if !attr.subs.is_empty() {
            map.insert(
                "subAttributes".into(),
                attr.subs.iter().map(describe).collect::<Vec<_>>().into(),
            );
        }
        if attr.kind == Kind::Reference {
            map.insert("referenceTypes".into(), json!(["external", "uri"]));
        }
    }
    out
}
