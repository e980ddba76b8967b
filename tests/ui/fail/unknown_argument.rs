use axum_api_key::api_key;

#[api_key(stauts = 403)]
async fn typo() {}

#[api_key(timeout = 3)]
async fn unrelated() {}

#[api_key(name = "x-api-key")]
async fn fastapi_name() {}

#[api_key(status_code = 403)]
async fn fastapi_status() {}

#[api_key(auto_error = false)]
async fn fastapi_auto_error() {}

// Every handler is routed, so that a follow-on error at the route would show here.
fn main() {
    let _: axum::Router = axum::Router::new()
        .route("/0", axum::routing::get(typo))
        .route("/1", axum::routing::get(unrelated))
        .route("/2", axum::routing::get(fastapi_name))
        .route("/3", axum::routing::get(fastapi_status))
        .route("/4", axum::routing::get(fastapi_auto_error))
        .with_state(axum_api_key::ApiKeys::new());
}
