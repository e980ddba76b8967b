// A router state that cannot provide the key store does not compile, and when the handler
// names the state with `state = T` the error says so there, in plain words.
use axum::extract::State;
use axum::{Router, routing::get};
use axum_api_key::api_key;

#[derive(Clone)]
struct AppState {
    name: String,
}

#[api_key(state = AppState)]
async fn greet(State(state): State<AppState>) -> String {
    state.name
}

#[api_key(state = AppState)]
async fn data() {}

#[api_key]
async fn unnamed() {}

fn main() {
    let _: Router = Router::new()
        .route("/greet", get(greet))
        .route("/data", get(data))
        .with_state(AppState { name: "no keys here".into() });
    let _: Router = Router::new()
        .route("/unnamed", get(unnamed))
        .with_state(AppState { name: "no keys here".into() });
}
