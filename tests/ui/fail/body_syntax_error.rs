// A syntax error in the body is the compiler's own, and nothing more.
use axum::{Router, routing::get};
use axum_api_key::{ApiKeys, api_key};

#[api_key]
async fn broken() -> &'static str {
    let x = ;
    "ok"
}

fn main() {
    let _: Router = Router::new()
        .route("/", get(broken))
        .with_state(ApiKeys::new());
}
