//! [`router`]: an admin API over HTTP, with which support staff and back-office tools create,
//! list, rotate, suspend, top up and revoke any customer's keys, each with a narrowly scoped
//! admin key of its own (feature `admin`).

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::StatusCode;
use serde::Deserialize;

use crate::extract::RequireApiKey;
use crate::guard_config::KeyConfig;
use crate::key::VerifiedKey;
use crate::store::{ListedKey, ManageError};
use crate::{RateLimit, Refill};

mod answer;
mod body;
#[cfg(feature = "openapi")]
mod openapi;
mod store;

use answer::{
    Created, IdKeys, KeyPage, KeyView, Rotated, audit, bad_request, done, failed, json, no_store,
    problem, state_of,
};
use body::{CreateBody, ListQuery, read_body};
#[cfg(feature = "openapi")]
pub use openapi::{
    AdminKey, AdminKeyPage, AdminKeysOfId, CreatedKey, CreditsRequest, NewKeyRequest,
    RotateRequest, document,
};
use store::new_id;
pub use store::{AdminKeys, NewKey};

/// The largest request body an admin route reads: far above any key's description.
pub const MAX_BODY: usize = 64 * 1024;

/// The most keys a page of `GET /keys` holds.
pub const MAX_PAGE: usize = 1_000;

/// The admin API, guarded by `R` for reading and `W` for changes (two `#[api_key(scopes =
/// [...])]` guard types), over the store `S`:
///
/// | route | guard | answer |
/// | --- | --- | --- |
/// | `GET /keys?prefix=&state=&identity=&limit=&cursor=` | `R` | `200`, `{"keys": [...], "next_cursor": "…" or null}`: each key's `id`, `state` (`valid`, `revoked`, `expired`, `not_yet_valid`, `disabled`), `scopes`, `expires_at`, `rate_limit`, `credits_left`, `refill`, `identity`, `allowed_ips`, `last_used`; sorted by id, `limit` per page (100 by default, at most [`MAX_PAGE`]) |
/// | `GET /keys/{id}` | `R` | `200`, `{"id", "keys": [...]}`: every key of the id (a rotated one beside its successor); `404` for none |
/// | `POST /keys` | `W` | `201`, the new key's record and the `key`, once, with `Cache-Control: no-store`; the body names `id`, `scopes`, `expires_at` (RFC 3339), `rate_limit` (a list), `credits`, `refill`, `identity`, `allowed_ips`, each optional |
/// | `POST /keys/{id}/rotate` | `W` | `200`, the new `key`, once; the body may name `grace_seconds` (0 by default) |
/// | `DELETE /keys/{id}` | `W` | `204`, every key of the id revoked; again, `204` (idempotent) |
/// | `PUT /keys/{id}/disabled` / `DELETE /keys/{id}/disabled` | `W` | `204`, suspended / enabled again; idempotent |
/// | `PUT /keys/{id}/credits` | `W` | `204`; the body is `{"credits": 10000, "refill": "10000/month"}` (`refill` optional) |
/// | `PUT /keys/{id}/rate_limit` | `W` | `204`; the body is the plan, `["10/s", "100000/day"]` (`[]` for none) |
/// | `PUT /keys/{id}/scopes` | `W` | `204`; the body is the scopes, `["orders:read"]`, each one the admin key holds |
/// | `PUT /keys/{id}/metadata` | `W` | `204`; the body is every field, `{"owner": "Acme Ltd"}` (`{}` for none), at most 64 of up to 1 KiB |
///
/// A key is never answered but the one just created or rotated. **An admin key cannot create
/// a key with, or give a key, a scope it does not hold itself** (`403`, naming the scopes): a
/// support tool with `keys:write` and `orders:read` issues `orders:read` keys, never `admin`
/// ones. Nor can it rotate a key holding a scope it lacks (the new key is handed to it), or
/// create a key under an id that exists (`422`). Every
/// change is an audit event (`INFO`, target `axum_api_key::audit`) naming the admin key's id,
/// the action and the key id; refusals are `application/problem+json` (`400` for a body that
/// is not what the route reads, `404` for an unknown id, `409` for a store that cannot
/// generate keys, `422` for a plan the store refuses, `503` for a store that fails, its cause
/// logged and never sent). Bodies are read up to [`MAX_BODY`].
///
/// ```
/// use axum::Router;
/// use axum_api_key::{admin, api_key, ApiKeys, KeyFormat};
///
/// #[api_key(scopes = ["keys:read"])]
/// struct AdminRead;
///
/// #[api_key(scopes = ["keys:write"])]
/// struct AdminWrite;
///
/// let keys = ApiKeys::new().with_format(KeyFormat::new("myapp").unwrap());
/// let app: Router = Router::new()
///     .nest("/admin", admin::router::<AdminRead, AdminWrite, ApiKeys, _>())
///     .with_state(keys);
/// ```
pub fn router<R, W, S, St>() -> Router<St>
where
    R: KeyConfig,
    W: KeyConfig,
    S: AdminKeys + FromRef<St>,
    St: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/keys", get(list::<R, S>).post(create::<W, S>))
        .route("/keys/{id}", get(show::<R, S>).delete(revoke::<W, S>))
        .route("/keys/{id}/rotate", post(rotate::<W, S>))
        .route(
            "/keys/{id}/disabled",
            put(disable::<W, S>).delete(enable::<W, S>),
        )
        .route("/keys/{id}/credits", put(credits::<W, S>))
        .route("/keys/{id}/rate_limit", put(rate_limit::<W, S>))
        .route("/keys/{id}/scopes", put(scopes::<W, S>))
        .route("/keys/{id}/metadata", put(metadata::<W, S>))
        // A body past the cap is refused before it is buffered.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

const STATES: [&str; 5] = ["valid", "revoked", "expired", "not_yet_valid", "disabled"];

async fn list<R: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<R, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(query) = ListQuery::parse(query.as_deref()) else {
        return bad_request(
            "The query names `prefix`, `state`, `identity`, `limit` and `cursor`, each once.",
        );
    };
    if let Some(state) = &query.state
        && !STATES.contains(&state.as_str())
    {
        return bad_request("`state` is one of valid, revoked, expired, not_yet_valid, disabled.");
    }
    let limit = match query.limit.as_deref().map(str::parse::<usize>) {
        None => 100,
        Some(Ok(limit)) if (1..=MAX_PAGE).contains(&limit) => limit,
        Some(_) => return bad_request("`limit` is from 1 to 1000."),
    };
    let skip = match query.cursor.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(skip)) => skip,
        Some(Err(_)) => return bad_request("`cursor` is the `next_cursor` of an earlier page."),
    };
    let listed = match store.list_keys().await {
        Ok(listed) => listed,
        Err(error) => return failed(&admin, "list", None, &error),
    };
    let matching: Vec<&ListedKey> = listed
        .iter()
        .filter(|listed| {
            query
                .prefix
                .as_deref()
                .is_none_or(|prefix| listed.key().id().starts_with(prefix))
                && query
                    .state
                    .as_deref()
                    .is_none_or(|state| state_of(listed) == state)
                && query
                    .identity
                    .as_deref()
                    .is_none_or(|identity| listed.key().identity() == Some(identity))
        })
        .collect();
    let page = KeyPage {
        keys: matching
            .iter()
            .skip(skip)
            .take(limit)
            .map(|listed| KeyView::of(listed))
            .collect(),
        next_cursor: skip
            .checked_add(limit)
            .filter(|next| *next < matching.len())
            .map(|next| next.to_string()),
    };
    audit(&admin, "list", None);
    json(StatusCode::OK, &page)
}

async fn show<R: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<R, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
) -> Response {
    let listed = match store.list_keys().await {
        Ok(listed) => listed,
        Err(error) => return failed(&admin, "show", Some(&id), &error),
    };
    let of_id: Vec<&ListedKey> = listed
        .iter()
        .filter(|listed| listed.key().id() == id)
        .collect();
    if of_id.is_empty() {
        return failed(&admin, "show", Some(&id), &ManageError::UnknownId);
    }
    let keys = IdKeys {
        id: &id,
        keys: of_id.iter().map(|listed| KeyView::of(listed)).collect(),
    };
    audit(&admin, "show", Some(&id));
    json(StatusCode::OK, &keys)
}

async fn create<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    body: Bytes,
) -> Response {
    let body: CreateBody = match read_body(&body) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let new = match body.new_key() {
        Ok(new) => new,
        Err(why) => return bad_request(&why),
    };
    // An admin key widens nothing: every scope it gives, it holds.
    if let Some(refused) = widening(&admin, &new.scopes, "create") {
        return refused;
    }
    let mut new = new;
    let id = new.id.get_or_insert_with(new_id).clone();
    // A new key never joins an id that exists: it would share that id's budgets and credits,
    // and pass for it wherever the application trusts a key by its id.
    match store.list_keys().await {
        Ok(listed) if listed.iter().any(|listed| listed.key().id() == id) => {
            return failed(
                &admin,
                "create",
                Some(&id),
                &ManageError::Invalid(format!("key `{id}` exists already; rotate it instead")),
            );
        }
        Ok(_) => {}
        Err(error) => return failed(&admin, "create", Some(&id), &error),
    }
    let scopes = new.scopes.clone();
    let expires_at = new.expires_at;
    match store.create_key(new).await {
        Ok(key) => {
            audit(&admin, "create", Some(&id));
            let created = Created {
                id: &id,
                scopes: &scopes,
                expires_at: answer::time(expires_at),
                key: &key,
            };
            no_store(json(StatusCode::CREATED, &created))
        }
        Err(error) => failed(&admin, "create", Some(&id), &error),
    }
}

/// `POST /keys/{id}/rotate`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    grace_seconds: u64,
}

async fn rotate<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body: RotateBody = if body.is_empty() {
        RotateBody::default()
    } else {
        match read_body(&body) {
            Ok(body) => body,
            Err(error) => return error.into_response(),
        }
    };
    // The new key holds the id's scopes and is handed to the admin: an admin key may rotate
    // only keys whose every scope it holds, or a rotation would hand it more than it has.
    let listed = match store.list_keys().await {
        Ok(listed) => listed,
        Err(error) => return failed(&admin, "rotate", Some(&id), &error),
    };
    let scopes: Vec<String> = listed
        .iter()
        .filter(|listed| listed.key().id() == id)
        .flat_map(|listed| listed.key().scopes().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    if let Some(refused) = widening(&admin, &scopes, "rotate") {
        return refused;
    }
    // A grace no clock can hold is capped where the store caps it.
    let grace = Duration::from_secs(body.grace_seconds.min(10 * 365 * 86_400));
    match store.rotate_key(&id, grace).await {
        Ok(key) => {
            audit(&admin, "rotate", Some(&id));
            no_store(json(StatusCode::OK, &Rotated { id: &id, key: &key }))
        }
        Err(error) => failed(&admin, "rotate", Some(&id), &error),
    }
}

async fn revoke<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
) -> Response {
    done(&admin, "revoke", &id, store.revoke_key(&id).await)
}

async fn disable<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
) -> Response {
    set_disabled(&admin, &store, &id, true).await
}

async fn enable<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
) -> Response {
    set_disabled(&admin, &store, &id, false).await
}

async fn set_disabled<S: AdminKeys>(
    admin: &VerifiedKey,
    store: &S,
    id: &str,
    disabled: bool,
) -> Response {
    let action = if disabled { "disable" } else { "enable" };
    done(admin, action, id, store.set_disabled(id, disabled).await)
}

/// `PUT /keys/{id}/credits`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditsBody {
    credits: u64,
    refill: Option<String>,
}

async fn credits<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body: CreditsBody = match read_body(&body) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    if body.credits > crate::MAX_CREDITS {
        return bad_request("`credits` is at most 2^53.");
    }
    let refill = match body.refill.as_deref().map(str::parse::<Refill>).transpose() {
        Ok(refill) => refill,
        Err(error) => return bad_request(&format!("`refill`: {error}")),
    };
    done(
        &admin,
        "credits",
        &id,
        store.set_key_credits(&id, body.credits, refill).await,
    )
}

async fn rate_limit<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let texts: Vec<String> = match read_body(&body) {
        Ok(texts) => texts,
        Err(error) => return error.into_response(),
    };
    let limits = match texts
        .iter()
        .map(|text| text.parse::<RateLimit>())
        .collect::<Result<Vec<_>, _>>()
        .and_then(|limits| crate::limit::check_limits(&limits).map(|()| limits))
    {
        Ok(limits) => limits,
        Err(error) => return bad_request(&format!("`rate_limit`: {error}")),
    };
    done(
        &admin,
        "rate_limit",
        &id,
        store.set_key_rate_limits(&id, limits).await,
    )
}

async fn scopes<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let scopes: Vec<String> = match read_body(&body) {
        Ok(scopes) => scopes,
        Err(error) => return error.into_response(),
    };
    if let Some(refused) = widening(&admin, &scopes, "scopes") {
        return refused;
    }
    done(
        &admin,
        "scopes",
        &id,
        store.set_key_scopes(&id, scopes).await,
    )
}

async fn metadata<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields: std::collections::BTreeMap<String, String> = match read_body(&body) {
        Ok(fields) => fields,
        Err(error) => return error.into_response(),
    };
    if fields.len() > 64
        || fields
            .iter()
            .any(|(name, text)| name.is_empty() || name.len() > 1024 || text.len() > 1024)
    {
        return bad_request("`metadata` holds at most 64 fields, each named, of up to 1 KiB.");
    }
    done(
        &admin,
        "metadata",
        &id,
        store.set_key_metadata(&id, fields).await,
    )
}

/// The refusal of a change that would give a scope the admin key does not hold itself.
fn widening(admin: &VerifiedKey, scopes: &[String], action: &'static str) -> Option<Response> {
    let lacking: Vec<&str> = scopes
        .iter()
        .map(String::as_str)
        .filter(|scope| !admin.has_scope(scope))
        .collect();
    if lacking.is_empty() {
        return None;
    }
    tracing::warn!(
        target: "axum_api_key::audit",
        outcome = "refused",
        action,
        admin_key_id = admin.id(),
        scopes = ?lacking,
        "an admin key asked to give scopes it does not hold"
    );
    let detail = format!(
        "This admin key cannot give scopes it does not hold: {}.",
        lacking.join(", ")
    );
    Some(problem(
        StatusCode::FORBIDDEN,
        "scope-not-held",
        "Scope not held",
        &detail,
    ))
}
