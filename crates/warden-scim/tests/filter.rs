//! Filters: the grammar, precedence, value paths, resolution against the schema, matching in
//! memory, and the exact error for each known bad input.

#![expect(clippy::expect_used, reason = "test helpers fail the test")]
use proptest::prelude::*;
use serde_json::json;
use warden_scim::schema::{GROUPS, USERS};
use warden_scim::{AttrPath, CompareOp, Filter};

fn path(attr: &str, sub: Option<&str>) -> AttrPath {
    AttrPath {
        schema: None,
        attr: attr.into(),
        sub: sub.map(Into::into),
    }
}

fn err(text: &str) -> String {
    let e = Filter::parse(text)
        .and_then(|f| f.resolve(&USERS))
        .expect_err(text);
    assert_eq!(e.status, 400);
    assert_eq!(e.scim_type, Some(warden_scim::ScimType::InvalidFilter));
    e.detail
}

#[test]
fn parses_what_okta_and_entra_send() {
    let f = Filter::parse(r#"userName eq "alice@example.com""#).unwrap();
    assert_eq!(
        f,
        Filter::Compare(
            path("userName", None),
            CompareOp::Eq,
            json!("alice@example.com")
        )
    );
    // Entra ID's existence check by externalId, and PascalCase operators.
    let f = Filter::parse(r#"externalId EQ "58342554-38d6-4ec8-948c-50044d0a33fd""#).unwrap();
    assert!(matches!(f, Filter::Compare(_, CompareOp::Eq, _)));
    let f = Filter::parse(r#"displayName eq "Engineering""#)
        .unwrap()
        .resolve(&GROUPS)
        .unwrap();
    assert_eq!(
        f,
        Filter::Compare(
            path("displayName", None),
            CompareOp::Eq,
            json!("Engineering")
        )
    );
}

#[test]
fn and_binds_tighter_than_or_and_not_needs_parentheses() {
    let f = Filter::parse("title pr or userType eq \"x\" and active eq true").unwrap();
    let Filter::Or(a, b) = f else {
        panic!("or at the top")
    };
    assert!(matches!(*a, Filter::Present(_)));
    assert!(matches!(*b, Filter::And(_, _)));
    let f = Filter::parse("not (active eq false) and (userName sw \"a\" or userName sw \"b\")")
        .unwrap();
    let Filter::And(a, b) = f else {
        panic!("and at the top")
    };
    assert!(matches!(*a, Filter::Not(_)));
    assert!(matches!(*b, Filter::Or(_, _)));
}

#[test]
fn value_paths_and_urns_resolve_to_canonical_names() {
    let f = Filter::parse(r#"EMAILS[TYPE eq "work" and value co "@example.com"]"#)
        .unwrap()
        .resolve(&USERS)
        .unwrap();
    let Filter::Each(p, inner) = f else {
        panic!("value path")
    };
    assert_eq!(p, path("emails", None));
    let Filter::And(a, _) = *inner else {
        panic!("and inside")
    };
    assert_eq!(
        *a,
        Filter::Compare(path("type", None), CompareOp::Eq, json!("work"))
    );
    // `emails[type eq "work"].value eq "x"` reads as one value filter.
    let f = Filter::parse(r#"emails[type eq "work"].value eq "a@x.io""#).unwrap();
    assert!(matches!(f, Filter::Each(_, _)));
    let f = Filter::parse(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D""#,
    )
    .unwrap()
    .resolve(&USERS)
    .unwrap();
    let Filter::Compare(p, _, _) = f else {
        panic!("compare")
    };
    assert_eq!(p.schema.as_deref(), Some(warden_scim::schema::ENTERPRISE));
    assert_eq!(p.attr, "department");
    let f = Filter::parse(r#"name.GIVENNAME sw "Al""#)
        .unwrap()
        .resolve(&USERS)
        .unwrap();
    assert_eq!(
        f,
        Filter::Compare(path("name", Some("givenName")), CompareOp::Sw, json!("Al"))
    );
    let f = Filter::parse(r#"meta.lastModified gt "2026-01-01T00:00:00Z""#)
        .unwrap()
        .resolve(&USERS);
    assert!(f.is_ok());
}

#[test]
fn matches_in_memory_with_case_rules() {
    let user = json!({
        "userName": "Alice@Example.com",
        "externalId": "AbC",
        "active": true,
        "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
        "name": {"givenName": "Alice"},
    });
    let yes = |text: &str| {
        Filter::parse(text)
            .unwrap()
            .resolve(&USERS)
            .unwrap()
            .matches(&user, USERS.attrs)
    };
    assert!(yes(r#"userName eq "alice@example.com""#));
    assert!(yes(r#"externalId eq "AbC""#));
    assert!(!yes(r#"externalId eq "abc""#), "externalId is caseExact");
    assert!(yes(r#"emails[type eq "work"].value ew "@EXAMPLE.COM""#));
    assert!(yes(r#"emails co "alice""#));
    assert!(!yes(r#"emails[type eq "home"]"#));
    assert!(yes("active eq true and name.givenName pr"));
    assert!(yes("not (active eq false)"));
    assert!(
        yes("title ne \"x\""),
        "an unassigned attribute is not equal to anything"
    );
    assert!(!yes("title pr"));
    assert!(yes(r#"userName gt "a" and userName lt "b""#));
}

#[test]
fn known_bad_filters_have_exact_errors() {
    assert_eq!(err(r#"userName eq"#), "`userName eq` needs a value");
    assert_eq!(err(r#"userName"#), "`userName` needs an operator");
    assert_eq!(
        err(r#"userName like "a""#),
        "unknown operator `like` after `userName`"
    );
    assert_eq!(
        err(r#"userName eq alice"#),
        "`alice` is not a value: quote text, as in \"alice\""
    );
    assert_eq!(
        err(r#"userName eq "alice"#),
        "unterminated string at byte 12"
    );
    assert_eq!(err(r#"shoeSize gt 10"#), "unknown attribute `shoeSize`");
    assert_eq!(err(r#"name.shoe eq "x""#), "unknown attribute `name.shoe`");
    assert_eq!(err(r#"(userName eq "a""#), "filter ends too early");
    assert_eq!(err(r#"userName eq "a")"#), "unexpected `)` at byte 15");
    assert_eq!(
        err(r#"userName eq "a" xor title pr"#),
        "unexpected `xor` at byte 16"
    );
    assert_eq!(
        err(r#"emails[value[type eq "a"]]"#),
        "a value filter cannot follow `value`"
    );
    assert_eq!(
        err(r#"userName eq "a" & title pr"#),
        "unexpected `&` at byte 16"
    );
    assert_eq!(err(r#"1abc eq "x""#), "unexpected `1` at byte 0");
    let deep = format!("{}title pr{}", "(".repeat(40), ")".repeat(40));
    assert_eq!(err(&deep), "filter nests deeper than 32");
    assert_eq!(err(&"a".repeat(5000)), "filter is longer than 4096 bytes");
}

proptest! {
    #[test]
    fn parse_never_panics(text in "\\PC{0,200}") {
        if let Ok(f) = Filter::parse(&text) {
            let _ = f.resolve(&USERS).map(|f| f.matches(&json!({"userName": "a"}), USERS.attrs));
        }
    }

    #[test]
    fn parse_never_panics_on_filter_shaped_text(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("userName"), Just("emails"), Just("["), Just("]"), Just("("), Just(")"),
                Just(" eq "), Just(" and "), Just(" or "), Just("not "), Just("\"x\""), Just(" pr"),
                Just(".value"), Just("true"), Just("1.5"), Just("urn:a:b:c"),
            ],
            0..30,
        )
    ) {
        let text: String = parts.concat();
        if let Ok(f) = Filter::parse(&text) {
            let _ = f.resolve(&USERS);
        }
    }

    #[test]
    fn quoted_values_round_trip(value in "\\PC{0,40}") {
        let text = format!("userName eq {}", serde_json::to_string(&value).unwrap());
        let f = Filter::parse(&text).unwrap();
        prop_assert_eq!(f, Filter::Compare(path("userName", None), CompareOp::Eq, json!(value)));
    }
}
