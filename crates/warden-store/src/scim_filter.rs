//! SCIM filters compiled to SQL over the `scim_*` tables, the same on SQLite and PostgreSQL.
//! Multi-valued attributes are `IN` over their own table's matching rows. Every predicate is
//! two-valued (a missing attribute is false, never NULL), so `not` and
//! `ne` mean what a SCIM client expects. Attributes the tables do not index are refused with
//! `invalidFilter` rather than filtered slowly in memory.

use serde_json::Value;
use warden_scim::{AttrPath, CompareOp, Filter, ScimError};

use crate::Backend;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// A WHERE clause being built, with its binds (placeholders `$1`… in order).
#[derive(Debug)]
pub(crate) struct Where {
    pub sql: String,
    pub binds: Vec<Bind>,
    backend: Backend,
}

/// How a filterable attribute is stored.
#[derive(Debug, Clone, Copy)]
enum Column {
    /// Text compared as stored (caseExact).
    Exact(&'static str),
    /// Text stored lowercased; the filter's value is lowercased too.
    Folded(&'static str),
    /// A boolean: the SQL that is true when the attribute is true, and when it is false.
    Flag(&'static str, &'static str),
    /// Milliseconds since the epoch; the filter's value is an RFC 3339 time.
    Time(&'static str),
}

/// A multi-valued attribute kept in a table of its own.
#[derive(Debug, Clone, Copy)]
struct Elements {
    /// The outer resource's key, and the subquery selecting the keys whose rows match:
    /// `u.id IN (SELECT e.user_id FROM scim_user_emails e WHERE …)`, evaluated once.
    key: &'static str,
    select: &'static str,
    /// The column the attribute's bare name compares (`emails` is `emails.value`).
    value: Column,
    /// Sub-attributes.
    subs: &'static [(&'static str, Column)],
}

/// Which resource's filters are being compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    User,
    Group,
}

const EMAILS: Elements = Elements {
    key: "s.user_id",
    select: "SELECT e.user_id FROM scim_user_emails e WHERE",
    value: Column::Folded("e.value_key"),
    subs: &[
        ("value", Column::Folded("e.value_key")),
        ("type", Column::Folded("e.type_key")),
        (
            "primary",
            Column::Flag("e.is_primary = 1", "e.is_primary = 0"),
        ),
    ],
};

const MEMBERS: Elements = Elements {
    key: "g.id",
    select: "SELECT m.group_id FROM group_members m WHERE",
    value: Column::Exact("m.user_id"),
    subs: &[("value", Column::Exact("m.user_id"))],
};

fn column(resource: Resource, path: &AttrPath) -> Option<Column> {
    if path.schema.is_some() {
        return None;
    }
    let sub = path.sub.as_deref();
    Some(match (resource, path.attr.as_str(), sub) {
        (Resource::User, "id", None) => Column::Exact("s.user_id"),
        (Resource::User, "externalId", None) => Column::Exact("s.external_id"),
        (Resource::User, "userName", None) => Column::Folded("s.user_name_key"),
        (Resource::User, "displayName", None) => Column::Folded("s.display_key"),
        (Resource::User, "name", Some("givenName")) => Column::Folded("s.given_key"),
        (Resource::User, "name", Some("familyName")) => Column::Folded("s.family_key"),
        (Resource::User, "name", Some("formatted")) => Column::Folded("s.formatted_key"),
        (Resource::User, "active", None) => Column::Flag(
            "s.user_id NOT IN (SELECT d.id FROM users d WHERE d.disabled_at IS NOT NULL)",
            "s.user_id IN (SELECT d.id FROM users d WHERE d.disabled_at IS NOT NULL)",
        ),
        (Resource::User, "meta", Some("created")) => Column::Time("s.created_at"),
        (Resource::User, "meta", Some("lastModified")) => Column::Time("s.updated_at"),
        (Resource::Group, "id", None) => Column::Exact("g.id"),
        (Resource::Group, "externalId", None) => Column::Exact("sg.external_id"),
        (Resource::Group, "displayName", None) => Column::Folded("sg.display_key"),
        (Resource::Group, "meta", Some("created")) => Column::Time("sg.created_at"),
        (Resource::Group, "meta", Some("lastModified")) => Column::Time("sg.updated_at"),
        // A constant per type (lowercased: resourceType is not caseExact), so a search at the
        // root can pick a type.
        (Resource::User, "meta", Some("resourceType")) => Column::Folded("'user'"),
        (Resource::Group, "meta", Some("resourceType")) => Column::Folded("'group'"),
        _ => return None,
    })
}

fn elements(resource: Resource, attr: &AttrPath) -> Option<Elements> {
    match (resource, attr.schema.as_deref(), attr.attr.as_str()) {
        (Resource::User, None, "emails") => Some(EMAILS),
        (Resource::Group, None, "members") => Some(MEMBERS),
        _ => None,
    }
}

fn unsupported(path: &AttrPath) -> ScimError {
    ScimError::filter(format!("filtering on `{path}` is not supported"))
}

impl Where {
    /// Compiles `filter` (resolved against the resource's schema).
    pub(crate) fn compile(
        backend: Backend,
        resource: Resource,
        filter: &Filter,
    ) -> Result<Where, ScimError> {
        let mut w = Where {
            sql: String::new(),
            binds: Vec::new(),
            backend,
        };
        w.filter(resource, filter)?;
        Ok(w)
    }

    fn filter(&mut self, resource: Resource, filter: &Filter) -> Result<(), ScimError> {
        match filter {
            Filter::And(a, b) | Filter::Or(a, b) => {
                let joiner = if matches!(filter, Filter::And(..)) {
                    " AND "
                } else {
                    " OR "
                };
                self.sql.push('(');
                self.filter(resource, a)?;
                self.sql.push_str(joiner);
                self.filter(resource, b)?;
                self.sql.push(')');
            }
            Filter::Not(a) => {
                self.sql.push_str("(NOT ");
                self.filter(resource, a)?;
                self.sql.push(')');
            }
            Filter::Each(attr, inner) => {
                let el = elements(resource, attr).ok_or_else(|| unsupported(attr))?;
                self.sql.push_str(&format!("{} IN ({} ", el.key, el.select));
                self.element_filter(&el, attr, inner)?;
                self.sql.push(')');
            }
            Filter::Present(path) | Filter::Compare(path, _, _) => {
                if let Some(el) = elements(
                    resource,
                    &AttrPath {
                        sub: None,
                        ..path.clone()
                    },
                ) {
                    // `emails co "x"` and `emails.type eq "work"`: some element matches.
                    let col = match &path.sub {
                        None => el.value,
                        Some(sub) => sub_column(&el, sub).ok_or_else(|| unsupported(path))?,
                    };
                    self.sql.push_str(&format!("{} IN ({} ", el.key, el.select));
                    self.predicate(path, col, filter)?;
                    self.sql.push(')');
                } else {
                    let col = column(resource, path).ok_or_else(|| unsupported(path))?;
                    self.predicate(path, col, filter)?;
                }
            }
        }
        Ok(())
    }

    /// The filter inside `attr[…]`, over one element's columns.
    fn element_filter(
        &mut self,
        el: &Elements,
        attr: &AttrPath,
        filter: &Filter,
    ) -> Result<(), ScimError> {
        match filter {
            Filter::And(a, b) | Filter::Or(a, b) => {
                let joiner = if matches!(filter, Filter::And(..)) {
                    " AND "
                } else {
                    " OR "
                };
                self.sql.push('(');
                self.element_filter(el, attr, a)?;
                self.sql.push_str(joiner);
                self.element_filter(el, attr, b)?;
                self.sql.push(')');
            }
            Filter::Not(a) => {
                self.sql.push_str("(NOT ");
                self.element_filter(el, attr, a)?;
                self.sql.push(')');
            }
            Filter::Present(sub) | Filter::Compare(sub, _, _) => {
                let whole = AttrPath {
                    sub: Some(sub.attr.clone()),
                    ..attr.clone()
                };
                let col = sub_column(el, &sub.attr).ok_or_else(|| unsupported(&whole))?;
                self.predicate(&whole, col, filter)?;
            }
            Filter::Each(..) => return Err(ScimError::filter("value filters do not nest")),
        }
        Ok(())
    }

    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }

    /// `Present` or `Compare` on one column.
    fn predicate(
        &mut self,
        path: &AttrPath,
        col: Column,
        filter: &Filter,
    ) -> Result<(), ScimError> {
        let (op, value) = match filter {
            Filter::Present(_) => {
                let sql = match col {
                    Column::Exact(c) | Column::Folded(c) => {
                        format!("({c} IS NOT NULL AND {c} <> '')")
                    }
                    Column::Time(c) => format!("({c} IS NOT NULL)"),
                    Column::Flag(..) => "(1 = 1)".to_owned(),
                };
                self.sql.push_str(&sql);
                return Ok(());
            }
            Filter::Compare(_, op, value) => (*op, value),
            _ => return Err(unsupported(path)),
        };
        let sql = match (col, value) {
            (Column::Exact(c) | Column::Folded(c) | Column::Time(c), Value::Null) => match op {
                CompareOp::Eq => format!("({c} IS NULL)"),
                CompareOp::Ne => format!("({c} IS NOT NULL)"),
                _ => {
                    return Err(ScimError::filter(format!(
                        "`{path} {}` cannot compare with null",
                        op.as_str()
                    )));
                }
            },
            (Column::Exact(c), Value::String(s)) => self.text(c, op, s.clone()),
            (Column::Folded(c), Value::String(s)) => self.text(c, op, s.to_lowercase()),
            (Column::Exact(_) | Column::Folded(_), _) => {
                return Err(ScimError::filter(format!("`{path}` compares with text")));
            }
            (Column::Flag(truth, falsity), Value::Bool(b)) => match op {
                CompareOp::Eq if *b => format!("({truth})"),
                CompareOp::Ne if !*b => format!("({truth})"),
                CompareOp::Eq | CompareOp::Ne => format!("({falsity})"),
                _ => return Err(ScimError::filter(format!("`{path}` takes only eq and ne"))),
            },
            (Column::Flag(..), _) => {
                return Err(ScimError::filter(format!(
                    "`{path}` compares with true or false"
                )));
            }
            (Column::Time(c), Value::String(s)) => {
                let at =
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| {
                            ScimError::filter(format!(
                                "`{path}` compares with an RFC 3339 time, not `{s}`"
                            ))
                        })?;
                let millis =
                    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
                let sym = match op {
                    CompareOp::Eq => "=",
                    CompareOp::Ne => "<>",
                    CompareOp::Gt => ">",
                    CompareOp::Ge => ">=",
                    CompareOp::Lt => "<",
                    CompareOp::Le => "<=",
                    _ => {
                        return Err(ScimError::filter(format!(
                            "`{path}` takes eq, ne, gt, ge, lt and le"
                        )));
                    }
                };
                let p = self.bind(Bind::Int(millis));
                format!("({c} IS NOT NULL AND {c} {sym} {p})")
            }
            (Column::Time(_), _) => {
                return Err(ScimError::filter(format!(
                    "`{path}` compares with an RFC 3339 time"
                )));
            }
        };
        self.sql.push_str(&sql);
        Ok(())
    }

    fn text(&mut self, c: &str, op: CompareOp, value: String) -> String {
        let next = (op == CompareOp::Sw).then(|| successor(&value)).flatten();
        let p = self.bind(Bind::Text(value));
        match op {
            CompareOp::Eq => format!("({c} IS NOT NULL AND {c} = {p})"),
            CompareOp::Ne => format!("({c} IS NULL OR {c} <> {p})"),
            CompareOp::Co => match self.backend {
                Backend::Sqlite => format!("({c} IS NOT NULL AND instr({c}, {p}) > 0)"),
                Backend::Postgres => format!("({c} IS NOT NULL AND strpos({c}, {p}) > 0)"),
            },
            // A range, so an index on the column serves it: byte order is code point order
            // (SQLite's BINARY, PostgreSQL's "C" collation).
            CompareOp::Sw => match next {
                Some(next) => {
                    let q = self.bind(Bind::Text(next));
                    format!("({c} IS NOT NULL AND {c} >= {p} AND {c} < {q})")
                }
                None => format!("({c} IS NOT NULL AND {c} >= {p})"),
            },
            CompareOp::Ew => format!(
                "({c} IS NOT NULL AND length({c}) >= length({p}) \
                 AND substr({c}, length({c}) - length({p}) + 1) = {p})"
            ),
            CompareOp::Gt => format!("({c} IS NOT NULL AND {c} > {p})"),
            CompareOp::Ge => format!("({c} IS NOT NULL AND {c} >= {p})"),
            CompareOp::Lt => format!("({c} IS NOT NULL AND {c} < {p})"),
            CompareOp::Le => format!("({c} IS NOT NULL AND {c} <= {p})"),
        }
    }
}

/// The least string greater than every string starting with `prefix`, if there is one.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=0x10_FFFF).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn sub_column(el: &Elements, sub: &str) -> Option<Column> {
    el.subs
        .iter()
        .find(|(name, _)| *name == sub)
        .map(|(_, c)| *c)
}
