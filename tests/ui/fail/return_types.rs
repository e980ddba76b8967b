// What a handler returns must be a response: checked at the return type, for associated and
// generic handlers too, and for `impl Trait` returns whose bounds say it is not one.
use axum::extract::State;
use axum::{routing::get, Router};
use axum_api_key::{api_key, ApiKeys, VerifiedKey};

#[api_key]
async fn shown(key: VerifiedKey) -> impl std::fmt::Display {
    key.id().to_owned()
}

#[api_key]
async fn generic<T: Clone + Send + Sync + 'static>(State(_): State<T>) -> Option<u32> {
    None
}

struct Api;

impl Api {
    #[api_key(rate_limit = "1/s")]
    async fn count() -> u64 {
        1
    }
}

#[axum_api_key::webhook(scheme = "github")]
async fn hook(body: String) -> impl serde::Serialize {
    body
}

fn main() {
    let _: Router = Router::new()
        .route("/shown", get(shown))
        .route("/count", get(Api::count))
        .with_state(ApiKeys::new());
}
