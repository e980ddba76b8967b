//! The self-service router: a key holder reads, rotates and revokes its own key, through a
//! real `Router`.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum_api_key::{ApiKeys, Key, KeyFormat, api_key, self_service};
use axum_api_key_tests::{Answer, global_logs, send};
use http::{Request, StatusCode};

#[api_key]
struct ApiAccess;

fn app(keys: ApiKeys) -> Router {
    Router::new()
        .nest(
            "/account",
            self_service::<ApiAccess, ApiKeys, _>(Duration::from_secs(3600)),
        )
        .with_state(keys)
}

fn store() -> (ApiKeys, String) {
    store_of("partner-a")
}

fn store_of(id: &str) -> (ApiKeys, String) {
    let format = KeyFormat::new("ss").expect("format");
    let key = format.generate();
    let keys = ApiKeys::new().with_format(format).with(
        Key::new(id, &key)
            .scopes(["orders:read", "orders:write"])
            .rate_limit("100/min".parse().expect("rate")),
    );
    (keys, key)
}

async fn call(app: &Router, method: &str, uri: &str, key: Option<&str>) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    send(app.clone(), request.body(Body::empty()).expect("request")).await
}

#[tokio::test]
async fn the_holder_reads_its_key_but_never_the_key_itself() {
    let (keys, key) = store();
    let app = app(keys);
    let answer = call(&app, "GET", "/account/keys/me", Some(&key)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(
        answer.json(),
        serde_json::json!({
            "id": "partner-a",
            "scopes": ["orders:read", "orders:write"],
            "expires_at": null,
            "rate_limit": "100/min",
        })
    );
    answer.assert_never_contains(key.as_bytes());
}

#[tokio::test]
async fn every_route_refuses_a_request_without_its_key() {
    let (keys, _) = store();
    let app = app(keys);
    for (method, uri) in [
        ("GET", "/account/keys/me"),
        ("POST", "/account/keys/me/rotate"),
        ("DELETE", "/account/keys/me"),
    ] {
        call(&app, method, uri, None)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
        let wrong = call(&app, method, uri, Some("ss_wrong")).await;
        wrong.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
    }
}

#[tokio::test]
async fn a_rotation_gives_the_new_key_once_and_keeps_the_old_one_for_the_grace() {
    let (keys, old) = store_of("rotating-holder");
    let app = app(keys.clone());
    let logs = global_logs();
    let answer = call(&app, "POST", "/account/keys/me/rotate", Some(&old)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body = answer.json();
    let new = body["key"].as_str().expect("the new key").to_owned();
    assert!(new.starts_with("ss_") && new != old);
    assert_eq!(body["id"], "rotating-holder");
    let ends = body["expires_at"]
        .as_str()
        .expect("when the presented key stops working");
    assert!(ends.ends_with('Z'), "{ends}");
    assert!(!answer.text().contains(&old), "the old key is never echoed");

    // The new key holds what the old one held; the old one works until the grace ends.
    let me = call(&app, "GET", "/account/keys/me", Some(&new))
        .await
        .json();
    assert_eq!(
        me["scopes"],
        serde_json::json!(["orders:read", "orders:write"])
    );
    assert_eq!(me["rate_limit"], "100/min");
    let old_me = call(&app, "GET", "/account/keys/me", Some(&old))
        .await
        .json();
    let expires = old_me["expires_at"]
        .as_str()
        .expect("the old key now expires");
    assert!(expires.ends_with('Z') && expires.len() >= 20, "{expires}");

    let logged = logs.text();
    assert!(
        logged
            .lines()
            .any(|line| line.contains("outcome=\"rotated\"")
                && line.contains("key_id=\"rotating-holder\"")),
        "{logged}"
    );
    assert!(!logged.contains(&old) && !logged.contains(&new), "{logged}");
}

#[tokio::test]
async fn a_revocation_ends_every_key_of_the_id() {
    let (keys, key) = store();
    let app = app(keys.clone());
    let rotated = call(&app, "POST", "/account/keys/me/rotate", Some(&key))
        .await
        .json();
    let new = rotated["key"].as_str().expect("key").to_owned();
    let answer = call(&app, "DELETE", "/account/keys/me", Some(&new)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(answer.body.is_empty());
    for gone in [&key, &new] {
        call(&app, "GET", "/account/keys/me", Some(gone))
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "RevokedKey");
    }
}

#[tokio::test]
async fn a_store_without_a_format_answers_409_and_keeps_the_key() {
    let keys = ApiKeys::new().with_key("partner-a", "plain-key-1234");
    let app = app(keys);
    let answer = call(
        &app,
        "POST",
        "/account/keys/me/rotate",
        Some("plain-key-1234"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(answer.json()["status"], 409);
    answer.assert_never_contains(b"plain-key-1234");
    let me = call(&app, "GET", "/account/keys/me", Some("plain-key-1234")).await;
    assert_eq!(me.status, StatusCode::OK);
}

#[tokio::test]
async fn a_rotation_on_a_records_file_survives_a_restart() {
    let dir =
        std::env::temp_dir().join(format!("axum-api-key-self-service-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("keys.toml");
    let format = KeyFormat::new("ss").expect("format");
    let old = format.generate();
    let digest: String = axum_api_key::digest(old.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        &path,
        format!("format = \"ss\"\n\n[[keys]]\nid = \"partner-a\"\ndigest = \"sha256:{digest}\"\nrate_limit = \"5/s\"\n"),
    )
    .expect("write");
    let app_before = app(ApiKeys::from_file(&path).expect("read"));
    let rotated = call(&app_before, "POST", "/account/keys/me/rotate", Some(&old)).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let new = rotated.json()["key"].as_str().expect("key").to_owned();
    assert!(!std::fs::read_to_string(&path).expect("read").contains(&new));

    // A new process reads the file: the new key works, with its limit.
    let app_after = app(ApiKeys::from_file(&path).expect("read again"));
    let me = call(&app_after, "GET", "/account/keys/me", Some(&new)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["rate_limit"], "5/s");
    std::fs::remove_dir_all(&dir).ok();
}
