//! `RouterSettings`: two routers in one process, each with its own problem `type` base, and a
//! third with the process-wide default (`about:blank`: this binary never sets one), served in
//! turn from one thread, so that the guard's cache of rendered refusals is shared between them.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use axum_api_key::webhook::WebhookSecrets;
use axum_api_key::{
    ApiKeys, ProblemTypeBaseError, RouterSettings, VerifiedKey, api_key, self_service, webhook,
};
use axum_api_key_tests::{KEY_A, send};
use http::Request;

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

/// The same routes, under `settings` if given.
fn app(settings: Option<RouterSettings>) -> Router {
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
    match settings {
        Some(settings) => app.layer(settings.layer()),
        None => app,
    }
}

/// The `type` of each refusal the routes give: the guard's, self-service's, a webhook's.
async fn refusal_types(app: &Router) -> Vec<String> {
    let requests = [
        Request::get("/data").body(Body::empty()).unwrap(),
        Request::get("/data")
            .header("x-api-key", "not-a-key-of-this-store")
            .body(Body::empty())
            .unwrap(),
        Request::post("/account/keys/me/rotate")
            .header("x-api-key", KEY_A)
            .body(Body::empty())
            .unwrap(),
        Request::post("/hook").body(Body::from("{}")).unwrap(),
    ];
    let mut types = Vec::new();
    for request in requests {
        let answer = send(app.clone(), request).await;
        assert!(answer.status.is_client_error(), "{}", answer.status);
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json")
        );
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        assert!(!text.contains(KEY_A), "the key is never echoed: {text}");
        types.push(answer.json()["type"].as_str().expect("a type").to_owned());
    }
    types
}

#[tokio::test(flavor = "current_thread")]
async fn each_router_names_its_own_type_base() {
    let first = app(Some(
        RouterSettings::new()
            .problem_type_base("https://one.example/problems/")
            .expect("an absolute URI"),
    ));
    let second = app(Some(
        RouterSettings::new()
            .problem_type_base("urn:example:problem:")
            .expect("an absolute URI"),
    ));
    let plain = app(None);
    let slugs = [
        "missing-key",
        "invalid-key",
        "keys-not-generated",
        "webhook-missing-signature",
    ];
    // Twice in turn: a refusal rendered and cached for one router is never served to another.
    for _ in 0..2 {
        let types = refusal_types(&first).await;
        let expected: Vec<String> = slugs
            .iter()
            .map(|slug| format!("https://one.example/problems/{slug}"))
            .collect();
        assert_eq!(types, expected);
        let types = refusal_types(&second).await;
        let expected: Vec<String> = slugs
            .iter()
            .map(|slug| format!("urn:example:problem:{slug}"))
            .collect();
        assert_eq!(types, expected);
        assert_eq!(refusal_types(&plain).await, vec!["about:blank"; 4]);
    }
    // Settings that set nothing change nothing.
    let unset = app(Some(RouterSettings::new()));
    assert_eq!(refusal_types(&unset).await, vec!["about:blank"; 4]);
}

#[test]
fn a_base_is_an_absolute_uri_a_json_string_holds_as_is() {
    for bad in [
        "/problems/",
        "problems",
        "https://api.example.com/a\"b/",
        "https://api.example.com/a\\b/",
        "https://api.example.com/a b/",
        "",
    ] {
        assert_eq!(
            RouterSettings::new().problem_type_base(bad).unwrap_err(),
            ProblemTypeBaseError::NotAbsolute,
            "{bad:?}"
        );
    }
    assert!(
        RouterSettings::new()
            .problem_type_base("https://api.example.com/problems/")
            .is_ok()
    );
}
