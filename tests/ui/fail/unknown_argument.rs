use axum_api_key::api_key;

#[api_key(stauts = 403)]
async fn typo() {}

#[api_key(timeout = 3)]
async fn unrelated() {}

#[api_key(name = "x-api-key")]
async fn fastapi_name() {}

#[api_key(status_code = 403)]
async fn fastapi_status() {}

#[api_key(auto_error = false)]
async fn fastapi_auto_error() {}

fn main() {}
