use axum::{Router, routing::get};
use axum_api_key::{ApiKeys, VerifiedKey, api_key};

#[api_key(header = "x-api-key", status = 403)]
async fn protected(key: VerifiedKey) -> String {
    format!("access granted to {}", key.id())
}

// Any case: header names are case-insensitive.
#[api_key(status = 404, header = "X-Partner-Key")]
async fn hidden() {}

#[api_key(status = 499)]
async fn suffixed() {}

fn main() {
    let _: Router = Router::new()
        .route("/protected", get(protected))
        .route("/hidden", get(hidden))
        .route("/suffixed", get(suffixed))
        .with_state(ApiKeys::new());
}
