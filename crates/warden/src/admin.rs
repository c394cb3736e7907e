//! `warden admin`: operator commands over the admin socket.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use serde_json::{Value, json};

use crate::cli::{
    AdminArgs, AdminCommand, GroupCommand, HostCommand, JoinTokenCommand, SessionCommand,
    TokenCommand, UserCommand,
};
use crate::client::AdminClient;
use crate::output::{cell, json as print_json, table};

const USER_FIELDS: &str = "name displayName email disabled createdAt groups";
const GROUP_FIELDS: &str = "name description createdAt members";
const TOKEN_FIELDS: &str = "id name role user status createdBy createdAt expiresAt revokedAt";

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let client = AdminClient::new(&data_dir);
    let json = args.json;
    match args.command {
        AdminCommand::User { command } => user(&client, command, json).await,
        AdminCommand::Group { command } => group(&client, command, json).await,
        AdminCommand::Token { command } => token(&client, command, json).await,
        AdminCommand::JoinToken { command } => join_token(&client, command, json).await,
        AdminCommand::Host { command } => host(&client, command, json).await,
        AdminCommand::Session { command } => session(&client, command, json).await,
        AdminCommand::BreakGlass { command } => {
            crate::break_glass::admin(&client, command, json).await
        }
    }
}

async fn session(client: &AdminClient, command: SessionCommand, json: bool) -> anyhow::Result<()> {
    match command {
        SessionCommand::List { user } => {
            let data = client
                .graphql(
                    "query($u: String) { sessions(user: $u) { id user stage method createdAt lastSeenAt expiresAt } }",
                    json!({ "u": user }),
                )
                .await?;
            let sessions = field(&data, "sessions")?;
            if json {
                print_json(sessions);
            } else {
                let rows: Vec<Vec<String>> = sessions
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|s| {
                        ["id", "user", "stage", "method", "lastSeenAt", "expiresAt"]
                            .iter()
                            .map(|f| cell(s, f))
                            .collect()
                    })
                    .collect();
                table(
                    &["ID", "USER", "STAGE", "METHOD", "LAST SEEN", "EXPIRES"],
                    &rows,
                );
            }
        }
        SessionCommand::End { id } => {
            client
                .graphql(
                    "mutation($i: String!) { endSession(id: $i) }",
                    json!({ "i": id }),
                )
                .await?;
            eprintln!("ended session {id}");
        }
    }
    Ok(())
}

async fn host(client: &AdminClient, command: HostCommand, json: bool) -> anyhow::Result<()> {
    match command {
        HostCommand::List => {
            let data = client
                .graphql(
                    "{ hosts { name labels addresses sshdAddr joinedAt } }",
                    Value::Null,
                )
                .await?;
            let hosts = field(&data, "hosts")?;
            if json {
                print_json(hosts);
            } else {
                let rows: Vec<Vec<String>> = hosts
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|h| {
                        ["name", "labels", "addresses", "sshdAddr", "joinedAt"]
                            .iter()
                            .map(|f| cell(h, f))
                            .collect()
                    })
                    .collect();
                table(&["NAME", "LABELS", "ADDRESSES", "SSHD", "JOINED"], &rows);
            }
        }
        HostCommand::Remove { name } => {
            client
                .graphql(
                    "mutation($n: String!) { removeHost(name: $n) }",
                    json!({ "n": name }),
                )
                .await?;
            eprintln!("removed host {name}: its agent must join again with a new token");
        }
    }
    Ok(())
}

async fn join_token(
    client: &AdminClient,
    command: JoinTokenCommand,
    json: bool,
) -> anyhow::Result<()> {
    let JoinTokenCommand::Create {
        host,
        labels,
        addresses,
        ttl,
    } = command;
    let q = "mutation($host: String!, $labels: [String!]!, $addresses: [String!]!, $ttl: String) { \
             createJoinToken(host: $host, labels: $labels, addresses: $addresses, ttl: $ttl) { token host expiresAt } }";
    let vars = json!({
        "host": host,
        "labels": labels,
        "addresses": addresses,
        "ttl": format!("{}s", ttl.as_duration().as_secs()),
    });
    let data = client.graphql(q, vars).await?;
    let created = field(&data, "createJoinToken")?;
    if json {
        print_json(created);
    } else {
        outln!("{}", cell(created, "token"));
        eprintln!(
            "join token for host {} (expires {}); it works once: \
             warden agent --server URL --join-token TOKEN --data-dir DIR",
            cell(created, "host"),
            cell(created, "expiresAt"),
        );
    }
    Ok(())
}

/// `./.warden` when it exists (a `--dev` server started here), else the system location.
pub fn default_data_dir() -> PathBuf {
    let dev = Path::new(".warden");
    if dev.is_dir() {
        dev.to_path_buf()
    } else {
        PathBuf::from("/var/lib/warden")
    }
}

fn field<'a>(data: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    data.get(name)
        .ok_or_else(|| anyhow!("the server's answer has no `{name}`"))
}

/// Reads every page of a connection.
async fn all_pages(client: &AdminClient, root: &str, fields: &str) -> anyhow::Result<Vec<Value>> {
    let query = format!(
        "query($after: String) {{ {root}(first: 100, after: $after) {{ \
         pageInfo {{ hasNextPage endCursor }} nodes {{ {fields} }} }} }}"
    );
    let mut items = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = client.graphql(&query, json!({ "after": after })).await?;
        let conn = field(&data, root)?;
        if let Some(nodes) = conn.get("nodes").and_then(Value::as_array) {
            items.extend(nodes.iter().cloned());
        }
        let info = field(conn, "pageInfo")?;
        if info.get("hasNextPage") != Some(&Value::Bool(true)) {
            return Ok(items);
        }
        after = info.get("endCursor").cloned().unwrap_or(Value::Null);
    }
}

fn print_one(value: &Value, json: bool, message: String) {
    if json {
        print_json(value);
    } else {
        outln!("{message}");
    }
}

async fn user(client: &AdminClient, command: UserCommand, json: bool) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            display_name,
            email,
        } => {
            let q = format!(
                "mutation($input: CreateUserInput!) {{ createUser(input: $input) {{ {USER_FIELDS} }} }}"
            );
            let input = json!({ "name": name, "displayName": display_name, "email": email });
            let data = client.graphql(&q, json!({ "input": input })).await?;
            print_one(
                field(&data, "createUser")?,
                json,
                format!("added user {name}"),
            );
        }
        UserCommand::List => {
            let users = all_pages(client, "users", USER_FIELDS).await?;
            if json {
                print_json(&Value::Array(users));
            } else {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        let state = if u.get("disabled") == Some(&Value::Bool(true)) {
                            "disabled"
                        } else {
                            "active"
                        };
                        vec![
                            cell(u, "name"),
                            cell(u, "displayName"),
                            cell(u, "email"),
                            state.to_owned(),
                            cell(u, "groups"),
                            cell(u, "createdAt"),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "NAME",
                        "DISPLAY NAME",
                        "EMAIL",
                        "STATE",
                        "GROUPS",
                        "CREATED",
                    ],
                    &rows,
                );
            }
        }
        UserCommand::Disable { name } => set_disabled(client, &name, true, json).await?,
        UserCommand::Enable { name } => set_disabled(client, &name, false, json).await?,
        UserCommand::ResetPasskeys { name } => {
            let data = client
                .graphql(
                    "mutation($u: String!) { resetPasskeys(user: $u) }",
                    json!({ "u": name }),
                )
                .await?;
            eprintln!(
                "removed {} passkey(s) of {name} and ended their sessions; they must enroll again",
                field(&data, "resetPasskeys")?
            );
        }
        UserCommand::EnrollLink { name } => {
            let data = client
                .graphql(
                    "mutation($u: String!) { createEnrollmentLink(user: $u) { url expiresAt } }",
                    json!({ "u": name }),
                )
                .await?;
            let link = field(&data, "createEnrollmentLink")?;
            if json {
                print_json(link);
            } else {
                outln!("{}", cell(link, "url"));
                eprintln!(
                    "enrollment link for {name} (works once, until {}): open it in the browser where the passkey will be made",
                    cell(link, "expiresAt")
                );
            }
        }
    }
    Ok(())
}

async fn set_disabled(
    client: &AdminClient,
    name: &str,
    disabled: bool,
    json: bool,
) -> anyhow::Result<()> {
    let op = if disabled {
        "disableUser"
    } else {
        "enableUser"
    };
    let q = format!("mutation($name: String!) {{ {op}(name: $name) {{ {USER_FIELDS} }} }}");
    let data = client.graphql(&q, json!({ "name": name })).await?;
    let verb = if disabled { "disabled" } else { "enabled" };
    print_one(field(&data, op)?, json, format!("{verb} user {name}"));
    Ok(())
}

async fn group(client: &AdminClient, command: GroupCommand, json: bool) -> anyhow::Result<()> {
    match command {
        GroupCommand::Add { name, description } => {
            let q = format!(
                "mutation($name: String!, $description: String) {{ \
                 createGroup(name: $name, description: $description) {{ {GROUP_FIELDS} }} }}"
            );
            let data = client
                .graphql(&q, json!({ "name": name, "description": description }))
                .await?;
            print_one(
                field(&data, "createGroup")?,
                json,
                format!("added group {name}"),
            );
        }
        GroupCommand::List => {
            let groups = all_pages(client, "groups", GROUP_FIELDS).await?;
            if json {
                print_json(&Value::Array(groups));
            } else {
                let rows: Vec<Vec<String>> = groups
                    .iter()
                    .map(|g| {
                        vec![
                            cell(g, "name"),
                            cell(g, "description"),
                            cell(g, "members"),
                            cell(g, "createdAt"),
                        ]
                    })
                    .collect();
                table(&["NAME", "DESCRIPTION", "MEMBERS", "CREATED"], &rows);
            }
        }
        GroupCommand::AddMember { group, user } => {
            membership(
                client,
                "addGroupMember",
                &group,
                &user,
                json,
                format!("added {user} to {group}"),
            )
            .await?;
        }
        GroupCommand::RemoveMember { group, user } => {
            let done = format!("removed {user} from {group}");
            membership(client, "removeGroupMember", &group, &user, json, done).await?;
        }
        GroupCommand::SetOwner {
            group,
            user,
            if_owner,
            if_no_owner,
        } => {
            let done = format!("{user} owns {group}");
            if if_owner.is_none() && !if_no_owner {
                membership(client, "setGroupOwner", &group, &user, json, done).await?;
            } else {
                // The owner expected: a name, or null for none.
                let q = format!(
                    "mutation($group: String!, $user: String!, $expected: String) {{ \
                     setGroupOwner(group: $group, user: $user, expectedOwner: $expected) \
                     {{ {GROUP_FIELDS} }} }}"
                );
                let vars = json!({ "group": group, "user": user, "expected": if_owner });
                let data = client.graphql(&q, vars).await?;
                print_one(field(&data, "setGroupOwner")?, json, done);
            }
        }
        GroupCommand::ClearOwner { group, if_owner } => {
            // A variable left out reads as null, which `expectedOwner` takes as "no owner":
            // without `--if-owner` the argument itself is left out.
            let (declared, check) = if if_owner.is_some() {
                (", $expected: String", ", expectedOwner: $expected")
            } else {
                ("", "")
            };
            let q = format!(
                "mutation($group: String!{declared}) {{ \
                 setGroupOwner(group: $group, user: null{check}) {{ {GROUP_FIELDS} }} }}"
            );
            let vars = json!({ "group": group, "expected": if_owner });
            let data = client.graphql(&q, vars).await?;
            print_one(
                field(&data, "setGroupOwner")?,
                json,
                format!("{group} has no owner"),
            );
        }
    }
    Ok(())
}

async fn membership(
    client: &AdminClient,
    op: &str,
    group: &str,
    user: &str,
    json: bool,
    done: String,
) -> anyhow::Result<()> {
    let q = format!(
        "mutation($group: String!, $user: String!) {{ {op}(group: $group, user: $user) {{ {GROUP_FIELDS} }} }}"
    );
    let data = client
        .graphql(&q, json!({ "group": group, "user": user }))
        .await?;
    print_one(field(&data, op)?, json, done);
    Ok(())
}

async fn token(client: &AdminClient, command: TokenCommand, json: bool) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            role,
            user,
            ttl,
        } => {
            let q = format!(
                "mutation($input: CreateTokenInput!) {{ createToken(input: $input) {{ \
                 token apiToken {{ {TOKEN_FIELDS} }} }} }}"
            );
            let input = json!({
                "name": name,
                "role": role.as_str().to_ascii_uppercase(),
                "user": user,
                "ttl": format!("{}s", ttl.as_duration().as_secs()),
            });
            let data = client.graphql(&q, json!({ "input": input })).await?;
            let created = field(&data, "createToken")?;
            let secret = field(created, "token")?.as_str().unwrap_or_default();
            if json {
                print_json(created);
            } else {
                let meta = field(created, "apiToken")?;
                outln!("{secret}");
                eprintln!(
                    "token {} (id {}, role {}, expires {}): store it now, it is not shown again",
                    cell(meta, "name"),
                    cell(meta, "id"),
                    role,
                    cell(meta, "expiresAt"),
                );
            }
        }
        TokenCommand::List => {
            let q = format!("{{ tokens {{ {TOKEN_FIELDS} }} }}");
            let data = client.graphql(&q, Value::Null).await?;
            let tokens = field(&data, "tokens")?;
            if json {
                print_json(tokens);
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|t| {
                        let role = cell(t, "role").to_ascii_lowercase();
                        let status = cell(t, "status").to_ascii_lowercase();
                        vec![
                            cell(t, "id"),
                            cell(t, "name"),
                            role,
                            cell(t, "user"),
                            status,
                            cell(t, "expiresAt"),
                            cell(t, "createdBy"),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "ID",
                        "NAME",
                        "ROLE",
                        "USER",
                        "STATUS",
                        "EXPIRES",
                        "CREATED BY",
                    ],
                    &rows,
                );
            }
        }
        TokenCommand::Revoke { token } => {
            let q = format!(
                "mutation($token: String!) {{ revokeToken(token: $token) {{ {TOKEN_FIELDS} }} }}"
            );
            let data = client.graphql(&q, json!({ "token": token })).await?;
            let revoked = field(&data, "revokeToken")?;
            print_one(
                revoked,
                json,
                format!(
                    "revoked token {} ({})",
                    cell(revoked, "name"),
                    cell(revoked, "id")
                ),
            );
        }
    }
    Ok(())
}
