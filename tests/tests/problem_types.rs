//! `set_problem_type_base` reaches every refusal the crate writes: the guard's, the
//! self-service routes' and signed webhooks'. The base is process-wide and fixed once, so this
//! binary holds this one test.

use axum::body::Body;
use axum_api_key::set_problem_type_base;
use axum_api_key_tests::{KEY_A, refusing_routes, send};
use http::{Request, StatusCode};

const BASE: &str = "https://api.example.com/problems/";

#[tokio::test]
async fn every_refusal_names_the_type_base() {
    set_problem_type_base(BASE).expect("set before the first refusal");
    let app = refusing_routes();

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
