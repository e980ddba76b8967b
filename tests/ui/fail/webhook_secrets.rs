// `secrets = …` names a source of secrets in the router state; anything else is told at its name,
// with no second error at the route.
use axum::body::Bytes;
use axum::{routing::post, Router};
use axum_api_key::webhook::WebhookSecrets;
use axum_api_key::webhook;
#[allow(unused_imports)]
use std::sync::Arc;

#[webhook(scheme = "github", secrets = String)]
async fn text(body: Bytes) -> String {
    body.len().to_string()
}

#[webhook(scheme = "github", secrets = Arc<WebhookSecrets>)]
async fn shared(body: Bytes) -> String {
    body.len().to_string()
}

#[derive(Clone)]
struct Settings;

#[webhook(scheme = "github", secrets = Settings)]
async fn settings(body: Bytes) -> String {
    body.len().to_string()
}

fn main() {
    let _: Router = Router::new()
        .route("/text", post(text))
        .route("/shared", post(shared))
        .route("/settings", post(settings))
        .with_state(WebhookSecrets::new());
}
