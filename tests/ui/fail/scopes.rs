use axum_api_key::api_key;

#[api_key(scopes = [])]
async fn empty_list() {}

#[api_key(scopes = [""])]
async fn empty_scope() {}

#[api_key(scopes = "orders:read")]
async fn not_a_list() {}

#[api_key(scopes = ["orders read", "orders\"write"])]
async fn bad_characters() {}

#[api_key(scopes = ["orders:read", "orders:read"])]
async fn listed_twice() {}

#[api_key(scopes = [1])]
async fn not_a_string() {}

#[api_key(scope = ["orders:read"])]
async fn singular() {}

fn main() {}
