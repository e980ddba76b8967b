// Mistakes the compiler finds in the types, reported at the type in our words.
use axum::{Json, Router, routing::get};
use axum_api_key::{ApiKeys, VerifiedKey, api_key};

struct NotAResponse;

#[api_key]
async fn returns_no_response() -> NotAResponse {
    NotAResponse
}

#[api_key]
async fn body_first(Json(body): Json<serde_json::Value>, key: VerifiedKey) -> String {
    format!("{body} from {}", key.id())
}

#[api_key]
#[axum::debug_handler]
async fn debug_below_without_state(key: VerifiedKey) -> String {
    key.id().to_owned()
}

fn main() {
    let _: Router = Router::new()
        .route("/a", get(returns_no_response))
        .route("/b", get(body_first))
        .route("/c", get(debug_below_without_state))
        .with_state(ApiKeys::new());
}
