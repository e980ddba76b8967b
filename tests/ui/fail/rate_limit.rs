use axum_api_key::api_key;

#[api_key(rate_limit = 10)]
async fn not_a_string() {}

#[api_key(rate_limit = "10 per second")]
async fn words() {}

#[api_key(rate_limit = "0/s")]
async fn zero() {}

#[api_key(rate_limit = "10/fortnight")]
async fn unknown_unit() {}

#[api_key(rate_limit = "10/s burst")]
async fn burst_without_size() {}

#[api_key(rate_limit = "1/9000h")]
async fn over_a_year() {}

#[api_key(rate_limit)]
async fn no_value() {}

#[api_key(rate = "10/s")]
async fn misnamed() {}

#[api_key(rate_limit = "10/s", rate_limit = "5/s")]
async fn twice() {}

#[api_key(rate_limit = "4294967296/s")]
async fn count_too_large() {}

#[api_key(rate_limit = "10/1.5s")]
async fn fractional_period() {}

#[api_key(rate_limit = "10/2d")]
async fn days() {}

#[api_key(rate_limit = "10/day burst 20")]
async fn calendar_burst() {}

#[api_key(rate_limit = ["10/s", "1000/day"])]
async fn several() {}

fn main() {
    let _: axum::Router<axum_api_key::ApiKeys> = axum::Router::new()
        .route("/1", axum::routing::get(not_a_string))
        .route("/2", axum::routing::get(words))
        .route("/3", axum::routing::get(zero))
        .route("/4", axum::routing::get(unknown_unit))
        .route("/5", axum::routing::get(burst_without_size))
        .route("/6", axum::routing::get(over_a_year))
        .route("/7", axum::routing::get(no_value))
        .route("/8", axum::routing::get(misnamed))
        .route("/9", axum::routing::get(twice))
        .route("/10", axum::routing::get(count_too_large))
        .route("/11", axum::routing::get(fractional_period))
        .route("/12", axum::routing::get(days))
        .route("/13", axum::routing::get(calendar_burst))
        .route("/14", axum::routing::get(several));
}
