//! `warden review create|list|show|decide|close|report`: access review campaigns through the
//! GraphQL API.

use anyhow::bail;
use serde_json::{Value, json};

use crate::cli::{ReviewArgs, ReviewCommand};
use crate::output::{cell, table};
use crate::pki::connect;

const FIELDS: &str = "id name scope reviewer createdBy createdAt dueAt autoRevoke state closedAt populationSha256 \
     items { n subject entitlement source owner grantedAt grantedBy grantedWhy lastUsedAt reviewer decision reason decidedBy decidedAt verifiedAt }";

pub async fn run(args: ReviewArgs) -> anyhow::Result<()> {
    let client = connect(&args.connection)?;
    let (query, variables, field) = match &args.command {
        ReviewCommand::Create {
            name,
            scope,
            reviewer,
            due,
            auto_revoke,
        } => (
            format!(
                "mutation($n: String, $s: String!, $r: String!, $d: String!, $a: Boolean!) {{ createAccessReview(name: $n, scope: $s, reviewer: $r, due: $d, autoRevoke: $a) {{ {FIELDS} }} }}"
            ),
            json!({ "n": name, "s": scope, "r": reviewer, "d": due, "a": auto_revoke }),
            "createAccessReview",
        ),
        ReviewCommand::List => (
            format!("{{ accessReviews {{ {FIELDS} }} }}"),
            json!({}),
            "accessReviews",
        ),
        ReviewCommand::Show { id } | ReviewCommand::Report { id, .. } => (
            format!("query($i: String!) {{ accessReview(id: $i) {{ {FIELDS} }} }}"),
            json!({ "i": id }),
            "accessReview",
        ),
        ReviewCommand::Decide {
            id,
            items,
            revoke,
            reason,
            ..
        } => (
            format!(
                "mutation($i: String!, $n: [Int!]!, $d: String!, $r: String!) {{ decideReviewItems(review: $i, items: $n, decision: $d, reason: $r) {{ {FIELDS} }} }}"
            ),
            json!({ "i": id, "n": items, "d": if *revoke { "revoke" } else { "keep" }, "r": reason }),
            "decideReviewItems",
        ),
        ReviewCommand::Close { id } => (
            format!("mutation($i: String!) {{ closeAccessReview(id: $i) {{ {FIELDS} }} }}"),
            json!({ "i": id }),
            "closeAccessReview",
        ),
    };
    let data = client.graphql(&query, variables).await?;
    let found = data.get(field).cloned().unwrap_or(Value::Null);
    if found.is_null() {
        bail!("access review not found");
    }
    if let ReviewCommand::Report { format, .. } = &args.command {
        return report(&found, format);
    }
    if args.json {
        crate::output::json(&found);
        return Ok(());
    }
    match &found {
        Value::Array(list) => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    let items = r
                        .get("items")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    let open = items
                        .iter()
                        .filter(|i| i.get("decision").is_none_or(Value::is_null))
                        .count();
                    vec![
                        cell(r, "id"),
                        r.get("name")
                            .and_then(Value::as_str)
                            .filter(|n| !n.is_empty())
                            .unwrap_or("-")
                            .to_owned(),
                        cell(r, "scope"),
                        cell(r, "reviewer"),
                        cell(r, "dueAt"),
                        cell(r, "state"),
                        format!("{open}/{}", items.len()),
                    ]
                })
                .collect();
            table(
                &[
                    "REVIEW",
                    "NAME",
                    "SCOPE",
                    "REVIEWER",
                    "DUE",
                    "STATE",
                    "UNDECIDED",
                ],
                &rows,
            );
        }
        one => {
            let name = cell(one, "name");
            let name = if name.is_empty() {
                String::new()
            } else {
                format!(" “{name}”")
            };
            outln!(
                "review {}{name} ({}, {}), due {}, population sha256 {}",
                cell(one, "id"),
                cell(one, "scope"),
                cell(one, "state"),
                cell(one, "dueAt"),
                cell(one, "populationSha256")
            );
            let rows: Vec<Vec<String>> = one
                .get("items")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|i| {
                    vec![
                        cell(i, "n"),
                        cell(i, "subject"),
                        cell(i, "entitlement"),
                        format!("{} {}", cell(i, "source"), cell(i, "grantedAt")),
                        cell(i, "grantedBy"),
                        cell(i, "lastUsedAt"),
                        cell(i, "reviewer"),
                        cell(i, "decision"),
                        cell(i, "verifiedAt"),
                    ]
                })
                .collect();
            table(
                &[
                    "ITEM",
                    "WHO",
                    "GROUP",
                    "HOW, SINCE",
                    "GRANTED BY",
                    "LAST USED",
                    "REVIEWER",
                    "DECISION",
                    "VERIFIED",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

/// The report: every item with its decision (CSV), or the population before, what is held
/// after, and the decisions (JSON).
fn report(review: &Value, format: &str) -> anyhow::Result<()> {
    let items = review
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match format {
        "json" => {
            let after: Vec<&Value> = items
                .iter()
                .filter(|i| i.get("decision").and_then(Value::as_str) != Some("revoke"))
                .collect();
            let before: Vec<Value> = items
                .iter()
                .map(|i| json!({ "subject": i["subject"], "entitlement": i["entitlement"], "source": i["source"], "grantedAt": i["grantedAt"], "grantedBy": i["grantedBy"] }))
                .collect();
            let after: Vec<Value> = after
                .iter()
                .map(|i| json!({ "subject": i["subject"], "entitlement": i["entitlement"] }))
                .collect();
            crate::output::json(&json!({
                "review": {
                    "id": review["id"], "scope": review["scope"], "reviewer": review["reviewer"],
                    "createdBy": review["createdBy"], "createdAt": review["createdAt"], "dueAt": review["dueAt"],
                    "state": review["state"], "closedAt": review["closedAt"],
                    "populationSha256": review["populationSha256"],
                },
                "before": before,
                "after": after,
                "decisions": items,
            }));
            Ok(())
        }
        "csv" => {
            let columns = [
                "n",
                "subject",
                "entitlement",
                "source",
                "grantedAt",
                "grantedBy",
                "grantedWhy",
                "lastUsedAt",
                "reviewer",
                "decision",
                "reason",
                "decidedBy",
                "decidedAt",
                "verifiedAt",
            ];
            outln!("{}", columns.join(","));
            for i in &items {
                let row: Vec<String> = columns.iter().map(|c| csv_field(&cell(i, c))).collect();
                outln!("{}", row.join(","));
            }
            Ok(())
        }
        other => bail!("unknown report format `{other}`: use csv or json"),
    }
}

/// RFC 4180 quoting, and a leading `'` before what a spreadsheet would run as a formula.
fn csv_field(text: &str) -> String {
    let text = if text == "-" { "" } else { text };
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}
