//! `POST /scim/v2/.search` at the root (RFC 7644 §3.4.3): one list over Users, then Groups.
//!
//! The filter is parsed once and resolved against each resource type's schema. A type whose
//! schema lacks an attribute the filter names is left out of the search: none of its
//! resources can match a filter about what they do not have. `userName eq "x"` therefore
//! searches Users only, `members[value eq "x"]` Groups only, `displayName sw "a"` both, and
//! `meta.resourceType eq "Group"` picks a type. A filter that fits neither type is refused with
//! the error `/Users` gives it; an attribute both know but the store cannot filter on
//! (`title`) is refused as there too, never silently dropped.
//!
//! Paging counts across both: Users in id order, then Groups in id order; `totalResults` is
//! the sum. `attributes` and `excludedAttributes` apply to each resource, which keeps its own
//! `schemas` and `meta.resourceType`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use warden_scim::schema::{GROUPS, USERS};

use super::render::{group_json, user_json};
use super::{ListQuery, Scim, base, body_json, error, list_response, store_error};
use crate::request::App;
use warden_store::HoldsStore;

pub(super) async fn search_all(
    State(app): State<App>,
    Scim(ctx): Scim,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = body_json(&headers, &body)
        .and_then(|body| ListQuery::unresolved(&ListQuery::from_search(&body)));
    let q = match query {
        Ok(q) => q,
        Err(e) => return error(&e),
    };
    // `Err`: the type is left out, keeping why in case both are.
    let users = q.filter.clone().map(|f| f.resolve(&USERS)).transpose();
    let groups = q.filter.clone().map(|f| f.resolve(&GROUPS)).transpose();
    if let (Err(e), Err(_)) = (&users, &groups) {
        return error(e);
    }
    let base = base(&app);
    let offset = q.start - 1;
    let mut items = Vec::new();
    let mut users_total = 0;
    if let Ok(filter) = &users {
        match app
            .store()
            .scim_users(filter.as_ref(), q.start, q.count)
            .await
        {
            Ok(list) => {
                users_total = list.total;
                items.extend(
                    list.items
                        .iter()
                        .map(|u| q.projection.apply(user_json(&base, u))),
                );
            }
            Err(e) => return store_error(e, &ctx),
        }
    }
    let mut groups_total = 0;
    if let Ok(filter) = &groups {
        let start = offset.saturating_sub(users_total) + 1;
        let count = q
            .count
            .saturating_sub(u64::try_from(items.len()).unwrap_or(u64::MAX));
        let members = q.projection.wants("members");
        match app
            .store()
            .scim_groups(filter.as_ref(), start, count, members)
            .await
        {
            Ok(list) => {
                groups_total = list.total;
                items.extend(
                    list.items
                        .iter()
                        .map(|g| q.projection.apply(group_json(&base, g, members))),
                );
            }
            Err(e) => return store_error(e, &ctx),
        }
    }
    list_response(users_total + groups_total, q.start, items)
}
