// A `crate = …` that is not this crate is reported at the path.
use axum::{Router, routing::get};

#[axum_api_key::api_key(crate = axum)]
async fn wrong_crate() {}

fn main() {
    let _: Router = Router::new()
        .route("/", get(wrong_crate))
        .with_state(axum_api_key::ApiKeys::new());
}
