//! Every request rule of the guard, through a real `Router`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_api_key::{ApiKeys, VerifiedKey, api_key};
use axum_api_key_tests::{KEY_A, KEY_B, Request, StatusCode, get as request, keys, send};
use serde::Deserialize;

#[api_key]
async fn data(key: VerifiedKey) -> String {
    format!("data for {}", key.id())
}

#[api_key(status = 403)]
async fn forbidden_when_wrong(key: VerifiedKey) -> String {
    format!("hello {}", key.id())
}

#[api_key(header = "X-Partner-Key")]
async fn partner() -> &'static str {
    "partner area"
}

async fn open() -> &'static str {
    "open"
}

fn app() -> Router {
    Router::new()
        .route("/data", get(data))
        .route("/forbidden", get(forbidden_when_wrong))
        .route("/partner", get(partner))
        .route("/open", get(open))
        .with_state(keys())
}

#[tokio::test]
async fn a_valid_key_reaches_the_handler_which_knows_its_id() {
    let answer = send(app(), request("/data", &[("x-api-key", KEY_A.as_bytes())])).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "data for partner-a");
    assert_eq!(answer.header("www-authenticate"), None);

    let answer = send(
        app(),
        request("/forbidden", &[("x-api-key", KEY_B.as_bytes())]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "hello partner-b");
}

#[tokio::test]
async fn a_missing_key_gets_401_with_a_challenge_and_problem_details() {
    let answer = send(app(), request("/data", &[])).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"ApiKey header="x-api-key""#)
    );
    let body = answer.json();
    assert_eq!(body["title"], "API key required");
    assert_eq!(
        body["detail"],
        "This endpoint requires an API key in the `x-api-key` header."
    );
}

#[tokio::test]
async fn an_empty_key_counts_as_missing() {
    let answer = send(app(), request("/data", &[("x-api-key", b"")])).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
}

#[tokio::test]
async fn bad_keys_get_401_and_never_appear_in_the_answer() {
    let oversized = "k".repeat(axum_api_key::MAX_KEY_LEN + 1);
    let nearly = format!("{}x", &KEY_A[..KEY_A.len() - 1]);
    let cases: [(&str, &[u8]); 6] = [
        ("unknown", b"pa_not-a-real-key-0123"),
        ("one character off", nearly.as_bytes()),
        ("oversized", oversized.as_bytes()),
        ("with a space", b"pa_7Qm2 xY9wLkV3rT8sNc5d"),
        ("not UTF-8", b"pa_\xff\xfe\xfd-secret"),
        (
            "a valid key with a suffix",
            b"pa_7Qm2xY9wLkV3rT8sNc5d-and-more",
        ),
    ];
    for (case, key) in cases {
        let answer = send(app(), request("/data", &[("x-api-key", key)])).await;
        answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
        assert_eq!(
            answer.header("www-authenticate"),
            Some(r#"ApiKey header="x-api-key""#),
            "{case}"
        );
        assert_eq!(
            answer.json()["detail"],
            "The API key in the `x-api-key` header is not valid."
        );
        answer.assert_never_contains(key);
    }
}

#[tokio::test]
async fn the_key_sent_twice_gets_400_even_when_both_are_valid() {
    let twice: [(&str, &[u8]); 2] = [
        ("x-api-key", KEY_A.as_bytes()),
        ("x-api-key", KEY_A.as_bytes()),
    ];
    let answer = send(app(), request("/data", &twice)).await;
    answer.assert_problem(StatusCode::BAD_REQUEST, "DuplicateKey");
    assert_eq!(answer.header("www-authenticate"), None);
    answer.assert_never_contains(KEY_A.as_bytes());

    let mixed: [(&str, &[u8]); 2] = [("x-api-key", b"wrong-key"), ("X-Api-Key", KEY_B.as_bytes())];
    let answer = send(app(), request("/forbidden", &mixed)).await;
    // 400 whatever the configured status: which copy counts is never guessed.
    answer.assert_problem(StatusCode::BAD_REQUEST, "DuplicateKey");
    answer.assert_never_contains(KEY_B.as_bytes());
    answer.assert_never_contains(b"wrong-key");
}

#[tokio::test]
async fn the_configured_status_replaces_401_and_drops_the_challenge() {
    let answer = send(app(), request("/forbidden", &[])).await;
    answer.assert_problem(StatusCode::FORBIDDEN, "MissingKey");
    assert_eq!(answer.header("www-authenticate"), None);

    let answer = send(app(), request("/forbidden", &[("x-api-key", b"wrong-key")])).await;
    answer.assert_problem(StatusCode::FORBIDDEN, "InvalidKey");
    assert_eq!(answer.header("www-authenticate"), None);
    answer.assert_never_contains(b"wrong-key");
}

#[tokio::test]
async fn a_configured_header_is_matched_case_insensitively_and_alone() {
    let answer = send(
        app(),
        request("/partner", &[("X-PARTNER-KEY", KEY_A.as_bytes())]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());

    // The default header does not stand in for the configured one.
    let answer = send(
        app(),
        request("/partner", &[("x-api-key", KEY_A.as_bytes())]),
    )
    .await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"ApiKey header="x-partner-key""#)
    );
    assert_eq!(
        answer.json()["detail"],
        "This endpoint requires an API key in the `x-partner-key` header."
    );
}

#[tokio::test]
async fn a_key_anywhere_but_the_header_does_not_count() {
    let uri = format!("/data?api_key={KEY_A}&x-api-key={KEY_A}");
    let cookie = format!("x-api-key={KEY_A}");
    let bearer = format!("Bearer {KEY_A}");
    let headers: [(&str, &[u8]); 2] = [
        ("cookie", cookie.as_bytes()),
        ("authorization", bearer.as_bytes()),
    ];
    let answer = send(app(), request(&uri, &headers)).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
    answer.assert_never_contains(KEY_A.as_bytes());
}

#[tokio::test]
async fn unprotected_routes_stay_open() {
    let answer = send(app(), request("/open", &[])).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "open");
}

#[derive(Deserialize)]
struct Order {
    item: String,
}

#[derive(Clone)]
struct Counting {
    keys: ApiKeys,
    handled: Arc<AtomicUsize>,
}

impl FromRef<Counting> for ApiKeys {
    fn from_ref(state: &Counting) -> Self {
        state.keys.clone()
    }
}

#[api_key]
async fn create_order(State(state): State<Counting>, Json(order): Json<Order>) -> String {
    state.handled.fetch_add(1, Ordering::SeqCst);
    format!("ordered {}", order.item)
}

fn post_json(key: Option<&str>, body: &'static str) -> Request<Body> {
    let mut request = Request::post("/orders").header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    request.body(Body::from(body)).expect("a valid request")
}

#[tokio::test]
async fn the_guard_runs_before_every_other_extractor() {
    let handled = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/orders", post(create_order))
        .with_state(Counting {
            keys: keys(),
            handled: Arc::clone(&handled),
        });

    // No key and a malformed body: 401, not the JSON extractor's 400 or 422.
    let answer = send(app.clone(), post_json(None, "{not json")).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
    let answer = send(
        app.clone(),
        post_json(Some("wrong-key"), r#"{"item":"tea"}"#),
    )
    .await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
    assert_eq!(
        handled.load(Ordering::SeqCst),
        0,
        "a refused request never reaches the handler"
    );

    // With the key, the other extractors run as usual.
    let answer = send(app.clone(), post_json(Some(KEY_A), "{not json")).await;
    assert!(
        answer.status == StatusCode::BAD_REQUEST
            || answer.status == StatusCode::UNPROCESSABLE_ENTITY
    );
    let answer = send(app, post_json(Some(KEY_A), r#"{"item":"tea"}"#)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "ordered tea");
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[derive(Clone, FromRef)]
struct AppState {
    keys: ApiKeys,
    greeting: String,
}

#[api_key(status = 403)]
async fn greet(State(greeting): State<String>, key: VerifiedKey) -> String {
    format!("{greeting}, {}", key.id())
}

#[tokio::test]
async fn a_state_struct_deriving_from_ref_provides_the_store() {
    let state = AppState {
        keys: keys(),
        greeting: "welcome".to_owned(),
    };
    let app = Router::new().route("/greet", get(greet)).with_state(state);
    let answer = send(
        app.clone(),
        request("/greet", &[("x-api-key", KEY_B.as_bytes())]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "welcome, partner-b");
    let answer = send(app, request("/greet", &[])).await;
    answer.assert_problem(StatusCode::FORBIDDEN, "MissingKey");
}

/// A generic handler with a where clause, public, documented, with attributes kept.
#[api_key]
#[must_use = "handlers are called by axum"]
pub async fn generic_echo<T>(axum::extract::Path(value): axum::extract::Path<T>) -> String
where
    T: std::fmt::Display + Send + 'static,
{
    format!("echo {value}")
}

#[tokio::test]
async fn generic_handlers_keep_their_generics() {
    let app = Router::new()
        .route("/echo/{value}", get(generic_echo::<u32>))
        .with_state(keys());
    let answer = send(
        app.clone(),
        request("/echo/42", &[("x-api-key", KEY_A.as_bytes())]),
    )
    .await;
    assert_eq!(answer.text(), "echo 42");
    let answer = send(app, request("/echo/42", &[])).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
}

async fn unguarded(key: VerifiedKey) -> String {
    key.id().to_owned()
}

async fn maybe(key: Option<VerifiedKey>) -> String {
    key.map_or_else(|| "anonymous".to_owned(), |k| k.id().to_owned())
}

#[tokio::test]
async fn verified_key_without_a_guard_is_a_500_never_a_pass() {
    let app = Router::new()
        .route("/oops", get(unguarded))
        .route("/maybe", get(maybe))
        .with_state(keys());
    let answer = send(
        app.clone(),
        request("/oops", &[("x-api-key", KEY_A.as_bytes())]),
    )
    .await;
    answer.assert_problem(StatusCode::INTERNAL_SERVER_ERROR, "NotProtected");
    answer.assert_never_contains(KEY_A.as_bytes());
    let answer = send(app, request("/maybe", &[("x-api-key", KEY_A.as_bytes())])).await;
    assert_eq!(answer.text(), "anonymous");
}

#[tokio::test]
async fn an_empty_store_refuses_everything() {
    let app = Router::new()
        .route("/data", get(data))
        .with_state(ApiKeys::new());
    let answer = send(app, request("/data", &[("x-api-key", KEY_A.as_bytes())])).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
}

#[api_key]
async fn only_body(Json(order): Json<Order>) -> String {
    format!("ordered {}", order.item)
}

#[tokio::test]
async fn the_guard_runs_before_a_body_extractor_that_is_the_only_argument() {
    let app = Router::new()
        .route("/orders", post(only_body))
        .with_state(keys());
    let answer = send(app.clone(), post_json(None, "{not json")).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
    let answer = send(app.clone(), post_json(Some(KEY_A), "{not json")).await;
    assert!(answer.status.is_client_error() && answer.status != StatusCode::UNAUTHORIZED);
    let answer = send(app, post_json(Some(KEY_A), r#"{"item":"tea"}"#)).await;
    assert_eq!(answer.text(), "ordered tea");
}
