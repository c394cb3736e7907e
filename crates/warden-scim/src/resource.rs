//! Request bodies made canonical: every attribute checked against the schema (unknown ones
//! refused), names in their canonical case, read-only and write-only attributes dropped,
//! nulls and empty lists removed, Entra ID's `"True"`/`"False"` strings read as booleans.

use serde_json::{Map, Value};

use crate::ScimError;
use crate::filter::shown;
use crate::schema::{Attr, Kind, Mutability, ResourceSchema, find};

/// Validates a resource as a client sent it (POST, PUT, or the result of a PATCH) and returns
/// its canonical form: the attributes Warden keeps, without `schemas`, `id` or `meta`.
pub fn canonical(schema: &ResourceSchema, body: &Value) -> Result<Map<String, Value>, ScimError> {
    let Some(object) = body.as_object() else {
        return Err(ScimError::syntax("the request body must be a JSON object"));
    };
    let mut out = Map::new();
    for (key, value) in object {
        if key.eq_ignore_ascii_case("schemas") {
            check_schemas(schema, value)?;
            continue;
        }
        if let Some((urn, attrs)) = schema.extension(key) {
            let Some(inner) = value.as_object() else {
                if value.is_null() {
                    continue;
                }
                return Err(ScimError::syntax(format!("`{urn}` must be an object")));
            };
            let mut ext = Map::new();
            for (k, v) in inner {
                let attr = find(attrs, k).ok_or_else(|| unknown(&format!("{urn}:{k}")))?;
                put(&mut ext, attr, v, &format!("{urn}:{}", attr.name))?;
            }
            if !ext.is_empty() {
                out.insert(urn.to_owned(), Value::Object(ext));
            }
            continue;
        }
        if key.eq_ignore_ascii_case("meta") {
            continue;
        }
        let attr = find(schema.attrs, key).ok_or_else(|| unknown(key))?;
        put(&mut out, attr, value, attr.name)?;
    }
    for attr in schema.attrs {
        if attr.required && !out.contains_key(attr.name) {
            return Err(ScimError::value(format!(
                "attribute `{}` is required",
                attr.name
            )));
        }
    }
    Ok(out)
}

fn unknown(name: &str) -> ScimError {
    ScimError::syntax(format!("unknown attribute `{}`", shown(name)))
}

fn check_schemas(schema: &ResourceSchema, value: &Value) -> Result<(), ScimError> {
    let Some(list) = value.as_array() else {
        return Err(ScimError::syntax("`schemas` must be a list of URNs"));
    };
    for urn in list {
        let Some(urn) = urn.as_str() else {
            return Err(ScimError::syntax("`schemas` must be a list of URNs"));
        };
        if !urn.eq_ignore_ascii_case(schema.urn) && schema.extension(urn).is_none() {
            return Err(ScimError::syntax(format!(
                "unknown schema `{}` for a {}",
                shown(urn),
                schema.name
            )));
        }
    }
    Ok(())
}

/// Checks `value` for `attr` and stores it under the canonical name, unless it is read-only,
/// write-only, null or empty.
fn put(
    out: &mut Map<String, Value>,
    attr: &Attr,
    value: &Value,
    shown_name: &str,
) -> Result<(), ScimError> {
    if attr.mutability != Mutability::ReadWrite || attr.name == "id" {
        return Ok(());
    }
    let Some(value) = typed(attr, value, shown_name)? else {
        return Ok(());
    };
    out.insert(attr.name.to_owned(), value);
    Ok(())
}

/// `value` as `attr` holds it, or `None` when it is unassigned.
pub(crate) fn typed(attr: &Attr, value: &Value, name: &str) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    if !attr.multi {
        return single(attr, value, name);
    }
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::with_capacity(items.len());
    // Duplicates found by key, not by comparing each pair: a group may list 10,000 members.
    let mut seen = std::collections::BTreeSet::new();
    for item in items {
        if let Some(v) = single(attr, item, name)?
            && seen.insert(key(&v))
        {
            out.push(v);
        }
    }
    let primaries = out
        .iter()
        .filter(|v| v.get("primary") == Some(&Value::Bool(true)))
        .count();
    if primaries > 1 {
        return Err(ScimError::value(format!(
            "`{name}` has more than one primary value"
        )));
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// `value` as text with every object's members in name order: equal values give equal
/// text, in whatever order their members came.
fn key(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, String)> =
                map.iter().map(|(k, v)| (k, key(v))).collect();
            members.sort();
            let members: Vec<String> = members
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(key).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

fn single(attr: &Attr, value: &Value, name: &str) -> Result<Option<Value>, ScimError> {
    let wrong = |want: &str| {
        ScimError::value(format!(
            "`{name}` must be {want}, not `{}`",
            shown(&value.to_string())
        ))
    };
    Ok(Some(match attr.kind {
        Kind::String | Kind::Reference => match value {
            Value::String(s) if s.len() > 4096 => {
                return Err(ScimError::value(format!(
                    "`{name}` is longer than 4096 bytes"
                )));
            }
            Value::String(s) if s.chars().any(char::is_control) => {
                return Err(ScimError::value(format!(
                    "`{name}` holds a control character"
                )));
            }
            Value::String(s) if s.is_empty() => return Ok(None),
            Value::String(_) => value.clone(),
            _ => return Err(wrong("text")),
        },
        Kind::DateTime => match value {
            Value::String(s)
                if time::OffsetDateTime::parse(
                    s,
                    &time::format_description::well_known::Rfc3339,
                )
                .is_ok() =>
            {
                value.clone()
            }
            _ => return Err(wrong("an RFC 3339 time")),
        },
        Kind::Boolean => match value {
            Value::Bool(_) => value.clone(),
            // Entra ID sends `"active": "False"` in PATCH.
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(wrong("true or false")),
        },
        Kind::Complex => {
            let Some(object) = value.as_object() else {
                return Err(wrong("an object"));
            };
            let mut out = Map::new();
            for (k, v) in object {
                let sub = find(attr.subs, k).ok_or_else(|| unknown(&format!("{name}.{k}")))?;
                if let Some(v) = single(sub, v, &format!("{name}.{}", sub.name))? {
                    out.insert(sub.name.to_owned(), v);
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            Value::Object(out)
        }
    }))
}
