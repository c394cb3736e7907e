//! Resources as SCIM returns them: the stored document plus `id`, `active`, `groups` or
//! `members`, and `meta`; and the `attributes`/`excludedAttributes` projection.

use serde_json::{Value, json};
use warden_scim::schema::{ENTERPRISE, GROUP, USER};
use warden_store::{ScimGroup, ScimUser};

/// A user resource.
pub(super) fn user_json(base: &str, u: &ScimUser) -> Value {
    let mut out = serde_json::Map::new();
    let mut schemas = vec![Value::from(USER)];
    if u.document.contains_key(ENTERPRISE) {
        schemas.push(ENTERPRISE.into());
    }
    out.insert("schemas".into(), schemas.into());
    out.insert("id".into(), u.id.clone().into());
    for (k, v) in &u.document {
        out.insert(k.clone(), v.clone());
    }
    out.insert("active".into(), u.active.into());
    let groups: Vec<Value> = u
        .groups
        .iter()
        .map(|g| {
            json!({
                "value": g.id,
                "display": g.display,
                "$ref": format!("{base}/Groups/{}", g.id),
                "type": "direct",
            })
        })
        .collect();
    out.insert("groups".into(), groups.into());
    out.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": u.created_at.rfc3339_millis(),
            "lastModified": u.updated_at.rfc3339_millis(),
            "location": format!("{base}/Users/{}", u.id),
            "version": format!("W/\"{}\"", u.version),
        }),
    );
    Value::Object(out)
}

/// A group resource; `members` false leaves them out (`excludedAttributes=members`).
pub(super) fn group_json(base: &str, g: &ScimGroup, members: bool) -> Value {
    let mut out = json!({
        "schemas": [GROUP],
        "id": g.id,
        "displayName": g.display_name,
        "meta": {
            "resourceType": "Group",
            "created": g.created_at.rfc3339_millis(),
            "lastModified": g.updated_at.rfc3339_millis(),
            "location": format!("{base}/Groups/{}", g.id),
            "version": format!("W/\"{}\"", g.version),
        },
    });
    if let Some(map) = out.as_object_mut() {
        if let Some(external) = &g.external_id {
            map.insert("externalId".into(), external.clone().into());
        }
        if members {
            let list: Vec<Value> = g
                .members
                .iter()
                .map(|m| {
                    json!({
                        "value": m.id,
                        "display": m.display,
                        "$ref": format!("{base}/Users/{}", m.id),
                        "type": "User",
                    })
                })
                .collect();
            map.insert("members".into(), list.into());
        }
    }
    out
}

/// Which top-level attributes to return (RFC 7644 §3.4.2.5). `id`, `schemas` and `meta` are
/// always returned; `name.givenName` keeps all of `name`.
#[derive(Debug, Default)]
pub(super) struct Projection {
    only: Option<Vec<String>>,
    without: Vec<String>,
}

fn names(list: Option<&str>) -> Vec<String> {
    list.unwrap_or_default()
        .split(',')
        .map(|a| {
            let a = a.trim();
            // `urn:…:User:userName` names `userName`; an extension's own URN stays whole.
            let a = match a.rsplit_once(':') {
                Some((urn, attr))
                    if !urn.eq_ignore_ascii_case(ENTERPRISE)
                        && attr.chars().next().is_some_and(char::is_lowercase) =>
                {
                    attr
                }
                _ => a,
            };
            a.split('.').next().unwrap_or_default().to_ascii_lowercase()
        })
        .filter(|a| !a.is_empty())
        .collect()
}

impl Projection {
    pub(super) fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Projection {
        let only = names(attributes);
        Projection {
            only: (!only.is_empty()).then_some(only),
            without: names(excluded),
        }
    }

    /// Whether `attr` is returned.
    pub(super) fn wants(&self, attr: &str) -> bool {
        let attr = attr.to_ascii_lowercase();
        if matches!(attr.as_str(), "id" | "schemas" | "meta") {
            return true;
        }
        if self.without.contains(&attr) {
            return false;
        }
        self.only.as_ref().is_none_or(|only| only.contains(&attr))
    }

    pub(super) fn apply(&self, mut resource: Value) -> Value {
        if let Some(map) = resource.as_object_mut() {
            map.retain(|k, _| self.wants(k));
        }
        resource
    }
}
