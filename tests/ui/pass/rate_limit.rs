//! `rate_limit` in every documented form, with other arguments, and on a guard type.

use axum::routing::get;
use axum::Router;
use axum_api_key::{api_key, ApiKeys, KeyConfig, RequireApiKey, VerifiedKey};

#[api_key(rate_limit = "10/s")]
async fn per_second() {}

#[api_key(rate_limit = "100/min", status = 403, scopes = ["search"])]
async fn per_minute(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[api_key(bearer, rate_limit = "10/5s burst 20")]
async fn with_burst(_key: VerifiedKey, body: String) -> String {
    body
}

#[api_key(optional, rate_limit = "1/24h")]
async fn optional(key: Option<VerifiedKey>) -> &'static str {
    if key.is_some() { "known" } else { "anonymous" }
}

#[api_key(rate_limit = "5/250ms")]
struct Limited;

#[api_key(rate_limit = "1000/day")]
struct Daily;

#[api_key(rate_limit = "20000/month", scopes = ["reports"])]
async fn monthly(key: VerifiedKey) -> String {
    key.id().to_owned()
}

fn main() {
    let (limit, route) = <Limited as KeyConfig>::CONFIG.rate_limit().unwrap();
    assert_eq!(limit.to_string(), "5/250ms");
    let (daily, _) = <Daily as KeyConfig>::CONFIG.rate_limit().unwrap();
    assert_eq!(daily, axum_api_key::RateLimit::per_day(1000));
    // Named by the module, the item and where it stands: unique per route.
    assert!(route.contains("::Limited@") && route.contains("rate_limit.rs:"), "{route}");
    let _: Router = Router::new()
        .route("/a", get(per_second))
        .route("/b", get(per_minute))
        .route("/c", get(with_burst).post(with_burst))
        .route("/d", get(optional))
        .route("/e", get(|_: RequireApiKey<Limited>| async { "ok" }))
        .route("/f", get(|_: RequireApiKey<Daily>| async { "ok" }))
        .route("/g", get(monthly))
        .with_state(ApiKeys::new());
}
