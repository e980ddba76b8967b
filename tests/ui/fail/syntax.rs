use axum_api_key::api_key;

#[api_key(header "x-api-key")]
async fn missing_equals() {}

#[api_key(status(403))]
async fn call_form() {}

// Every handler is routed, so that a follow-on error at the route would show here.
fn main() {
    let _: axum::Router = axum::Router::new()
        .route("/0", axum::routing::get(missing_equals))
        .route("/1", axum::routing::get(call_form))
        .with_state(axum_api_key::ApiKeys::new());
}
