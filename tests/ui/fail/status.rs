use axum_api_key::api_key;

#[api_key(status = "403")]
async fn string() {}

#[api_key(status = 200)]
async fn success() {}

#[api_key(status = 500)]
async fn server_error() {}

#[api_key(status = 70000)]
async fn too_big() {}

#[api_key(status = http::StatusCode::FORBIDDEN)]
async fn constant() {}

#[api_key(status = 4.03)]
async fn float() {}

// Every handler is routed, so that a follow-on error at the route would show here.
fn main() {
    let _: axum::Router = axum::Router::new()
        .route("/0", axum::routing::get(string))
        .route("/1", axum::routing::get(success))
        .route("/2", axum::routing::get(server_error))
        .route("/3", axum::routing::get(too_big))
        .route("/4", axum::routing::get(constant))
        .route("/5", axum::routing::get(float))
        .with_state(axum_api_key::ApiKeys::new());
}
