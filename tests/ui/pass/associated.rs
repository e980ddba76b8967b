// Every argument of `#[api_key]`, and `#[webhook]`, on associated functions: in an inherent
// `impl`, of a generic type too. (`#[axum::debug_handler]` itself does not support associated
// functions.)
use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::routing::{get, post};
use axum::Router;
use axum_api_key::webhook::WebhookSecrets;
use axum_api_key::{api_key, webhook, ApiKeys, VerifiedKey};

#[derive(Clone, FromRef)]
struct AppState {
    keys: ApiKeys,
    secrets: WebhookSecrets,
    name: String,
}

struct Api;

impl Api {
    #[api_key(rate_limit = "10/s burst 20")]
    async fn limited(key: VerifiedKey) -> String {
        key.id().to_owned()
    }

    #[api_key(scopes = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])]
    async fn ten_scopes() -> &'static str {
        "ok"
    }

    #[api_key(state = AppState, store = ApiKeys, header = "x-partner-key", query = "key")]
    async fn stateful(State(name): State<String>, key: VerifiedKey) -> String {
        format!("{name} {}", key.id())
    }

    #[api_key(optional, cookie = "session", status = 403)]
    async fn maybe(key: Option<VerifiedKey>) -> String {
        key.map(|key| key.id().to_owned()).unwrap_or_default()
    }

    #[api_key(state = AppState)]
    async fn debugged(key: VerifiedKey) -> String {
        key.id().to_owned()
    }

    #[webhook(scheme = "standard", tolerance = 60, max_body = 4096)]
    async fn hook(body: Bytes) -> String {
        body.len().to_string()
    }

    #[webhook(scheme = "stripe")]
    async fn stripe_hook(State(name): State<String>, body: String) -> String {
        format!("{name} {body}")
    }
}

struct Generic<T>(std::marker::PhantomData<T>);

impl<T: Send + Sync + 'static> Generic<T> {
    #[api_key(rate_limit = "5/min", store = ApiKeys)]
    async fn handler(key: VerifiedKey) -> String {
        format!("{} {}", std::any::type_name::<T>(), key.id())
    }
}

fn main() {
    let state = AppState {
        keys: ApiKeys::new(),
        secrets: WebhookSecrets::new(),
        name: "app".to_owned(),
    };
    let _: Router = Router::new()
        .route("/limited", get(Api::limited))
        .route("/ten", get(Api::ten_scopes))
        .route("/stateful", get(Api::stateful))
        .route("/maybe", get(Api::maybe))
        .route("/debugged", get(Api::debugged))
        .route("/hook", post(Api::hook))
        .route("/stripe", post(Api::stripe_hook))
        .route("/generic", get(Generic::<u8>::handler))
        .with_state(state);
}
