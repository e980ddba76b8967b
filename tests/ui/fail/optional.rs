use axum_api_key::{VerifiedKey, api_key};

#[api_key(optional = true)]
async fn with_value(_key: Option<VerifiedKey>) {}

#[api_key(optional)]
async fn bare_key(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[api_key(auto_error = false)]
async fn fastapi_spelling() {}

#[api_key]
async fn result_without_optional(_key: Result<VerifiedKey, axum_api_key::ApiKeyRejection>) {}

// Every handler is routed, so that a follow-on error at the route would show here.
fn main() {
    let _: axum::Router = axum::Router::new()
        .route("/0", axum::routing::get(with_value))
        .route("/1", axum::routing::get(bare_key))
        .route("/2", axum::routing::get(fastapi_spelling))
        .route("/3", axum::routing::get(result_without_optional))
        .with_state(axum_api_key::ApiKeys::new());
}
