// Types that are plainly not stores, each refused at its name with what to write instead, and
// no second error at the route.
use axum::{routing::get, Router};
use axum_api_key::{api_key, ApiKeys, VerifiedKey};
#[allow(unused_imports)]
use std::sync::Arc;

#[api_key(store = Vec<u8>)]
async fn bytes() {}

#[api_key(store = Arc<ApiKeys>)]
async fn shared() {}

#[api_key(store = VerifiedKey)]
async fn key() {}

#[api_key(store = Option<ApiKeys>)]
async fn maybe() {}

#[api_key(store = String)]
async fn text(key: VerifiedKey) -> String {
    key.id().to_owned()
}

// A type of the user's that is no store: the compiler's check, in our words, at its name.
#[derive(Clone)]
struct Settings;

#[api_key(store = Settings)]
async fn settings() {}

fn main() {
    let _: Router = Router::new()
        .route("/bytes", get(bytes))
        .route("/shared", get(shared))
        .route("/key", get(key))
        .route("/maybe", get(maybe))
        .route("/text", get(text))
        .route("/settings", get(settings))
        .with_state(ApiKeys::new());
}
