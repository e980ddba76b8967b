//! `#[api_key]` and `#[webhook]` on associated functions (`impl Api { ... }`), with every
//! argument, through a real `Router`: they guard as they do on free functions.

use std::marker::PhantomData;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::FromRef;
use axum::routing::{get, post};
use axum_api_key::webhook::{Scheme, WebhookSecrets, sign};
use axum_api_key::{ApiKeys, Key, RateLimits, VerifiedKey, api_key, webhook};
use axum_api_key_tests::{Answer, KEY_A, KEY_B, send};
use http::{Request, StatusCode};

const WIDE: &str = "wd_Lm3Qx8Rt2Vb6Nc9Jk";
const GITHUB_SECRET: &str = "It's a Secret to Everybody";

/// Nine scopes: more than the shared `Packed` configuration holds.
const NINE: [&str; 9] = [
    "s:one", "s:two", "s:three", "s:four", "s:five", "s:six", "s:seven", "s:eight", "s:nine",
];

#[derive(Clone, FromRef)]
struct AppState {
    keys: ApiKeys,
    secrets: WebhookSecrets,
}

struct Api;

impl Api {
    #[api_key(rate_limit = "2/min")]
    async fn search(key: VerifiedKey) -> String {
        format!("search for {}", key.id())
    }

    #[api_key(rate_limit = "2/min")]
    async fn browse(key: VerifiedKey) -> String {
        format!("browse for {}", key.id())
    }

    #[api_key(scopes = [
        "s:one", "s:two", "s:three", "s:four", "s:five", "s:six", "s:seven", "s:eight", "s:nine",
    ])]
    async fn wide(key: VerifiedKey) -> String {
        format!("wide for {}", key.id())
    }

    #[api_key(state = AppState, store = ApiKeys, header = "x-partner-key", status = 403)]
    async fn partner(key: VerifiedKey) -> Result<String, StatusCode> {
        Ok(format!("partner {}", key.id()))
    }

    #[webhook(scheme = "github", max_body = 64)]
    async fn hook(body: Bytes) -> String {
        format!("{} bytes", body.len())
    }
}

/// A generic type's `impl`: the guard's configuration names none of its parameters.
struct Versioned<V>(PhantomData<V>);

impl<V: Send + 'static> Versioned<V> {
    #[api_key(rate_limit = "2/min", query = "key")]
    async fn versioned(key: VerifiedKey) -> String {
        format!("{} for {}", std::any::type_name::<V>(), key.id())
    }
}

/// A free function of the same name as an associated one: a budget of its own.
#[api_key(rate_limit = "2/min")]
async fn search(key: VerifiedKey) -> String {
    format!("free search for {}", key.id())
}

fn app() -> Router {
    let keys = ApiKeys::new()
        .with_key("partner-a", KEY_A)
        .with_key("partner-b", KEY_B)
        .with(Key::new("wide", WIDE).scopes(NINE))
        .with(Key::new("eight", "eg_Pz4Kw7Ht1Ys5Dm8Fq").scopes(NINE[..8].iter().copied()))
        .with_rate_limits(RateLimits::new());
    let secrets = WebhookSecrets::new().with_secret(GITHUB_SECRET);
    Router::new()
        .route("/search", get(Api::search))
        .route("/browse", get(Api::browse))
        .route("/free-search", get(search))
        .route("/wide", get(Api::wide))
        .route("/partner", get(Api::partner))
        .route("/versioned", get(Versioned::<u8>::versioned))
        .route("/hook", post(Api::hook))
        .with_state(AppState { keys, secrets })
}

async fn call(app: &Router, uri: &str, header: &str, key: &str) -> Answer {
    let request = Request::get(uri)
        .header(header, key)
        .body(Body::empty())
        .expect("request");
    send(app.clone(), request).await
}

#[tokio::test]
async fn an_associated_rate_limit_is_a_budget_of_the_route_alone() {
    let app = app();
    for _ in 0..2 {
        let answer = call(&app, "/search", "x-api-key", KEY_A).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.text(), "search for partner-a");
    }
    let refused = call(&app, "/search", "x-api-key", KEY_A).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    refused.assert_never_contains(KEY_A.as_bytes());
    // Another key, another handler with the same limit and a free function of the same name
    // each have budgets of their own.
    assert_eq!(
        call(&app, "/search", "x-api-key", KEY_B).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "/browse", "x-api-key", KEY_A).await.status,
        StatusCode::OK
    );
    let free = call(&app, "/free-search", "x-api-key", KEY_A).await;
    assert_eq!(free.status, StatusCode::OK);
    assert_eq!(free.text(), "free search for partner-a");
}

#[tokio::test]
async fn a_generic_types_associated_handler_is_guarded() {
    let app = app();
    let missing = call(&app, "/versioned", "x-api-key", KEY_A).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    let request = Request::get(format!("/versioned?key={KEY_A}"))
        .body(Body::empty())
        .expect("request");
    let answer = send(app.clone(), request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "u8 for partner-a");
}

#[tokio::test]
async fn nine_scopes_are_all_required() {
    let app = app();
    let answer = call(&app, "/wide", "x-api-key", WIDE).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "wide for wide");
    let lacking = call(&app, "/wide", "x-api-key", "eg_Pz4Kw7Ht1Ys5Dm8Fq").await;
    assert_eq!(lacking.status, StatusCode::FORBIDDEN);
    assert!(lacking.text().contains("s:nine"), "{}", lacking.text());
    let unscoped = call(&app, "/wide", "x-api-key", KEY_A).await;
    assert_eq!(unscoped.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn store_state_header_and_status_hold_on_an_associated_function() {
    let app = app();
    let answer = call(&app, "/partner", "x-partner-key", KEY_B).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "partner partner-b");
    let wrong = call(&app, "/partner", "x-partner-key", "pz_Wrong4Key8Here2X").await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    wrong.assert_never_contains(b"pz_Wrong4Key8Here2X");
    let other_header = call(&app, "/partner", "x-api-key", KEY_B).await;
    assert_eq!(other_header.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_associated_webhook_verifies_its_signature() {
    let app = app();
    let body = b"Hello, World!";
    let headers = sign(Scheme::GitHub, GITHUB_SECRET, "", 0, body).expect("sign");
    let mut request = Request::post("/hook");
    for (name, value) in &headers {
        request = request.header(*name, value);
    }
    let answer = send(
        app.clone(),
        request.body(Body::from(body.to_vec())).expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "13 bytes");
    let forged = sign(Scheme::GitHub, "another secret", "", 0, body).expect("sign");
    let mut request = Request::post("/hook");
    for (name, value) in &forged {
        request = request.header(*name, value);
    }
    let refused = send(
        app,
        request.body(Body::from(body.to_vec())).expect("request"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["reason"], "bad_signature");
}
