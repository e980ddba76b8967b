//! The admin API's answers: keys as it shows them (never a key, never a digest), the pages and
//! records its routes return, written with `serde_json`, and its refusals as problem details.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::key::VerifiedKey;
use crate::store::{KeyError, ListedKey, ManageError};

/// A listed key's state, as `GET /keys` names it.
pub(super) fn state_of(listed: &ListedKey) -> &'static str {
    match listed.refused() {
        None => "valid",
        Some(KeyError::Revoked) => "revoked",
        Some(KeyError::Expired) => "expired",
        Some(KeyError::NotYetValid) => "not_yet_valid",
        Some(KeyError::Disabled) => "disabled",
        Some(_) => "refused",
    }
}

/// A time as the admin API writes it: RFC 3339 in UTC.
pub(super) fn time(at: Option<SystemTime>) -> Option<String> {
    at.and_then(crate::time::rfc3339)
}

/// A listed key as the admin API shows it (the `Key` schema of its document): never the key,
/// never its digest.
#[derive(Serialize)]
pub(super) struct KeyView<'a> {
    id: &'a str,
    state: &'static str,
    scopes: Vec<&'a str>,
    expires_at: Option<String>,
    rate_limit: Vec<String>,
    credits_left: Option<u64>,
    refill: Option<String>,
    identity: Option<&'a str>,
    allowed_ips: Vec<String>,
    last_used: Option<String>,
    metadata: BTreeMap<&'a str, &'a str>,
}

impl<'a> KeyView<'a> {
    pub(super) fn of(listed: &'a ListedKey) -> Self {
        let key = listed.key();
        Self {
            id: key.id(),
            state: state_of(listed),
            scopes: key.scopes().collect(),
            expires_at: time(key.expires_at()),
            rate_limit: key.rate_limits().map(|limit| limit.to_string()).collect(),
            credits_left: listed.credits_left(),
            refill: key.refill().map(|refill| refill.to_string()),
            identity: key.identity(),
            allowed_ips: key.allowed_ips().iter().map(ToString::to_string).collect(),
            last_used: time(listed.last_used()),
            metadata: key.record().metadata().collect(),
        }
    }
}

/// `GET /keys`: a page of keys, and the cursor of the next page if there is one.
#[derive(Serialize)]
pub(super) struct KeyPage<'a> {
    pub(super) keys: Vec<KeyView<'a>>,
    pub(super) next_cursor: Option<String>,
}

/// `GET /keys/{id}`: every key of an id.
#[derive(Serialize)]
pub(super) struct IdKeys<'a> {
    pub(super) id: &'a str,
    pub(super) keys: Vec<KeyView<'a>>,
}

/// `POST /keys`: the new key, shown once.
#[derive(Serialize)]
pub(super) struct Created<'a> {
    pub(super) id: &'a str,
    pub(super) scopes: &'a [String],
    pub(super) expires_at: Option<String>,
    pub(super) key: &'a str,
}

/// `POST /keys/{id}/rotate`: the successor, shown once.
#[derive(Serialize)]
pub(super) struct Rotated<'a> {
    pub(super) id: &'a str,
    pub(super) key: &'a str,
}

/// `value` as an `application/json` answer.
pub(super) fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = (status, body).into_response();
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        // The answers are maps with string keys: never refused, and never a panic if one were.
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A change's answer: `204` and its audit event, or the refusal.
pub(super) fn done(
    admin: &VerifiedKey,
    action: &'static str,
    id: &str,
    changed: Result<u64, ManageError>,
) -> Response {
    match changed {
        Ok(_) => {
            audit(admin, action, Some(id));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => failed(admin, action, Some(id), &error),
    }
}

pub(super) fn audit(admin: &VerifiedKey, action: &'static str, id: Option<&str>) {
    tracing::info!(
        target: "axum_api_key::audit",
        outcome = "admin",
        action,
        admin_key_id = admin.id(),
        key_id = id,
        "admin API"
    );
}

pub(super) fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) fn problem(
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: &str,
) -> Response {
    crate::problem::problem_response(status, slug, title, detail, None)
}

pub(super) fn bad_request(detail: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "admin-bad-request",
        "Bad request",
        detail,
    )
}

pub(super) fn failed(
    admin: &VerifiedKey,
    action: &'static str,
    id: Option<&str>,
    error: &ManageError,
) -> Response {
    let (status, slug, title, detail) = match error {
        ManageError::UnknownId => (
            StatusCode::NOT_FOUND,
            "key-id-unknown",
            "Unknown key id",
            "No key has this id.".to_owned(),
        ),
        ManageError::NoFormat => (
            StatusCode::CONFLICT,
            "keys-not-generated",
            "Keys cannot be generated",
            "This store has no key format, so it cannot issue keys.".to_owned(),
        ),
        ManageError::Superseded | ManageError::NotLive | ManageError::TooManyInGrace => (
            StatusCode::CONFLICT,
            "key-not-changeable",
            "Key cannot be changed",
            "This id has no live key to change.".to_owned(),
        ),
        ManageError::Invalid(why) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "key-change-invalid",
            "Change refused",
            why.clone(),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "key-change-unavailable",
            "Key store unavailable",
            "The keys could not be read or changed right now; try again later.".to_owned(),
        ),
    };
    if status.is_server_error() {
        tracing::error!(
            target: "axum_api_key::audit",
            outcome = "failed",
            action,
            admin_key_id = admin.id(),
            key_id = id,
            error = %error,
            "admin API"
        );
    } else {
        tracing::info!(
            target: "axum_api_key::audit",
            outcome = "refused",
            action,
            admin_key_id = admin.id(),
            key_id = id,
            reason = slug,
            "admin API"
        );
    }
    problem(status, slug, title, &detail)
}
