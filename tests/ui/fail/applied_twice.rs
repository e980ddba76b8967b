use axum::{Router, routing::get};
use axum_api_key::{ApiKeys, api_key};

#[api_key(status = 403)]
#[api_key(header = "x-other-key")]
async fn twice() {}

#[api_key]
#[axum_api_key::api_key]
struct GuardTwice;

fn main() {
    let _: Router = Router::new()
        .route("/", get(twice))
        .with_state(ApiKeys::new());
}
