//! Signed webhooks: one route per scheme, each verified by `#[webhook]` before it runs.
//!
//! ```sh
//! cargo run --example webhooks --features webhooks
//! ```
//!
//! Secrets come from `WEBHOOK_SECRETS` (comma-separated). With none, the server makes a demo
//! Standard Webhooks secret (`whsec_…`), keeps it in memory only, and prints it with a ready
//! `curl` line whose signature is valid for a few minutes. `PORT` overrides the port (3000).
//!
//! - `POST /webhooks/standard`: Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//!   `webhook-signature`), a JSON body;
//! - `POST /webhooks/github`: GitHub (`X-Hub-Signature-256`);
//! - `POST /webhooks/stripe`: Stripe (`Stripe-Signature`).

#![allow(clippy::print_stdout)]

use std::error::Error;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::{Json, Router, routing::post};
use axum_api_key::ConfigErrorKind;
use axum_api_key::webhook::{Scheme, WebhookSecrets, sign};
use serde_json::{Value, json};

/// A Standard Webhooks event: answers with what it received.
#[axum_api_key::webhook(scheme = "standard")]
async fn standard(Json(event): Json<Value>) -> Json<Value> {
    Json(json!({ "received": event }))
}

/// A GitHub event.
#[axum_api_key::webhook(scheme = "github")]
async fn github(body: String) -> String {
    format!("received {} bytes from GitHub\n", body.len())
}

/// A Stripe event.
#[axum_api_key::webhook(scheme = "stripe")]
async fn stripe(body: String) -> String {
    format!("received {} bytes from Stripe\n", body.len())
}

/// The example's router.
pub(crate) fn app(secrets: WebhookSecrets) -> Router {
    Router::new()
        .route("/webhooks/standard", post(standard))
        .route("/webhooks/github", post(github))
        .route("/webhooks/stripe", post(stripe))
        .with_state(secrets)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    axum_api_key_examples::load_dotenv()?;
    let (secrets, demo) = match WebhookSecrets::from_env("WEBHOOK_SECRETS") {
        Ok(secrets) => (secrets, None),
        Err(error) if error.kind() == ConfigErrorKind::NotSet => {
            let secret = axum_api_key::webhook::generate_secret();
            (
                WebhookSecrets::new().try_with_secret(&secret)?,
                Some(secret),
            )
        }
        Err(error) => return Err(error.into()),
    };
    let listener = axum_api_key_examples::bind(3000).await?;
    let address = listener.local_addr()?;
    println!("webhooks example listening on http://{address}");
    match demo {
        Some(secret) => {
            let body = r#"{"type":"invoice.paid","id":"evt_1"}"#;
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let headers = sign(
                Scheme::Standard,
                &secret,
                "msg_demo_1",
                now,
                body.as_bytes(),
            )?;
            let flags: Vec<String> = headers
                .iter()
                .map(|(name, value)| format!("-H '{name}: {value}'"))
                .collect();
            println!();
            println!(
                "WEBHOOK_SECRETS is not set, so this run uses a demo secret, kept in memory only:"
            );
            println!();
            println!("    {secret}");
            println!();
            println!("A signed Standard Webhooks delivery (valid for five minutes, and once):");
            println!(
                "    curl -i {} -H 'content-type: application/json' -d '{body}' http://{address}/webhooks/standard",
                flags.join(" ")
            );
            println!(
                "The same with the body changed is refused (401), and sent twice, replayed (409)."
            );
        }
        None => println!("serving {} secret(s) from WEBHOOK_SECRETS", secrets.len()),
    }
    axum_api_key_examples::serve(listener, app(secrets)).await
}
