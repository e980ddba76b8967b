use axum_api_key::api_key;

#[api_key]
fn handler() -> &'static str {
    "hi"
}

// Every handler is routed, so that a follow-on error at the route would show here.
fn main() {
    let _: axum::Router = axum::Router::new()
        .route("/0", axum::routing::get(handler))
        .with_state(axum_api_key::ApiKeys::new());
}
