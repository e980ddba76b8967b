//! `#[api_key]` above `#[utoipa::path]`, handlers without any, and associated functions: all
//! compile with the order check of feature `openapi`.

use axum::routing::get;
use axum::Router;
use axum_api_key::{api_key, ApiKeys};

#[api_key]
#[utoipa::path(get, path = "/data", responses((status = 200, body = String)))]
async fn data() -> &'static str {
    "secret information"
}

#[api_key]
async fn undocumented() -> &'static str {
    "fine"
}

struct Handlers;

impl Handlers {
    #[api_key(status = 403)]
    async fn method() -> &'static str {
        "fine"
    }
}

fn main() {
    let _: Router = Router::new()
        .route("/data", get(data))
        .route("/undocumented", get(undocumented))
        .route("/method", get(Handlers::method))
        .with_state(ApiKeys::new());
}
