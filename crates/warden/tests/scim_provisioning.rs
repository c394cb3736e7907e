//! SCIM provisioning as identity providers push it out of order, against the real server on
//! SQLite and PostgreSQL: group members not provisioned yet are held and resolved when the user
//! is created, PATCH paths naming the enterprise extension itself, `POST /.search` at the
//! root, and removing `active`; with the exact error for each known bad input, and nothing
//! changed by a refusal.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test")]

use std::path::Path;

use serde_json::{Value, json};
use warden_testkit::{Backend, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

const CONFIG: &str = "[limits]\nper_source_rps = 0\n";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A SCIM call with `token`: status, headers, JSON body.
async fn scim(
    server: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    server.scim(token, method, path, body).await
}

fn users(server: &TestServer) -> Value {
    server.users_json()
}

fn groups(server: &TestServer) -> Value {
    server.groups_json()
}

fn members(server: &TestServer, group: &str) -> Value {
    server.members_json(group)
}

/// A PATCH of `path` with these operations: status and body.
async fn patch(server: &TestServer, token: &str, path: &str, ops: Value) -> (u16, Value) {
    let body = json!({ "schemas": [PATCH_OP], "Operations": ops });
    let (status, _, body) = scim(server, token, "PATCH", path, Some(body)).await;
    (status, body)
}

fn okta_user(user_name: &str, given: &str, family: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": { "givenName": given, "familyName": family },
        "emails": [{ "primary": true, "value": user_name, "type": "work" }],
        "displayName": format!("{given} {family}"),
        "externalId": format!("00u{}", given.to_lowercase()),
        "active": true,
    })
}

/// Provisions `user_name`; returns the SCIM id.
async fn create_user(server: &TestServer, token: &str, user_name: &str) -> String {
    let given = user_name.split('@').next().unwrap();
    let (status, _, body) = scim(
        server,
        token,
        "POST",
        "/Users",
        Some(okta_user(user_name, given, "Test")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body.get("id").and_then(Value::as_str).unwrap().to_owned()
}

/// Provisions `user_name` and deletes them: the id names no provisioned user until the
/// person is created again.
async fn deleted_user(server: &TestServer, token: &str, user_name: &str) -> String {
    let id = create_user(server, token, user_name).await;
    let (status, _, _) = scim(server, token, "DELETE", &format!("/Users/{id}"), None).await;
    assert_eq!(status, 204);
    id
}

/// An id shaped like Warden's that no user has (pushed from an earlier Warden).
fn ghost(n: u32) -> String {
    format!("0190{n:028x}")
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// The RFC 7644 error body with this status, scimType and detail.
fn scim_error(status: u16, scim_type: Option<&str>, detail: &str) -> (u16, Value) {
    let mut e = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.to_string(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        e.as_object_mut()
            .unwrap()
            .insert("scimType".into(), t.into());
    }
    (status, e)
}

#[tokio::test]
async fn a_member_not_provisioned_yet_is_held_and_joins_when_the_user_is_created() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, CONFIG).await;
        let idp = server.token("idp", "scim", None);
        let alice = create_user(&server, &idp, "alice@example.com").await;
        let bob = deleted_user(&server, &idp, "bob@example.com").await;
        let ghost = ghost(1);

        // The group arrives naming a deleted user and one from an earlier Warden: held.
        let (status, headers, group) = scim(
            &server,
            &idp,
            "POST",
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Ops",
                "members": [{ "value": alice }, { "value": bob }, { "value": ghost }],
            })),
        )
        .await;
        assert_eq!(status, 201, "{backend:?} {group}");
        assert_eq!(headers["etag"], "W/\"1\"");
        let gid = group["id"].as_str().unwrap().to_owned();
        assert_eq!(
            member_ids(&group),
            [alice.as_str()],
            "held members are not members"
        );
        assert_eq!(members(&server, "ops"), json!(["alice-example.com"]));
        let created = server.audit("group.create");
        assert_eq!(created[0]["details"]["added"], json!(["alice-example.com"]));
        assert_eq!(
            created[0]["details"]["pending_added"],
            json!(sorted(vec![bob.clone(), ghost.clone()]))
        );

        // Visible nowhere: not in the group, not in a members filter.
        let (_, _, read) = scim(&server, &idp, "GET", &format!("/Groups/{gid}"), None).await;
        assert_eq!(member_ids(&read), [alice.as_str()]);
        let q = format!("/Groups?filter=members%5Bvalue%20eq%20%22{bob}%22%5D");
        let (_, _, body) = scim(&server, &idp, "GET", &q, None).await;
        assert_eq!(body["totalResults"], 0);

        // A PATCH that does not name them keeps them.
        let (status, body) = patch(
            &server,
            &idp,
            &format!("/Groups/{gid}"),
            json!([{ "op": "replace", "path": "externalId", "value": "okta-ops" }]),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let update = server.audit("group.update");
        assert_eq!(
            update[0]["details"],
            json!({
                "via": "scim", "display_name": "Ops", "external_id": "okta-ops", "version": 2,
                "added": [], "removed": [], "pending_added": [], "pending_removed": [],
            })
        );

        // Bob is created again: he joins in the same transaction, and the event says so.
        let (status, _, again) = scim(
            &server,
            &idp,
            "POST",
            "/Users",
            Some(okta_user("bob@example.com", "bob", "Test")),
        )
        .await;
        assert_eq!(status, 201, "{again}");
        assert_eq!(again["id"], bob.as_str());
        let mut joined = again["groups"].clone();
        let reference = joined[0].as_object_mut().unwrap().remove("$ref").unwrap();
        assert!(
            reference
                .as_str()
                .unwrap()
                .ends_with(&format!("/scim/v2/Groups/{gid}")),
            "{reference}"
        );
        assert_eq!(
            joined,
            json!([{ "value": gid, "display": "Ops", "type": "direct" }])
        );
        let create = server.audit("user.create");
        assert_eq!(
            create.last().unwrap()["details"],
            json!({
                "via": "scim", "user_name": "bob@example.com", "external_id": "00ubob",
                "active": true, "reprovisioned": true, "joined_groups": ["ops"],
            })
        );
        assert_eq!(
            members(&server, "ops"),
            json!(["alice-example.com", "bob-example.com"])
        );
        let (_, headers, read) = scim(&server, &idp, "GET", &format!("/Groups/{gid}"), None).await;
        assert_eq!(member_ids(&read), sorted(vec![alice.clone(), bob.clone()]));
        assert_eq!(headers["etag"], "W/\"3\"", "the group's members changed");

        // Removing a held member drops it: PATCH remove, then a PUT without it.
        let carol = deleted_user(&server, &idp, "carol@example.com").await;
        let dave = deleted_user(&server, &idp, "dave@example.com").await;
        let (status, _) = patch(
            &server,
            &idp,
            &format!("/Groups/{gid}"),
            json!([{ "op": "add", "path": "members", "value": [{ "value": carol }, { "value": dave }] }]),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            server.audit("group.update").last().unwrap()["details"]["pending_added"],
            json!(sorted(vec![carol.clone(), dave.clone()]))
        );
        let (status, body) = patch(
            &server,
            &idp,
            &format!("/Groups/{gid}"),
            json!([{ "op": "remove", "path": format!("members[value eq \"{carol}\"]") }]),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            server.audit("group.update").last().unwrap()["details"]["pending_removed"],
            json!([carol])
        );
        let (status, _, body) = scim(
            &server,
            &idp,
            "PUT",
            &format!("/Groups/{gid}"),
            Some(json!({
                "displayName": "Ops",
                "members": [{ "value": alice }, { "value": bob }, { "value": ghost }],
            })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let put = server.audit("group.update");
        assert_eq!(
            put.last().unwrap()["details"]["pending_removed"],
            json!([dave])
        );
        assert_eq!(put.last().unwrap()["details"]["removed"], json!([]));
        for (who, id) in [("carol", &carol), ("dave", &dave)] {
            let (status, _, user) = scim(
                &server,
                &idp,
                "POST",
                "/Users",
                Some(okta_user(&format!("{who}@example.com"), who, "Test")),
            )
            .await;
            assert_eq!((status, &user["id"]), (201, &json!(id)));
            assert_eq!(
                user["groups"],
                json!([]),
                "{who} was dropped before coming back"
            );
            let event = server.audit("user.create").last().unwrap().clone();
            assert!(event["details"].get("joined_groups").is_none(), "{event}");
        }
        assert_eq!(
            members(&server, "ops"),
            json!(["alice-example.com", "bob-example.com"])
        );

        // Deleting the group drops what it held.
        let erin = deleted_user(&server, &idp, "erin@example.com").await;
        let (status, _, other) = scim(
            &server,
            &idp,
            "POST",
            "/Groups",
            Some(json!({ "displayName": "Night Shift", "members": [{ "value": erin }] })),
        )
        .await;
        assert_eq!((status, other["members"].clone()), (201, json!([])));
        let (status, _, _) = scim(
            &server,
            &idp,
            "DELETE",
            &format!("/Groups/{}", other["id"].as_str().unwrap()),
            None,
        )
        .await;
        assert_eq!(status, 204);
        assert_eq!(
            server.audit("group.delete")[0]["details"],
            json!({ "via": "scim", "display_name": "Night Shift", "members": 0, "pending_removed": 1 })
        );
        let (status, _, user) = scim(
            &server,
            &idp,
            "POST",
            "/Users",
            Some(okta_user("erin@example.com", "erin", "Test")),
        )
        .await;
        assert_eq!((status, user["groups"].clone()), (201, json!([])));
        assert_eq!(members(&server, "night-shift"), Value::Null);
    }
}

#[tokio::test]
async fn held_members_are_bounded_and_other_unknown_members_are_refused() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, CONFIG).await;
        let idp = server.token("idp", "scim", None);
        let alice = create_user(&server, &idp, "alice@example.com").await;
        assert!(server.admin(&["user", "add", "ops-bot"]).status.success());
        let admin = server.token("root", "admin", None);
        let (_, data) = server
            .graphql(
                Some(&admin),
                r#"{ user(name: "ops-bot") { id } }"#,
                Value::Null,
            )
            .await;
        let outsider = data["data"]["user"]["id"].as_str().unwrap().to_owned();

        // 10,000 held members fit; the 10,001st is refused and changes nothing.
        let held: Vec<Value> = (0..10_000).map(|i| json!({ "value": ghost(i) })).collect();
        let (status, _, group) = scim(
            &server,
            &idp,
            "POST",
            "/Groups",
            Some(json!({ "displayName": "Everyone", "members": held })),
        )
        .await;
        assert_eq!(
            (status, group["members"].clone()),
            (201, json!([])),
            "{backend:?}"
        );
        let gid = group["id"].as_str().unwrap().to_owned();
        let before = groups(&server);
        let path = format!("/Groups/{gid}");
        let add = |value: &str| json!([{ "op": "add", "path": "members", "value": [{ "value": value }] }]);

        let cases = vec![
            (
                patch(&server, &idp, &path, add(&ghost(10_000))).await,
                scim_error(
                    400,
                    Some("invalidValue"),
                    "a group may hold at most 10000 members that are not provisioned users yet, not 10001",
                ),
            ),
            (
                patch(&server, &idp, &path, add("nobody")).await,
                scim_error(
                    400,
                    Some("invalidValue"),
                    "member `nobody` is not a provisioned user",
                ),
            ),
            (
                // Warden's ids are lowercase: another case is another value.
                patch(&server, &idp, &path, add(&alice.to_uppercase())).await,
                scim_error(
                    400,
                    Some("invalidValue"),
                    &format!(
                        "member `{}` is not a provisioned user",
                        alice.to_uppercase()
                    ),
                ),
            ),
            (
                patch(&server, &idp, &path, add(&format!("{}0", ghost(1)))).await,
                scim_error(
                    400,
                    Some("invalidValue"),
                    &format!("member `{}0` is not a provisioned user", ghost(1)),
                ),
            ),
            (
                // A Warden user no SCIM client manages can never be provisioned under that id.
                patch(&server, &idp, &path, add(&outsider)).await,
                scim_error(
                    400,
                    Some("invalidValue"),
                    &format!("member `{outsider}` is not a provisioned user"),
                ),
            ),
            (
                patch(&server, &idp, &path, add(&gid)).await,
                scim_error(
                    400,
                    Some("invalidValue"),
                    &format!("member `{gid}` is a group: nested groups are not supported"),
                ),
            ),
            (
                {
                    let body = json!({ "displayName": "Ops", "members": [{ "value": alice }, { "value": "x\ny" }] });
                    let (status, _, body) =
                        scim(&server, &idp, "POST", "/Groups", Some(body)).await;
                    (status, body)
                },
                scim_error(
                    400,
                    Some("invalidValue"),
                    "`members.value` holds a control character",
                ),
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, want, "{backend:?} case {i}");
        }
        assert_eq!(groups(&server), before, "nothing changed");
        let (_, headers, _) = scim(&server, &idp, "GET", &path, None).await;
        assert_eq!(headers["etag"], "W/\"1\"");
        let failed: Vec<Value> = server
            .audit("group.update")
            .into_iter()
            .filter(|e| e["outcome"] == "failure")
            .collect();
        assert_eq!(failed.len(), 6, "{failed:?}");
    }
}

#[tokio::test]
async fn patch_paths_may_name_the_enterprise_extension_itself() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, CONFIG).await;
        let idp = server.token("entra", "scim", None);
        let mut body = okta_user("carol@contoso.example", "Carol", "King");
        body["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]);
        body[ENTERPRISE] = json!({ "employeeNumber": "1042", "department": "Platform" });
        let (status, _, user) = scim(&server, &idp, "POST", "/Users", Some(body)).await;
        assert_eq!(status, 201, "{backend:?} {user}");
        let id = user["id"].as_str().unwrap().to_owned();
        let path = format!("/Users/{id}");

        // Replace with the URN as the path: named attributes change, the rest stay.
        let (status, body) = patch(
            &server,
            &idp,
            &path,
            json!([{
                "op": "Replace",
                "path": ENTERPRISE,
                "value": { "department": "Ops", "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d" } },
            }]),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body[ENTERPRISE],
            json!({
                "employeeNumber": "1042",
                "department": "Ops",
                "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d" },
            })
        );
        // Add with an attribute's full path, and with the URN.
        let (status, body) = patch(
            &server,
            &idp,
            &path,
            json!([
                { "op": "Add", "path": format!("{ENTERPRISE}:department"), "value": "Security" },
                { "op": "Add", "path": ENTERPRISE, "value": { "costCenter": "42", "manager": { "displayName": "Dana" } } },
            ]),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body[ENTERPRISE],
            json!({
                "employeeNumber": "1042",
                "department": "Security",
                "costCenter": "42",
                "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "Dana" },
            })
        );
        let version = body["meta"]["version"].clone();

        // Bad values for the URN path: refused, nothing changed.
        let cases = vec![
            (
                patch(&server, &idp, &path, json!([{ "op": "replace", "path": ENTERPRISE, "value": "Ops" }])).await,
                scim_error(400, Some("invalidValue"), &format!("`{ENTERPRISE}` must be an object")),
            ),
            (
                patch(&server, &idp, &path, json!([{ "op": "add", "path": ENTERPRISE }])).await,
                scim_error(400, Some("invalidValue"), "`add` needs a `value`"),
            ),
            (
                patch(&server, &idp, &path, json!([{ "op": "replace", "path": ENTERPRISE, "value": { "shoeSize": 44 } }])).await,
                scim_error(400, Some("invalidSyntax"), &format!("unknown attribute `{ENTERPRISE}:shoeSize`")),
            ),
            (
                patch(&server, &idp, &path, json!([{ "op": "replace", "path": ENTERPRISE, "value": { "manager": "Dana" } }])).await,
                scim_error(400, Some("invalidValue"), &format!("`{ENTERPRISE}:manager` must be an object, not `\\\"Dana\\\"`")),
            ),
            (
                patch(&server, &idp, &path, json!([{ "op": "remove", "path": format!("{ENTERPRISE}x") }])).await,
                scim_error(400, Some("invalidPath"), &format!("invalid path `{ENTERPRISE}x`: no such attribute")),
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, want, "{backend:?} case {i}");
        }
        let (_, _, now) = scim(&server, &idp, "GET", &path, None).await;
        assert_eq!(now["meta"]["version"], version);

        // A group has no extension: the URN is no path of it.
        let (_, _, group) = scim(
            &server,
            &idp,
            "POST",
            "/Groups",
            Some(json!({ "displayName": "SRE" })),
        )
        .await;
        let (status, body) = patch(
            &server,
            &idp,
            &format!("/Groups/{}", group["id"].as_str().unwrap()),
            json!([{ "op": "remove", "path": ENTERPRISE }]),
        )
        .await;
        assert_eq!(
            (status, body),
            scim_error(
                400,
                Some("invalidPath"),
                &format!("invalid path `{ENTERPRISE}`: no such attribute")
            )
        );

        // Remove with the URN: the whole extension goes, and so does its schema.
        let (status, body) = patch(
            &server,
            &idp,
            &path,
            json!([{ "op": "remove", "path": ENTERPRISE }]),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get(ENTERPRISE).is_none(), "{body}");
        assert_eq!(
            body["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
        );
        let (status, body) = patch(
            &server,
            &idp,
            &path,
            json!([{ "op": "remove", "path": ENTERPRISE }]),
        )
        .await;
        assert_eq!(
            status, 200,
            "removing what is not there is no error: {body}"
        );
        let changed: Vec<Value> = server
            .audit("user.update")
            .into_iter()
            .filter(|e| e["outcome"] == "success")
            .map(|e| e["details"]["changed"].clone())
            .collect();
        assert_eq!(
            changed,
            [
                json!([ENTERPRISE]),
                json!([ENTERPRISE]),
                json!([ENTERPRISE]),
                json!([])
            ]
        );
    }
}

#[tokio::test]
async fn a_search_at_the_root_covers_users_then_groups() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, CONFIG).await;
        let idp = server.token("idp", "scim", None);
        let member = server.token("someone", "member", None);
        let alice = create_user(&server, &idp, "alice@example.com").await;
        let bob = create_user(&server, &idp, "bob@example.com").await;
        let mut gids = Vec::new();
        for (name, members) in [
            ("Alpha Team", json!([{ "value": alice }])),
            ("Beta Team", json!([])),
        ] {
            let (status, _, group) = scim(
                &server,
                &idp,
                "POST",
                "/Groups",
                Some(json!({ "displayName": name, "members": members })),
            )
            .await;
            assert_eq!(status, 201, "{group}");
            gids.push(group["id"].as_str().unwrap().to_owned());
        }
        let (alpha, beta) = (gids[0].clone(), gids[1].clone());
        let search = async |body: Value| -> (u16, Value) {
            let (status, _, body) = scim(&server, &idp, "POST", "/.search", Some(body)).await;
            (status, body)
        };
        let ids = |body: &Value| -> Vec<String> {
            body["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect()
        };

        // Everything: Users, then Groups, each with its own schemas.
        let (status, body) = search(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        }))
        .await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(
            (
                body["totalResults"].clone(),
                body["startIndex"].clone(),
                body["itemsPerPage"].clone()
            ),
            (json!(4), json!(1), json!(4))
        );
        assert_eq!(
            ids(&body),
            [alice.as_str(), bob.as_str(), alpha.as_str(), beta.as_str()]
        );
        let kinds: Vec<(Value, Value)> = body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["schemas"].clone(), r["meta"]["resourceType"].clone()))
            .collect();
        let user = (
            json!(["urn:ietf:params:scim:schemas:core:2.0:User"]),
            json!("User"),
        );
        let group = (
            json!(["urn:ietf:params:scim:schemas:core:2.0:Group"]),
            json!("Group"),
        );
        assert_eq!(kinds, [user.clone(), user, group.clone(), group]);
        assert_eq!(body["Resources"][2]["members"][0]["value"], alice.as_str());

        // Pages run across the two types.
        let (_, body) = search(json!({ "startIndex": 2, "count": 2 })).await;
        assert_eq!(
            (body["totalResults"].clone(), body["startIndex"].clone()),
            (json!(4), json!(2))
        );
        assert_eq!(ids(&body), [bob.as_str(), alpha.as_str()]);
        let (_, body) = search(json!({ "startIndex": 4, "count": 10 })).await;
        assert_eq!(ids(&body), [beta.as_str()]);
        let (_, body) = search(json!({ "count": 0 })).await;
        assert_eq!(
            (body["totalResults"].clone(), body["Resources"].clone()),
            (json!(4), json!([]))
        );

        // A filter applies to the types that have its attributes.
        let cases = [
            (
                r#"displayName sw "a""#,
                vec![alice.as_str(), alpha.as_str()],
            ),
            (r#"userName eq "BOB@example.com""#, vec![bob.as_str()]),
            (
                &*format!(r#"members[value eq "{alice}"]"#),
                vec![alpha.as_str()],
            ),
            (
                r#"meta.resourceType eq "Group""#,
                vec![alpha.as_str(), beta.as_str()],
            ),
            (
                r#"meta.resourceType eq "user" or displayName sw "beta""#,
                vec![alice.as_str(), bob.as_str(), beta.as_str()],
            ),
            (
                &*format!(r#"id eq "{bob}" or id eq "{beta}""#),
                vec![bob.as_str(), beta.as_str()],
            ),
        ];
        for (filter, want) in cases {
            let (status, body) = search(json!({ "filter": filter })).await;
            assert_eq!(status, 200, "{filter}: {body}");
            assert_eq!(ids(&body), want, "{backend:?} {filter}");
            assert_eq!(body["totalResults"], want.len(), "{filter}");
        }

        // attributes and excludedAttributes, per resource.
        let (_, body) = search(json!({
            "filter": format!(r#"id eq "{bob}" or id eq "{beta}""#),
            "attributes": ["displayName"],
        }))
        .await;
        for r in body["Resources"].as_array().unwrap() {
            let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, ["displayName", "id", "meta", "schemas"], "{r}");
        }
        assert_eq!(body["Resources"][0]["displayName"], "bob Test");
        assert_eq!(body["Resources"][1]["displayName"], "Beta Team");
        let (_, body) = search(
            json!({ "filter": "meta.resourceType eq \"Group\"", "excludedAttributes": "members" }),
        )
        .await;
        assert!(body["Resources"][0].get("members").is_none(), "{body}");
        assert_eq!(body["Resources"][0]["displayName"], "Alpha Team");

        // meta.resourceType works on one type's list too.
        let (_, _, body) = scim(
            &server,
            &idp,
            "GET",
            "/Users?filter=meta.resourceType%20eq%20%22User%22",
            None,
        )
        .await;
        assert_eq!(body["totalResults"], 2);

        // Bad searches: one-line SCIM errors.
        let raw = async |token: &str, body: &str| -> (u16, Value) {
            let (status, _, body) = server
                .request("POST", "/scim/v2/.search", Some(token), Some(body), &[])
                .await;
            (status, body)
        };
        let cases = vec![
            (
                search(json!({ "filter": "shoeSize eq 1" })).await,
                scim_error(400, Some("invalidFilter"), "unknown attribute `shoeSize`"),
            ),
            (
                search(json!({ "filter": "title eq \"CTO\"" })).await,
                scim_error(
                    400,
                    Some("invalidFilter"),
                    "filtering on `title` is not supported",
                ),
            ),
            (
                search(json!({ "filter": "userName eq" })).await,
                scim_error(400, Some("invalidFilter"), "`userName eq` needs a value"),
            ),
            (
                search(json!({ "count": "ten" })).await,
                scim_error(
                    400,
                    Some("invalidValue"),
                    "`count` must be a whole number, not `ten`",
                ),
            ),
            (
                raw(&idp, "{").await,
                scim_error(
                    400,
                    Some("invalidSyntax"),
                    "the body is not valid JSON: it ends early at line 1 column 1",
                ),
            ),
            (
                raw(&member, "{}").await,
                scim_error(
                    403,
                    None,
                    "permission denied: only a token with the scim role may use /scim/v2",
                ),
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, want, "{backend:?} case {i}");
        }
    }
}

#[tokio::test]
async fn removing_active_leaves_the_user_enabled_or_disabled_as_they_are() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, CONFIG).await;
        let idp = server.token("idp", "scim", None);
        let id = create_user(&server, &idp, "alice@example.com").await;
        let path = format!("/Users/{id}");
        let disabled = |server: &TestServer| users(server)[0]["disabled"].clone();
        let remove = json!([{ "op": "remove", "path": "active" }]);

        // Enabled: removing `active` keeps her enabled.
        let (status, body) = patch(&server, &idp, &path, remove.clone()).await;
        assert_eq!(
            (status, body["active"].clone()),
            (200, json!(true)),
            "{backend:?} {body}"
        );
        assert_eq!(disabled(&server), false);

        // Disabled: removing `active` (Entra's casing too) does not enable her again.
        let (status, body) = patch(
            &server,
            &idp,
            &path,
            json!([{ "op": "replace", "path": "active", "value": false }]),
        )
        .await;
        assert_eq!((status, body["active"].clone()), (200, json!(false)));
        let (status, body) = patch(
            &server,
            &idp,
            &path,
            json!([{ "op": "Remove", "path": "active" }]),
        )
        .await;
        assert_eq!(
            (status, body["active"].clone()),
            (200, json!(false)),
            "{body}"
        );
        assert_eq!(disabled(&server), true);
        let (status, body) = patch(&server, &idp, &path, json!([{ "op": "remove", "path": "active" }, { "op": "replace", "path": "title", "value": "CTO" }])).await;
        assert_eq!(
            (status, body["active"].clone(), body["title"].clone()),
            (200, json!(false), json!("CTO"))
        );
        assert_eq!(disabled(&server), true);
        assert!(server.audit("user.enable").is_empty(), "never re-enabled");
        let updates: Vec<Value> = server
            .audit("user.update")
            .into_iter()
            .map(|e| e["details"]["changed"].clone())
            .collect();
        assert_eq!(updates, [json!([]), json!([]), json!(["title"])]);
        assert_eq!(body["meta"]["version"], "W/\"5\"");

        // Bad removals and values: refused, nothing changed.
        let cases = vec![
            (
                patch(
                    &server,
                    &idp,
                    &path,
                    json!([{ "op": "remove", "path": "active[value eq true]" }]),
                )
                .await,
                scim_error(
                    400,
                    Some("invalidPath"),
                    "invalid path `active[value eq true]`: a value filter needs a multi-valued attribute",
                ),
            ),
            (
                patch(
                    &server,
                    &idp,
                    &path,
                    json!([{ "op": "remove", "path": "active.value" }]),
                )
                .await,
                scim_error(
                    400,
                    Some("invalidPath"),
                    "invalid path `active.value`: no such sub-attribute",
                ),
            ),
            (
                patch(
                    &server,
                    &idp,
                    &path,
                    json!([{ "op": "replace", "path": "active", "value": "maybe" }]),
                )
                .await,
                scim_error(
                    400,
                    Some("invalidValue"),
                    "`active` must be true or false, not `\\\"maybe\\\"`",
                ),
            ),
            (
                patch(
                    &server,
                    &idp,
                    &path,
                    json!([{ "op": "replace", "path": "active" }]),
                )
                .await,
                scim_error(400, Some("invalidValue"), "`replace` needs a `value`"),
            ),
            (
                patch(&server, &idp, &path, json!([{ "op": "remove" }])).await,
                scim_error(400, Some("noTarget"), "`remove` needs a `path`"),
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, want, "{backend:?} case {i}");
        }
        let (_, _, now) = scim(&server, &idp, "GET", &path, None).await;
        assert_eq!(
            (now["active"].clone(), now["meta"]["version"].clone()),
            (json!(false), json!("W/\"5\""))
        );
        assert_eq!(disabled(&server), true);
    }
}
