//! Whole-router protection, and rendering every refusal in the app's own format.

use axum::Router;
use axum::http::StatusCode as Status;
use axum::response::IntoResponse;
use axum::routing::get;
use axum_api_key::{
    ApiKeyRejection, ApiKeys, Problem, RequireApiKey, VerifiedKey, api_key, render_rejections,
};
use axum_api_key_tests::{KEY_A, KEY_B, StatusCode, get as request, send};

/// Everything under `/api` needs a key holding `api`, by header or bearer token.
#[api_key(header = "x-api-key", bearer, scopes = ["api"])]
struct ApiAccess;

fn keys() -> ApiKeys {
    ApiKeys::new()
        .with(axum_api_key::Key::new("partner-a", KEY_A).scopes(["api"]))
        .with_key("partner-b", KEY_B)
}

async fn orders(key: VerifiedKey) -> String {
    format!("orders of {}", key.id())
}

async fn health() -> &'static str {
    "ok"
}

fn app() -> Router {
    let api = Router::new()
        .route("/orders", get(orders))
        .route("/orders/{id}", get(orders))
        .layer(RequireApiKey::<ApiAccess>::layer(keys()));
    Router::new()
        .nest("/api", api)
        .route("/health", get(health))
}

#[tokio::test]
async fn every_route_under_the_layer_needs_a_key() {
    for uri in ["/api/orders", "/api/orders/7"] {
        let answer = send(app(), request(uri, &[])).await;
        answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
        assert_eq!(
            answer.header("www-authenticate"),
            Some(r#"ApiKey header="x-api-key", Bearer"#)
        );

        let answer = send(app(), request(uri, &[("x-api-key", KEY_A.as_bytes())])).await;
        assert_eq!(
            (answer.status, answer.text()),
            (StatusCode::OK, "orders of partner-a".to_owned())
        );

        let answer = send(
            app(),
            request(uri, &[("x-api-key", b"pa_wrong-wrong-wrong")]),
        )
        .await;
        answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
        answer.assert_never_contains(b"pa_wrong-wrong-wrong");
    }
    let answer = send(
        app(),
        request("/api/orders", &[("x-api-key", KEY_B.as_bytes())]),
    )
    .await;
    answer.assert_problem(StatusCode::FORBIDDEN, "InsufficientScope");
    let answer = send(app(), request("/health", &[])).await;
    assert_eq!(answer.text(), "ok");
}

#[api_key(status = 403)]
async fn guarded() -> &'static str {
    "inside"
}

fn rendered_app() -> Router {
    Router::new()
        .route("/guarded", get(guarded))
        .with_state(keys())
        .nest("/api", app())
        .route(
            "/plain",
            get(|| async { (Status::UNAUTHORIZED, "not ours") }),
        )
        .layer(render_rejections(|rejection: &ApiKeyRejection| {
            let code = match rejection.problem() {
                Problem::MissingKey => "missing_key",
                Problem::DuplicateKey => "duplicate_key",
                _ => "rejected",
            };
            (
                [
                    ("content-type", "text/plain; charset=utf-8"),
                    ("www-authenticate", "Fake"),
                ],
                format!("{code}: {}", rejection.detail()),
            )
                .into_response()
        }))
}

#[tokio::test]
async fn an_app_renders_refusals_its_own_way_with_statuses_and_challenges_kept() {
    let answer = send(rendered_app(), request("/api/api/orders", &[])).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    // The renderer's own challenge is replaced by the rejection's.
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"ApiKey header="x-api-key", Bearer"#)
    );
    assert_eq!(
        answer.text(),
        "missing_key: This endpoint requires an API key in the `x-api-key` header or as a Bearer \
         token in the `Authorization` header."
    );

    let answer = send(
        rendered_app(),
        request("/guarded", &[("x-api-key", b"pa_wrong-wrong-wrong")]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.text(),
        "rejected: The API key in the `x-api-key` header is not valid."
    );
    answer.assert_never_contains(b"pa_wrong-wrong-wrong");

    let twice: [(&str, &[u8]); 2] = [
        ("x-api-key", KEY_A.as_bytes()),
        ("x-api-key", KEY_A.as_bytes()),
    ];
    let answer = send(rendered_app(), request("/guarded", &twice)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.text().starts_with("duplicate_key: "));

    // Responses that are not refusals pass untouched, whatever their status.
    let answer = send(rendered_app(), request("/plain", &[])).await;
    assert_eq!(
        (answer.status, answer.text()),
        (StatusCode::UNAUTHORIZED, "not ours".to_owned())
    );
    let answer = send(
        rendered_app(),
        request("/guarded", &[("x-api-key", KEY_A.as_bytes())]),
    )
    .await;
    assert_eq!(
        (answer.status, answer.text()),
        (StatusCode::OK, "inside".to_owned())
    );
}
