//! Changing the policy in the browser: edit one file of the set in force (or add one), have
//! the server check it against the schema and run the set's tests without activating it (a
//! dry run), read the diff and the tests' table — what `warden policy apply --dry-run`
//! prints — then apply exactly what was checked. The form carries the version in force when
//! editing began as `expectedVersion`, so the server refuses (and records) an apply after
//! someone else changed the policy as stale.
//! Cedar and TOML are shown with their syntax highlighted, and any two versions can be
//! compared.
#![expect(
    clippy::indexing_slicing,
    reason = "reading serde_json::Value by key or position gives Null when absent; it never panics"
)]

use std::collections::BTreeMap;

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Failure, Parts, Section, Visitor, allowed, redirect, submitted, text};
use crate::Web;
use crate::graphql::Capability;

const ACTIVE: &str = "query { policy { version files { name text } } }";

/// Cedar's keywords, and the words of the policy scopes.
const KEYWORDS: [&str; 17] = [
    "permit",
    "forbid",
    "when",
    "unless",
    "principal",
    "action",
    "resource",
    "context",
    "in",
    "has",
    "like",
    "is",
    "if",
    "then",
    "else",
    "true",
    "false",
];

/// A file's text with its syntax marked: comments, strings, annotations and keywords of
/// Cedar (`.cedar`), comments, strings and keys of TOML (`.toml`); escaped as ever.
pub(crate) fn highlight(name: &str, source: &str) -> Markup {
    let toml = name.ends_with(".toml");
    html! {
        @for line in source.split_inclusive('\n') {
            (highlight_line(line, toml))
        }
    }
}

fn highlight_line(line: &str, toml: bool) -> Markup {
    let mut parts: Vec<(&'static str, &str)> = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        let comment = if toml {
            rest.starts_with('#')
        } else {
            rest.starts_with("//")
        };
        if comment {
            parts.push(("c", rest));
            break;
        }
        if let Some(after) = rest.strip_prefix('"') {
            // Up to the closing quote that is not escaped (or the end of the line).
            let mut end = after.len();
            let mut escaped = false;
            for (i, c) in after.char_indices() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = i + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let (string, after) = rest.split_at((end + 1).min(rest.len()));
            parts.push(("s", string));
            rest = after;
            continue;
        }
        let word_end = rest
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '@' || *c == '-'))
            .map_or(rest.len(), |(i, _)| i);
        if word_end == 0 {
            let mut chars = rest.chars();
            let next = chars.next().map_or(0, char::len_utf8);
            let (one, after) = rest.split_at(next);
            parts.push(("", one));
            rest = after;
            continue;
        }
        let (word, after) = rest.split_at(word_end);
        let class = if word.starts_with('@') {
            "a"
        } else if (!toml && KEYWORDS.contains(&word))
            || (toml && parts.iter().all(|(_, p)| p.trim().is_empty()))
        {
            // A Cedar keyword, or the key a TOML line begins with.
            "k"
        } else {
            ""
        };
        parts.push((class, word));
        rest = after;
    }
    html! {
        @for (class, part) in parts {
            @if class.is_empty() { (part) } @else { span class={ "hl-" (class) } { (part) } }
        }
    }
}

/// A unified diff with its added, removed and hunk lines marked, a line each.
pub(crate) fn diff(unified: &str) -> Markup {
    let class = |line: &str| {
        if line.starts_with("+++") || line.starts_with("---") || line.starts_with("@@") {
            "hl-h"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else {
            "ctx"
        }
    };
    html! {
        pre.policy.diff {
            @for line in unified.lines() { span class=(class(line)) { (line) } }
        }
    }
}

/// The files of a policy version as the API gives it, by name.
pub(crate) fn files(policy: &Value) -> BTreeMap<String, String> {
    policy["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .map(|f| (text(&f["name"]), text(&f["text"])))
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Pick {
    /// The file to edit.
    file: Option<String>,
}

/// `GET /console/policy/edit[?file=NAME]`: the editor, with the file's text in force.
pub(crate) async fn editor(
    State(app): State<Web>,
    Query(pick): Query<Pick>,
    parts: Parts,
) -> Response {
    let v = match allowed(&app, parts, Section::Policy).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) =
        super::manage::may_or_refuse(&app, &v, Capability::ManagePolicy, Section::Policy).await
    {
        return r;
    }
    let data = match v.graphql(&app, ACTIVE, json!({})).await {
        Ok(d) => d,
        Err(f) => return v.failed(Section::Policy, f),
    };
    let active = files(&data["policy"]);
    let file = pick
        .file
        .filter(|f| !f.trim().is_empty())
        .or_else(|| active.keys().next().cloned())
        .unwrap_or_else(|| "policy.cedar".to_owned());
    let edit = Edit {
        csrf: String::new(),
        version: data["policy"]["version"].as_i64().unwrap_or(0).to_string(),
        text: active.get(&file).cloned().unwrap_or_default(),
        file,
        step: String::new(),
    };
    page(&v, StatusCode::OK, &active, &edit, Outcome::Editing)
}

/// What the editor sends.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Edit {
    #[serde(default)]
    csrf: String,
    /// The version in force when editing began (0 for none): the server refuses the set as
    /// stale if another is in force by then.
    #[serde(default)]
    version: String,
    /// The file's name.
    #[serde(default)]
    file: String,
    /// Its new text; empty removes the file from the set.
    #[serde(default)]
    text: String,
    /// `check` (a dry run) or `apply`.
    #[serde(default)]
    step: String,
}

/// Where the editor is.
enum Outcome {
    /// Nothing checked yet.
    Editing,
    /// Checked: the dry run's answer.
    Checked(Value),
    /// Refused, with the API's message (or the stale set's), and the status to answer.
    Refused(StatusCode, String),
}

/// `POST /console/policy/edit`: a dry run (`step=check`), or applying what was checked.
pub(crate) async fn submit(
    State(app): State<Web>,
    parts: Parts,
    Form(edit): Form<Edit>,
) -> Response {
    let v = match submitted(&app, parts, Section::Policy, "policy.apply", &edit.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let data = match v.graphql(&app, ACTIVE, json!({})).await {
        Ok(d) => d,
        Err(f) => return v.failed(Section::Policy, f),
    };
    let active = files(&data["policy"]);
    let dry_run = match edit.step.as_str() {
        "check" => true,
        "apply" => false,
        other => {
            return v.refusal(
                StatusCode::BAD_REQUEST,
                Section::Policy,
                &format!("unknown step `{other}`: check or apply"),
            );
        }
    };
    let Ok(expected) = edit.version.trim().parse::<i64>() else {
        return v.refusal(
            StatusCode::BAD_REQUEST,
            Section::Policy,
            "the form does not say which version it was made against: open the editor again",
        );
    };
    let mut set = active.clone();
    let name = edit.file.trim().to_owned();
    if edit.text.trim().is_empty() {
        set.remove(&name);
    } else {
        // Browsers send CRLF from a textarea; the stored set keeps the file's own lines.
        set.insert(name, edit.text.replace("\r\n", "\n"));
    }
    let list: Vec<Value> = set
        .iter()
        .map(|(name, text)| json!({ "name": name, "text": text }))
        .collect();
    let q = "mutation($files: [PolicyFileInput!]!, $dry: Boolean, $expected: Int) {
      applyPolicy(files: $files, dryRun: $dry, expectedVersion: $expected)
      { version hash unchanged diff policies tests { name passed expected got determinedBy } } }";
    let vars = json!({ "files": list, "dry": dry_run, "expected": expected });
    match v.graphql(&app, q, vars).await {
        Ok(answer) if dry_run => page(
            &v,
            StatusCode::OK,
            &active,
            &edit,
            Outcome::Checked(answer["applyPolicy"].clone()),
        ),
        Ok(answer) => {
            let applied = &answer["applyPolicy"];
            if applied["unchanged"] == true {
                redirect("/console/policy?done=unchanged")
            } else {
                redirect("/console/policy?done=applied")
            }
        }
        Err(f) => {
            let (status, message) = match f {
                Failure::Refused(message) => (StatusCode::BAD_REQUEST, message),
                Failure::Stale(message) => (StatusCode::CONFLICT, message),
                other => return v.failed(Section::Policy, other),
            };
            page(
                &v,
                status,
                &active,
                &edit,
                Outcome::Refused(status, message),
            )
        }
    }
}

fn tests_table(tests: &[Value]) -> Markup {
    html! {
        div.scroll { table #policy-tests {
            thead { tr { th scope="col" { "Test" } th scope="col" { "Expected" } th scope="col" { "Got" } th scope="col" { "Result" } th scope="col" { "Determined by" } } }
            tbody { @for t in tests {
                tr {
                    td { (text(&t["name"])) } td { (text(&t["expected"])) } td { (text(&t["got"])) }
                    td { @if t["passed"] == true { span.status-pass { "pass" } } @else { span.status-fail { "FAIL" } } }
                    td { @for p in t["determinedBy"].as_array().map(Vec::as_slice).unwrap_or_default() { code { (text(p)) } " " }
                        @if t["determinedBy"].as_array().is_none_or(Vec::is_empty) { span.muted { "default deny" } } }
                }
            } }
        } }
    }
}

fn page(
    v: &Visitor,
    status: StatusCode,
    active: &BTreeMap<String, String>,
    edit: &Edit,
    outcome: Outcome,
) -> Response {
    let (bad, described) = match &outcome {
        Outcome::Refused(..) => (Some("true"), Some("policy-error")),
        _ => (None, None),
    };
    let body = html! {
        p { a href="/console/policy" { "← Policy" } }
        nav aria-label="Files" { p { "Files in force: "
            @for name in active.keys() { a href={ "/console/policy/edit?file=" (name) } { code { (name) } } " " } } }
        form id="policy" method="post" action="/console/policy/edit" {
            input type="hidden" name="csrf" value=(v.csrf);
            input type="hidden" name="version" value=(edit.version);
            div.field {
                label for="policy-file" { "File" }
                input #policy-file type="text" name="file" value=(edit.file) required size="24" pattern="[A-Za-z0-9_.-]+";
                span.muted { " a new name adds a file; an empty text removes it" }
            }
            div.field {
                label for="policy-text" { "Text" }
                textarea #policy-text name="text" rows="22" cols="100" spellcheck="false"
                    aria-invalid=[bad] aria-describedby=[described] { (edit.text) }
            }
            @match &outcome {
                Outcome::Refused(_, message) => {
                    div.notice.error.field-error #policy-error role="alert" { pre { (message) } }
                    button.primary type="submit" name="step" value="check" { "Check (dry run)" }
                }
                Outcome::Checked(result) => {
                    section #checked aria-labelledby="checked-h" {
                        h2 #checked-h { "Checked" }
                        @if result["unchanged"] == true {
                            p.notice role="status" { "Unchanged: the set in force is already this one." }
                        } @else {
                            p.notice.ok role="status" {
                                (super::count(result["policies"].as_u64().unwrap_or(0), "policy", "policies")) " and "
                                (super::count(result["tests"].as_array().map_or(0, |t| u64::try_from(t.len()).unwrap_or(0)), "test", "tests"))
                                " pass; nothing is in force until you apply it. SHA-256 " code { (text(&result["hash"]).get(..16).unwrap_or("")) "…" }
                            }
                            (diff(&text(&result["diff"])))
                        }
                        (tests_table(result["tests"].as_array().map(Vec::as_slice).unwrap_or_default()))
                    }
                    button type="submit" name="step" value="check" { "Check again" }
                    " "
                    @if result["unchanged"] != true { button.primary type="submit" name="step" value="apply" { "Apply" } }
                }
                Outcome::Editing => {
                    button.primary type="submit" name="step" value="check" { "Check (dry run)" }
                }
            }
        }
    };
    let status = match &outcome {
        Outcome::Refused(s, _) => *s,
        _ => status,
    };
    v.render(status, Section::Policy, "Edit the policy", body)
}

#[cfg(test)]
mod tests {
    use super::highlight;

    #[test]
    fn cedar_is_highlighted_and_escaped() {
        let shown = highlight(
            "a.cedar",
            "@id(\"x\")\npermit (principal in Warden::Group::\"a<b\", action, resource); // note <i>\n",
        )
        .into_string()
        .replace("&quot;", "\"");
        assert_eq!(
            shown,
            "<span class=\"hl-a\">@id</span>(<span class=\"hl-s\">\"x\"</span>)\n\
             <span class=\"hl-k\">permit</span> (<span class=\"hl-k\">principal</span> <span class=\"hl-k\">in</span> Warden::Group::<span class=\"hl-s\">\"a&lt;b\"</span>, <span class=\"hl-k\">action</span>, <span class=\"hl-k\">resource</span>); <span class=\"hl-c\">// note &lt;i&gt;\n</span>"
        );
    }

    #[test]
    fn toml_keys_strings_and_comments() {
        let shown = highlight("tests.toml", "# why\nname = \"a \\\" b\"\n")
            .into_string()
            .replace("&quot;", "\"");
        assert_eq!(
            shown,
            "<span class=\"hl-c\"># why\n</span><span class=\"hl-k\">name</span> = <span class=\"hl-s\">\"a \\\" b\"</span>\n"
        );
    }

    #[test]
    fn an_unclosed_string_ends_with_its_line() {
        let shown = highlight("a.cedar", "\"open")
            .into_string()
            .replace("&quot;", "\"");
        assert_eq!(shown, "<span class=\"hl-s\">\"open</span>");
    }

    proptest::proptest! {
        /// Whatever the text, highlighting only wraps it: without the marks and unescaped,
        /// it is the text again, and nothing in it becomes markup.
        #[test]
        fn highlighting_keeps_the_text(source in "[ -~\n\t]{0,200}", toml in proptest::bool::ANY) {
            let name = if toml { "tests.toml" } else { "a.cedar" };
            let shown = highlight(name, &source).into_string();
            let mut plain = String::new();
            let mut in_tag = false;
            for c in shown.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' if in_tag => in_tag = false,
                    c if !in_tag => plain.push(c),
                    _ => {}
                }
            }
            let plain = plain
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&amp;", "&");
            proptest::prop_assert_eq!(plain, source);
        }
    }
}
