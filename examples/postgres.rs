//! The quickstart's routes, with keys in PostgreSQL.
//!
//! ```sh
//! cargo run --example postgres --features postgres
//! ```
//!
//! Reads `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), creates or upgrades
//! the keys table, and, when the table holds no key, creates a demo key and prints it once.
//! Run it twice on two ports (`PORT=3006`) to see a key revoked through one instance, or
//! through `axum-api-key keys revoke --database-url …`, refused by the other within a second.
//! `PORT` overrides the port (3005).
//!
//! - `GET /data`: `#[api_key(store = PgKeys)]`, 401 when the key is missing or wrong.
//! - `GET /protected`: `#[api_key(store = PgKeys, status = 403)]`, answers with the key's id.
//! - `GET /health`: open, with the age of the key snapshot.

#![allow(clippy::print_stdout)]

use std::error::Error;

use axum::extract::State;
use axum::{Json, Router, routing::get};
use axum_api_key::{KeyFormat, PgKeys, VerifiedKey, api_key};
use serde_json::{Value, json};

#[api_key(store = PgKeys)]
async fn get_data() -> Json<Value> {
    Json(json!({ "data": "secret information" }))
}

#[api_key(store = PgKeys, status = 403)]
async fn protected(key: VerifiedKey) -> Json<Value> {
    Json(json!({ "message": format!("access granted to {}", key.id()) }))
}

async fn health(State(keys): State<PgKeys>) -> Json<Value> {
    Json(json!({ "keys": keys.len(), "snapshot_age_ms": keys.staleness().as_millis() }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    axum_api_key_examples::load_dotenv()?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let keys = PgKeys::options()
        .format(KeyFormat::new("demo")?)
        .connect(&url)
        .await?;
    let demo_key = if keys.is_empty() {
        Some(keys.create("demo", Vec::<String>::new(), None).await?)
    } else {
        None
    };

    let app = Router::new()
        .route("/data", get(get_data))
        .route("/protected", get(protected))
        .route("/health", get(health))
        .with_state(keys.clone());
    let listener = axum_api_key_examples::bind(3005).await?;
    let address = listener.local_addr()?;
    println!(
        "postgres example listening on http://{address}, {} key(s) in the table",
        keys.len()
    );
    if let Some(key) = demo_key {
        println!();
        println!("The table was empty, so it now holds a demo key, shown this once:");
        println!();
        println!("    {key}");
        println!();
        println!("Try it:");
        println!("    curl -H 'x-api-key: {key}' http://{address}/data");
    }
    axum_api_key_examples::serve(listener, app).await
}
