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

// Every handler is routed, so that a follow-on error at the route would show here.
#[api_key(scopes = ["orders:read"; 2])]
async fn repeated() {}

fn main() {
    let _: axum::Router = axum::Router::new()
        .route("/0", axum::routing::get(empty_list))
        .route("/1", axum::routing::get(empty_scope))
        .route("/2", axum::routing::get(not_a_list))
        .route("/3", axum::routing::get(bad_characters))
        .route("/4", axum::routing::get(listed_twice))
        .route("/5", axum::routing::get(not_a_string))
        .route("/6", axum::routing::get(singular))
        .route("/7", axum::routing::get(repeated))
        .with_state(axum_api_key::ApiKeys::new());
}
