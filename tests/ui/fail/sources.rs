use axum_api_key::api_key;

#[api_key(query = "")]
async fn empty_query() {}

#[api_key(query = "api key")]
async fn spaced_query() {}

#[api_key(cookie = "")]
async fn empty_cookie() {}

#[api_key(cookie = "a;b")]
async fn bad_cookie() {}

#[api_key(bearer = 1)]
async fn bearer_with_value() {}

#[api_key(bearer = true)]
async fn bearer_true() {}

#[api_key(header = "Authorization")]
async fn authorization_header() {}

#[api_key(query = "api_key", header = "x-api-key", query = "key")]
async fn repeated_source() {}

// Every handler is routed, so that a follow-on error at the route would show here.
fn main() {
    let _: axum::Router = axum::Router::new()
        .route("/0", axum::routing::get(empty_query))
        .route("/1", axum::routing::get(spaced_query))
        .route("/2", axum::routing::get(empty_cookie))
        .route("/3", axum::routing::get(bad_cookie))
        .route("/4", axum::routing::get(bearer_with_value))
        .route("/5", axum::routing::get(bearer_true))
        .route("/6", axum::routing::get(authorization_header))
        .route("/7", axum::routing::get(repeated_source))
        .with_state(axum_api_key::ApiKeys::new());
}
