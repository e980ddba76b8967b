use axum_api_key::api_key;

#[api_key(status = "403")]
async fn string() {}

#[api_key(status = 200)]
async fn success() {}

#[api_key(status = 500)]
async fn server_error() {}

#[api_key(status = 70000)]
async fn too_big() {}

#[api_key(status = http::StatusCode::FORBIDDEN)]
async fn constant() {}

#[api_key(status = 4.03)]
async fn float() {}

fn main() {}
