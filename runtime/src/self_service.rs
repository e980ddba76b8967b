//! [`self_service`]: a ready router with which a key holder reads, rotates and revokes its own
//! key.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::extract::RequireApiKey;
use crate::guard_config::KeyConfig;
use crate::key::VerifiedKey;
use crate::problem::JsonStr;
use crate::store::{KeyDigest, ManageError, ManagedKeys};

mod budget;

use budget::RotationBudget;

/// How many rotations (refused ones included) the holders of one id may ask of one
/// [`self_service`] router in an hour. Each rotation makes a key and is a write where the keys
/// live (a records file rewritten whole and flushed to disk, or a database transaction), so a
/// leaked key must not buy an endless stream of them; past the budget, a rotation is answered
/// `429 Too Many Requests` with `Retry-After` and makes nothing, until an hour after the id's
/// first rotation of the window. Reading the key is not counted, and a revocation is never
/// refused: whoever spent the id's rotations, the holder of a leaked key can still end it (and
/// each key is revoked once, so revocations are bounded by the keys made). Counted in each
/// process, for each router: `n` instances let an id make `n` times as many.
pub const MAX_SELF_SERVICE_ROTATIONS: u32 = 20;

/// A router for the holder of a key, authenticated by that key through the guard `C`:
///
/// | route | answer |
/// | --- | --- |
/// | `GET /keys/me` | `200`, the key's `id`, `scopes`, `expires_at` (RFC 3339 or `null`), `rate_limit` (or `null`), `last_used` (RFC 3339 or `null`) and `credits_left` (or `null`); never the key |
/// | `POST /keys/me/rotate` | `200`, the new `key`, once, with `Cache-Control: no-store`, and `expires_at`, when the presented key stops working: it keeps working for `grace`, or until its own expiry if sooner |
/// | `DELETE /keys/me` | `204`; the presented key is revoked, and no other key of its id |
///
/// Every change acts on the key the request presented, and none widens it: the successor has
/// the presented key's scopes, limit and expiry. A key rotated already (in its grace period)
/// answers a rotation with `409`, and so does a store without a key format; a key that stopped
/// being live meanwhile, `403`; a store that fails, `503` (the cause is logged, never sent). Each route is an audit event (`INFO`, target
/// `axum_api_key::audit`) with the key's id. Nest it anywhere:
///
/// ```
/// use std::time::Duration;
/// use axum::Router;
/// use axum_api_key::{api_key, self_service, ApiKeys, KeyFormat};
///
/// #[api_key]
/// struct ApiAccess;
///
/// let keys = ApiKeys::new().with_format(KeyFormat::new("myapp").unwrap());
/// let app: Router = Router::new()
///     .nest("/account", self_service::<ApiAccess, ApiKeys, _>(Duration::from_secs(3600)))
///     .with_state(keys);
/// // GET /account/keys/me, POST /account/keys/me/rotate, DELETE /account/keys/me
/// ```
pub fn self_service<C, S, St>(grace: Duration) -> Router<St>
where
    C: KeyConfig,
    S: ManagedKeys + FromRef<St>,
    St: Clone + Send + Sync + 'static,
{
    let budget = Arc::new(RotationBudget::default());
    Router::new()
        .route("/keys/me", get(read::<C, S>).delete(revoke::<C, S>))
        .route(
            "/keys/me/rotate",
            post(move |guard, key, store, parts| {
                rotate::<C, S>(guard, key, store, parts, grace, budget)
            }),
        )
}

async fn read<C: KeyConfig, S: ManagedKeys>(
    _: RequireApiKey<C, S>,
    key: VerifiedKey,
    State(store): State<S>,
) -> Response {
    audit("read", &key);
    let limits = store.rate_limits();
    let seen = limits.uses().get(key.id()).map(|(at, _)| at);
    let last_used = key.last_used().max(seen);
    let credits_left = key.record().credits().map(|credits| {
        let now = std::time::SystemTime::now();
        credits
            .base(now)
            .saturating_sub(
                limits
                    .credit_table()
                    .spent(key.record().counted_as(), credits, now),
            )
    });
    let mut body = describe(&key, key.expires_at(), None);
    body.pop();
    match last_used.and_then(crate::time::rfc3339) {
        Some(at) => {
            let _ = write!(body, ",\"last_used\":{}", JsonStr(&at));
        }
        None => body.push_str(",\"last_used\":null"),
    }
    match credits_left {
        Some(left) => {
            let _ = write!(body, ",\"credits_left\":{left}");
        }
        None => body.push_str(",\"credits_left\":null"),
    }
    body.push('}');
    json(StatusCode::OK, &body)
}

/// The digest of the key the request presented through `C`'s sources: what the guard just
/// accepted, and what a change at the holder's request acts on.
fn presented<C: KeyConfig>(parts: &Parts) -> Option<KeyDigest> {
    crate::extract::presented_digest(parts, C::CONFIG.sources())
}

async fn rotate<C: KeyConfig, S: ManagedKeys>(
    _: RequireApiKey<C, S>,
    key: VerifiedKey,
    State(store): State<S>,
    parts: Parts,
    grace: Duration,
    budget: Arc<RotationBudget>,
) -> Response {
    if let Some(refused) = spend(&budget, &key) {
        return refused;
    }
    let Some(digest) = presented::<C>(&parts) else {
        return failed(&key, "rotate", &ManageError::NotLive);
    };
    match store.rotate_presented(&digest, grace).await {
        Ok(rotation) => {
            audit("rotated", &key);
            let ends = Some(rotation.presented_expires_at());
            let mut response = json(StatusCode::OK, &describe(&key, ends, Some(rotation.key())));
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => failed(&key, "rotate", &error),
    }
}

async fn revoke<C: KeyConfig, S: ManagedKeys>(
    _: RequireApiKey<C, S>,
    key: VerifiedKey,
    State(store): State<S>,
    parts: Parts,
) -> Response {
    let Some(digest) = presented::<C>(&parts) else {
        return failed(&key, "revoke", &ManageError::NotLive);
    };
    match store.revoke_presented(&digest).await {
        Ok(()) => {
            audit("revoked", &key);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => failed(&key, "revoke", &error),
    }
}

/// Counts a rotation asked by `key`'s holder against its id's budget: `Some` `429` to answer
/// when the id has made its rotations for the hour. The first refusal of an id's hour is a
/// warning, the rest are at DEBUG, so a holder pressing on cannot flood the log.
fn spend(budget: &RotationBudget, key: &VerifiedKey) -> Option<Response> {
    let wait = budget
        .spend(key.id(), MAX_SELF_SERVICE_ROTATIONS, Instant::now())
        .err()?;
    if crate::limit::first_in_window(&("self-service rotations", key.id()), wait) {
        tracing::warn!(
            target: "axum_api_key::audit",
            outcome = "refused",
            action = "rotate",
            key_id = key.id(),
            "self-service: the id made as many rotations this hour as it may"
        );
    } else {
        tracing::debug!(
            target: "axum_api_key::audit",
            outcome = "refused",
            action = "rotate",
            key_id = key.id(),
            "self-service: the id made as many rotations this hour as it may"
        );
    }
    let mut response = crate::problem::problem_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rotation-budget-spent",
        "Too many rotations this hour",
        "This key's id has made as many rotations this hour as it may; try again after the \
         time Retry-After gives. Revoking the key is always possible.",
        None,
    );
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        HeaderValue::from(crate::limit::seconds_up(wait)),
    );
    Some(response)
}

fn audit(outcome: &'static str, key: &VerifiedKey) {
    tracing::info!(
        target: "axum_api_key::audit",
        outcome,
        key_id = key.id(),
        "self-service"
    );
}

/// The key as its holder may see it, ending at `expires`, with the new key after a rotation.
fn describe(
    key: &VerifiedKey,
    expires: Option<std::time::SystemTime>,
    new: Option<&str>,
) -> String {
    let mut body = format!("{{\"id\":{}", JsonStr(key.id()));
    body.push_str(",\"scopes\":[");
    for (i, scope) in key.scopes().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let _ = write!(body, "{comma}{}", JsonStr(scope));
    }
    body.push(']');
    match expires.and_then(crate::time::rfc3339) {
        Some(at) => {
            let _ = write!(body, ",\"expires_at\":{}", JsonStr(&at));
        }
        None => body.push_str(",\"expires_at\":null"),
    }
    // Several limits read as the database holds them: `10/s, 100000/day`.
    match crate::limit::limits_text(key.rate_limits()) {
        limits if limits.is_empty() => body.push_str(",\"rate_limit\":null"),
        limits => {
            let _ = write!(body, ",\"rate_limit\":{}", JsonStr(&limits));
        }
    }
    if let Some(new) = new {
        let _ = write!(body, ",\"key\":{}", JsonStr(new));
    }
    body.push('}');
    body
}

fn json(status: StatusCode, body: &str) -> Response {
    let mut response = (status, body.to_owned()).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn failed(key: &VerifiedKey, action: &'static str, error: &ManageError) -> Response {
    let (status, slug, title, detail) = match error {
        ManageError::NoFormat => (
            StatusCode::CONFLICT,
            "keys-not-generated",
            "Keys cannot be generated",
            "This service cannot issue new keys; ask its operators for one.",
        ),
        ManageError::Superseded => (
            StatusCode::CONFLICT,
            "key-already-rotated",
            "Key already rotated",
            "This key has a successor already; rotate the successor instead.",
        ),
        ManageError::TooManyInGrace => (
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-rotations",
            "Too many rotations",
            "This key's id has as many rotated keys still working as it may; rotate again once \
             one of them has ended or been revoked.",
        ),
        ManageError::NotLive | ManageError::UnknownId | ManageError::Invalid(_) => (
            StatusCode::FORBIDDEN,
            "key-not-changeable",
            "Key cannot be changed",
            "This key is revoked, expired or not valid yet.",
        ),
        ManageError::Failed(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "key-change-unavailable",
            "Key store unavailable",
            "The key could not be changed right now; try again later.",
        ),
    };
    tracing::error!(
        target: "axum_api_key::audit",
        outcome = "failed",
        action,
        key_id = key.id(),
        error = %error,
        "self-service"
    );
    crate::problem::problem_response(status, slug, title, detail, None)
}
