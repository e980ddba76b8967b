//! The quickstart: three routes, two of them protected by an API key.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Keys come from `API_KEYS` (e.g. `API_KEYS="partner-a=pa_7Qm2xY9wLkV3rT8s"`), or from a `.env`
//! file in the working directory. With neither, the server generates a demo key (`demo_…`, with
//! a checksum, limited to 60 requests a minute), prints it once with `curl` lines to try it, and
//! keeps it in memory only. `PORT` overrides the port (3000).
//!
//! Responses to a rate-limited key carry `RateLimit-Policy` and `RateLimit`; past the limit the
//! answer is `429` with `Retry-After`. Twenty-odd wrong keys from one address a minute, and that
//! address is throttled (`429`) even with a right key, until it waits.
//!
//! - `GET /data`: `#[api_key]`, the header `x-api-key`, 401 when the key is missing or wrong.
//! - `GET /protected`: `#[api_key(status = 403)]`, answers with the id of the key.
//! - `GET /health`: open.

#![allow(clippy::print_stdout)]

use std::error::Error;

use axum::{Json, Router, routing::get};
use axum_api_key::{
    ApiKeys, ConfigErrorKind, Key, RateLimit, VerifiedKey, api_key, rate_limit_headers,
};
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

/// The demo key's rate limit.
pub(crate) const DEMO_LIMIT: &str = "60/min";

/// The quickstart's router, over any key store; responses to a rate-limited key carry the
/// `RateLimit` fields.
pub(crate) fn app(keys: ApiKeys) -> Router {
    Router::new()
        .route("/data", get(get_data))
        .route("/protected", get(protected))
        .route("/health", get(health))
        .with_state(keys)
        .layer(rate_limit_headers())
}

/// A store of the demo key alone, limited to [`DEMO_LIMIT`].
pub(crate) fn demo_store(key: &str) -> Result<ApiKeys, Box<dyn Error>> {
    let limit: RateLimit = DEMO_LIMIT.parse()?;
    Ok(ApiKeys::new().try_with(Key::new("demo", key).rate_limit(limit))?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    axum_api_key_examples::load_dotenv()?;
    let (keys, demo_key) = match ApiKeys::from_env("API_KEYS") {
        Ok(keys) => (keys, None),
        Err(error) if error.kind() == ConfigErrorKind::NotSet => {
            let key = axum_api_key::KeyFormat::new("demo")?.generate();
            (demo_store(&key)?, Some(key))
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
                "The demo key is limited to {DEMO_LIMIT}: watch the budget run out, then 429:"
            );
            println!(
                "    for i in $(seq 61); do curl -s -o /dev/null -w '%{{http_code}} ' -H 'x-api-key: {key}' http://{address}/data; done; echo"
            );
            println!(
                "    curl -i -H 'x-api-key: {key}' http://{address}/data    # RateLimit and Retry-After"
            );
            println!();
            println!(
                "Set API_KEYS (\"id=key,id2=key2\") or write it in .env to use your own keys."
            );
        }
        None => println!("serving {} key(s) from API_KEYS", keys.len()),
    }
    axum_api_key_examples::serve(listener, app(keys)).await
}
