// Arguments that are no extractor a newcomer might write.
use axum::{routing::get, Router};
use axum_api_key::{api_key, ApiKeys, VerifiedKey};

#[api_key]
async fn greet(key: VerifiedKey, name: impl Into<String>) -> String {
    format!("{} {}", key.id(), name.into())
}

#[axum_api_key::webhook(scheme = "github")]
async fn hook(body: impl AsRef<[u8]>) -> String {
    body.as_ref().len().to_string()
}

fn main() {
    let _ = routes();
    let _: Router = Router::new()
        .route("/greet", get(greet))
        .with_state(ApiKeys::new());
}

// A reference is not an extractor; neither is a status written as `http`'s constant.
#[api_key(status = axum::http::StatusCode::FORBIDDEN)]
async fn by_reference(key: &VerifiedKey) -> String {
    key.id().to_owned()
}

fn routes() -> Router {
    Router::new()
        .route("/by-reference", get(by_reference))
        .with_state(ApiKeys::new())
}
