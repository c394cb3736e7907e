//! PATCH and resource validation as Okta and Entra ID use them, and the exact error for each
//! known bad input.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test"
)]
use proptest::prelude::*;
use serde_json::{Value, json};
use warden_scim::schema::{ENTERPRISE, GROUPS, USERS};
use warden_scim::{Patch, ScimType, canonical};

fn patched(doc: Value, ops: Value) -> Value {
    let patch = Patch::parse(
        &USERS,
        &json!({"schemas": [warden_scim::PATCH_OP], "Operations": ops}),
    )
    .unwrap();
    let mut doc = doc;
    patch.apply(&USERS, &mut doc).unwrap();
    Value::Object(canonical(&USERS, &doc).unwrap())
}

fn alice() -> Value {
    json!({
        "userName": "alice@example.com",
        "active": true,
        "name": {"givenName": "Alice", "familyName": "Smith"},
        "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
    })
}

#[test]
fn okta_deactivates_with_a_pathless_replace() {
    let out = patched(
        alice(),
        json!([{"op": "replace", "value": {"active": false}}]),
    );
    assert_eq!(out["active"], json!(false));
    assert_eq!(out["name"]["givenName"], "Alice");
}

#[test]
fn entra_sends_pascal_case_ops_text_booleans_and_value_paths() {
    let out = patched(
        alice(),
        json!([
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "a@home.net"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "alice@corp.example"},
            {"op": "Replace", "value": {"name.familyName": "Jones", "displayName": "Alice Jones"}},
            {"op": "Add", "path": format!("{ENTERPRISE}:department"), "value": "R&D"},
            {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": {"value": "bob-id"}},
        ]),
    );
    assert_eq!(out["active"], json!(false));
    assert_eq!(
        out["emails"],
        json!([
            {"value": "alice@corp.example", "type": "work", "primary": true},
            {"value": "a@home.net", "type": "home"},
        ])
    );
    assert_eq!(
        out["name"],
        json!({"givenName": "Alice", "familyName": "Jones"})
    );
    assert_eq!(out["displayName"], "Alice Jones");
    assert_eq!(
        out[ENTERPRISE],
        json!({"department": "R&D", "manager": {"value": "bob-id"}})
    );
}

#[test]
fn remove_by_filter_by_attribute_and_by_sub_attribute() {
    let out = patched(
        alice(),
        json!([
            {"op": "remove", "path": "emails[type eq \"work\"]"},
            {"op": "remove", "path": "name.familyName"},
        ]),
    );
    assert!(out.get("emails").is_none());
    assert_eq!(out["name"], json!({"givenName": "Alice"}));
    let out = patched(alice(), json!([{"op": "remove", "path": "name"}]));
    assert!(out.get("name").is_none());
}

#[test]
fn entra_names_the_enterprise_extension_itself_as_the_path() {
    let mut doc = alice();
    doc[ENTERPRISE] = json!({"employeeNumber": "7", "department": "R&D"});
    let out = patched(
        doc.clone(),
        json!([
            {"op": "replace", "path": ENTERPRISE, "value": {"department": "Ops", "manager": {"value": "m-1"}}},
            {"op": "Add", "path": ENTERPRISE.to_uppercase(), "value": {"manager": {"displayName": "Dana"}, "costCenter": "42"}},
        ]),
    );
    assert_eq!(
        out[ENTERPRISE],
        json!({
            "employeeNumber": "7",
            "department": "Ops",
            "costCenter": "42",
            "manager": {"value": "m-1", "displayName": "Dana"},
        })
    );
    let out = patched(doc.clone(), json!([{"op": "remove", "path": ENTERPRISE}]));
    assert!(out.get(ENTERPRISE).is_none(), "{out}");
    assert_eq!(out["userName"], "alice@example.com");
    let out = patched(alice(), json!([{"op": "remove", "path": ENTERPRISE}]));
    assert_eq!(out, Value::Object(canonical(&USERS, &alice()).unwrap()));
    // Removing `active` unassigns it; the server keeps the user's state.
    let out = patched(alice(), json!([{"op": "remove", "path": "active"}]));
    assert!(out.get("active").is_none(), "{out}");
}

#[test]
fn group_members_added_and_removed_the_okta_and_the_entra_way() {
    let group = json!({"displayName": "Ops", "members": [{"value": "a"}, {"value": "b"}]});
    let run = |ops: Value| {
        let patch = Patch::parse(&GROUPS, &json!({"Operations": ops})).unwrap();
        let mut doc = group.clone();
        patch.apply(&GROUPS, &mut doc).unwrap();
        Value::Object(canonical(&GROUPS, &doc).unwrap())
    };
    let out = run(json!([
        {"op": "add", "path": "members", "value": [{"value": "c"}, {"value": "a"}]},
        {"op": "remove", "path": "members[value eq \"b\"]"},
    ]));
    assert_eq!(out["members"], json!([{"value": "a"}, {"value": "c"}]));
    let out = run(json!([{"op": "Remove", "path": "members", "value": [{"value": "a"}]}]));
    assert_eq!(out["members"], json!([{"value": "b"}]));
    let out = run(json!([{"op": "replace", "path": "members", "value": [{"value": "z"}]}]));
    assert_eq!(out["members"], json!([{"value": "z"}]));
    // The same element twice, its members in another order, is one element.
    let twice = json!({"displayName": "Ops", "members": [
        {"value": "a", "display": "A"}, {"display": "A", "value": "a"}, {"value": "b"},
    ]});
    assert_eq!(
        canonical(&GROUPS, &twice).unwrap()["members"],
        json!([{"value": "a", "display": "A"}, {"value": "b"}])
    );
    // Okta's rename sends the read-only id alongside: it is ignored.
    let out = run(json!([{"op": "replace", "value": {"id": "x", "displayName": "Ops Team"}}]));
    assert_eq!(out["displayName"], "Ops Team");
}

fn patch_err(body: Value) -> (Option<ScimType>, String) {
    let shown = body.to_string();
    let e = Patch::parse(&USERS, &body)
        .and_then(|p| {
            let mut doc = alice();
            p.apply(&USERS, &mut doc)?;
            canonical(&USERS, &doc).map(|_| ())
        })
        .expect_err(&shown);
    assert_eq!(e.status, 400);
    (e.scim_type, e.detail)
}

#[test]
fn known_bad_patches_have_exact_errors() {
    use ScimType::*;
    let cases = [
        (
            json!({"Operations": [{"op": "move", "path": "title"}]}),
            (
                InvalidSyntax,
                "unknown PATCH op `move`: use add, remove or replace",
            ),
        ),
        (
            json!({"Operations": [{"path": "title"}]}),
            (InvalidSyntax, "each PATCH operation needs an `op`"),
        ),
        (
            json!({"Operations": [{"op": "remove"}]}),
            (NoTarget, "`remove` needs a `path`"),
        ),
        (
            json!({"Operations": [{"op": "add", "path": "title"}]}),
            (InvalidValue, "`add` needs a `value`"),
        ),
        (
            json!({"Operations": [{"op": "add", "path": "shoeSize", "value": 1}]}),
            (InvalidPath, "invalid path `shoeSize`: no such attribute"),
        ),
        (
            json!({"Operations": [{"op": "add", "path": "emails[type eq]", "value": "x"}]}),
            (
                InvalidPath,
                "invalid path `emails[type eq]`: `type eq` needs a value",
            ),
        ),
        (
            json!({"Operations": [{"op": "add", "path": "emails.value", "value": "x"}]}),
            (
                InvalidPath,
                "invalid path `emails.value`: name the element with a filter, as in `emails[type eq \"work\"].value`",
            ),
        ),
        (
            json!({"Operations": [{"op": "replace", "value": {"shoeSize": 44}}]}),
            (InvalidSyntax, "unknown attribute `shoeSize`"),
        ),
        (
            json!({"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]}),
            (
                InvalidValue,
                "`active` must be true or false, not `\\\"maybe\\\"`",
            ),
        ),
        (
            json!({"Operations": [{"op": "replace", "path": "emails[value co \"zzz\"].type", "value": "home"}]}),
            (NoTarget, "no element of `emails` matches the filter"),
        ),
        (
            json!({"Operations": [{"op": "replace", "path": "userName", "value": null}]}),
            (InvalidValue, "`replace` needs a `value`"),
        ),
        (
            json!({"schemas": ["urn:x"], "Operations": []}),
            (
                InvalidSyntax,
                "`schemas` must list `urn:ietf:params:scim:api:messages:2.0:PatchOp`",
            ),
        ),
        (
            json!({"Operations": [{"op": "replace", "path": ENTERPRISE, "value": "Ops"}]}),
            (
                InvalidValue,
                "`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User` must be an object",
            ),
        ),
        (
            json!({"Operations": [{"op": "add", "path": ENTERPRISE}]}),
            (InvalidValue, "`add` needs a `value`"),
        ),
        (
            json!({"Operations": [{"op": "add", "path": ENTERPRISE, "value": {"shoeSize": 1}}]}),
            (
                InvalidSyntax,
                "unknown attribute `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:shoeSize`",
            ),
        ),
        (
            json!({"Operations": [{"op": "remove", "path": "active[value eq true]"}]}),
            (
                InvalidPath,
                "invalid path `active[value eq true]`: a value filter needs a multi-valued attribute",
            ),
        ),
        (
            json!({"operations": "x"}),
            (InvalidSyntax, "a PATCH needs an `Operations` list"),
        ),
        (
            json!([]),
            (InvalidSyntax, "the request body must be a JSON object"),
        ),
    ];
    for (body, (kind, detail)) in cases {
        assert_eq!(
            patch_err(body.clone()),
            (Some(kind), detail.to_owned()),
            "{body}"
        );
    }
    // Removing userName leaves a user without its required attribute.
    assert_eq!(
        patch_err(json!({"Operations": [{"op": "remove", "path": "userName"}]})),
        (
            Some(InvalidValue),
            "attribute `userName` is required".to_owned()
        )
    );
}

#[test]
fn canonical_refuses_what_the_schema_does_not_have() {
    let bad = |body: Value| canonical(&USERS, &body).unwrap_err().detail;
    assert_eq!(
        bad(json!({"userName": "a", "shoeSize": 44})),
        "unknown attribute `shoeSize`"
    );
    assert_eq!(
        bad(json!({"userName": "a", "name": {"nick": "x"}})),
        "unknown attribute `name.nick`"
    );
    assert_eq!(
        bad(json!({"userName": 7})),
        "`userName` must be text, not `7`"
    );
    assert_eq!(
        bad(json!({"displayName": "A"})),
        "attribute `userName` is required"
    );
    assert_eq!(
        bad(json!({"userName": "a", "schemas": ["urn:nope"]})),
        "unknown schema `urn:nope` for a User"
    );
    assert_eq!(
        bad(
            json!({"userName": "a", "emails": [{"value": "x", "primary": true}, {"value": "y", "primary": true}]})
        ),
        "`emails` has more than one primary value"
    );
    assert_eq!(
        bad(json!({"userName": "a\u{0}"})),
        "`userName` holds a control character"
    );
    // Read-only and write-only attributes are dropped; names become canonical.
    let out = canonical(
        &USERS,
        &json!({"USERNAME": "a", "id": "x", "meta": {}, "groups": [{"value": "g"}], "password": "hunter2", "Active": "true"}),
    )
    .unwrap();
    assert_eq!(Value::Object(out), json!({"userName": "a", "active": true}));
}

proptest! {
    #[test]
    fn patch_never_panics(path in "\\PC{0,60}", op in "(add|remove|replace|Add)", value in prop_oneof![
        Just(json!("x")), Just(json!(true)), Just(json!([{"value": "v", "type": "work"}])),
        Just(json!({"givenName": "g"})), Just(Value::Null),
    ]) {
        let body = json!({"Operations": [{"op": op, "path": path, "value": value}]});
        if let Ok(p) = Patch::parse(&USERS, &body) {
            let mut doc = alice();
            if p.apply(&USERS, &mut doc).is_ok() {
                let _ = canonical(&USERS, &doc);
            }
        }
    }
}
