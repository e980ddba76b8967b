use axum::{Router, routing::get};
use axum_api_key::{ApiKeys, api_key};

#[api_key]
async fn data() -> &'static str {
    "secret information"
}

fn main() {
    let _: Router = Router::new().route("/data", get(data)).with_state(ApiKeys::new());
}
