use axum_api_key::api_key;

#[api_key(store = 5)]
async fn not_a_type() {}

#[api_key(store = &str)]
async fn generic_type() {}

#[api_key(store = axum_api_key::ApiKeys)]
struct Guard;

// Every handler is routed, so that a follow-on error at the route would show here.
fn main() {
    let _: axum::Router = axum::Router::new()
        .route("/0", axum::routing::get(not_a_type))
        .route("/1", axum::routing::get(generic_type))
        .route("/2", axum::routing::get(not_a_store::handler))
        .with_state(axum_api_key::ApiKeys::new());
}

mod not_a_store {
    #[axum_api_key::api_key(store = String)]
    pub async fn handler() {}
}

#[axum_api_key::api_key(state = String)]
struct StatefulGuard;
