use axum_api_key::api_key;

#[api_key]
fn handler() -> &'static str {
    "hi"
}

fn main() {}
