//! The quickstart: three routes, two of them protected by an API key.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Keys come from `API_KEYS` (e.g. `API_KEYS="partner-a=pa_7Qm2xY9wLkV3rT8s"`), or from a `.env`
//! file in the working directory. With neither, the server generates a demo key (`demo_…`, with
//! a checksum), prints it once with a `curl` line to try it, and keeps it in memory only. `PORT` overrides the port
//! (3000).
//!
//! - `GET /data`: `#[api_key]`, the header `x-api-key`, 401 when the key is missing or wrong.
//! - `GET /protected`: `#[api_key(status = 403)]`, answers with the id of the key.
//! - `GET /health`: open.

#![allow(clippy::print_stdout)]

use std::error::Error;

use axum::{Json, Router, routing::get};
use axum_api_key::{ApiKeys, ConfigErrorKind, VerifiedKey, api_key};
use serde_json::{Value, json};

/// Returns data only callers with a valid key may see.
#[api_key]
async fn get_data() -> Json<Value> {
    Json(json!({ "data": "secret information" }))
}

/// Greets the caller by the id of its key; a missing or wrong key gets 403.
#[api_key(status = 403)]
async fn protected(key: VerifiedKey) -> Json<Value> {
    Json(json!({ "message": format!("access granted to {}", key.id()) }))
}

async fn health() -> &'static str {
    "ok"
}

/// The quickstart's router, over any key store.
pub(crate) fn app(keys: ApiKeys) -> Router {
    Router::new()
        .route("/data", get(get_data))
        .route("/protected", get(protected))
        .route("/health", get(health))
        .with_state(keys)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    axum_api_key_examples::load_dotenv()?;
    let (keys, demo_key) = match ApiKeys::from_env("API_KEYS") {
        Ok(keys) => (keys, None),
        Err(error) if error.kind() == ConfigErrorKind::NotSet => {
            let key = axum_api_key::KeyFormat::new("demo")?.generate();
            (ApiKeys::new().try_with_key("demo", &key)?, Some(key))
        }
        Err(error) => return Err(error.into()),
    };

    let listener = axum_api_key_examples::bind(3000).await?;
    let address = listener.local_addr()?;
    println!("quickstart listening on http://{address}");
    match demo_key {
        Some(key) => {
            println!();
            println!("API_KEYS is not set, so this run uses a demo key, kept in memory only:");
            println!();
            println!("    {key}");
            println!();
            println!("Try it:");
            println!("    curl -H 'x-api-key: {key}' http://{address}/data");
            println!("    curl -H 'x-api-key: {key}' http://{address}/protected");
            println!("    curl -i http://{address}/data    # no key: 401");
            println!();
            println!(
                "Set API_KEYS (\"id=key,id2=key2\") or write it in .env to use your own keys."
            );
        }
        None => println!("serving {} key(s) from API_KEYS", keys.len()),
    }
    axum_api_key_examples::serve(listener, app(keys)).await
}
