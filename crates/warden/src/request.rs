//! `warden request create|list|approve|deny`: just-in-time access through the GraphQL API.

use serde_json::{Value, json};

use crate::cli::{RequestArgs, RequestCommand};
use crate::output::{cell, table};
use crate::pki::connect;

const FIELDS: &str = "id requester group reason durationSeconds approvals state createdAt decidedAt decisions { approver approve reason decidedAt } grant { id expiresAt endedAt endReason }";

pub async fn run(args: RequestArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    let (query, variables, field) = match args.command {
        RequestCommand::Create {
            group,
            reason,
            duration,
            approvals,
        } => (
            format!(
                "mutation($g: String!, $r: String!, $d: String!, $a: Int!) {{ requestAccess(group: $g, reason: $r, duration: $d, approvals: $a) {{ {FIELDS} }} }}"
            ),
            json!({ "g": group, "r": reason, "d": duration, "a": approvals }),
            "requestAccess",
        ),
        RequestCommand::List { pending } => (
            format!("query($s: String) {{ accessRequests(state: $s) {{ {FIELDS} }} }}"),
            json!({ "s": pending.then_some("pending") }),
            "accessRequests",
        ),
        RequestCommand::Approve { id, reason } => (
            format!(
                "mutation($i: String!, $r: String!) {{ approveAccessRequest(id: $i, reason: $r) {{ {FIELDS} }} }}"
            ),
            json!({ "i": id, "r": reason }),
            "approveAccessRequest",
        ),
        RequestCommand::Deny { id, reason } => (
            format!(
                "mutation($i: String!, $r: String!) {{ denyAccessRequest(id: $i, reason: $r) {{ {FIELDS} }} }}"
            ),
            json!({ "i": id, "r": reason }),
            "denyAccessRequest",
        ),
    };
    let data = client.graphql(&query, variables).await?;
    let found = data.get(field).cloned().unwrap_or(Value::Null);
    if args.json {
        crate::output::json(&found);
        return Ok(());
    }
    match &found {
        Value::Array(list) => {
            let rows: Vec<Vec<String>> = list.iter().map(row).collect();
            table(
                &[
                    "REQUEST",
                    "WHO",
                    "GROUP",
                    "FOR",
                    "STATE",
                    "APPROVALS",
                    "EXPIRES",
                    "REASON",
                ],
                &rows,
            );
        }
        one => {
            let state = cell(one, "state");
            match state.as_str() {
                "approved" => outln!(
                    "request {} approved: {} is in {} until {}",
                    cell(one, "id"),
                    cell(one, "requester"),
                    cell(one, "group"),
                    one.pointer("/grant/expiresAt")
                        .and_then(Value::as_str)
                        .unwrap_or("-")
                ),
                "pending" if field == "requestAccess" => outln!("{}", cell(one, "id")),
                _ => outln!("request {} {state}", cell(one, "id")),
            }
        }
    }
    Ok(())
}

fn row(r: &Value) -> Vec<String> {
    let approved = r.get("decisions").and_then(Value::as_array).map_or(0, |d| {
        d.iter()
            .filter(|d| d.get("approve") == Some(&Value::Bool(true)))
            .count()
    });
    vec![
        cell(r, "id"),
        cell(r, "requester"),
        cell(r, "group"),
        format!("{}s", cell(r, "durationSeconds")),
        cell(r, "state"),
        format!("{approved}/{}", cell(r, "approvals")),
        r.pointer("/grant/expiresAt")
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned(),
        cell(r, "reason"),
    ]
}
