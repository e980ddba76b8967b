use axum_api_key::api_key;

#[api_key]
struct Handler {
    name: String,
}

#[api_key(status = 403)]
mod handlers {}

#[api_key]
const KEY: &str = "never in code";

fn main() {}
