use axum_api_key::api_key;

#[api_key(status = 403, header = "x-key", status = 401)]
async fn handler() {}

// Every handler is routed, so that a follow-on error at the route would show here.
fn main() {
    let _: axum::Router = axum::Router::new()
        .route("/0", axum::routing::get(handler))
        .with_state(axum_api_key::ApiKeys::new());
}
