// A crate that re-exports axum-api-key points the attribute at its own path.
mod facade {
    pub use axum_api_key as keys;
}

use axum::{Router, routing::get};

#[axum_api_key::api_key(crate = crate::facade::keys)]
async fn data() {}

#[axum_api_key::api_key(crate = "crate::facade::keys", status = 403)]
async fn quoted() {}

fn main() {
    let _: Router = Router::new()
        .route("/data", get(data))
        .route("/quoted", get(quoted))
        .with_state(facade::keys::ApiKeys::new());
}
