//! Managing keys while the service runs: rotate with a grace period, revoke, reload.
//!
//! ```sh
//! cargo run --example rotation
//! ```
//!
//! Partner keys come from a records file (`KEYS_FILE`, e.g. one written by `axum-api-key
//! generate`); with none, the example makes a demo partner key in the `demo` key format. An
//! admin key, printed at start, guards the admin routes. `PORT` overrides the port (3004).
//!
//! - `GET /data`: any partner key.
//! - `POST /admin/rotate/{id}?grace_secs=60`: issues a new key for `id`; the old one keeps working
//!   until the grace period ends.
//! - `POST /admin/revoke/{id}`: refuses the id's keys from the next request on.
//! - `POST /admin/reload`, or `kill -HUP <pid>`: reads `KEYS_FILE` again.
//!
//! With `KEYS_FILE`, rotations and revocations are written to the file before they answer, so
//! they survive a restart.

#![allow(clippy::print_stdout)]

use std::error::Error;
use std::time::{Duration, SystemTime};

use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_api_key::{
    ApiKeys, ConfigError, Key, KeyError, KeyFormat, KeyStore, VerifiedKey, api_key,
};
use serde_json::{Value, json};

/// Admin keys, apart from partner keys.
#[derive(Clone)]
struct AdminKeys(ApiKeys);

impl KeyStore for AdminKeys {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
        self.0.verify(key.as_bytes())
    }
}

#[derive(Clone, FromRef)]
struct AppState {
    partners: ApiKeys,
    admins: AdminKeys,
}

#[api_key]
async fn data(key: VerifiedKey) -> Json<Value> {
    let expires = key.expires_at().map(|at| {
        format!(
            "{:?}",
            at.duration_since(SystemTime::now()).unwrap_or_default()
        )
    });
    Json(json!({ "data": "secret information", "key": key.id(), "expires_in": expires }))
}

#[derive(serde::Deserialize)]
struct Grace {
    grace_secs: Option<u64>,
}

type Answer = Result<Json<Value>, (StatusCode, String)>;

/// Runs a change of the store off the async workers: with a records file, a change writes and
/// flushes the file, and a reload may wait for a file being rewritten to settle.
async fn blocking<T: Send + 'static>(
    change: impl FnOnce() -> Result<T, ConfigError> + Send + 'static,
    status: StatusCode,
) -> Result<T, (StatusCode, String)> {
    tokio::task::spawn_blocking(change)
        .await
        .map_err(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the change did not finish".to_owned(),
            )
        })?
        .map_err(|error| (status, error.to_string()))
}

#[api_key(store = AdminKeys, header = "x-admin-key", state = AppState)]
async fn rotate(
    State(partners): State<ApiKeys>,
    Path(id): Path<String>,
    Query(grace): Query<Grace>,
) -> Answer {
    let grace = Duration::from_secs(grace.grace_secs.unwrap_or(60));
    let rotated = id.clone();
    let new = blocking(
        move || partners.rotate(&rotated, grace),
        StatusCode::NOT_FOUND,
    )
    .await?;
    Ok(Json(
        json!({ "id": id, "new_key": new, "old_keys_valid_for_secs": grace.as_secs() }),
    ))
}

#[api_key(store = AdminKeys, header = "x-admin-key", state = AppState)]
async fn revoke(State(partners): State<ApiKeys>, Path(id): Path<String>) -> Answer {
    let revoking = id.clone();
    let revoked = blocking(move || partners.revoke(&revoking), StatusCode::NOT_FOUND).await?;
    Ok(Json(json!({ "id": id, "revoked_keys": revoked })))
}

#[api_key(store = AdminKeys, header = "x-admin-key", state = AppState)]
async fn reload(State(partners): State<ApiKeys>) -> Answer {
    let keys = blocking(move || partners.reload(), StatusCode::CONFLICT).await?;
    Ok(Json(json!({ "keys": keys })))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    axum_api_key_examples::load_dotenv()?;
    let format = KeyFormat::new("demo")?;
    let (partners, demo_key) = match std::env::var("KEYS_FILE") {
        Ok(path) => (ApiKeys::from_file(path)?, None),
        Err(_) => {
            let key = format.generate();
            let keys = ApiKeys::new()
                .with_format(format.clone())
                .try_with(Key::new("partner-a", &key))?;
            (keys, Some(key))
        }
    };
    let admin_key = KeyFormat::new("admin")?.generate();
    let admins = AdminKeys(ApiKeys::new().try_with_key("admin", &admin_key)?);

    #[cfg(unix)]
    {
        let partners = partners.clone();
        tokio::spawn(async move {
            let Ok(mut hangups) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hangups.recv().await.is_some() {
                let reloading = partners.clone();
                let reloaded = tokio::task::spawn_blocking(move || reloading.reload()).await;
                match reloaded.unwrap_or_else(|_| partners.reload()) {
                    Ok(keys) => println!("reloaded: {keys} keys"),
                    Err(error) => println!("reload refused, keys unchanged: {error}"),
                }
            }
        });
    }

    let app = Router::new()
        .route("/data", get(data))
        .route("/admin/rotate/{id}", post(rotate))
        .route("/admin/revoke/{id}", post(revoke))
        .route("/admin/reload", post(reload))
        .with_state(AppState { partners, admins });

    let listener = axum_api_key_examples::bind(3004).await?;
    let address = listener.local_addr()?;
    println!(
        "rotation example listening on http://{address} (pid {})",
        std::process::id()
    );
    println!();
    println!("Admin key, in memory only: {admin_key}");
    if let Some(key) = demo_key {
        println!("Partner key `partner-a`, in memory only: {key}");
        println!();
        println!("    curl -H 'x-api-key: {key}' http://{address}/data");
        println!(
            "    curl -X POST -H 'x-admin-key: {admin_key}' 'http://{address}/admin/rotate/partner-a?grace_secs=60'"
        );
        println!("    # both keys work for 60 seconds, then only the new one");
        println!(
            "    curl -X POST -H 'x-admin-key: {admin_key}' http://{address}/admin/revoke/partner-a"
        );
    }
    axum_api_key_examples::serve(listener, app).await
}
