//! Access review campaigns started, decided in bulk and closed in the console.

use serde_json::json;
use warden_testkit::Backend;
use warden_testkit::console::{alert, page, submit};

use crate::{apply_policy, cli_error, console_server};

/// Access reviews run from the console: a `grc` member (who may start and close reviews,
/// nothing else) starts a named campaign over `ops`; its reviewer keeps both items in one
/// bulk decision with one justification; the campaign is closed. A member may not open the
/// form (the denial recorded); each bad input gets the CLI's message beside the form, with
/// what was typed kept, and starts nothing.
async fn reviews(backend: Backend) {
    let (server, base) = console_server(backend).await;
    let root = tempfile::tempdir().unwrap();
    let ops = server.token("ops-root", "admin", None);
    for args in [
        &["group", "add", "grc"][..],
        &["group", "add", "ops"],
        &["user", "add", "alice"],
        &["user", "add", "erin"],
        &["group", "add-member", "ops", "alice"],
        &["group", "add-member", "ops", "erin"],
        &["user", "add", "frank"],
        &["group", "add-member", "ops", "frank"],
    ] {
        server.admin_ok(args);
    }
    apply_policy(
        &server,
        root.path(),
        &ops,
        "@id(\"grc-reviews\")\npermit (principal in Warden::Group::\"grc\", \
         action == Warden::Action::\"review\", resource);\n",
    );
    let (rita, _, rita_csrf) = server.enroll_soft_passkey(&base, "rita").await;
    server.admin_ok(&["group", "add-member", "grc", "rita"]);
    let (bob, _, bob_csrf) = server.enroll_soft_passkey(&base, "bob").await;

    // bob may not start one: no link, and the form's page is refused and recorded.
    let (_, _, list) = page(&bob, &base, "/console/reviews").await;
    assert!(!list.contains("href=\"/console/reviews/new\""), "{list}");
    let (status, _, body) = page(&bob, &base, "/console/reviews/new").await;
    assert_eq!(status, 403, "{body}");
    assert!(alert(&body).starts_with("permission denied: "), "{body}");
    assert!(
        server
            .audit("review.manage")
            .iter()
            .any(|e| e["outcome"] == "denied" && e["actor"] == "user:bob"),
        "bob's denial is recorded"
    );

    // Bad input: the CLI's words, beside the form, what was typed kept.
    let long = "x".repeat(101);
    let (_, _, list) = page(&rita, &base, "/console/reviews").await;
    assert!(list.contains("href=\"/console/reviews/new\""), "{list}");
    for (name, scope, reviewer, due) in [
        ("Q1", "groups:nope", "bob", "7d"),
        ("Q1", "groups:ops", "bob", "yesterday"),
        ("Q1", "groups:ops", "Not A Name", "7d"),
        (long.as_str(), "groups:ops", "bob", "7d"),
    ] {
        let (status, body) = submit(
            &rita,
            &base,
            "/console/reviews/new",
            &[
                ("csrf", rita_csrf.as_str()),
                ("name", name),
                ("scope", scope),
                ("reviewer", reviewer),
                ("due", due),
            ],
        )
        .await;
        let expected = cli_error(
            &server,
            &ops,
            &[
                "review",
                "create",
                "--name",
                name,
                "--scope",
                scope,
                "--reviewer",
                reviewer,
                "--due",
                due,
            ],
        );
        assert_eq!(
            (status, alert(&body)),
            (400, expected),
            "{scope} {reviewer} {due}"
        );
        assert!(body.contains("id=\"review-error\""), "{body}");
        assert!(body.contains(&format!("value=\"{due}\"")), "{body}");
    }
    let (_, answer) = server
        .graphql(Some(&ops), "{ accessReviews { id } }", json!({}))
        .await;
    assert_eq!(
        answer["data"]["accessReviews"],
        json!([]),
        "nothing started"
    );

    // Started, named.
    let (status, body) = submit(
        &rita,
        &base,
        "/console/reviews/new",
        &[
            ("csrf", rita_csrf.as_str()),
            ("name", "Q1 2027 ops access"),
            ("scope", "groups:ops"),
            ("reviewer", "bob"),
            ("due", "7d"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let (_, answer) = server
        .graphql(Some(&ops), "{ accessReviews { id name } }", json!({}))
        .await;
    let id = answer["data"]["accessReviews"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        answer["data"]["accessReviews"][0]["name"],
        "Q1 2027 ops access"
    );
    let path = format!("/console/reviews/{id}");
    let (_, _, listed) = page(&bob, &base, "/console/reviews").await;
    assert!(listed.contains(">Q1 2027 ops access</a>"), "{listed}");

    // bob keeps two items at once, with one justification; he is offered no close.
    let (_, _, shown) = page(&bob, &base, &path).await;
    assert!(!shown.contains("<form id=\"close\""), "{shown}");
    let (status, body) = submit(
        &bob,
        &base,
        &path,
        &[
            ("csrf", bob_csrf.as_str()),
            ("item", "1"),
            ("item", "2"),
            ("decision", "keep"),
            ("reason", "both on the on-call rota"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let (_, answer) = server
        .graphql(
            Some(&ops),
            "query($id: String!) { accessReview(id: $id) { state items { subject decision reason decidedBy } } }",
            json!({ "id": id }),
        )
        .await;
    let items = answer["data"]["accessReview"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{answer}");
    assert!(
        items[2]["decision"].is_null(),
        "frank is undecided: {answer}"
    );
    assert!(
        items[..2].iter().all(|i| i["decision"] == "keep"
            && i["reason"] == "both on the on-call rota"
            && i["decidedBy"] == "user:bob"),
        "{answer}"
    );

    // rita closes it; closed twice is the API's refusal.
    let close = format!("{path}/close");
    let (status, _) = submit(&bob, &base, &close, &[("csrf", bob_csrf.as_str())]).await;
    assert_eq!(status, 403, "bob may not close it");
    let (_, _, shown) = page(&rita, &base, &path).await;
    assert!(shown.contains("<form id=\"close\""), "{shown}");
    let (status, _) = submit(&rita, &base, &close, &[("csrf", rita_csrf.as_str())]).await;
    assert_eq!(status, 303);
    let (status, body) = submit(&rita, &base, &close, &[("csrf", rita_csrf.as_str())]).await;
    let expected = cli_error(&server, &ops, &["review", "close", &id]);
    assert_eq!((status, alert(&body)), (400, expected));
    let closed = server.audit("review.close");
    assert!(
        closed
            .iter()
            .any(|e| e["outcome"] == "success" && e["actor"] == "user:rita"),
        "{closed:?}"
    );
    let created = server.audit("review.create");
    assert!(
        created.iter().any(|e| e["actor"] == "user:rita"
            && e["outcome"] == "success"
            && e["details"]["name"] == "Q1 2027 ops access"),
        "{created:?}"
    );
}

#[tokio::test]
async fn access_reviews_from_the_console_sqlite() {
    reviews(Backend::Sqlite).await;
}

#[tokio::test]
async fn access_reviews_from_the_console_postgres() {
    reviews(Backend::Postgres).await;
}
