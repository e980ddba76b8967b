// A router whose state cannot provide the key store does not compile.
use axum::{Router, routing::get};
use axum_api_key::api_key;

#[derive(Clone)]
struct AppState {
    name: String,
}

#[api_key]
async fn data() {}

fn main() {
    let _: Router = Router::new()
        .route("/data", get(data))
        .with_state(AppState { name: "no keys here".into() });
}
