use axum::{Router, routing::get};
use axum_api_key::{ApiKeys, api_key};

#[api_key(status = 401u8)]
async fn integer_suffix() {}

#[api_key(status = 403f32)]
async fn float_suffix() {}

#[api_key(status = 403_u16)]
async fn underscore_suffix() {}

fn main() {
    let _: Router = Router::new()
        .route("/a", get(integer_suffix))
        .route("/b", get(float_suffix))
        .route("/c", get(underscore_suffix))
        .with_state(ApiKeys::new());
}
