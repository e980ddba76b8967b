//! `cost` alone, with other arguments, as zero, and on a guard type.

use axum::routing::get;
use axum::Router;
use axum_api_key::{api_key, ApiKeys, KeyConfig, VerifiedKey};

#[api_key(cost = 5)]
async fn report() {}

#[api_key(cost = 0)]
async fn free(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[api_key(bearer, scopes = ["search"], rate_limit = "10/s", cost = 1_000_000, status = 403)]
async fn expensive(_key: VerifiedKey, body: String) -> String {
    body
}

#[api_key(optional, cost = 2)]
async fn optional(key: Option<VerifiedKey>) -> &'static str {
    if key.is_some() { "known" } else { "anonymous" }
}

#[api_key(cost = 7)]
struct Priced;

fn main() {
    assert_eq!(<Priced as KeyConfig>::CONFIG.cost(), 7);
    let _: Router<ApiKeys> = Router::new()
        .route("/report", get(report))
        .route("/free", get(free))
        .route("/expensive", get(expensive))
        .route("/optional", get(optional));
}
