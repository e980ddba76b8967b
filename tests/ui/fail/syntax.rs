use axum_api_key::api_key;

#[api_key(header "x-api-key")]
async fn missing_equals() {}

#[api_key(status(403))]
async fn call_form() {}

fn main() {}
