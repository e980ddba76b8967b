//! Scopes: a valid key lacking a required scope gets 403 naming it, never the missing-key
//! status.

use axum::Router;
use axum::routing::get;
use axum_api_key::{ApiKeys, Key, VerifiedKey, api_key};
use axum_api_key_tests::{StatusCode, get as request, send};

const READER: &str = "rd_Hq7Vn2Lx9Pk4Wc1";
const WRITER: &str = "wr_Tz5Bm8Jy3Rf6Gd0";
const PLAIN: &str = "pl_Ks2Ne9Qa4Uv7Xb3";

fn keys() -> ApiKeys {
    ApiKeys::new()
        .with(Key::new("reader", READER).scopes(["orders:read"]))
        .with(Key::new("writer", WRITER).scopes(["orders:read", "orders:write"]))
        .with_key("plain", PLAIN)
}

#[api_key(scopes = ["orders:read"])]
async fn list_orders(key: VerifiedKey) -> String {
    format!(
        "{} may read: {}",
        key.id(),
        key.scopes().collect::<Vec<_>>().join(" ")
    )
}

#[api_key(bearer, scopes = ["orders:read", "orders:write"], status = 404)]
async fn write_orders(key: VerifiedKey) -> String {
    format!("{} may write", key.id())
}

fn app() -> Router {
    Router::new()
        .route("/orders", get(list_orders))
        .route("/orders/write", get(write_orders))
        .with_state(keys())
}

#[tokio::test]
async fn a_key_holding_every_scope_gets_in_and_sees_its_scopes() {
    let answer = send(
        app(),
        request("/orders", &[("x-api-key", READER.as_bytes())]),
    )
    .await;
    assert_eq!(answer.text(), "reader may read: orders:read");
    let answer = send(
        app(),
        request("/orders", &[("x-api-key", WRITER.as_bytes())]),
    )
    .await;
    assert_eq!(answer.text(), "writer may read: orders:read orders:write");
    let bearer = format!("Bearer {WRITER}");
    let answer = send(
        app(),
        request("/orders/write", &[("authorization", bearer.as_bytes())]),
    )
    .await;
    assert_eq!(answer.text(), "writer may write");
}

#[tokio::test]
async fn a_key_lacking_a_scope_gets_403_naming_it() {
    let answer = send(
        app(),
        request("/orders", &[("x-api-key", PLAIN.as_bytes())]),
    )
    .await;
    answer.assert_problem(StatusCode::FORBIDDEN, "InsufficientScope");
    assert_eq!(
        answer.json()["detail"],
        "The API key lacks the scope `orders:read`, which this endpoint requires."
    );
    assert_eq!(answer.header("www-authenticate"), None);
    answer.assert_never_contains(PLAIN.as_bytes());
}

#[tokio::test]
async fn a_bearer_token_lacking_scopes_gets_insufficient_scope_not_the_configured_status() {
    let bearer = format!("Bearer {PLAIN}");
    let answer = send(
        app(),
        request("/orders/write", &[("authorization", bearer.as_bytes())]),
    )
    .await;
    // 403, although the route answers a missing or wrong key with 404.
    answer.assert_problem(StatusCode::FORBIDDEN, "InsufficientScope");
    assert_eq!(
        answer.json()["detail"],
        "The API key lacks the scopes `orders:read`, `orders:write`, which this endpoint requires."
    );
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer error="insufficient_scope", scope="orders:read orders:write""#)
    );
    answer.assert_never_contains(PLAIN.as_bytes());

    let bearer = format!("Bearer {READER}");
    let answer = send(
        app(),
        request("/orders/write", &[("authorization", bearer.as_bytes())]),
    )
    .await;
    assert_eq!(
        answer.json()["detail"],
        "The API key lacks the scope `orders:write`, which this endpoint requires."
    );

    let answer = send(app(), request("/orders/write", &[])).await;
    answer.assert_problem(StatusCode::NOT_FOUND, "MissingKey");
}

#[tokio::test]
async fn scopes_come_from_configuration_too() {
    let keys: ApiKeys =
        format!("reader[orders:read]={READER}, writer[orders:read orders:write]={WRITER}")
            .parse()
            .expect("a valid configuration");
    let app = Router::new()
        .route("/orders/write", get(write_orders))
        .with_state(keys);
    let bearer = format!("Bearer {WRITER}");
    let answer = send(
        app.clone(),
        request("/orders/write", &[("authorization", bearer.as_bytes())]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let bearer = format!("Bearer {READER}");
    let answer = send(
        app,
        request("/orders/write", &[("authorization", bearer.as_bytes())]),
    )
    .await;
    answer.assert_problem(StatusCode::FORBIDDEN, "InsufficientScope");
}
