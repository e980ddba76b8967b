use axum_api_key::{VerifiedKey, api_key};

#[api_key(optional = true)]
async fn with_value(_key: Option<VerifiedKey>) {}

#[api_key(optional)]
async fn bare_key(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[api_key(auto_error = false)]
async fn fastapi_spelling() {}

fn main() {}
