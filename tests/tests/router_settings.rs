//! `RouterSettings`: two routers in one process, each with its own problem `type` base, and a
//! third with the process-wide default (`about:blank`: this binary never sets one), served in
//! turn from one thread, so that the guard's cache of rendered refusals is shared between them.

use axum::Router;
use axum::body::Body;
use axum_api_key::{ProblemTypeBaseError, RouterSettings};
use axum_api_key_tests::{KEY_A, refusing_routes, send};
use http::Request;

/// The same routes, under `settings` if given.
fn app(settings: Option<RouterSettings>) -> Router {
    let app = refusing_routes();
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
