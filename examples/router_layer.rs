//! Protecting a whole router with one layer, and answering refusals in the app's own error
//! format.
//!
//! ```sh
//! cargo run --example router_layer
//! ```
//!
//! Every route under `/api` needs a key with the `api` scope, in `x-api-key` or as a bearer
//! token; `/health` stays open. Refusals use the app's `{"error": {...}}` shape instead of
//! problem details, with their statuses and `WWW-Authenticate` challenges unchanged. Keys come
//! from `API_KEYS` (`API_KEYS="partner-a[api]=pa_…"`), or a demo key is made and printed. `PORT`
//! overrides the port (3003).

#![allow(clippy::print_stdout)]

use std::error::Error;

use axum::extract::Path;
use axum::{Json, Router, routing::get};
use axum_api_key::{
    ApiKeyRejection, ApiKeys, ConfigErrorKind, Key, RequireApiKey, VerifiedKey, api_key,
    render_rejections,
};
use serde_json::{Value, json};

/// The guard of everything under `/api`.
#[api_key(header = "x-api-key", bearer, scopes = ["api"])]
struct ApiAccess;

async fn orders(key: VerifiedKey) -> Json<Value> {
    Json(json!({ "orders": [1, 2, 3], "for": key.id() }))
}

async fn order(Path(id): Path<u32>, key: VerifiedKey) -> Json<Value> {
    Json(json!({ "order": id, "for": key.id() }))
}

/// The app's own error shape.
fn render(rejection: &ApiKeyRejection) -> Json<Value> {
    Json(
        json!({ "error": { "status": rejection.status().as_u16(), "message": rejection.detail() } }),
    )
}

fn app(keys: ApiKeys) -> Router {
    let api = Router::new()
        .route("/orders", get(orders))
        .route("/orders/{id}", get(order))
        .layer(RequireApiKey::<ApiAccess>::layer(keys));
    Router::new()
        .nest("/api", api)
        .route("/health", get(|| async { "ok\n" }))
        .layer(render_rejections(render))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    axum_api_key_examples::load_dotenv()?;
    let (keys, demo_key) = match ApiKeys::from_env("API_KEYS") {
        Ok(keys) => (keys, None),
        Err(error) if error.kind() == ConfigErrorKind::NotSet => {
            let key = axum_api_key::KeyFormat::new("pa")?.generate();
            (
                ApiKeys::new().try_with(Key::new("demo", &key).scopes(["api"]))?,
                Some(key),
            )
        }
        Err(error) => return Err(error.into()),
    };
    let listener = axum_api_key_examples::bind(3003).await?;
    let address = listener.local_addr()?;
    println!("router layer example listening on http://{address}");
    if let Some(key) = demo_key {
        println!();
        println!("    curl -H 'Authorization: Bearer {key}' http://{address}/api/orders");
        println!("    curl -H 'x-api-key: {key}' http://{address}/api/orders/7");
        println!("    curl -i http://{address}/api/orders   # 401 in the app's own error shape");
        println!("    curl http://{address}/health");
    }
    axum_api_key_examples::serve(listener, app(keys)).await
}
