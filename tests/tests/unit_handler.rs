//! A protected handler called as a function in a unit test, without HTTP: the guard is made
//! with `UnitTestGuard::in_unit_test()` and its type inferred, whatever the attribute says. The
//! same handlers through a real `Router` still refuse a request without a key: the test-made
//! guard is never what a request meets.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use axum_api_key::{ApiKeys, UnitTestGuard, VerifiedKey, api_key};
use axum_api_key_tests::{KEY_A, send};
use http::{Request, StatusCode, Uri};

#[api_key]
async fn ping() -> &'static str {
    "pong"
}

#[api_key(header = "x-partner-key", status = 403, scopes = ["orders:read"])]
async fn orders(key: VerifiedKey, uri: Uri) -> String {
    format!("{} for {}", uri.path(), key.id())
}

#[api_key(rate_limit = "10/s")]
async fn limited(State(keys): State<ApiKeys>, key: VerifiedKey) -> String {
    format!("{} of {} keys", key.id(), keys.len())
}

#[tokio::test]
async fn handlers_are_called_as_functions_with_a_test_guard() {
    assert_eq!(ping(UnitTestGuard::in_unit_test()).await, "pong");

    let key = VerifiedKey::new("partner-a").with_scopes(["orders:read"]);
    let answer = orders(
        (UnitTestGuard::in_unit_test(), key),
        Uri::from_static("/orders"),
    )
    .await;
    assert_eq!(answer, "/orders for partner-a");

    let keys = ApiKeys::new().with_key("partner-a", KEY_A);
    let answer = limited(
        (UnitTestGuard::in_unit_test(), State(keys)),
        VerifiedKey::new("partner-a"),
    )
    .await;
    assert_eq!(answer, "partner-a of 1 keys");
}

#[tokio::test]
async fn the_same_handlers_through_a_router_still_need_a_key() {
    let app = Router::new()
        .route("/ping", get(ping))
        .route("/orders", get(orders))
        .route("/limited", get(limited))
        .with_state(ApiKeys::new().with_key("partner-a", KEY_A));
    for (path, refused) in [
        ("/ping", StatusCode::UNAUTHORIZED),
        ("/orders", StatusCode::FORBIDDEN),
        ("/limited", StatusCode::UNAUTHORIZED),
    ] {
        let request = Request::get(path).body(axum::body::Body::empty()).unwrap();
        let answer = send(app.clone(), request).await;
        assert_eq!(answer.status, refused, "{path}");
    }
    let request = Request::get("/ping")
        .header("x-api-key", KEY_A)
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(send(app.clone(), request).await.status, StatusCode::OK);
}
