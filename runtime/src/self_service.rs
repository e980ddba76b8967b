//! [`self_service`]: a ready router with which a key holder reads, rotates and revokes its own
//! key.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};

use crate::extract::{KeyConfig, RequireApiKey};
use crate::key::VerifiedKey;
use crate::rejection::JsonStr;
use crate::store::{ApiKeys, KeyStore};

/// A store whose keys can be rotated and revoked through [`self_service`]: [`ApiKeys`] (its
/// records file, if it has one, written through) and `PgKeys` (feature `postgres`).
pub trait ManagedKeys: KeyStore + Clone {
    /// Issues a new key for `id` with the same scopes and limit, and lets its current keys
    /// work until `grace` has passed. Returns the new key.
    fn rotate_key(
        &self,
        id: &str,
        grace: Duration,
    ) -> impl Future<Output = Result<String, ManageError>> + Send;

    /// Revokes every key of `id`.
    fn revoke_key(&self, id: &str) -> impl Future<Output = Result<(), ManageError>> + Send;
}

/// Why a key could not be rotated or revoked.
#[derive(Debug)]
#[non_exhaustive]
pub enum ManageError {
    /// The store has no key format, so it cannot generate a key: answered with 409.
    NoFormat,
    /// The store failed (its file, its database): answered with 503; the cause is logged, never
    /// sent.
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for ManageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFormat => f.write_str("the key store has no key format to generate keys in"),
            Self::Failed(error) => write!(f, "the key store failed: {error}"),
        }
    }
}

impl std::error::Error for ManageError {}

impl ManagedKeys for ApiKeys {
    // A change blocks while it writes the records file: it runs off the async workers.
    async fn rotate_key(&self, id: &str, grace: Duration) -> Result<String, ManageError> {
        let (keys, id) = (self.clone(), id.to_owned());
        let rotated = tokio::task::spawn_blocking(move || keys.rotate(&id, grace))
            .await
            .map_err(|error| ManageError::Failed(error.into()))?;
        rotated.map_err(|error| match error.kind() {
            crate::ConfigErrorKind::NoFormat => ManageError::NoFormat,
            _ => ManageError::Failed(error.into()),
        })
    }

    async fn revoke_key(&self, id: &str) -> Result<(), ManageError> {
        let (keys, id) = (self.clone(), id.to_owned());
        let revoked = tokio::task::spawn_blocking(move || keys.revoke(&id))
            .await
            .map_err(|error| ManageError::Failed(error.into()))?;
        revoked
            .map(|_| ())
            .map_err(|error| ManageError::Failed(error.into()))
    }
}

#[cfg(feature = "postgres")]
impl ManagedKeys for crate::PgKeys {
    async fn rotate_key(&self, id: &str, grace: Duration) -> Result<String, ManageError> {
        self.rotate(id, grace).await.map_err(|error| match error {
            crate::PgKeysError::NoFormat => ManageError::NoFormat,
            other => ManageError::Failed(other.into()),
        })
    }

    async fn revoke_key(&self, id: &str) -> Result<(), ManageError> {
        self.revoke(id)
            .await
            .map(|_| ())
            .map_err(|error| ManageError::Failed(error.into()))
    }
}

/// A router for the holder of a key, authenticated by that key through the guard `C`:
///
/// | route | answer |
/// | --- | --- |
/// | `GET /keys/me` | `200`, the key's `id`, `scopes`, `expires_at` (RFC 3339 or `null`) and `rate_limit` (or `null`); never the key |
/// | `POST /keys/me/rotate` | `200`, the new `key`, once, with `Cache-Control: no-store`, and `expires_at`, when the presented key stops working: it keeps working for `grace` |
/// | `DELETE /keys/me` | `204`; every key of the id is revoked |
///
/// A store without a key format answers a rotation with `409`; a store that fails, `503` (the
/// cause is logged, never sent). Each route is an audit event (`INFO`, target
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
    Router::new()
        .route("/keys/me", get(read::<C, S>).delete(revoke::<C, S>))
        .route(
            "/keys/me/rotate",
            post(move |guard, key, store| rotate::<C, S>(guard, key, store, grace)),
        )
}

async fn read<C: KeyConfig, S: KeyStore>(_: RequireApiKey<C, S>, key: VerifiedKey) -> Response {
    audit("read", &key);
    json(StatusCode::OK, &describe(&key, key.expires_at(), None))
}

async fn rotate<C: KeyConfig, S: ManagedKeys>(
    _: RequireApiKey<C, S>,
    key: VerifiedKey,
    State(store): State<S>,
    grace: Duration,
) -> Response {
    match store.rotate_key(key.id(), grace).await {
        Ok(new) => {
            audit("rotated", &key);
            // The presented key now ends with the grace period, or earlier if it already did.
            let deadline = std::time::SystemTime::now().checked_add(grace);
            let ends = match (key.expires_at(), deadline) {
                (Some(expires), Some(deadline)) => Some(expires.min(deadline)),
                (expires, deadline) => expires.or(deadline),
            };
            let mut response = json(StatusCode::OK, &describe(&key, ends, Some(&new)));
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
) -> Response {
    match store.revoke_key(key.id()).await {
        Ok(()) => {
            audit("revoked", &key);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => failed(&key, "revoke", &error),
    }
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
    match key.rate_limit() {
        Some(limit) => {
            let _ = write!(body, ",\"rate_limit\":{}", JsonStr(&limit.to_string()));
        }
        None => body.push_str(",\"rate_limit\":null"),
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
    let (status, title, detail) = match error {
        ManageError::NoFormat => (
            StatusCode::CONFLICT,
            "Keys cannot be generated",
            "This service cannot issue new keys; ask its operators for one.",
        ),
        ManageError::Failed(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
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
    let body = format!(
        "{{\"type\":\"about:blank\",\"title\":{},\"status\":{},\"detail\":{}}}",
        JsonStr(title),
        status.as_u16(),
        JsonStr(detail)
    );
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}
