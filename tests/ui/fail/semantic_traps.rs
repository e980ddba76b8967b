// Combinations that would compile into a route that does not do what it says.
use axum::{Router, routing::get};
use axum_api_key::{ApiKeys, VerifiedKey, api_key};

// A scoped route must never admit a request without a key.
#[api_key(optional, scopes = ["admin"])]
async fn optional_and_scoped(key: Option<VerifiedKey>) -> String {
    key.map(|key| key.id().to_owned()).unwrap_or_default()
}

// Without `optional`, the key is always there.
#[api_key]
async fn always_some(key: Option<VerifiedKey>) -> String {
    key.map(|key| key.id().to_owned()).unwrap_or_default()
}

// With `optional`, a bare key inside a tuple would have nothing to hold.
#[api_key(optional)]
async fn key_in_tuple((key, _body): (VerifiedKey, String)) -> String {
    key.id().to_owned()
}

// The same in the other direction, spelled with a path.
#[api_key]
async fn qualified_option(_key: std::option::Option<axum_api_key::VerifiedKey>) {}

fn main() {
    let _: Router = Router::new()
        .route("/a", get(optional_and_scoped))
        .route("/b", get(always_some))
        .route("/c", get(key_in_tuple))
        .route("/d", get(qualified_option))
        .with_state(ApiKeys::new());
}
