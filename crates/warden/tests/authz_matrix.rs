//! The authorization matrix: every GraphQL operation (each field of `Query` and `Mutation` in
//! the live schema) sent by every kind of caller, and the answer checked against what the
//! starter policy and the token role ceilings allow. An operation in the schema without a row
//! in [`QUERIES`] or [`MUTATIONS`] fails the test, so a new one cannot ship unchecked.
//!
//! Each operation is built from introspection with placeholder arguments (`"x"`, `1`, an
//! enum's first value) naming nothing that exists, so callers who may use it mostly get
//! `NOT_FOUND` or `BAD_USER_INPUT`: only "not FORBIDDEN" is asserted for them. Callers who may
//! not get FORBIDDEN naming the Cedar action the row expects, which pins the capability each
//! resolver asks for. One server, SQLite: authorization does not depend on the backend.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test; they read introspection JSON by key"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use warden_testkit::{Backend, TestServer};

/// What an operation asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Any authenticated caller (`Capability::Viewer`).
    Any,
    /// Any authenticated caller, acting for itself: what it does or shows depends on who
    /// calls (their own requests, certificates, review items, hosts). The checks past the
    /// gate (the `approve` and `ssh` actions, the assigned reviewer) are the feature tests'.
    Own,
    /// The Cedar action on a part of the API (`Capability::cedar`).
    Cap(&'static str),
    /// The Cedar action, and then the admin socket only: a token with the right is refused
    /// for not being the operator (break-glass credentials).
    Socket(&'static str),
}

use Access::{Any, Cap, Own, Socket};

/// Every field of `Query`, with what it needs.
const QUERIES: &[(&str, Access)] = &[
    ("viewer", Any),
    ("user", Cap("read_directory")),
    ("users", Cap("read_directory")),
    ("group", Cap("read_directory")),
    ("groups", Cap("read_directory")),
    // `Capability::ReadTokens` is `read_directory` on `Warden::Api::"tokens"`.
    ("tokens", Cap("read_directory")),
    ("auditEvents", Cap("read_audit")),
    ("auditCheckpoint", Cap("read_audit")),
    ("complianceControls", Cap("read_audit")),
    ("complianceTest", Cap("read_audit")),
    ("breakGlassCredentials", Cap("read_audit")),
    ("breakGlassUses", Cap("read_audit")),
    ("auditInclusionProof", Cap("read_audit")),
    ("auditConsistencyProof", Cap("read_audit")),
    ("hosts", Cap("read_directory")),
    ("sessions", Cap("read_directory")),
    ("policy", Cap("read_policy")),
    ("policyHistory", Cap("read_policy")),
    ("explainPolicy", Cap("read_policy")),
    ("sshSessions", Cap("read_audit")),
    ("sshSession", Cap("read_audit")),
    ("sshSessionSearch", Cap("read_audit")),
    ("sshRecording", Cap("read_audit")),
    ("accessRequests", Own),
    ("accessRequest", Own),
    ("leavers", Cap("read_audit")),
    ("grants", Cap("read_directory")),
    ("accessReviews", Own),
    ("accessReview", Own),
    ("vulnFindings", Cap("read_vulns")),
    ("vulnFinding", Cap("read_vulns")),
    ("vulnAssets", Cap("read_vulns")),
    ("vulnStats", Cap("read_vulns")),
    ("vulnBurndown", Cap("read_vulns")),
    ("vulnFigures", Cap("read_vulns")),
    ("vulnGate", Cap("read_vulns")),
    ("vulnSlaPolicy", Cap("read_vulns")),
    ("meshNodes", Cap("read_directory")),
    ("reachableHosts", Own),
    ("requestableGroups", Own),
];

/// Every field of `Mutation`, with what it needs.
const MUTATIONS: &[(&str, Access)] = &[
    ("createUser", Cap("manage_users")),
    ("disableUser", Cap("manage_users")),
    ("enableUser", Cap("manage_users")),
    ("createEnrollmentLink", Cap("manage_users")),
    ("createGroup", Cap("manage_groups")),
    ("addGroupMember", Cap("manage_groups")),
    ("setGroupOwner", Cap("manage_groups")),
    ("removeGroupMember", Cap("manage_groups")),
    ("createToken", Cap("manage_tokens")),
    ("revokeToken", Cap("manage_tokens")),
    ("createBreakGlass", Socket("manage_cas")),
    ("revokeBreakGlass", Cap("manage_cas")),
    ("closeBreakGlassReview", Cap("review")),
    ("issueSshUserCertificate", Own),
    // `Capability::RevokeCertificates` is `manage_cas` on `Warden::Api::"certificates"`.
    ("revokeSshKeyId", Cap("manage_cas")),
    ("revokeSshCertificate", Cap("manage_cas")),
    ("issueX509Certificate", Cap("issue_certificates")),
    ("rotateCertificateAuthority", Cap("manage_cas")),
    ("removeHost", Cap("manage_hosts")),
    ("createJoinToken", Cap("manage_hosts")),
    ("endSession", Cap("manage_users")),
    ("resetPasskeys", Cap("manage_users")),
    ("applyPolicy", Cap("manage_policy")),
    ("endSshSession", Cap("manage_hosts")),
    ("requestAccess", Own),
    ("approveAccessRequest", Own),
    ("denyAccessRequest", Own),
    ("createAccessReview", Cap("review")),
    ("decideReviewItems", Own),
    ("closeAccessReview", Cap("review")),
    ("importScan", Cap("import_vulns")),
    ("rateFinding", Cap("manage_vulns")),
    ("acceptFindingRisk", Cap("manage_vulns")),
    ("markFindingFalsePositive", Cap("manage_vulns")),
    ("reopenFinding", Cap("manage_vulns")),
    ("setAssetTier", Cap("manage_vulns")),
    ("reportVulnerability", Cap("import_vulns")),
    ("removeMeshNode", Cap("manage_hosts")),
];

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

/// Rate limits off: each caller sends one request per operation.
const CONFIG: &str = "[limits]\nper_source_rps = 0\nper_token_rps = 0\n";

#[tokio::test]
async fn every_operation_answers_every_caller_as_the_starter_policy_says() {
    let started = Instant::now();
    let server = TestServer::start(bin(), Backend::Sqlite, CONFIG).await;
    let callers = callers(&server);
    let admin = bearer_of(&callers, "admin token, service");
    let schema = introspect(&server, &admin).await;

    let mut problems = Vec::new();
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    for (root, keyword, table) in [
        ("Query", "query", QUERIES),
        ("Mutation", "mutation", MUTATIONS),
    ] {
        let fields = schema.root_fields(root);
        let rows: BTreeMap<&str, Access> = table.iter().copied().collect();
        assert_eq!(rows.len(), table.len(), "a {root} row is given twice");
        for name in rows.keys().filter(|n| !fields.contains_key(**n)) {
            problems.push(format!(
                "`{root}.{name}` is in the authorization matrix but not in the schema: remove its row"
            ));
        }
        for (name, field) in &fields {
            let Some(&access) = rows.get(name.as_str()) else {
                problems.push(format!(
                    "`{root}.{name}` is in the schema but not in the authorization matrix: add it to the authorization matrix with the access it needs"
                ));
                continue;
            };
            let (query, variables) = schema.operation(keyword, field);
            for caller in &callers {
                let (status, body) = send(&server, &caller.via, &query, variables.clone()).await;
                let want = expected(&caller.expect, access);
                match observe(status, &body, access) {
                    Ok(got) if got == want => *tally.entry(got.label()).or_default() += 1,
                    Ok(got) => problems.push(format!(
                        "`{root}.{name}` as {}: expected {want:?}, got {got:?}: {body}",
                        caller.name
                    )),
                    Err(why) => problems.push(format!(
                        "`{root}.{name}` as {}: {why}: {query} {variables} -> {status} {body}",
                        caller.name
                    )),
                }
            }
        }
    }
    let checked: usize = tally.values().sum();
    eprintln!(
        "authorization matrix: {} operations × {} callers, {checked} pairs as expected ({tally:?}) in {:.1?}",
        QUERIES.len() + MUTATIONS.len(),
        callers.len(),
        started.elapsed()
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(tally.len(), 5, "every outcome occurs somewhere: {tally:?}");
}

// What each caller may do, derived by hand from the starter policy
// (crates/warden-policy/starter/admins.cedar) and the role ceilings (`Role::permits`): a
// token's role is a ceiling asked before the policy, so the effective rights are what the
// policy grants the principal (by group or by role) cut down to what the role permits.
//
// caller                    groups    role     policy grants          ceiling              effective
// member token, carol       -         member   nothing                ssh connect approve  nothing
// member token, alice       admins    member   ADMIN_ACTIONS          ssh connect approve  approve
// member token, erin        auditors  member   AUDITOR_ACTIONS        ssh connect approve  nothing
// member token, service     -         member   nothing                ssh connect approve  nothing
// auditor token, service    -         auditor  AUDITOR_ACTIONS        AUDITOR_ACTIONS      AUDITOR_ACTIONS
// auditor token, dave       admins    auditor  ADMIN_ACTIONS          AUDITOR_ACTIONS      AUDITOR_ACTIONS
// admin token, service      -         admin    ADMIN_ACTIONS          everything           ADMIN_ACTIONS
// admin token, bob          -         admin    ADMIN_ACTIONS          everything           ADMIN_ACTIONS
// operator (admin socket)   never asked                                                    everything
//
// `approve` is no API capability (it decides access requests, an `Own` row here), so every
// member token has no API right at all: a member token acting for an admin is not an admin.
// Every bearer caller holds a token with a role, and the starter policy grants each role all
// its ceiling allows, so every FORBIDDEN here comes from a ceiling, none from the policy.
// No token, a malformed one, a wrong secret or a revoked token: 401. A scim token, for a
// person or not: 403 for any /graphql use.

/// Every kind of caller, with the people, groups and tokens it needs.
fn callers(server: &TestServer) -> Vec<Caller> {
    for group in ["admins", "auditors"] {
        server.admin_ok(&["group", "add", group]);
    }
    for user in ["alice", "bob", "carol", "dave", "erin"] {
        server.admin_ok(&["user", "add", user]);
    }
    for (group, user) in [
        ("admins", "alice"),
        ("admins", "dave"),
        ("auditors", "erin"),
    ] {
        server.admin_ok(&["group", "add-member", group, user]);
    }
    let token = |name: &str, role: &str, user: Option<&str>| {
        Via::Bearer(Some(server.token(name, role, user)))
    };
    let auditor = server.token("matrix-auditor", "auditor", None);
    let wrong_secret = format!("{}x", &auditor[..auditor.len() - 1]);
    let revoked = server.token("matrix-revoked", "admin", None);
    server.admin_ok(&["token", "revoke", "matrix-revoked"]);
    let runs = |groups: &[&str], role: &str| Expect::Runs(effective(groups, role));
    vec![
        Caller {
            name: "anonymous",
            via: Via::Bearer(None),
            expect: Expect::Unauthenticated,
        },
        Caller {
            name: "a malformed token",
            via: Via::Bearer(Some("nonsense".to_owned())),
            expect: Expect::Unauthenticated,
        },
        Caller {
            name: "a token with a wrong secret",
            via: Via::Bearer(Some(wrong_secret)),
            expect: Expect::Unauthenticated,
        },
        Caller {
            name: "a revoked admin token",
            via: Via::Bearer(Some(revoked)),
            expect: Expect::Unauthenticated,
        },
        Caller {
            name: "scim token, service",
            via: token("matrix-scim", "scim", None),
            expect: Expect::ScimOnly,
        },
        Caller {
            name: "scim token, alice (admins)",
            via: token("matrix-scim-alice", "scim", Some("alice")),
            expect: Expect::ScimOnly,
        },
        Caller {
            name: "member token, carol (no group)",
            via: token("matrix-carol", "member", Some("carol")),
            expect: runs(&[], "member"),
        },
        Caller {
            name: "member token, alice (admins)",
            via: token("matrix-alice", "member", Some("alice")),
            expect: runs(&["admins"], "member"),
        },
        Caller {
            name: "member token, erin (auditors)",
            via: token("matrix-erin", "member", Some("erin")),
            expect: runs(&["auditors"], "member"),
        },
        Caller {
            name: "member token, service",
            via: token("matrix-member", "member", None),
            expect: runs(&[], "member"),
        },
        Caller {
            name: "auditor token, service",
            via: Via::Bearer(Some(auditor)),
            expect: runs(&[], "auditor"),
        },
        Caller {
            name: "auditor token, dave (admins)",
            via: token("matrix-dave", "auditor", Some("dave")),
            expect: runs(&["admins"], "auditor"),
        },
        Caller {
            name: "admin token, service",
            via: token("matrix-admin", "admin", None),
            expect: runs(&[], "admin"),
        },
        Caller {
            name: "admin token, bob (no group)",
            via: token("matrix-bob", "admin", Some("bob")),
            expect: runs(&[], "admin"),
        },
        Caller {
            name: "operator (admin socket)",
            via: Via::AdminSocket,
            expect: Expect::Runs(Rights::All),
        },
    ]
}

fn bearer_of(callers: &[Caller], name: &str) -> String {
    callers
        .iter()
        .find_map(|c| match (&c.via, c.name == name) {
            (Via::Bearer(Some(token)), true) => Some(token.clone()),
            _ => None,
        })
        .unwrap()
}

/// `admins-manage-warden`: members of `admins`, and tokens with the admin role.
const ADMIN_ACTIONS: [&str; 15] = [
    "read_directory",
    "manage_users",
    "manage_groups",
    "manage_tokens",
    "read_audit",
    "manage_hosts",
    "manage_cas",
    "issue_certificates",
    "read_policy",
    "manage_policy",
    "approve",
    "review",
    "read_vulns",
    "manage_vulns",
    "import_vulns",
];

/// `auditors-read`: members of `auditors`, and tokens with the auditor role.
const AUDITOR_ACTIONS: [&str; 4] = ["read_directory", "read_audit", "read_policy", "read_vulns"];

/// What a member token's role permits at most.
const MEMBER_CEILING: [&str; 3] = ["ssh", "connect", "approve"];

/// What the starter policy grants a principal in `groups` acting through a `role` token.
fn starter_grants(groups: &[&str], role: &str) -> BTreeSet<&'static str> {
    let mut granted = BTreeSet::new();
    if groups.contains(&"admins") || role == "admin" {
        granted.extend(ADMIN_ACTIONS);
    }
    if groups.contains(&"auditors") || role == "auditor" {
        granted.extend(AUDITOR_ACTIONS);
    }
    granted
}

/// Whether a `role` token may ever be allowed `action`, whatever the policy says.
fn ceiling_permits(role: &str, action: &str) -> bool {
    match role {
        "admin" => true,
        "auditor" => AUDITOR_ACTIONS.contains(&action),
        "member" => MEMBER_CEILING.contains(&action),
        _ => false,
    }
}

/// What a token of `role` for a principal in `groups` may do.
fn effective(groups: &[&str], role: &str) -> Rights {
    let granted = starter_grants(groups, role)
        .into_iter()
        .filter(|a| ceiling_permits(role, a))
        .collect();
    Rights::Only(granted)
}

/// The Cedar actions a caller is allowed.
#[derive(Debug, Clone)]
enum Rights {
    /// The operator: never asked.
    All,
    /// Exactly these.
    Only(BTreeSet<&'static str>),
}

/// How a caller reaches `/graphql`.
#[derive(Debug, Clone)]
enum Via {
    /// `Authorization: Bearer` with this token, or none.
    Bearer(Option<String>),
    /// The admin socket: the operator.
    AdminSocket,
}

/// Who calls, and what they should get.
#[derive(Debug, Clone)]
struct Caller {
    name: &'static str,
    via: Via,
    expect: Expect,
}

/// What a caller should get for every operation.
#[derive(Debug, Clone)]
enum Expect {
    /// 401 for every operation.
    Unauthenticated,
    /// 403 for every operation: a scim token may only use /scim/v2.
    ScimOnly,
    /// The operation runs; FORBIDDEN exactly when the rights lack its capability.
    Runs(Rights),
}

/// What a caller got for one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// 401.
    Unauthenticated,
    /// 403, a scim token refused.
    ScimRefused,
    /// 200 with a FORBIDDEN error naming the action.
    Forbidden(&'static str),
    /// 200 and no FORBIDDEN error (other errors from placeholder arguments are fine).
    NotForbidden,
    /// 200 with a FORBIDDEN error: the right is there, but only the admin socket may.
    SocketOnly,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Unauthenticated => "401",
            Outcome::ScimRefused => "403",
            Outcome::Forbidden(_) => "FORBIDDEN",
            Outcome::NotForbidden => "ran",
            Outcome::SocketOnly => "socket only",
        }
    }
}

/// What `expect` says a caller gets for an operation needing `access`.
fn expected(expect: &Expect, access: Access) -> Outcome {
    match (expect, access) {
        (Expect::Unauthenticated, _) => Outcome::Unauthenticated,
        (Expect::ScimOnly, _) => Outcome::ScimRefused,
        (Expect::Runs(_), Any | Own) | (Expect::Runs(Rights::All), Cap(_) | Socket(_)) => {
            Outcome::NotForbidden
        }
        (Expect::Runs(Rights::Only(rights)), Cap(action)) if rights.contains(&action) => {
            Outcome::NotForbidden
        }
        (Expect::Runs(Rights::Only(rights)), Socket(action)) if rights.contains(&action) => {
            Outcome::SocketOnly
        }
        (Expect::Runs(Rights::Only(_)), Cap(action) | Socket(action)) => Outcome::Forbidden(action),
    }
}

/// What an answer is, for an operation needing `access`; `Err` when it is none of the
/// outcomes (a refusal not naming the action, an operation that did not run).
fn observe(status: u16, body: &Value, access: Access) -> Result<Outcome, String> {
    let message = |e: &Value| e["message"].as_str().unwrap_or_default().to_owned();
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    match status {
        401 => return Ok(Outcome::Unauthenticated),
        403 => {
            let first = errors.first().map(message).unwrap_or_default();
            return match first.as_str() {
                "permission denied: a scim token may only use /scim/v2" => Ok(Outcome::ScimRefused),
                _ => Err(format!("403 with an unexpected message `{first}`")),
            };
        }
        200 => {}
        other => return Err(format!("unexpected status {other}")),
    }
    if let Some(unrun) = errors.iter().find(|e| e.get("path").is_none()) {
        return Err(format!(
            "the operation did not run (a placeholder the schema refused?): {}",
            message(unrun)
        ));
    }
    let Some(refusal) = errors
        .iter()
        .find(|e| e["extensions"]["code"] == "FORBIDDEN")
    else {
        return Ok(Outcome::NotForbidden);
    };
    let text = message(refusal);
    if !text.starts_with("permission denied: ") {
        return Err(format!("FORBIDDEN without `permission denied: `: `{text}`"));
    }
    match access {
        Cap(action) | Socket(action) if text.contains(&format!("`{action}`")) => {
            Ok(Outcome::Forbidden(action))
        }
        Socket(_) if text.ends_with("made on the admin socket only") => Ok(Outcome::SocketOnly),
        Cap(action) | Socket(action) => Err(format!("FORBIDDEN not naming `{action}`: `{text}`")),
        Any | Own => Err(format!("FORBIDDEN for a self-service operation: `{text}`")),
    }
}

/// Sends one operation as a caller.
async fn send(server: &TestServer, via: &Via, query: &str, variables: Value) -> (u16, Value) {
    match via {
        Via::Bearer(token) => server.graphql(token.as_deref(), query, variables).await,
        Via::AdminSocket => operator_graphql(server, query, variables).await,
    }
}

/// POSTs a GraphQL operation to the admin socket, where the caller is the operator.
async fn operator_graphql(server: &TestServer, query: &str, variables: Value) -> (u16, Value) {
    let socket = warden_server::admin_socket_path(&server.data_dir);
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let body = json!({ "query": query, "variables": variables }).to_string();
    let request = hyper::Request::post("/graphql")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// The live schema, as introspection shows it.
struct Schema {
    types: BTreeMap<String, Value>,
}

/// Reads a type reference three wrappers deep: enough for `[String!]!`.
const INTROSPECTION: &str = "{ __schema { queryType { name } mutationType { name } \
     types { name kind enumValues { name } \
       fields { name args { name defaultValue type { ...T } } type { ...T } } \
       inputFields { name defaultValue type { ...T } } } } } \
     fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

async fn introspect(server: &TestServer, token: &str) -> Schema {
    let (status, body) = server
        .graphql(Some(token), INTROSPECTION, Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    let schema = &body["data"]["__schema"];
    assert_eq!(schema["queryType"]["name"], "Query", "{body}");
    assert_eq!(schema["mutationType"]["name"], "Mutation", "{body}");
    let types = schema["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
        .collect();
    Schema { types }
}

impl Schema {
    /// The fields of `root`, by name.
    fn root_fields(&self, root: &str) -> BTreeMap<String, Value> {
        self.types[root]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_owned(), f.clone()))
            .collect()
    }

    /// The smallest operation calling `field`: its required arguments as variables with
    /// placeholder values, `__typename` selected on an object result.
    fn operation(&self, keyword: &str, field: &Value) -> (String, Value) {
        let name = field["name"].as_str().unwrap();
        let mut declared = Vec::new();
        let mut passed = Vec::new();
        let mut variables = Map::new();
        let args = field["args"].as_array().unwrap();
        for (i, arg) in args.iter().filter(|a| required(a)).enumerate() {
            let ty = &arg["type"];
            declared.push(format!("$a{i}: {}", type_string(ty)));
            passed.push(format!("{}: $a{i}", arg["name"].as_str().unwrap()));
            variables.insert(format!("a{i}"), self.placeholder(ty));
        }
        let list = |items: Vec<String>| {
            if items.is_empty() {
                String::new()
            } else {
                format!("({})", items.join(", "))
            }
        };
        let selection = match named(&field["type"])["kind"].as_str().unwrap() {
            "OBJECT" | "INTERFACE" | "UNION" => " { __typename }",
            _ => "",
        };
        (
            format!(
                "{keyword}{} {{ {name}{}{selection} }}",
                list(declared),
                list(passed)
            ),
            Value::Object(variables),
        )
    }

    /// A value of type `ty` that names nothing that exists.
    fn placeholder(&self, ty: &Value) -> Value {
        let name = ty["name"].as_str().unwrap_or_default();
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" => self.placeholder(&ty["ofType"]),
            "LIST" => json!([self.placeholder(&ty["ofType"])]),
            "ENUM" => self.types[name]["enumValues"][0]["name"].clone(),
            "INPUT_OBJECT" => Value::Object(
                self.types[name]["inputFields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| required(f))
                    .map(|f| {
                        let key = f["name"].as_str().unwrap().to_owned();
                        (key, self.placeholder(&f["type"]))
                    })
                    .collect(),
            ),
            _ => match name {
                "Int" => json!(1),
                "Float" => json!(1.0),
                "Boolean" => json!(false),
                _ => json!("x"),
            },
        }
    }
}

/// Whether an argument or input field must be given: non-null, with no default.
fn required(arg: &Value) -> bool {
    arg["type"]["kind"] == "NON_NULL" && arg["defaultValue"].is_null()
}

/// A type reference as GraphQL spells it: `[String!]!`.
fn type_string(ty: &Value) -> String {
    match ty["kind"].as_str().unwrap() {
        "NON_NULL" => format!("{}!", type_string(&ty["ofType"])),
        "LIST" => format!("[{}]", type_string(&ty["ofType"])),
        _ => ty["name"].as_str().unwrap().to_owned(),
    }
}

/// The named type inside a reference's wrappers.
fn named(ty: &Value) -> &Value {
    match ty["kind"].as_str().unwrap() {
        "NON_NULL" | "LIST" => named(&ty["ofType"]),
        _ => ty,
    }
}
