use axum_api_key::api_key;

#[api_key(query = "")]
async fn empty_query() {}

#[api_key(query = "api key")]
async fn spaced_query() {}

#[api_key(cookie = "")]
async fn empty_cookie() {}

#[api_key(cookie = "a;b")]
async fn bad_cookie() {}

#[api_key(bearer = 1)]
async fn bearer_with_value() {}

#[api_key(bearer = true)]
async fn bearer_true() {}

#[api_key(header = "Authorization")]
async fn authorization_header() {}

#[api_key(query = "api_key", header = "x-api-key", query = "key")]
async fn repeated_source() {}

fn main() {}
