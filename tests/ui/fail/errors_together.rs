// Every mistake is reported at once, and the function is kept as the closest valid handler
// (here made async), so the route that uses it raises no error of its own.
use axum::{Router, routing::get};
use axum_api_key::{ApiKeys, api_key};

#[api_key(hedaer = "x-key", status = 200)]
fn handler() -> &'static str {
    "hi"
}

fn main() {
    let _: Router = Router::new().route("/", get(handler)).with_state(ApiKeys::new());
}
