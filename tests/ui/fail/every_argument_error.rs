// One malformed argument does not hide the errors of the others.
use axum::{Router, routing::get};
use axum_api_key::{ApiKeys, api_key};

#[api_key(stauts = 403, store = 5)]
async fn two_mistakes() {}

#[api_key(header "x-key", status = 200, scopes = [])]
async fn three_mistakes() {}

#[api_key(store = std::collections::HashMap<String, u8>, stauts = 1)]
async fn comma_in_a_type() {}

fn main() {
    let _: Router = Router::new()
        .route("/a", get(two_mistakes))
        .route("/b", get(three_mistakes))
        .route("/c", get(comma_in_a_type))
        .with_state(ApiKeys::new());
}
