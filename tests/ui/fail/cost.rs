use axum_api_key::api_key;

#[api_key(cost = "5")]
async fn a_string() {}

#[api_key(cost = -1)]
async fn negative() {}

#[api_key(cost = 5u32)]
async fn suffixed() {}

#[api_key(cost = 2_000_000)]
async fn too_much() {}

const PRICE: u32 = 5;

#[api_key(cost = PRICE)]
async fn a_constant() {}

#[api_key(cost)]
async fn no_value() {}

#[api_key(cost = 1.5)]
async fn fractional() {}

#[api_key(cost = 2, cost = 3)]
async fn twice() {}

#[api_key(credits = 5)]
async fn misnamed() {}

fn main() {
    let _: axum::Router<axum_api_key::ApiKeys> = axum::Router::new()
        .route("/1", axum::routing::get(a_string))
        .route("/2", axum::routing::get(negative))
        .route("/3", axum::routing::get(suffixed))
        .route("/4", axum::routing::get(too_much))
        .route("/5", axum::routing::get(a_constant))
        .route("/6", axum::routing::get(no_value))
        .route("/7", axum::routing::get(fractional))
        .route("/8", axum::routing::get(twice))
        .route("/9", axum::routing::get(misnamed));
}
