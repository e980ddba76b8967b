use axum::{Router, routing::get};
use axum_api_key::api_key;

#[api_key(store = PartnerKeys)]
async fn partner() {}

fn main() {
    let _: Router = Router::new()
        .route("/", get(partner))
        .with_state(axum_api_key::ApiKeys::new());
}
