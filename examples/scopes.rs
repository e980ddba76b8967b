//! Scopes: keys that may read orders, and keys that may also write them.
//!
//! ```sh
//! cargo run --example scopes
//! ```
//!
//! Keys come from `API_KEYS`, scopes in brackets after the id:
//! `API_KEYS="reader[orders:read]=rd_…, writer[orders:read orders:write]=wr_…"`. With no
//! `API_KEYS`, the example makes a demo reader and a demo writer and prints them. `PORT`
//! overrides the port (3001).
//!
//! - `GET /orders`: needs `orders:read`.
//! - `POST /orders`: needs `orders:read` and `orders:write`; a reader's key gets 403 naming
//!   `orders:write`.
//! - `GET /whoami`: any valid key, as a bearer token or in `x-api-key`; shows the key's scopes.

#![allow(clippy::print_stdout)]

use std::error::Error;

use axum::{Json, Router, routing::get};
use axum_api_key::{ApiKeys, ConfigErrorKind, Key, VerifiedKey, api_key};
use serde_json::{Value, json};

#[api_key(scopes = ["orders:read"])]
async fn list_orders(key: VerifiedKey) -> Json<Value> {
    Json(json!({ "orders": [{ "id": 1, "item": "tea" }], "read_by": key.id() }))
}

#[api_key(scopes = ["orders:read", "orders:write"])]
async fn create_order(key: VerifiedKey, Json(order): Json<Value>) -> Json<Value> {
    Json(json!({ "created": order, "by": key.id() }))
}

#[api_key(header = "x-api-key", bearer)]
async fn whoami(key: VerifiedKey) -> Json<Value> {
    Json(json!({ "id": key.id(), "scopes": key.scopes().collect::<Vec<_>>() }))
}

fn app(keys: ApiKeys) -> Router {
    Router::new()
        .route("/orders", get(list_orders).post(create_order))
        .route("/whoami", get(whoami))
        .with_state(keys)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    axum_api_key_examples::load_dotenv()?;
    let (keys, demo) = match ApiKeys::from_env("API_KEYS") {
        Ok(keys) => (keys, None),
        Err(error) if error.kind() == ConfigErrorKind::NotSet => {
            let reader = axum_api_key::KeyFormat::new("rd")?.generate();
            let writer = axum_api_key::KeyFormat::new("wr")?.generate();
            let keys = ApiKeys::new()
                .try_with(Key::new("reader", &reader).scopes(["orders:read"]))?
                .try_with(Key::new("writer", &writer).scopes(["orders:read", "orders:write"]))?;
            (keys, Some((reader, writer)))
        }
        Err(error) => return Err(error.into()),
    };
    let listener = axum_api_key_examples::bind(3001).await?;
    let address = listener.local_addr()?;
    println!("scopes example listening on http://{address}");
    if let Some((reader, writer)) = demo {
        println!();
        println!(
            "Demo keys, in memory only: reader {reader} (orders:read), writer {writer} (orders:read orders:write)"
        );
        println!();
        println!("    curl -H 'x-api-key: {reader}' http://{address}/orders");
        println!(
            "    curl -i -H 'x-api-key: {reader}' -H 'content-type: application/json' -d '{{\"item\":\"tea\"}}' http://{address}/orders   # 403: lacks orders:write"
        );
        println!(
            "    curl -H 'x-api-key: {writer}' -H 'content-type: application/json' -d '{{\"item\":\"tea\"}}' http://{address}/orders"
        );
        println!("    curl -H 'Authorization: Bearer {writer}' http://{address}/whoami");
    }
    axum_api_key_examples::serve(listener, app(keys)).await
}
