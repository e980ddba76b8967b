//! The quickstart: its routes, three of them protected by an API key.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Keys come from `API_KEYS` (e.g. `API_KEYS="partner-a=pa_7Qm2xY9wLkV3rT8s"`), or from a `.env`
//! file in the working directory. With neither, the server generates a demo key (`demo_…`, with
//! a checksum, limited to 60 requests a minute), prints it once with `curl` lines to try it, and
//! keeps it in memory only. `PORT` overrides the port (3000).
//!
//! Responses to a rate-limited key carry `RateLimit-Policy` and `RateLimit`; past the limit the
//! answer is `429` with `Retry-After`. Thirty wrong keys from one address a minute, and that
//! address is throttled (`429`) even with a right key, until it waits.
//!
//! - `GET /data`: `#[api_key]`, the header `x-api-key`, 401 when the key is missing or wrong.
//! - `GET /protected`: `#[api_key(status = 403)]`, answers with the id of the key.
//! - `GET /health`: open.
//! - `GET /account/keys/me`, `POST /account/keys/me/rotate`, `DELETE /account/keys/me`: the key
//!   holder reads, rotates and revokes its own key.
//! - `GET /openapi.json`: the OpenAPI document, every route with the key it needs;
//!   `GET /docs`: Swagger UI on it, served from the crate's own files.

#![allow(clippy::print_stdout)]

use std::error::Error;
use std::time::Duration;

use axum::{Json, Router};
use axum_api_key::openapi::ApiKeySecurity;
use axum_api_key::{
    ApiKeys, ConfigErrorKind, Key, RateLimit, VerifiedKey, api_key, rate_limit_headers,
    self_service,
};
use serde::Serialize;
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_swagger_ui::SwaggerUi;

/// The secret data.
#[derive(Serialize, ToSchema)]
struct Data {
    data: String,
}

/// A greeting naming the key.
#[derive(Serialize, ToSchema)]
struct Greeting {
    message: String,
}

/// Returns data only callers with a valid key may see.
#[api_key]
#[utoipa::path(
    get,
    path = "/data",
    tag = "quickstart",
    responses((status = 200, description = "The data", body = Data))
)]
async fn get_data() -> Json<Data> {
    Json(Data {
        data: "secret information".to_owned(),
    })
}

/// Greets the caller by the id of its key; a missing or wrong key gets 403.
#[api_key(status = 403)]
#[utoipa::path(
    get,
    path = "/protected",
    tag = "quickstart",
    responses((status = 200, description = "A greeting", body = Greeting))
)]
async fn protected(key: VerifiedKey) -> Json<Greeting> {
    Json(Greeting {
        message: format!("access granted to {}", key.id()),
    })
}

/// Says the service is up; needs no key.
#[utoipa::path(
    get,
    path = "/health",
    tag = "quickstart",
    responses((status = 200, description = "The service is up", body = String, content_type = "text/plain"))
)]
async fn health() -> &'static str {
    "ok"
}

/// The guard of the self-service routes: the quickstart's key in `x-api-key`.
#[api_key]
struct AccountKey;

#[derive(OpenApi)]
#[openapi(info(
    title = "axum-api-key quickstart",
    description = "Routes protected by an API key in the `x-api-key` header."
))]
struct Quickstart;

/// How long a key rotated through `/account/keys/me/rotate` keeps working.
const ROTATION_GRACE: Duration = Duration::from_secs(3600);

/// The demo key's rate limit.
pub(crate) const DEMO_LIMIT: &str = "60/min";

/// The demo key's plan: credits, refilled each day.
pub(crate) const DEMO_PLAN: &str = "100/day";

/// The quickstart's router, over any key store; responses to a rate-limited key carry the
/// `RateLimit` fields.
pub(crate) fn app(keys: ApiKeys) -> Router {
    let (router, api) = documented();
    router
        .nest(
            "/account",
            self_service::<AccountKey, ApiKeys, _>(ROTATION_GRACE),
        )
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .with_state(keys)
        .layer(rate_limit_headers())
}

/// The documented routes and their OpenAPI document, with the self-service routes and the
/// security schemes the guards name.
pub(crate) fn documented() -> (Router<ApiKeys>, utoipa::openapi::OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(Quickstart::openapi())
        .routes(routes!(get_data))
        .routes(routes!(protected))
        .routes(routes!(health))
        .split_for_parts();
    api.merge(axum_api_key::openapi::self_service_document::<AccountKey>(
        "/account",
    ));
    ApiKeySecurity.modify(&mut api);
    (router, api)
}

/// A store of the demo key alone, limited to [`DEMO_LIMIT`] and on the plan [`DEMO_PLAN`],
/// in the `demo` key format so that the key can be rotated through `/account/keys/me/rotate`.
pub(crate) fn demo_store(key: &str) -> Result<ApiKeys, Box<dyn Error>> {
    let limit: RateLimit = DEMO_LIMIT.parse()?;
    let plan: axum_api_key::Refill = DEMO_PLAN.parse()?;
    let format = axum_api_key::KeyFormat::new("demo")?;
    Ok(ApiKeys::new()
        .with_format(format)
        .try_with(Key::new("demo", key).rate_limit(limit).refill(plan))?)
}

/// The keys of the variable `var`, or, when it is not set, a demo store and its key.
pub(crate) fn keys_from_env(var: &str) -> Result<(ApiKeys, Option<String>), Box<dyn Error>> {
    match ApiKeys::from_env(var) {
        Ok(keys) => Ok((keys, None)),
        Err(error) if error.kind() == ConfigErrorKind::NotSet => {
            let key = axum_api_key::KeyFormat::new("demo")?.generate();
            Ok((demo_store(&key)?, Some(key)))
        }
        Err(error) => Err(error.into()),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    axum_api_key_examples::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    axum_api_key_examples::load_dotenv()?;
    let (keys, demo_key) = keys_from_env("API_KEYS")?;

    let listener = axum_api_key_examples::bind(3000).await?;
    let address = listener.local_addr()?;
    println!("quickstart listening on http://{address}");
    match demo_key {
        Some(key) => {
            println!();
            println!("API_KEYS is not set, so this run uses a demo key, kept in memory only:");
            println!();
            println!("    {key}");
            println!();
            println!("Try it:");
            println!("    curl -H 'x-api-key: {key}' http://{address}/data");
            println!("    curl -H 'x-api-key: {key}' http://{address}/protected");
            println!("    curl -i http://{address}/data    # no key: 401");
            println!();
            println!(
                "The demo key is limited to {DEMO_LIMIT}: watch the budget run out, then 429:"
            );
            println!(
                "    curl -s --parallel --parallel-max 70 -o /dev/null -w '%{{http_code}}\\n' -H 'x-api-key: {key}' 'http://{address}/data?n=[1-70]' | sort | uniq -c"
            );
            println!(
                "    curl -i -H 'x-api-key: {key}' http://{address}/data    # RateLimit and Retry-After"
            );
            println!();
            println!(
                "It is on a plan of {DEMO_PLAN} credits, one per request: each answer says \
                 Credits-Remaining, and at zero it gets 429 until midnight UTC:"
            );
            println!(
                "    curl -s -o /dev/null -D - -H 'x-api-key: {key}' http://{address}/data | grep -i credits"
            );
            println!();
            println!("Every route, with the key it needs, in a browser: http://{address}/docs");
            println!("Your key's record, and a new key for it:");
            println!("    curl -H 'x-api-key: {key}' http://{address}/account/keys/me");
            println!(
                "    curl -X POST -H 'x-api-key: {key}' http://{address}/account/keys/me/rotate"
            );
            println!();
            println!(
                "Set API_KEYS (\"id=key,id2=key2\") or write it in .env to use your own keys."
            );
        }
        None => println!("serving {} key(s) from API_KEYS", keys.len()),
    }
    axum_api_key_examples::serve(listener, app(keys)).await
}
