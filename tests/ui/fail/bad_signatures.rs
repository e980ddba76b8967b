use axum_api_key::api_key;

struct Service;

impl Service {
    #[api_key]
    async fn method(&self) {}
}

#[api_key]
async unsafe fn unsafe_handler() {}

#[api_key]
async extern "C" fn extern_handler() {}

// Every handler is routed, so that a follow-on error at the route would show here.
fn main() {
    let _: axum::Router = axum::Router::new()
        .route("/0", axum::routing::get(unsafe_handler))
        .route("/1", axum::routing::get(extern_handler))
        .with_state(axum_api_key::ApiKeys::new());
}
