//! The policy editor: dry run, apply, a stale editor, versions compared.

use serde_json::{Value, json};
use warden_testkit::Backend;
use warden_testkit::console::{alert, hidden, page, submit};

use crate::{apply_policy, cli_error, console_server};

/// The textarea's text on a page, unescaped.
fn textarea(body: &str) -> String {
    let rest = body
        .split("<textarea")
        .nth(1)
        .unwrap_or_else(|| panic!("{body}"));
    let text = rest
        .split_once('>')
        .unwrap()
        .1
        .split("</textarea>")
        .next()
        .unwrap();
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The policy changed in the console: a `policy` member (read and manage the policy) edits
/// a file; a syntax error and a change that fails the set's tests are refused beside the
/// editor with the CLI's words and change nothing; a passing change is checked (dry run:
/// diff and tests, nothing in force), then applied; an apply from a stale editor is refused;
/// two versions are compared. An auditor may read the policy but not open the editor.
async fn policy_editing(backend: Backend) {
    let (server, base) = console_server(backend).await;
    let root = tempfile::tempdir().unwrap();
    let ops = server.token("ops-root", "admin", None);
    for group in ["policy", "auditors"] {
        server.admin_ok(&["group", "add", group]);
    }
    let grant = "@id(\"policy-team\")\npermit (principal in Warden::Group::\"policy\", \
         action in [Warden::Action::\"read_policy\", Warden::Action::\"manage_policy\"], resource);\n";
    apply_policy(&server, root.path(), &ops, grant);
    let (pia, _, pia_csrf) = server.enroll_soft_passkey(&base, "pia").await;
    server.admin_ok(&["group", "add-member", "policy", "pia"]);
    let (carol, _, _) = server.enroll_soft_passkey(&base, "carol").await;
    server.admin_ok(&["group", "add-member", "auditors", "carol"]);
    let version = |answer: &Value| answer["data"]["policy"]["version"].as_i64().unwrap();
    let (_, before) = server
        .graphql(Some(&ops), "{ policy { version hash } }", json!({}))
        .await;

    // The auditor reads the policy, highlighted, but is refused the editor (recorded).
    let (status, _, shown) = page(&carol, &base, "/console/policy").await;
    assert_eq!(status, 200);
    assert!(
        shown.contains("<span class=\"hl-k\">permit</span>"),
        "{shown}"
    );
    assert!(!shown.contains("href=\"/console/policy/edit\""));
    let (status, _, body) = page(&carol, &base, "/console/policy/edit").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        server
            .audit("policy.manage")
            .iter()
            .any(|e| e["outcome"] == "denied" && e["actor"] == "user:carol"),
        "carol's denial is recorded"
    );

    // pia opens the file in force.
    let (status, _, editor) = page(&pia, &base, "/console/policy/edit?file=extra.cedar").await;
    assert_eq!(status, 200, "{editor}");
    assert_eq!(textarea(&editor), grant);
    let seen = hidden(&editor, "policy", "version");
    assert_eq!(seen, version(&before).to_string());

    // A syntax error and a change that fails a test: the CLI's words, nothing applied.
    let everyone_ssh = format!(
        "{grant}@id(\"everyone\")\npermit (principal, action == Warden::Action::\"ssh\", resource);\n"
    );
    for text in ["permit (", everyone_ssh.as_str()] {
        let (status, body) = submit(
            &pia,
            &base,
            "/console/policy/edit",
            &[
                ("csrf", pia_csrf.as_str()),
                ("version", seen.as_str()),
                ("file", "extra.cedar"),
                ("text", text),
                ("step", "check"),
            ],
        )
        .await;
        let dir = root.path().join(format!("cli-{}", text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, starter) in warden_policy::STARTER {
            std::fs::write(dir.join(name), starter).unwrap();
        }
        std::fs::write(dir.join("extra.cedar"), text).unwrap();
        let out = server.remote(
            &ops,
            &["policy", "apply", dir.to_str().unwrap(), "--dry-run"],
        );
        assert!(!out.status.success());
        let cli = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
        let shown = body
            .split("<pre>")
            .nth(1)
            .and_then(|rest| rest.split("</pre>").next())
            .unwrap_or_else(|| panic!("{body}"))
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
        assert_eq!((status, format!("error: {shown}")), (400, cli), "{text}");
        assert!(body.contains("aria-describedby=\"policy-error\""), "{body}");
        assert_eq!(textarea(&body), text, "what was typed is kept");
    }

    // A passing change, checked: the diff and the tests, and nothing in force yet.
    let audit_for_web = format!(
        "{grant}@id(\"web-reads-audit\")\npermit (principal in Warden::Group::\"web\", action == Warden::Action::\"read_audit\", resource);\n"
    );
    let change = [
        ("csrf", pia_csrf.as_str()),
        ("version", seen.as_str()),
        ("file", "extra.cedar"),
        ("text", audit_for_web.as_str()),
        ("step", "check"),
    ];
    let (status, body) = submit(&pia, &base, "/console/policy/edit", &change).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<section id=\"checked\""), "{body}");
    assert!(
        body.contains("<span class=\"add\">+@id(&quot;web-reads-audit&quot;)"),
        "{body}"
    );
    assert!(body.contains("<table id=\"policy-tests\">"), "{body}");
    assert!(
        body.contains("nothing is in force until you apply it"),
        "{body}"
    );
    let (_, now) = server
        .graphql(Some(&ops), "{ policy { version hash } }", json!({}))
        .await;
    assert_eq!(
        version(&now),
        version(&before),
        "a dry run activates nothing"
    );

    // Applied; then an apply from the stale editor is refused.
    let mut apply = change;
    apply[4] = ("step", "apply");
    let (status, body) = submit(&pia, &base, "/console/policy/edit", &apply).await;
    assert_eq!(status, 303, "{body}");
    let (_, after) = server
        .graphql(
            Some(&ops),
            "{ policy { version files { name text } } }",
            json!({}),
        )
        .await;
    assert_eq!(version(&after), version(&before) + 1);
    let extra = after["data"]["policy"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "extra.cedar")
        .unwrap()["text"]
        .clone();
    assert_eq!(extra, audit_for_web.as_str());
    assert!(
        server
            .audit("policy.apply")
            .iter()
            .any(|e| e["outcome"] == "success" && e["actor"] == "user:pia"),
        "the apply is recorded as pia's"
    );
    let stale = format!(
        "the policy changed since it was read (version {} is in force now, not {}): read it again, then decide",
        version(&after),
        version(&before)
    );
    let (status, body) = submit(&pia, &base, "/console/policy/edit", &apply).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains(&stale), "{body}");
    // The same check over the API with an admin token; a dry run is refused alike but not
    // recorded; the apply refusals are, as pia's and the token's.
    let q = "mutation($files: [PolicyFileInput!]!, $dry: Boolean, $expected: Int) { \
             applyPolicy(files: $files, dryRun: $dry, expectedVersion: $expected) { version } }";
    let files = json!([{ "name": "extra.cedar", "text": audit_for_web }]);
    for dry in [true, false] {
        let vars = json!({ "files": files, "dry": dry, "expected": version(&before) });
        let (_, answer) = server.graphql(Some(&ops), q, vars).await;
        assert_eq!(
            (
                &answer["errors"][0]["message"],
                &answer["errors"][0]["extensions"]["code"]
            ),
            (&json!(stale), &json!("STALE")),
            "{answer}"
        );
    }
    let vars = json!({ "files": files, "expected": -1 });
    let (_, answer) = server.graphql(Some(&ops), q, vars).await;
    assert_eq!(
        answer["errors"][0]["message"],
        "expectedVersion is a policy version (0 for none), never negative, not -1"
    );
    let refused: Vec<_> = server
        .audit("policy.apply")
        .into_iter()
        .filter(|e| e["outcome"] == "failure" && e["reason"] == json!(stale))
        .map(|e| e["actor"].clone())
        .collect();
    assert_eq!(refused, [json!("user:pia"), json!("token:ops-root")]);
    let (_, still) = server
        .graphql(Some(&ops), "{ policy { version } }", json!({}))
        .await;
    assert_eq!(version(&still), version(&after), "nothing applied");

    // Two versions compared.
    let path = format!(
        "/console/policy?from={}&to={}",
        version(&before),
        version(&after)
    );
    let (status, _, compared) = page(&pia, &base, &path).await;
    assert_eq!(status, 200);
    assert!(
        compared.contains("<span class=\"add\">+@id(&quot;web-reads-audit&quot;)"),
        "{compared}"
    );
    let (status, _, body) = page(&pia, &base, "/console/policy?from=1&to=999").await;
    assert_eq!(status, 200);
    assert_eq!(
        alert(&body),
        cli_error(&server, &ops, &["policy", "show", "--version", "999"])
    );
}

#[tokio::test]
async fn policy_editing_from_the_console_sqlite() {
    policy_editing(Backend::Sqlite).await;
}

#[tokio::test]
async fn policy_editing_from_the_console_postgres() {
    policy_editing(Backend::Postgres).await;
}
