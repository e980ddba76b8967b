use axum::extract::State;
use axum::{Router, routing::get};
use axum_api_key::{ApiKeys, VerifiedKey, api_key};

#[axum::debug_handler(state = ApiKeys)]
#[api_key]
async fn debug_outer(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[api_key]
#[axum::debug_handler(state = ApiKeys)]
async fn debug_inner(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[tracing::instrument(skip(key))]
#[api_key]
async fn instrument_outer(key: VerifiedKey, State(_keys): State<ApiKeys>) -> String {
    key.id().to_owned()
}

#[api_key]
#[tracing::instrument(skip_all)]
async fn instrument_inner(key: VerifiedKey) -> String {
    key.id().to_owned()
}

macro_rules! handler {
    ($name:ident, $status:literal) => {
        #[api_key(status = $status)]
        async fn $name(key: VerifiedKey) -> String {
            key.id().to_owned()
        }
    };
}

handler!(from_macro, 403);

#[api_key]
async fn cfg_param(#[cfg(any())] _never: u8, #[allow(unused_mut)] mut key: VerifiedKey) -> String {
    key.id().to_owned()
}

fn main() {
    let _: Router = Router::new()
        .route("/a", get(debug_outer))
        .route("/b", get(debug_inner))
        .route("/c", get(instrument_outer))
        .route("/d", get(instrument_inner))
        .route("/e", get(from_macro))
        .route("/f", get(cfg_param))
        .with_state(ApiKeys::new());
}
