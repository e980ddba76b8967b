use axum_api_key::api_key;

#[api_key(status = 403, header = "x-key", status = 401)]
async fn handler() {}

fn main() {}
