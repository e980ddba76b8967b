// Mistakes of someone new to the crate, as they would write them: a key or a secret in the
// attribute, a store or secrets built in place, the header named positionally.
use axum_api_key::{api_key, webhook};

#[api_key(key = "sk_live_7Qm2xY9wLkV3rT8s")]
async fn key_in_code() {}

#[api_key(store = "sk_live_7Qm2xY9wLkV3rT8s")]
async fn key_as_store() {}

#[api_key(store = axum_api_key::ApiKeys::new())]
async fn store_built_in_place() {}

#[api_key(state = "AppState")]
async fn quoted_state() {}

#[api_key("x-api-key")]
async fn positional_header() {}

#[webhook(scheme = "standard", secrets = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
async fn secret_in_code(body: axum::body::Bytes) -> String {
    body.len().to_string()
}

#[webhook(scheme = "standard", secrets = axum_api_key::webhook::WebhookSecrets::new())]
async fn secrets_built_in_place(body: axum::body::Bytes) -> String {
    body.len().to_string()
}

fn main() {}

#[webhook("github")]
async fn positional_scheme(body: axum::body::Bytes) -> String {
    body.len().to_string()
}
