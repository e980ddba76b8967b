// The rewritten handler keeps its name, visibility, attributes, doc comments, generics and
// where clause, and takes the state through `FromRef`.
use axum::extract::{FromRef, Path, State};
use axum::response::IntoResponse;
use axum::{Json, Router, routing::{get, post}};
use axum_api_key::{ApiKeys, VerifiedKey, api_key};

#[derive(Clone, FromRef)]
struct AppState {
    keys: ApiKeys,
    name: String,
}

/// Documented, public, generic, with a where clause.
#[api_key]
#[allow(clippy::needless_pass_by_value)]
pub async fn show<T>(Path((a, b)): Path<(T, T)>, key: VerifiedKey) -> impl IntoResponse
where
    T: std::fmt::Display + Send + 'static,
{
    format!("{a} {b} {}", key.id())
}

#[api_key(status = 403)]
pub(crate) async fn create(State(name): State<String>, Json(body): Json<serde_json::Value>) -> String {
    format!("{name}: {body}")
}

mod nested {
    #[axum_api_key::api_key]
    pub(super) async fn r#type(mut key: axum_api_key::VerifiedKey) -> String {
        key = key.clone();
        key.id().to_owned()
    }
}

struct Orders;

// Associated functions, for configurations the runtime shares.
impl Orders {
    #[api_key]
    async fn list() -> &'static str {
        "orders"
    }

    #[api_key(bearer, status = 403)]
    async fn create(key: VerifiedKey) -> String {
        key.id().to_owned()
    }

    #[api_key(header = "x-admin-key", query = "admin_key", scopes = ["orders:admin", "audit"])]
    async fn purge(key: VerifiedKey) -> String {
        key.id().to_owned()
    }
}

/// axum's `Result` form of an optional key: `Err` when the request had none.
#[api_key(optional)]
async fn result_form(key: Result<VerifiedKey, axum_api_key::ApiKeyRejection>) -> &'static str {
    if key.is_ok() { "known" } else { "anonymous" }
}

fn main() {
    let state = AppState { keys: ApiKeys::new(), name: "shop".into() };
    let _: Router<AppState> = Router::new()
        .route("/orders", get(Orders::list).post(Orders::create).delete(Orders::purge));
    let _: Router = Router::new()
        .route("/show/{a}/{b}", get(show::<u32>))
        .route("/create", post(create))
        .route("/type", get(nested::r#type))
        .route("/result", get(result_form))
        .with_state(state);
}
