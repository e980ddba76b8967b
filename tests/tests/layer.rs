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

/// A store that answers only after waiting, as one backed by a database does, counting lookups.
#[derive(Clone, Default)]
struct WaitingStore {
    lookups: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl axum_api_key::KeyStore for WaitingStore {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, axum_api_key::KeyError> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::task::yield_now().await;
        if key == KEY_A {
            Ok(VerifiedKey::new("waited-for").with_scopes(["api"]))
        } else {
            Err(axum_api_key::KeyError::Unknown)
        }
    }
}

/// A store that waits is checked by the layer as by the attribute: the check waits for it, the
/// key it accepts reaches the handler, and what it refuses never does.
#[tokio::test]
async fn a_layer_over_a_store_that_waits_waits_for_its_answer() {
    let store = WaitingStore::default();
    let app =
        Router::new().route("/orders", get(orders)).layer(
            RequireApiKey::<ApiAccess, WaitingStore>::layer(store.clone()),
        );
    let answer = send(
        app.clone(),
        request("/orders", &[("x-api-key", KEY_A.as_bytes())]),
    )
    .await;
    assert_eq!(
        (answer.status, answer.text()),
        (StatusCode::OK, "orders of waited-for".to_owned())
    );
    let answer = send(
        app.clone(),
        request("/orders", &[("x-api-key", b"pa_wrong-wrong-wrong")]),
    )
    .await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
    answer.assert_never_contains(b"pa_wrong-wrong-wrong");
    let answer = send(app, request("/orders", &[])).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
    // Asked once per request with a key: never twice for one request.
    assert_eq!(store.lookups.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// A key's budget behind the layer is spent once per request, whichever way the layer checks
/// it: the third request of a key allowed two a minute is refused, and a refused request spends
/// no credit.
#[tokio::test]
async fn a_layer_spends_a_budget_and_credits_once_per_request() {
    let keys = ApiKeys::new()
        .with(
            axum_api_key::Key::new("partner-a", KEY_A)
                .scopes(["api"])
                .rate_limit("2/min".parse().expect("a rate"))
                .credits(10),
        )
        .with_rate_limits(axum_api_key::RateLimits::new());
    let app = Router::new()
        .route("/orders", get(orders))
        .layer(RequireApiKey::<ApiAccess>::layer(keys.clone()));
    for _ in 0..2 {
        let answer = send(
            app.clone(),
            request("/orders", &[("x-api-key", KEY_A.as_bytes())]),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    let answer = send(app, request("/orders", &[("x-api-key", KEY_A.as_bytes())])).await;
    answer.assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
    let listed = keys.list();
    assert_eq!(listed[0].credits_left(), Some(8));
    assert_eq!(listed[0].uses_since_start(), 2);
}

/// A key sent over plain HTTP through the layer is refused and acted on as the store's
/// exposure policy says: the report the layer cannot make without waiting is made all the same.
#[tokio::test]
async fn a_layer_reports_a_key_sent_over_plain_http() {
    use axum_api_key::exposure::Exposure;
    use axum_api_key::exposure::LeakPolicy;
    use axum_api_key::{HttpsPolicy, KeyError};

    let keys = keys()
        .with_https(HttpsPolicy::Direct)
        .with_exposure(Exposure::new(LeakPolicy::Revoke));
    let app = Router::new()
        .route("/orders", get(orders))
        .layer(RequireApiKey::<ApiAccess>::layer(keys.clone()));
    let answer = send(app, request("/orders", &[("x-api-key", KEY_A.as_bytes())])).await;
    answer.assert_problem(StatusCode::FORBIDDEN, "HttpsRequired");
    answer.assert_never_contains(KEY_A.as_bytes());
    assert_eq!(
        keys.verify(KEY_A.as_bytes()).unwrap_err(),
        KeyError::Revoked
    );
}

/// Guesses through the layer count against the guesser's address as through the attribute: after
/// its budget of failed attempts the address is refused before any lookup, even with a real
/// key, while another address is served.
#[tokio::test]
async fn guesses_through_a_layer_throttle_the_guessing_address() {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use axum::extract::ConnectInfo;
    use axum_api_key::{RateLimits, Throttle};

    fn from(address: &str, key: &str) -> axum::http::Request<axum::body::Body> {
        let mut request = request("/orders", &[("x-api-key", key.as_bytes())]);
        let ip: IpAddr = address.parse().expect("an address");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
        request
    }

    let keys = keys()
        .with_rate_limits(RateLimits::new().throttle(Throttle::new(2, Duration::from_secs(60))));
    let app = Router::new()
        .route("/orders", get(orders))
        .layer(RequireApiKey::<ApiAccess>::layer(keys));
    for guess in ["pa_guess-guess-one", "pa_guess-guess-two"] {
        let answer = send(app.clone(), from("203.0.113.9", guess)).await;
        answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
    }
    let throttled = send(app.clone(), from("203.0.113.9", KEY_A)).await;
    throttled.assert_problem(StatusCode::TOO_MANY_REQUESTS, "TooManyAttempts");
    throttled.assert_never_contains(KEY_A.as_bytes());
    let other = send(app, from("203.0.113.10", KEY_A)).await;
    assert_eq!(
        (other.status, other.text()),
        (StatusCode::OK, "orders of partner-a".to_owned())
    );
}
