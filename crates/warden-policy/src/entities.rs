//! What the policy decides about: the directory of people, services, groups and hosts as Cedar
//! entities, and the subject and object of one decision.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use cedar_policy::{Entities, Entity, EntityUid, RestrictedExpression, Schema};
use serde::Deserialize;
use serde_json::json;

use crate::{PolicyError, one};

/// Who exists, for evaluating requests: users in groups, hosts with labels.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    /// Groups.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupEntry>,
    /// Users and their groups.
    #[serde(default, rename = "user")]
    pub users: Vec<UserEntry>,
    /// Hosts and their labels.
    #[serde(default, rename = "host")]
    pub hosts: Vec<HostEntry>,
    /// Service accounts.
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceEntry>,
}

/// A service account: an API token acting for no person.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    /// The token's name.
    pub name: String,
    /// The token's role.
    pub role: String,
}

/// A group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    /// Its name.
    pub name: String,
}

/// A user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Login name.
    pub name: String,
    /// Group names.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The role of the API token the request comes with, if any.
    #[serde(default)]
    pub role: Option<String>,
}

/// A host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// Its name.
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Directory {
    /// The Cedar entities, checked against the schema.
    pub fn entities(&self, schema: &Schema) -> Result<Entities, PolicyError> {
        let uid = |kind: &str, id: &str| json!({ "type": format!("Warden::{kind}"), "id": id });
        let mut list = Vec::new();
        for g in &self.groups {
            list.push(json!({ "uid": uid("Group", &g.name), "attrs": {}, "parents": [] }));
        }
        for u in &self.users {
            let parents: Vec<_> = u.groups.iter().map(|g| uid("Group", g)).collect();
            let attrs = match &u.role {
                Some(role) => json!({ "name": u.name, "groups": u.groups, "role": role }),
                None => json!({ "name": u.name, "groups": u.groups }),
            };
            list.push(json!({ "uid": uid("User", &u.name), "attrs": attrs, "parents": parents }));
        }
        for s in &self.services {
            list.push(json!({ "uid": uid("Service", &s.name), "attrs": { "role": s.role }, "parents": [] }));
        }
        for h in &self.hosts {
            let attrs = match h.labels.get("env") {
                Some(env) => json!({ "environment": env }),
                None => json!({}),
            };
            list.push(json!({ "uid": uid("Host", &h.name), "attrs": attrs, "parents": [], "tags": h.labels }));
        }
        Entities::from_json_value(serde_json::Value::Array(list), Some(schema)).map_err(|e| {
            one(format!(
                "invalid directory: {}",
                e.to_string().replace('\n', " ")
            ))
        })
    }

    pub(crate) fn known(&self) -> BTreeSet<String> {
        let mut known = BTreeSet::new();
        for g in &self.groups {
            known.insert(format!("Warden::Group::\"{}\"", g.name));
        }
        for u in &self.users {
            known.insert(format!("Warden::User::\"{}\"", u.name));
        }
        for h in &self.hosts {
            known.insert(format!("Warden::Host::\"{}\"", h.name));
        }
        for s in &self.services {
            known.insert(format!("Warden::Service::\"{}\"", s.name));
        }
        known
    }
}

/// A Cedar string literal.
pub(crate) fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `Warden::KIND::"id"`, with the type names parsed once.
pub(crate) fn uid_of(kind: &str, id: &str) -> Result<EntityUid, PolicyError> {
    static TYPES: std::sync::OnceLock<BTreeMap<&'static str, cedar_policy::EntityTypeName>> =
        std::sync::OnceLock::new();
    let types = TYPES.get_or_init(|| {
        [
            "User", "Group", "Service", "Device", "Host", "App", "Api", "Action",
        ]
        .into_iter()
        .filter_map(|k| {
            cedar_policy::EntityTypeName::from_str(&format!("Warden::{k}"))
                .ok()
                .map(|t| (k, t))
        })
        .collect()
    });
    let kind_name = types
        .get(kind)
        .ok_or_else(|| one(format!("unknown entity type `{kind}`")))?;
    Ok(EntityUid::from_type_name_and_id(
        kind_name.clone(),
        cedar_policy::EntityId::new(id),
    ))
}

pub(crate) fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

/// Who asks: a person (with the groups they are in now) or a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A person, `Warden::User::"alice"`.
    User {
        /// Login name.
        name: String,
        /// Groups, including those from the identity provider and temporary grants.
        groups: Vec<String>,
        /// The role of the API token the request came with, if it came with one.
        role: Option<String>,
    },
    /// A service account (an API token acting for no person), `Warden::Service::"ci"`.
    Service {
        /// The token's name.
        name: String,
        /// The token's role.
        role: String,
    },
}

impl Subject {
    /// Its entity reference.
    pub fn uid(&self) -> String {
        match self {
            Subject::User { name, .. } => format!("Warden::User::{}", quoted(name)),
            Subject::Service { name, .. } => format!("Warden::Service::{}", quoted(name)),
        }
    }

    pub(crate) fn entity_uid(&self) -> Result<EntityUid, PolicyError> {
        match self {
            Subject::User { name, .. } => uid_of("User", name),
            Subject::Service { name, .. } => uid_of("Service", name),
        }
    }

    pub(crate) fn entities(&self) -> Result<Vec<Entity>, PolicyError> {
        let invalid =
            |e: cedar_policy::EntityAttrEvaluationError| one(format!("invalid entity: {e}"));
        match self {
            Subject::User { name, groups, role } => {
                let mut list = Vec::with_capacity(groups.len() + 1);
                let mut parents = Vec::with_capacity(groups.len());
                for g in groups {
                    let uid = uid_of("Group", g)?;
                    list.push(Entity::with_uid(uid.clone()));
                    parents.push(uid);
                }
                let mut attrs = vec![
                    ("name".to_owned(), string(name)),
                    (
                        "groups".to_owned(),
                        RestrictedExpression::new_set(groups.iter().map(|g| string(g))),
                    ),
                ];
                attrs.extend(role.iter().map(|r| ("role".to_owned(), string(r))));
                list.push(
                    Entity::new_with_tags(uid_of("User", name)?, attrs, parents, [])
                        .map_err(invalid)?,
                );
                Ok(list)
            }
            Subject::Service { name, role } => Ok(vec![
                Entity::new_with_tags(
                    uid_of("Service", name)?,
                    [("role".to_owned(), string(role))],
                    [],
                    [],
                )
                .map_err(invalid)?,
            ]),
        }
    }
}

/// What is asked about: a part of Warden's API or a host with its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// `Warden::Api::"users"`.
    Api(String),
    /// `Warden::Group::"ops"`: what an access request asks for.
    Group(String),
    /// `Warden::Host::"db-1"` with its labels as tags.
    Host {
        /// Its name.
        name: String,
        /// Its labels.
        labels: BTreeMap<String, String>,
    },
}

impl Object {
    /// Its entity reference.
    pub fn uid(&self) -> String {
        match self {
            Object::Api(name) => format!("Warden::Api::{}", quoted(name)),
            Object::Group(name) => format!("Warden::Group::{}", quoted(name)),
            Object::Host { name, .. } => format!("Warden::Host::{}", quoted(name)),
        }
    }

    pub(crate) fn entity_uid(&self) -> Result<EntityUid, PolicyError> {
        match self {
            Object::Api(name) => uid_of("Api", name),
            Object::Group(name) => uid_of("Group", name),
            Object::Host { name, .. } => uid_of("Host", name),
        }
    }

    pub(crate) fn entities(&self) -> Result<Vec<Entity>, PolicyError> {
        match self {
            Object::Api(name) => Ok(vec![Entity::with_uid(uid_of("Api", name)?)]),
            Object::Group(name) => Ok(vec![Entity::with_uid(uid_of("Group", name)?)]),
            Object::Host { name, labels } => Ok(vec![
                Entity::new_with_tags(
                    uid_of("Host", name)?,
                    // The `env` label doubles as the `environment` attribute.
                    labels
                        .get("env")
                        .map(|env| ("environment".to_owned(), string(env))),
                    [],
                    labels.iter().map(|(k, v)| (k.clone(), string(v))),
                )
                .map_err(|e| one(format!("invalid entity: {e}")))?,
            ]),
        }
    }
}
