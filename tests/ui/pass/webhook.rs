//! `#[webhook]` for each scheme, with each kind of body, and secrets in a state struct.

use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::routing::post;
use axum::{Json, Router};
use axum_api_key::webhook::{SecretSource, WebhookSecrets};
use axum_api_key::{webhook, ApiKeys};

#[webhook(scheme = "standard")]
async fn standard(Json(event): Json<serde_json::Value>) -> String {
    event.to_string()
}

#[webhook(scheme = "github", max_body = 4096)]
async fn github(State(state): State<AppState>, body: Bytes) -> String {
    format!("{} {}", state.name, body.len())
}

#[webhook(scheme = "stripe", tolerance = 60, secrets = StripeSecrets)]
async fn stripe(body: String) -> String {
    body
}

#[webhook(scheme = "standard")]
async fn without_body() {}

#[derive(Clone)]
struct StripeSecrets(WebhookSecrets);

/// Secrets of a generic type, named as a type: `Tagged<u8>`.
#[derive(Clone)]
struct Tagged<T>(WebhookSecrets, std::marker::PhantomData<fn() -> T>);

impl<T: 'static> SecretSource for Tagged<T> {
    fn webhook_secrets(&self) -> &WebhookSecrets {
        &self.0
    }
}

#[webhook(scheme = "standard", secrets = Tagged<u8>)]
async fn tagged(body: Bytes) -> String {
    body.len().to_string()
}

impl SecretSource for StripeSecrets {
    fn webhook_secrets(&self) -> &WebhookSecrets {
        &self.0
    }
}

// `#[axum::debug_handler]` in either order, as with `#[api_key]`.
#[axum::debug_handler(state = AppState)]
#[webhook(scheme = "github")]
async fn debug_above(body: Bytes) -> String {
    body.len().to_string()
}

#[axum::debug_handler(state = AppState)]
#[webhook(scheme = "github")]
async fn debug_above_two(axum::extract::State(name): axum::extract::State<String>, body: String) -> String {
    format!("{name} {body}")
}

#[webhook(scheme = "github")]
#[axum::debug_handler(state = AppState)]
async fn debug_below(body: Bytes) -> String {
    body.len().to_string()
}

#[webhook(scheme = "github")]
#[axum::debug_handler(state = AppState)]
async fn debug_below_none() -> &'static str {
    "pinged"
}

#[derive(Clone, FromRef)]
struct AppState {
    name: String,
    keys: ApiKeys,
    webhooks: WebhookSecrets,
    stripe: StripeSecrets,
    tagged: Tagged<u8>,
}

fn main() {
    let state = AppState {
        name: "app".to_owned(),
        keys: ApiKeys::new(),
        webhooks: WebhookSecrets::new(),
        stripe: StripeSecrets(WebhookSecrets::new()),
        tagged: Tagged(WebhookSecrets::new(), std::marker::PhantomData),
    };
    let _: Router = Router::new()
        .route("/standard", post(standard))
        .route("/github", post(github))
        .route("/stripe", post(stripe))
        .route("/ping", post(without_body))
        .route("/tagged", post(tagged))
        .route("/debug/above", post(debug_above))
        .route("/debug/above-two", post(debug_above_two))
        .route("/debug/below", post(debug_below))
        .route("/debug/below-none", post(debug_below_none))
        .with_state(state);
}
