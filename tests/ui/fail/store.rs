use axum_api_key::api_key;

#[api_key(store = 5)]
async fn not_a_type() {}

#[api_key(store = &str)]
async fn generic_type() {}

#[api_key(store = axum_api_key::ApiKeys)]
struct Guard;

fn main() {}

mod not_a_store {
    #[axum_api_key::api_key(store = String)]
    async fn handler() {}
}

#[axum_api_key::api_key(state = String)]
struct StatefulGuard;
