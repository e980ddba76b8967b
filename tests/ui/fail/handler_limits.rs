use axum_api_key::api_key;

// axum handlers take at most 16 arguments.
#[api_key]
async fn seventeen(
    _: (), _: (), _: (), _: (), _: (), _: (), _: (), _: (), _: (), _: (), _: (), _: (), _: (),
    _: (), _: (), _: (), _: (),
) {
}

#[api_key]
const async fn constant() {}

struct Handlers;

// An associated function carries the attribute when its configuration is one the runtime
// shares (the default store); a store of its own needs a type defined beside the handler, which
// an `impl` block cannot hold.
impl Handlers {
    #[api_key(store = axum_api_key::ApiKeys)]
    async fn list() {}
}

fn main() {
    let _: axum::Router = axum::Router::new()
        .route("/list", axum::routing::get(Handlers::list))
        .with_state(axum_api_key::ApiKeys::new());
}
