//! `set_problem_type_base` reaches every refusal the crate writes: the guard's, the
//! self-service routes' and signed webhooks'. The base is process-wide and fixed once, so this
//! binary holds this one test.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use axum_api_key::webhook::WebhookSecrets;
use axum_api_key::{ApiKeys, VerifiedKey, api_key, self_service, set_problem_type_base, webhook};
use axum_api_key_tests::{KEY_A, send};
use http::{Request, StatusCode};

const BASE: &str = "https://api.example.com/problems/";

#[api_key]
struct ApiAccess;

#[api_key]
async fn data(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[webhook(scheme = "standard")]
async fn hook() -> &'static str {
    "noted"
}

#[tokio::test]
async fn every_refusal_names_the_type_base() {
    set_problem_type_base(BASE).expect("set before the first refusal");
    // A store without a key format: rotating a key through self-service is refused.
    let keys = ApiKeys::new().with_key("partner-a", KEY_A);
    let app = Router::new()
        .route("/data", get(data))
        .nest(
            "/account",
            self_service::<ApiAccess, ApiKeys, _>(Duration::from_secs(60)),
        )
        .with_state(keys)
        .merge(Router::new().route("/hook", post(hook)).with_state(
            WebhookSecrets::new().with_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ));

    let cases = [
        (
            Request::get("/data").body(Body::empty()).unwrap(),
            StatusCode::UNAUTHORIZED,
            "missing-key",
        ),
        (
            Request::post("/account/keys/me/rotate")
                .header("x-api-key", KEY_A)
                .body(Body::empty())
                .unwrap(),
            StatusCode::CONFLICT,
            "keys-not-generated",
        ),
        (
            Request::post("/hook").body(Body::from("{}")).unwrap(),
            StatusCode::UNAUTHORIZED,
            "webhook-missing-signature",
        ),
    ];
    for (request, status, slug) in cases {
        let path = request.uri().path().to_owned();
        let answer = send(app.clone(), request).await;
        assert_eq!(answer.status, status, "{path}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json"),
            "{path}"
        );
        let body = answer.json();
        assert_eq!(body["type"], format!("{BASE}{slug}"), "{path}: {body}");
        assert_eq!(body["status"], status.as_u16(), "{path}");
        let text = String::from_utf8_lossy(&answer.body);
        assert!(!text.contains("about:blank"), "{path}: {text}");
        assert!(!text.contains(KEY_A), "{path}: the key is never echoed");
    }
}
