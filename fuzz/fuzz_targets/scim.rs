//! SCIM input from an identity provider: filters, PATCH bodies (parsed and applied) and
//! resource bodies must never panic, whatever arrives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_scim::schema::{GROUPS, USERS};
use warden_scim::{Filter, Patch, canonical};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(filter) = Filter::parse(text) {
        for schema in [&USERS, &GROUPS] {
            if let Ok(f) = filter.clone().resolve(schema) {
                let _ = f.matches(&serde_json::json!({"userName": "a", "emails": [{"value": "b"}]}), schema.attrs);
            }
        }
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    for schema in [&USERS, &GROUPS] {
        let _ = canonical(schema, &body);
        if let Ok(patch) = Patch::parse(schema, &body) {
            let mut doc = serde_json::json!({
                "userName": "alice", "displayName": "Ops",
                "emails": [{"value": "a@x", "type": "work", "primary": true}],
                "members": [{"value": "u1"}],
            });
            if patch.apply(schema, &mut doc).is_ok() {
                let _ = canonical(schema, &doc);
            }
        }
    }
});
