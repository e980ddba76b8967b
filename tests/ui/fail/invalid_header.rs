use axum_api_key::api_key;

#[api_key(header = "x api key")]
async fn space() {}

#[api_key(header = "x-api-key:")]
async fn colon() {}

#[api_key(header = "")]
async fn empty() {}

#[api_key(header = x_api_key)]
async fn not_a_string() {}

#[api_key(header)]
async fn no_value() {}

#[api_key(header = "x-api\nkey")]
async fn newline() {}

// Every handler is routed, so that a follow-on error at the route would show here.
fn main() {
    let _: axum::Router = axum::Router::new()
        .route("/0", axum::routing::get(space))
        .route("/1", axum::routing::get(colon))
        .route("/2", axum::routing::get(empty))
        .route("/3", axum::routing::get(not_a_string))
        .route("/4", axum::routing::get(no_value))
        .route("/5", axum::routing::get(newline))
        .with_state(axum_api_key::ApiKeys::new());
}
