//! PATCH (RFC 7644 §3.5.2) as Okta and Entra ID send it: `op` in any case (`Replace`), no
//! `path` with a value object (whose keys may themselves be paths, `name.givenName` or
//! `emails[type eq "work"].value`), value filters that create the element they describe when
//! none matches, `remove` of `members` with a value list, and booleans sent as text.
//!
//! A `path` may also be an extension's URN itself, as Entra ID sends for the enterprise
//! extension: `add` and `replace` then take an object of the extension's attributes and apply
//! each one as if it were named by its full path (attributes not named are left as they are,
//! RFC 7644 §3.5.2.3), and `remove` removes the whole extension.

use serde_json::{Map, Value};

use crate::ScimError;
use crate::filter::{AttrPath, Filter, shown};
use crate::resource::typed;
use crate::schema::{Attr, Kind, Mutability, ResourceSchema, find};

/// The PatchOp message's URN.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The most operations one PATCH may carry.
pub const MAX_OPERATIONS: usize = 1000;

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Add values (append to lists, merge objects, set the rest).
    Add,
    /// Remove what the path names.
    Remove,
    /// Replace what the path names.
    Replace,
}

/// Where an operation applies, resolved against the schema.
#[derive(Debug, Clone)]
struct Target {
    extension: Option<&'static str>,
    attr: &'static Attr,
    filter: Option<Filter>,
    sub: Option<&'static Attr>,
}

/// What an operation's `path` names.
#[derive(Debug, Clone)]
enum Path {
    /// No `path`: the value is an object of attributes (or paths) to apply.
    Values,
    /// An attribute, a sub-attribute or a value filter.
    Attr(Target),
    /// An extension's URN: its attributes as a whole.
    Extension(&'static str),
}

#[derive(Debug, Clone)]
struct Operation {
    op: Op,
    path: Path,
    value: Option<Value>,
}

/// A parsed PATCH request.
#[derive(Debug, Clone)]
pub struct Patch {
    operations: Vec<Operation>,
}

impl Patch {
    /// Parses a PatchOp body, resolving each path against `schema`.
    pub fn parse(schema: &ResourceSchema, body: &Value) -> Result<Patch, ScimError> {
        let Some(object) = body.as_object() else {
            return Err(ScimError::syntax("the request body must be a JSON object"));
        };
        if let Some(schemas) = crate::filter::get(body, "schemas") {
            let listed = schemas.as_array().is_some_and(|l| {
                l.iter()
                    .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP)))
            });
            if !listed {
                return Err(ScimError::syntax(format!(
                    "`schemas` must list `{PATCH_OP}`"
                )));
            }
        }
        let ops = object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
            .map(|(_, v)| v)
            .and_then(Value::as_array)
            .ok_or_else(|| ScimError::syntax("a PATCH needs an `Operations` list"))?;
        if ops.len() > MAX_OPERATIONS {
            return Err(ScimError::syntax(format!(
                "a PATCH may carry at most {MAX_OPERATIONS} operations"
            )));
        }
        let operations = ops
            .iter()
            .map(|op| operation(schema, op))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Patch { operations })
    }

    /// Applies every operation, in order, to `doc` (the resource as it would be returned,
    /// without `id` and `meta`). The caller validates the result with
    /// [`crate::canonical`].
    pub fn apply(&self, schema: &ResourceSchema, doc: &mut Value) -> Result<(), ScimError> {
        if !doc.is_object() {
            *doc = Value::Object(Map::new());
        }
        for operation in &self.operations {
            match (&operation.path, &operation.value) {
                (Path::Attr(target), value) => apply(doc, operation.op, target, value.as_ref())?,
                (Path::Extension(urn), _) if operation.op == Op::Remove => {
                    if let Some(root) = doc.as_object_mut() {
                        root.retain(|k, _| !k.eq_ignore_ascii_case(urn));
                    }
                }
                (Path::Extension(urn), Some(value)) => {
                    for (target, value) in targets(schema, urn, value)? {
                        apply(doc, operation.op, &target, Some(&value))?;
                    }
                }
                (Path::Values, Some(Value::Object(values))) => {
                    for (key, value) in values {
                        for (target, value) in targets(schema, key, value)? {
                            apply(doc, operation.op, &target, Some(&value))?;
                        }
                    }
                }
                (Path::Values, _) | (Path::Extension(_), None) => {
                    return Err(ScimError::bad(
                        crate::ScimType::NoTarget,
                        "an operation without `path` needs an object `value`",
                    ));
                }
            }
        }
        Ok(())
    }
}

fn operation(schema: &ResourceSchema, body: &Value) -> Result<Operation, ScimError> {
    let field = |name: &str| crate::filter::get(body, name);
    let op = match field("op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") => Op::Add,
        Some("remove") => Op::Remove,
        Some("replace") => Op::Replace,
        Some(other) => {
            return Err(ScimError::syntax(format!(
                "unknown PATCH op `{}`: use add, remove or replace",
                shown(other)
            )));
        }
        None => return Err(ScimError::syntax("each PATCH operation needs an `op`")),
    };
    let path = match field("path") {
        None | Some(Value::Null) => Path::Values,
        Some(Value::String(path)) => match schema.extension(path.trim()) {
            Some((urn, _)) => Path::Extension(urn),
            None => Path::Attr(target(schema, path)?),
        },
        Some(_) => return Err(ScimError::path("`path` must be text")),
    };
    let value = field("value").filter(|v| !v.is_null()).cloned();
    if op != Op::Remove && value.is_none() {
        return Err(ScimError::value(format!(
            "`{}` needs a `value`",
            op_name(op)
        )));
    }
    match (&path, &value) {
        (Path::Values, _) if op == Op::Remove => {
            return Err(ScimError::bad(
                crate::ScimType::NoTarget,
                "`remove` needs a `path`",
            ));
        }
        (Path::Extension(urn), Some(value)) if op != Op::Remove && !value.is_object() => {
            return Err(ScimError::value(format!("`{urn}` must be an object")));
        }
        _ => {}
    }
    Ok(Operation { op, path, value })
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Add => "add",
        Op::Remove => "remove",
        Op::Replace => "replace",
    }
}

/// Parses and resolves `attrPath` or `valuePath[.subAttr]`.
fn target(schema: &ResourceSchema, path: &str) -> Result<Target, ScimError> {
    let bad = |why: &str| ScimError::path(format!("invalid path `{}`: {why}", shown(path)));
    let (head, filter, tail) = match path.split_once('[') {
        Some((head, rest)) => {
            let (inner, tail) = rest
                .rsplit_once(']')
                .ok_or_else(|| bad("`[` without `]`"))?;
            let filter = Filter::parse_inner(inner).map_err(|e| bad(&e.detail))?;
            (head, Some(filter), tail)
        }
        None => (path, None, ""),
    };
    let mut parsed = AttrPath::parse(head).map_err(|e| bad(&e.detail))?;
    if filter.is_some() {
        if parsed.sub.is_some() {
            return Err(bad("a value filter must follow a multi-valued attribute"));
        }
        match tail.strip_prefix('.') {
            Some(sub) => parsed.sub = Some(sub.to_owned()),
            None if tail.is_empty() => {}
            None => return Err(bad("only `.subAttribute` may follow `]`")),
        }
    }
    let (extension, attr) = schema
        .attr(parsed.schema.as_deref(), &parsed.attr)
        .ok_or_else(|| bad("no such attribute"))?;
    let sub = match &parsed.sub {
        Some(name) => Some(find(attr.subs, name).ok_or_else(|| bad("no such sub-attribute"))?),
        None => None,
    };
    let filter = match filter {
        Some(f) => {
            if !attr.multi {
                return Err(bad("a value filter needs a multi-valued attribute"));
            }
            let wrapper = Filter::Each(
                AttrPath {
                    schema: extension.map(str::to_owned),
                    attr: attr.name.to_owned(),
                    sub: None,
                },
                Box::new(f),
            );
            match wrapper.resolve(schema).map_err(|e| bad(&e.detail))? {
                Filter::Each(_, inner) => Some(*inner),
                _ => None,
            }
        }
        None => None,
    };
    Ok(Target {
        extension,
        attr,
        filter,
        sub,
    })
}

/// The targets of one key of a path-less operation's value object (or of an extension named
/// by `path`, whose value is an object of its attributes).
fn targets(
    schema: &ResourceSchema,
    key: &str,
    value: &Value,
) -> Result<Vec<(Target, Value)>, ScimError> {
    if key.eq_ignore_ascii_case("schemas") {
        return Ok(Vec::new());
    }
    if let Some((urn, _)) = schema.extension(key) {
        let Some(inner) = value.as_object() else {
            return Err(ScimError::value(format!("`{urn}` must be an object")));
        };
        let mut out = Vec::new();
        for (k, v) in inner {
            out.extend(targets(schema, &format!("{urn}:{k}"), v)?);
        }
        return Ok(out);
    }
    let target = target(schema, key).map_err(|e| {
        ScimError::syntax(format!(
            "unknown attribute `{}`{}",
            shown(key),
            match e.detail.rsplit_once(": ") {
                Some((_, why)) if why != "no such attribute" => format!(": {why}"),
                _ => String::new(),
            }
        ))
    })?;
    Ok(vec![(target, value.clone())])
}

fn container<'a>(
    doc: &'a mut Value,
    extension: Option<&str>,
) -> Option<&'a mut Map<String, Value>> {
    let root = doc.as_object_mut()?;
    match extension {
        None => Some(root),
        Some(urn) => {
            let key = root
                .keys()
                .find(|k| k.eq_ignore_ascii_case(urn))
                .cloned()
                .unwrap_or_else(|| urn.to_owned());
            let ext = root.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !ext.is_object() {
                *ext = Value::Object(Map::new());
            }
            ext.as_object_mut()
        }
    }
}

/// The member of `map` named `name` in any case, moved to its canonical name.
fn slot<'a>(map: &'a mut Map<String, Value>, name: &str) -> &'a mut Value {
    if let Some(other) = map
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name) && *k != name)
        .cloned()
        && let Some(v) = map.remove(&other)
    {
        map.insert(name.to_owned(), v);
    }
    map.entry(name.to_owned()).or_insert(Value::Null)
}

fn apply(doc: &mut Value, op: Op, target: &Target, value: Option<&Value>) -> Result<(), ScimError> {
    let attr = target.attr;
    // Read-only attributes (`id`, `meta`, `groups`) are ignored, as for POST and PUT.
    if attr.mutability == Mutability::ReadOnly || attr.name == "id" {
        return Ok(());
    }
    let name = match target.extension {
        Some(urn) => format!("{urn}:{}", attr.name),
        None => attr.name.to_owned(),
    };
    let Some(map) = container(doc, target.extension) else {
        return Ok(());
    };
    let current = slot(map, attr.name);
    match (&target.filter, target.sub) {
        (None, None) => whole(current, op, attr, value, &name)?,
        (None, Some(sub)) => {
            if attr.multi {
                if op != Op::Remove {
                    return Err(ScimError::path(format!(
                        "invalid path `{name}.{}`: name the element with a filter, as in `{name}[type eq \"work\"].{}`",
                        sub.name, sub.name
                    )));
                }
                if let Value::Array(items) = current {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        item.retain(|k, _| !k.eq_ignore_ascii_case(sub.name));
                    }
                }
            } else {
                if !current.is_object() {
                    *current = Value::Object(Map::new());
                }
                if let Some(object) = current.as_object_mut() {
                    set_sub(object, sub, op, value, &format!("{name}.{}", sub.name))?;
                }
            }
        }
        (Some(filter), sub) => filtered(current, op, attr, filter, sub, value, &name)?,
    }
    tidy(map, attr.name);
    Ok(())
}

/// Add, replace or remove a whole attribute.
fn whole(
    current: &mut Value,
    op: Op,
    attr: &Attr,
    value: Option<&Value>,
    name: &str,
) -> Result<(), ScimError> {
    if op == Op::Remove {
        match (value, current.as_array_mut()) {
            // Entra ID removes members by listing them: {"path": "members", "value": [{"value": "id"}]}.
            (Some(listed), Some(items)) if attr.multi => {
                let gone: Vec<&Value> = match listed {
                    Value::Array(l) => l.iter().collect(),
                    other => vec![other],
                };
                let gone: Vec<&Value> = gone
                    .into_iter()
                    .filter_map(|g| crate::filter::get(g, "value").or(Some(g)))
                    .collect();
                items.retain(|item| {
                    let v = crate::filter::get(item, "value").unwrap_or(item);
                    !gone.contains(&v)
                });
            }
            _ => *current = Value::Null,
        }
        return Ok(());
    }
    let new = value.map(|v| typed(attr, v, name)).transpose()?.flatten();
    match (op, new) {
        (_, None) if op == Op::Replace => *current = Value::Null,
        (_, None) => {}
        (Op::Add, Some(Value::Array(new))) => {
            let items = match current {
                Value::Array(items) => items,
                other => {
                    *other = Value::Array(Vec::new());
                    other
                        .as_array_mut()
                        .ok_or_else(|| ScimError::value("unreachable"))?
                }
            };
            for item in new {
                if !items.contains(&item) {
                    items.push(item);
                }
            }
            one_primary(items);
        }
        (_, Some(Value::Object(new))) if attr.kind == Kind::Complex && !attr.multi => {
            if !current.is_object() {
                *current = Value::Object(Map::new());
            }
            if let Some(object) = current.as_object_mut() {
                for (k, v) in new {
                    object.insert(k, v);
                }
            }
        }
        (_, Some(new)) => *current = new,
    }
    Ok(())
}

fn set_sub(
    object: &mut Map<String, Value>,
    sub: &Attr,
    op: Op,
    value: Option<&Value>,
    name: &str,
) -> Result<(), ScimError> {
    object.retain(|k, _| !k.eq_ignore_ascii_case(sub.name) || k == sub.name);
    let new = match op {
        Op::Remove => None,
        _ => value.map(|v| typed(sub, v, name)).transpose()?.flatten(),
    };
    match new {
        Some(v) => {
            object.insert(sub.name.to_owned(), v);
        }
        None => {
            object.remove(sub.name);
        }
    }
    Ok(())
}

/// An operation on the elements of a multi-valued attribute that match `filter`.
fn filtered(
    current: &mut Value,
    op: Op,
    attr: &Attr,
    filter: &Filter,
    sub: Option<&Attr>,
    value: Option<&Value>,
    name: &str,
) -> Result<(), ScimError> {
    if !current.is_array() {
        *current = Value::Array(Vec::new());
    }
    let Some(items) = current.as_array_mut() else {
        return Ok(());
    };
    let hits: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| filter.matches(item, attr.subs))
        .map(|(i, _)| i)
        .collect();
    if op == Op::Remove {
        match sub {
            None => {
                let mut i = 0;
                items.retain(|_| {
                    i += 1;
                    !hits.contains(&(i - 1))
                });
            }
            Some(sub) => {
                for i in &hits {
                    if let Some(item) = items.get_mut(*i).and_then(Value::as_object_mut) {
                        item.remove(sub.name);
                    }
                }
            }
        }
        return Ok(());
    }
    let element_name = format!("{name}[…]");
    if hits.is_empty() {
        // Entra ID sets `emails[type eq "work"].value` whether or not a work email exists.
        let Some(pairs) = filter.required_values() else {
            return Err(ScimError::bad(
                crate::ScimType::NoTarget,
                format!("no element of `{name}` matches the filter"),
            ));
        };
        let mut element = Map::new();
        for (k, v) in pairs {
            element.insert(k, v);
        }
        let mut element = Value::Object(element);
        match sub {
            Some(sub) => {
                if let Some(object) = element.as_object_mut() {
                    set_sub(object, sub, op, value, &element_name)?;
                }
            }
            None => merge(&mut element, attr, value, &element_name)?,
        }
        let element = typed(attr, &element, name)?
            .and_then(|v| v.as_array().and_then(|a| a.first().cloned()));
        if let Some(element) = element {
            items.push(element);
        }
    } else {
        for i in hits {
            let Some(item) = items.get_mut(i) else {
                continue;
            };
            match sub {
                Some(sub) => {
                    if let Some(object) = item.as_object_mut() {
                        set_sub(object, sub, op, value, &element_name)?;
                    }
                }
                None if op == Op::Replace => {
                    *item = Value::Object(Map::new());
                    merge(item, attr, value, &element_name)?;
                }
                None => merge(item, attr, value, &element_name)?,
            }
        }
    }
    one_primary(items);
    Ok(())
}

fn merge(
    item: &mut Value,
    attr: &Attr,
    value: Option<&Value>,
    name: &str,
) -> Result<(), ScimError> {
    let Some(value) = value else {
        return Ok(());
    };
    let Some(Value::Array(new)) = typed(attr, value, name)? else {
        return Ok(());
    };
    if let (Some(object), Some(Value::Object(new))) = (item.as_object_mut(), new.into_iter().next())
    {
        for (k, v) in new {
            object.insert(k, v);
        }
    }
    Ok(())
}

/// When several elements claim `primary`, the last one set keeps it (RFC 7643 §2.4).
fn one_primary(items: &mut [Value]) {
    let last = items
        .iter()
        .rposition(|v| v.get("primary") == Some(&Value::Bool(true)));
    if let Some(last) = last {
        for (i, item) in items.iter_mut().enumerate() {
            if i != last
                && let Some(object) = item.as_object_mut()
            {
                object.remove("primary");
            }
        }
    }
}

/// Drops an attribute left null, empty or holding only empty elements.
fn tidy(map: &mut Map<String, Value>, name: &str) {
    let empty = match map.get(name) {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    };
    if empty {
        map.remove(name);
    }
}
