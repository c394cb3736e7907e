//! SCIM 2.0 at /scim/v2 as Okta and Entra ID drive it, against the real server on SQLite and
//! PostgreSQL: provisioning, groups, deactivation (which offboards), ETags, paging and
//! filters, and the exact error for each known bad input, with nothing changed; and a live SSH
//! session cut by a SCIM deactivation.
#![expect(
    clippy::too_many_lines,
    reason = "an end-to-end journey reads in order, one step after another"
)]

use std::path::Path;

use serde_json::{Value, json};
use warden_testkit::{Backend, SshLab, TestServer, ssh_keygen_ed25519, through_proxy};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

const CONFIG: &str = "[limits]\nper_source_rps = 0\n";

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

fn okta_user(user_name: &str, given: &str, family: &str) -> Value {
    // What Okta sends on "Push new users" (its default attribute mappings).
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": { "givenName": given, "familyName": family },
        "emails": [{ "primary": true, "value": user_name, "type": "work" }],
        "displayName": format!("{given} {family}"),
        "locale": "en-US",
        "externalId": format!("00u{}", given.to_lowercase()),
        "groups": [],
        "password": "Okta-generated-1!",
        "active": true,
    })
}

#[tokio::test]
async fn okta_provisions_people_and_groups_then_deactivates_and_deletes() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, CONFIG).await;
        let okta = server.token("okta", "scim", None);

        // Discovery.
        let (status, headers, body) =
            scim(&server, &okta, "GET", "/ServiceProviderConfig", None).await;
        assert_eq!(status, 200);
        assert_eq!(
            headers["content-type"],
            "application/scim+json; charset=utf-8"
        );
        assert_eq!(body["patch"]["supported"], true);
        assert_eq!(body["etag"]["supported"], true);
        let (_, _, body) = scim(&server, &okta, "GET", "/ResourceTypes", None).await;
        assert_eq!(body["totalResults"], 2);
        let (_, _, body) = scim(&server, &okta, "GET", "/Schemas", None).await;
        let ids: Vec<&str> = body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["id"].as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                "urn:ietf:params:scim:schemas:core:2.0:Group",
            ]
        );

        // Okta's existence check, then the create.
        let check =
            "/Users?filter=userName%20eq%20%22alice%40example.com%22&startIndex=1&count=100";
        let (status, _, body) = scim(&server, &okta, "GET", check, None).await;
        assert_eq!(
            (
                status,
                body["totalResults"].clone(),
                body["Resources"].clone()
            ),
            (200, json!(0), json!([]))
        );
        let (status, headers, alice) = scim(
            &server,
            &okta,
            "POST",
            "/Users",
            Some(okta_user("alice@example.com", "Alice", "Smith")),
        )
        .await;
        assert_eq!(status, 201, "{backend:?} {alice}");
        let id = alice["id"].as_str().unwrap().to_owned();
        assert_eq!(headers["etag"], "W/\"1\"");
        assert!(
            headers["location"]
                .to_str()
                .unwrap()
                .ends_with(&format!("/scim/v2/Users/{id}"))
        );
        assert_eq!(alice["active"], true);
        assert_eq!(alice["locale"], "en-US");
        assert!(
            alice.get("password").is_none(),
            "a password is never kept: {alice}"
        );
        assert_eq!(alice["meta"]["resourceType"], "User");
        // The Warden user, named from userName.
        assert_eq!(users(&server)[0]["name"], "alice-example.com");
        assert_eq!(users(&server)[0]["displayName"], "Alice Smith");

        let (status, _, body) = scim(
            &server,
            &okta,
            "GET",
            &check.replace("alice", "ALICE"),
            None,
        )
        .await;
        assert_eq!(
            (status, body["totalResults"].clone()),
            (200, json!(1)),
            "userName is caseExact=false"
        );
        assert_eq!(body["Resources"][0]["id"], id.as_str());

        // A second create of the same userName: 409 uniqueness, nothing changed.
        let (status, _, body) = scim(
            &server,
            &okta,
            "POST",
            "/Users",
            Some(okta_user("Alice@Example.com", "A", "S")),
        )
        .await;
        assert_eq!(status, 409);
        assert_eq!(
            body,
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "409",
                "scimType": "uniqueness",
                "detail": "userName `Alice@Example.com` is already provisioned",
            })
        );
        assert_eq!(users(&server).as_array().unwrap().len(), 1);

        let (_, _, bob) = scim(
            &server,
            &okta,
            "POST",
            "/Users",
            Some(okta_user("bob@example.com", "Bob", "Jones")),
        )
        .await;
        let bob_id = bob["id"].as_str().unwrap().to_owned();

        // A pushed group, with alice; then bob added and alice removed as Okta does it.
        let (status, _, group) = scim(
            &server,
            &okta,
            "POST",
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Engineering Team",
                "members": [{ "value": id, "display": "alice@example.com" }],
            })),
        )
        .await;
        assert_eq!(status, 201, "{group}");
        let group_id = group["id"].as_str().unwrap().to_owned();
        assert_eq!(group["members"][0]["value"], id.as_str());
        assert_eq!(
            members(&server, "engineering-team"),
            json!(["alice-example.com"])
        );
        let (_, _, body) = scim(&server, &okta, "GET", &format!("/Users/{id}"), None).await;
        assert_eq!(body["groups"][0]["display"], "Engineering Team");
        let (status, _, group) = scim(
            &server,
            &okta,
            "PATCH",
            &format!("/Groups/{group_id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    { "op": "add", "path": "members", "value": [{ "value": bob_id, "display": "bob@example.com" }] },
                    { "op": "remove", "path": format!("members[value eq \"{id}\"]") },
                ],
            })),
        )
        .await;
        assert_eq!(status, 200, "{group}");
        assert_eq!(group["members"].as_array().unwrap().len(), 1);
        assert_eq!(
            members(&server, "engineering-team"),
            json!(["bob-example.com"])
        );
        let update = server.audit("group.update");
        assert_eq!(update[0]["details"]["added"], json!(["bob-example.com"]));
        assert_eq!(
            update[0]["details"]["removed"],
            json!(["alice-example.com"])
        );
        assert_eq!(update[0]["actor"], "token:okta");

        // Deactivation, Okta's way: it offboards, and the user stays readable and filterable.
        let alice_token = server.token("alice-cli", "member", Some("alice-example.com"));
        let (status, headers, body) = scim(
            &server,
            &okta,
            "PATCH",
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "active": false } }],
            })),
        )
        .await;
        assert_eq!(
            (status, body["active"].clone()),
            (200, json!(false)),
            "{body}"
        );
        assert_eq!(headers["etag"], "W/\"2\"");
        let disabled = server.audit("user.disable");
        assert_eq!(disabled[0]["target"], "user:alice-example.com");
        assert_eq!(disabled[0]["details"]["via"], "scim");
        assert_eq!(disabled[0]["details"]["tokens_revoked"], 1);
        let (status, _) = server
            .graphql(Some(&alice_token), "{ viewer { name } }", Value::Null)
            .await;
        assert_eq!(status, 401, "her token died with the deactivation");
        let (_, _, body) = scim(
            &server,
            &okta,
            "GET",
            "/Users?filter=active%20eq%20false",
            None,
        )
        .await;
        assert_eq!(body["totalResults"], 1);
        assert_eq!(body["Resources"][0]["userName"], "alice@example.com");

        // ETags: a stale If-Match is refused; If-None-Match of the current one is 304.
        let (status, _, body) = server
            .request(
                "PATCH",
                &format!("/scim/v2/Users/{id}"),
                Some(&okta),
                Some(
                    &json!({"Operations": [{"op": "replace", "path": "title", "value": "CTO"}]})
                        .to_string(),
                ),
                &[("if-match", "W/\"1\"")],
            )
            .await;
        assert_eq!(status, 412);
        assert_eq!(
            body["detail"],
            format!("user `{id}` has changed (version 2, not 1): read it again")
        );
        let (status, _, _) = server
            .request(
                "GET",
                &format!("/scim/v2/Users/{id}"),
                Some(&okta),
                None,
                &[("if-none-match", "W/\"2\"")],
            )
            .await;
        assert_eq!(status, 304);

        // PUT replaces everything: reactivated, title set, emails gone.
        let (status, _, body) = scim(
            &server,
            &okta,
            "PUT",
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "alice@example.com",
                "name": { "givenName": "Alice", "familyName": "Jones" },
                "title": "CTO",
                "active": true,
            })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (body["active"].clone(), body["title"].clone()),
            (json!(true), json!("CTO"))
        );
        assert!(
            body.get("emails").is_none() && body.get("locale").is_none(),
            "{body}"
        );
        assert_eq!(server.audit("user.enable")[0]["details"]["via"], "scim");

        // DELETE: gone from SCIM, disabled (and kept) in Warden, out of every group.
        let (status, _, _) =
            scim(&server, &okta, "DELETE", &format!("/Users/{bob_id}"), None).await;
        assert_eq!(status, 204);
        let (status, _, body) =
            scim(&server, &okta, "GET", &format!("/Users/{bob_id}"), None).await;
        assert_eq!(status, 404);
        assert_eq!(body["detail"], format!("user `{bob_id}` not found"));
        let bob_row = users(&server)
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == "bob-example.com")
            .cloned()
            .unwrap();
        assert_eq!(bob_row["disabled"], true);
        assert_eq!(members(&server, "engineering-team"), json!([]));
        // Rehired: the client creates him anew, onto the same Warden user.
        let (status, _, again) = scim(
            &server,
            &okta,
            "POST",
            "/Users",
            Some(okta_user("bob@example.com", "Bob", "Jones")),
        )
        .await;
        assert_eq!(status, 201, "{again}");
        assert_eq!(again["id"], bob_id.as_str());
        let creates = server.audit("user.create");
        assert_eq!(creates.last().unwrap()["details"]["reprovisioned"], true);
        let bob_row = users(&server)
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == "bob-example.com")
            .cloned()
            .unwrap();
        assert_eq!(bob_row["disabled"], false);
        let (status, _, _) = scim(
            &server,
            &okta,
            "DELETE",
            &format!("/Groups/{group_id}"),
            None,
        )
        .await;
        assert_eq!(status, 204);
        assert_eq!(members(&server, "engineering-team"), Value::Null);
    }
}

#[tokio::test]
async fn entra_id_quirks_work() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, CONFIG).await;
        let entra = server.token("entra", "scim", None);
        // Entra's existence probe is a filter on a random attribute value.
        let (status, _, body) = scim(
            &server,
            &entra,
            "GET",
            "/Users?filter=userName+eq+%22a6b1b1e6-1d5f-4b3e-9e0c-0ad6b1e1c111%22",
            None,
        )
        .await;
        assert_eq!((status, body["totalResults"].clone()), (200, json!(0)));
        let (status, _, user) = scim(
            &server,
            &entra,
            "POST",
            "/Users",
            Some(json!({
                "schemas": [
                    "urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                ],
                "externalId": "carol",
                "userName": "Carol.King@contoso.example",
                "active": true,
                "displayName": "Carol King",
                "emails": [{ "primary": true, "type": "work", "value": "Carol.King@contoso.example" }],
                "meta": { "resourceType": "User" },
                "name": { "formatted": "Carol King", "familyName": "King", "givenName": "Carol" },
                "title": "Engineer",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "employeeNumber": "1042",
                    "department": "Platform",
                },
            })),
        )
        .await;
        assert_eq!(status, 201, "{backend:?} {user}");
        let id = user["id"].as_str().unwrap().to_owned();
        assert_eq!(users(&server)[0]["name"], "carol.king-contoso.example");

        // externalId lookups (caseExact) and a value-path filter.
        let (_, _, body) = scim(
            &server,
            &entra,
            "GET",
            "/Users?filter=externalId%20eq%20%22carol%22",
            None,
        )
        .await;
        assert_eq!(body["totalResults"], 1);
        let (_, _, body) = scim(
            &server,
            &entra,
            "GET",
            "/Users?filter=externalId%20eq%20%22CAROL%22",
            None,
        )
        .await;
        assert_eq!(body["totalResults"], 0);
        let q = "/Users?filter=emails%5Btype%20eq%20%22work%22%20and%20value%20ew%20%22%40CONTOSO.example%22%5D";
        let (_, _, body) = scim(&server, &entra, "GET", q, None).await;
        assert_eq!(body["totalResults"], 1);

        // Entra's PATCH: PascalCase ops, value paths, dotted keys without a path, text booleans.
        let (status, _, body) = scim(
            &server,
            &entra,
            "PATCH",
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "carol@contoso.example" },
                    { "op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100" },
                    { "op": "Replace", "value": { "name.familyName": "Queen", "displayName": "Carol Queen" } },
                    { "op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Security" },
                ],
            })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["emails"],
            json!([{ "primary": true, "type": "work", "value": "carol@contoso.example" }])
        );
        assert_eq!(
            body["phoneNumbers"],
            json!([{ "type": "mobile", "value": "+1 555 0100" }])
        );
        assert_eq!(body["name"]["familyName"], "Queen");
        assert_eq!(
            body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "Security"
        );
        assert_eq!(users(&server)[0]["displayName"], "Carol Queen");
        assert_eq!(users(&server)[0]["email"], "carol@contoso.example");

        // Groups: Entra filters by displayName with excludedAttributes=members, then patches.
        let (_, _, group) = scim(
            &server,
            &entra,
            "POST",
            "/Groups",
            Some(json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "SRE", "externalId": "g-1", "members": [] })),
        )
        .await;
        let gid = group["id"].as_str().unwrap().to_owned();
        let (_, _, body) = scim(
            &server,
            &entra,
            "GET",
            "/Groups?excludedAttributes=members&filter=displayName+eq+%22sre%22",
            None,
        )
        .await;
        assert_eq!(body["totalResults"], 1);
        assert!(body["Resources"][0].get("members").is_none(), "{body}");
        let patch = |op: &str| {
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": op, "path": "members", "value": [{ "value": id }] }],
            })
        };
        let (status, _, _) = scim(
            &server,
            &entra,
            "PATCH",
            &format!("/Groups/{gid}"),
            Some(patch("Add")),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            members(&server, "sre"),
            json!(["carol.king-contoso.example"])
        );
        let q = format!("/Groups?filter=members%5Bvalue%20eq%20%22{id}%22%5D");
        let (_, _, body) = scim(&server, &entra, "GET", &q, None).await;
        assert_eq!(body["totalResults"], 1);
        let (status, _, _) = scim(
            &server,
            &entra,
            "PATCH",
            &format!("/Groups/{gid}"),
            Some(patch("Remove")),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(members(&server, "sre"), json!([]));

        // Entra deactivates with a path and a text boolean.
        let (status, _, body) = scim(
            &server,
            &entra,
            "PATCH",
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "Replace", "path": "active", "value": "False" }],
            })),
        )
        .await;
        assert_eq!((status, body["active"].clone()), (200, json!(false)));
        assert_eq!(users(&server)[0]["disabled"], true);
    }
}

#[tokio::test]
async fn lists_page_and_filter() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, CONFIG).await;
        let token = server.token("idp", "scim", None);
        let mut ids = Vec::new();
        for i in 0..25 {
            let mut user = okta_user(
                &format!("user{i:02}@example.com"),
                &format!("U{i:02}"),
                "Test",
            );
            if i % 5 == 0 {
                user["emails"] =
                    json!([{ "value": format!("user{i:02}@home.example"), "type": "home" }]);
            }
            let (status, _, body) = scim(&server, &token, "POST", "/Users", Some(user)).await;
            assert_eq!(status, 201, "{body}");
            ids.push(body["id"].as_str().unwrap().to_owned());
        }
        let (_, _, body) = scim(
            &server,
            &token,
            "GET",
            "/Users?startIndex=11&count=10",
            None,
        )
        .await;
        assert_eq!(body["totalResults"], 25);
        assert_eq!(body["startIndex"], 11);
        assert_eq!(body["itemsPerPage"], 10);
        assert_eq!(body["Resources"][0]["id"], ids[10].as_str());
        let (_, _, body) = scim(&server, &token, "GET", "/Users?startIndex=30", None).await;
        assert_eq!(
            (body["totalResults"].clone(), body["itemsPerPage"].clone()),
            (json!(25), json!(0))
        );
        let (_, _, body) = scim(&server, &token, "GET", "/Users?count=0", None).await;
        assert_eq!(
            (body["totalResults"].clone(), body["Resources"].clone()),
            (json!(25), json!([]))
        );

        let count = async |filter: &str| -> Value {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("filter", filter)
                .finish();
            let (status, _, body) =
                scim(&server, &token, "GET", &format!("/Users?{q}"), None).await;
            assert_eq!(status, 200, "{filter}: {body}");
            body["totalResults"].clone()
        };
        assert_eq!(count(r#"userName sw "user1""#).await, 10);
        assert_eq!(count(r#"userName ew "9@EXAMPLE.COM""#).await, 2);
        assert_eq!(count(r#"userName co "r2""#).await, 5);
        assert_eq!(
            count(r#"userName gt "user20" and userName le "user23@example.com""#).await,
            4
        );
        assert_eq!(count(r#"emails[type eq "home"]"#).await, 5);
        assert_eq!(count(r#"emails.type eq "work""#).await, 20);
        assert_eq!(
            count(r#"emails co "home.example" or name.givenName eq "u01""#).await,
            6
        );
        assert_eq!(
            count(r#"not (emails[type eq "home"]) and name.familyName eq "test""#).await,
            20
        );
        assert_eq!(
            count(r#"externalId pr and not (externalId eq "00uu03")"#).await,
            24
        );
        assert_eq!(count(r#"displayName ne "U00 Test""#).await, 24);
        assert_eq!(
            count(r#"meta.lastModified gt "2020-01-01T00:00:00Z" and active eq true"#).await,
            25
        );
        assert_eq!(count(&format!(r#"id eq "{}""#, ids[3])).await, 1);
        let (_, _, body) = scim(
            &server,
            &token,
            "GET",
            "/Users?count=2&attributes=userName",
            None,
        )
        .await;
        let first = body["Resources"][0].as_object().unwrap();
        let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["id", "meta", "schemas", "userName"]);
        // POST .search takes the same parameters.
        let (status, _, body) = scim(
            &server,
            &token,
            "POST",
            "/Users/.search",
            Some(json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName sw \"user2\"", "count": 2 })),
        )
        .await;
        assert_eq!(
            (
                status,
                body["totalResults"].clone(),
                body["itemsPerPage"].clone()
            ),
            (200, json!(5), json!(2))
        );
    }
}

#[tokio::test]
async fn bad_requests_get_scim_errors_and_change_nothing() {
    for backend in Backend::ALL {
        let server = TestServer::start(bin(), backend, CONFIG).await;
        let token = server.token("idp", "scim", None);
        let member = server.token("someone", "member", None);
        let (_, _, alice) = scim(
            &server,
            &token,
            "POST",
            "/Users",
            Some(okta_user("alice@example.com", "Alice", "Smith")),
        )
        .await;
        let id = alice["id"].as_str().unwrap().to_owned();
        let before = (users(&server), groups(&server));
        let path = format!("/Users/{id}");

        let error = |status: u16, scim_type: Option<&str>, detail: &str| {
            let mut e = json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": status.to_string(),
                "detail": detail,
            });
            if let Some(t) = scim_type {
                e["scimType"] = t.into();
            }
            (status, e)
        };
        let send = async |token: Option<&str>,
                          method: &str,
                          path: &str,
                          body: Option<&str>,
                          headers: &[(&str, &str)]| {
            let (status, _, body) = server
                .request(method, &format!("/scim/v2{path}"), token, body, headers)
                .await;
            (status, body)
        };

        let cases: Vec<((u16, Value), (u16, Value))> = vec![
            (
                send(None, "GET", "/Users", None, &[]).await,
                error(401, None, "authentication required: send a SCIM token as `Authorization: Bearer <token>`"),
            ),
            (
                send(Some("wdn_nonsense"), "GET", "/Users", None, &[]).await,
                error(401, None, "authentication required: send a SCIM token as `Authorization: Bearer <token>`"),
            ),
            (
                send(Some(&member), "GET", "/Users", None, &[]).await,
                error(403, None, "permission denied: only a token with the scim role may use /scim/v2"),
            ),
            (
                send(Some(&token), "POST", "/Users", Some("{\"userName\": "), &[]).await,
                error(400, Some("invalidSyntax"), "the body is not valid JSON: it ends early at line 1 column 13"),
            ),
            (
                send(Some(&token), "POST", "/Users", Some("{\"userName\": \"x\",}"), &[]).await,
                error(400, Some("invalidSyntax"), "the body is not valid JSON: syntax error at line 1 column 18"),
            ),
            (
                send(Some(&token), "POST", "/Users", Some("{\"userName\": \"x\"}"), &[("content-type", "text/plain")]).await,
                error(415, None, "send the body as application/scim+json or application/json"),
            ),
            (
                send(Some(&token), "POST", "/Users", Some(&json!({"userName": "x@y.z", "shoeSize": 44}).to_string()), &[]).await,
                error(400, Some("invalidSyntax"), "unknown attribute `shoeSize`"),
            ),
            (
                send(Some(&token), "POST", "/Users", Some(&json!({"userName": "!!!"}).to_string()), &[]).await,
                error(400, Some("invalidValue"), "userName `!!!` gives no usable Warden user name: use letters or digits"),
            ),
            (
                send(Some(&token), "POST", "/Users", Some(&json!({"displayName": "No Name"}).to_string()), &[]).await,
                error(400, Some("invalidValue"), "attribute `userName` is required"),
            ),
            (
                send(Some(&token), "GET", "/Users?filter=userName%20eq", None, &[]).await,
                error(400, Some("invalidFilter"), "`userName eq` needs a value"),
            ),
            (
                send(Some(&token), "GET", "/Users?filter=title%20eq%20%22CTO%22", None, &[]).await,
                error(400, Some("invalidFilter"), "filtering on `title` is not supported"),
            ),
            (
                send(Some(&token), "GET", "/Users?filter=active%20gt%20true", None, &[]).await,
                error(400, Some("invalidFilter"), "`active` takes only eq and ne"),
            ),
            (
                send(Some(&token), "GET", "/Users?count=ten", None, &[]).await,
                error(400, Some("invalidValue"), "`count` must be a whole number, not `ten`"),
            ),
            (
                send(Some(&token), "PATCH", "/Users/0199-missing", Some(&json!({"Operations": [{"op": "replace", "path": "title", "value": "x"}]}).to_string()), &[]).await,
                error(404, None, "user `0199-missing` not found"),
            ),
            (
                send(Some(&token), "PATCH", &path, Some(&json!({"Operations": [{"op": "replace", "path": "shoeSize", "value": 44}]}).to_string()), &[]).await,
                error(400, Some("invalidPath"), "invalid path `shoeSize`: no such attribute"),
            ),
            (
                send(Some(&token), "PATCH", &path, Some(&json!({"Operations": [{"op": "remove", "path": "userName"}]}).to_string()), &[]).await,
                error(400, Some("invalidValue"), "attribute `userName` is required"),
            ),
            (
                send(Some(&token), "PUT", &path, Some(&json!({"userName": "alice@example.com"}).to_string()), &[("if-match", "\"7\"")]).await,
                error(412, None, &format!("user `{id}` has changed (version 1, not 7): read it again")),
            ),
            (
                send(Some(&token), "POST", "/Groups", Some(&json!({"displayName": "Ops", "members": [{"value": "nobody"}]}).to_string()), &[]).await,
                error(400, Some("invalidValue"), "member `nobody` is not a provisioned user"),
            ),
            (
                send(Some(&token), "POST", "/Groups", Some(&json!({"displayName": "Ops", "members": [{"value": id, "type": "Group"}]}).to_string()), &[]).await,
                error(400, Some("invalidValue"), "nested groups are not supported: members must be users"),
            ),
            (
                send(Some(&token), "GET", "/Widgets", None, &[]).await,
                error(404, None, "no such SCIM endpoint: use /Users, /Groups, /Schemas, /ResourceTypes or /ServiceProviderConfig"),
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, want, "{backend:?} case {i}");
        }
        assert_eq!((users(&server), groups(&server)), before, "nothing changed");
        let (_, _, now) = scim(&server, &token, "GET", &path, None).await;
        assert_eq!(now["meta"]["version"], "W/\"1\"");
        // Refusals are audited: failed writes as failures, bad credentials as denials.
        let failed: Vec<Value> = server
            .audit("user.update")
            .into_iter()
            .filter(|e| e["outcome"] == "failure")
            .collect();
        assert_eq!(failed.len(), 4, "{failed:?}");
        assert_eq!(server.audit("auth.token").len(), 2);
        assert_eq!(
            server.audit("api.access")[0]["reason"],
            "only a token with the scim role may use /scim/v2"
        );
    }
}

#[tokio::test]
async fn a_scim_deactivation_cuts_a_live_ssh_session() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The operator lets the identity provider take over the lab's `ops` group.
    let options = warden_testkit::LabOptions {
        top: "[scim]\nadopt_groups = [\"ops\"]\n",
        ..warden_testkit::LabOptions::default()
    };
    let lab = SshLab::start_opts(bin(), d, &options).await;
    let server = &lab.server;
    let okta = server.token("okta", "scim", None);
    // dave is provisioned, and pushed into the lab's `ops` group (adopted from Warden).
    let (_, _, dave) = scim(
        server,
        &okta,
        "POST",
        "/Users",
        Some(okta_user("dave@example.com", "Dave", "Lee")),
    )
    .await;
    let id = dave["id"].as_str().unwrap().to_owned();
    let (status, _, group) = scim(
        server,
        &okta,
        "POST",
        "/Groups",
        Some(json!({ "displayName": "Ops", "members": [{ "value": id }] })),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    assert_eq!(server.audit("group.create")[1]["details"]["adopted"], true);
    assert_eq!(
        members(server, "ops"),
        json!(["dave-example.com"]),
        "the IdP's list is the membership"
    );

    // dave's own key and Warden certificate, in a directory of his own.
    let dd = d.join("dave");
    std::fs::create_dir_all(&dd).unwrap();
    std::fs::copy(d.join("known_hosts"), dd.join("known_hosts")).unwrap();
    let public = ssh_keygen_ed25519(&dd.join("id_ed25519"));
    let cli = server.token("dave-cli", "member", Some("dave-example.com"));
    let q = "mutation($k: String!) { issueSshUserCertificate(publicKey: $k, ttl: \"1h\", principals: [\"root\"]) { certificate } }";
    let (_, body) = server.graphql(Some(&cli), q, json!({ "k": public })).await;
    let cert = body
        .pointer("/data/issueSshUserCertificate/certificate")
        .and_then(Value::as_str)
        .unwrap();
    std::fs::write(dd.join("id_ed25519-cert.pub"), cert).unwrap();

    let session = through_proxy("ssh", server, &dd)
        .args(["-l", "root", "db-1", "sleep 60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if !server.audit("ssh.session.start").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        server.audit("ssh.session.start")[0]["actor"],
        "user:dave-example.com"
    );
    // Let the proxy finish taking the session in (its shell channel open), as a person would.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let started = std::time::Instant::now();
    let (status, _, _) = scim(
        server,
        &okta,
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({ "Operations": [{ "op": "Replace", "path": "active", "value": false }] })),
    )
    .await;
    assert_eq!(status, 200);
    let out = session.wait_with_output().unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warden: access ended: user `dave-example.com` is unknown or disabled"),
        "{stderr}"
    );
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    println!("a SCIM deactivation ended the live session {took:?} after the PATCH was sent");
    let disabled = &server.audit("user.disable")[0]["details"];
    assert_eq!(
        disabled["ssh_certificates_revoked"], 2,
        "his own and the session's: {disabled}"
    );
    let mut end = Vec::new();
    for _ in 0..100 {
        end = server.audit("ssh.session.end");
        if !end.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        end[0]["details"]["reason"], "access ended: user `dave-example.com` is unknown or disabled",
        "{end:?}"
    );
    // The evidence: when he was disabled, by whom, and how long until nothing was left open.
    let data = server.data_dir.to_str().unwrap();
    let out = warden_testkit::run_cli(bin(), &["audit", "--data-dir", data, "leavers", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let leavers: Value = serde_json::from_slice(&out.stdout).unwrap();
    let leaver = &leavers[0];
    assert_eq!(leaver["user"], "dave-example.com", "{leavers}");
    assert_eq!(leaver["disabledBy"], "token:okta");
    assert_eq!(
        (
            leaver["sessionsOpenThen"].clone(),
            leaver["sessionsStillOpen"].clone()
        ),
        (json!(1), json!(0))
    );
    let ms = leaver["deprovisionedInMs"].as_i64().unwrap();
    assert!((0..5000).contains(&ms), "{leaver}");
    println!("time to deprovision recorded as evidence: {ms} ms");
}
