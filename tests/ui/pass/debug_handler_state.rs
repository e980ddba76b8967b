// `#[axum::debug_handler]` below `#[api_key]` takes the state given to `#[api_key]`.
use axum::extract::FromRef;
use axum::{Router, routing::get};
use axum_api_key::{ApiKeys, VerifiedKey, api_key};

#[derive(Clone, FromRef)]
struct AppState {
    keys: ApiKeys,
}

#[api_key(state = AppState)]
#[axum::debug_handler]
async fn checked(key: VerifiedKey) -> String {
    key.id().to_owned()
}

fn main() {
    let _: Router = Router::new()
        .route("/", get(checked))
        .with_state(AppState { keys: ApiKeys::new() });
}
