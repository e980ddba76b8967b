use axum_api_key::api_key;

#[api_key(header = "x api key")]
async fn space() {}

#[api_key(header = "x-api-key:")]
async fn colon() {}

#[api_key(header = "")]
async fn empty() {}

#[api_key(header = x_api_key)]
async fn not_a_string() {}

#[api_key(header)]
async fn no_value() {}

fn main() {}
