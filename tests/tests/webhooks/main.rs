//! `#[webhook]` through a real `Router`: each scheme's signature, made by our signer and by the
//! published examples, and every refusal.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use axum_api_key::webhook::{Scheme, WebhookSecrets, sign};
use axum_api_key_tests::{Answer, global_logs, send};
use http::{Request, StatusCode};

mod delivery;

const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const STRIPE_SECRET: &str = "whsec_stripe_test_secret";

#[axum_api_key::webhook(scheme = "standard")]
async fn standard(Json(event): Json<serde_json::Value>) -> String {
    format!("got {}", event["type"].as_str().unwrap_or("?"))
}

#[axum_api_key::webhook(scheme = "github", max_body = 64)]
async fn github(body: Bytes) -> String {
    format!("{} bytes", body.len())
}

#[axum_api_key::webhook(scheme = "stripe", tolerance = 60)]
async fn stripe(body: String) -> String {
    body
}

#[axum_api_key::webhook(scheme = "standard")]
async fn no_body() -> &'static str {
    "noted"
}

fn app() -> Router {
    let secrets = WebhookSecrets::new()
        .with_secret("whsec_AAAAAAAAAAAAAAAAAAAAAAAA")
        .with_secret(STANDARD_SECRET)
        .with_secret(GITHUB_SECRET)
        .with_secret(STRIPE_SECRET);
    Router::new()
        .route("/standard", post(standard))
        .route("/github", post(github))
        .route("/stripe", post(stripe))
        .route("/ping", post(no_body))
        .with_state(secrets)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

fn request(uri: &str, headers: &[(&str, String)], body: &[u8]) -> Request<Body> {
    let mut request = Request::post(uri).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.body(Body::from(body.to_vec())).expect("request")
}

async fn deliver(app: &Router, uri: &str, headers: &[(&str, String)], body: &[u8]) -> Answer {
    send(app.clone(), request(uri, headers, body)).await
}

fn assert_refused(answer: &Answer, status: StatusCode, reason: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(answer.json()["reason"], reason, "{}", answer.text());
}

#[tokio::test]
async fn each_scheme_accepts_its_signature_and_hands_over_the_verified_body() {
    let app = app();
    let body = br#"{"type":"invoice.paid"}"#;
    let headers = sign(
        Scheme::Standard,
        STANDARD_SECRET,
        "msg_accept_1",
        now(),
        body,
    )
    .expect("sign");
    let answer = deliver(&app, "/standard", &headers, body).await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (StatusCode::OK, "got invoice.paid")
    );

    let headers = sign(Scheme::GitHub, GITHUB_SECRET, "", 0, b"Hello, World!").expect("sign");
    let answer = deliver(&app, "/github", &headers, b"Hello, World!").await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (StatusCode::OK, "13 bytes")
    );

    let headers = sign(Scheme::Stripe, STRIPE_SECRET, "", now(), b"charge").expect("sign");
    let answer = deliver(&app, "/stripe", &headers, b"charge").await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (StatusCode::OK, "charge")
    );

    let headers = sign(Scheme::Standard, STANDARD_SECRET, "msg_ping", now(), b"").expect("sign");
    let answer = deliver(&app, "/ping", &headers, b"").await;
    assert_eq!(answer.status, StatusCode::OK);
}

/// GitHub's documented example, as GitHub sends it.
#[tokio::test]
async fn githubs_published_example_is_accepted() {
    let headers = [(
        "x-hub-signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".to_owned(),
    )];
    let answer = deliver(&app(), "/github", &headers, b"Hello, World!").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[tokio::test]
async fn a_tampered_body_or_a_foreign_secret_is_refused_and_the_handler_never_sees_it() {
    let app = app();
    let body = br#"{"type":"invoice.paid","amount":1}"#;
    let headers = sign(Scheme::Standard, STANDARD_SECRET, "msg_tamper", now(), body).expect("sign");
    let tampered = br#"{"type":"invoice.paid","amount":9}"#;
    let answer = deliver(&app, "/standard", &headers, tampered).await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "bad_signature");
    answer.assert_never_contains(headers[2].1.as_bytes());

    let foreign = sign(
        Scheme::Standard,
        "whsec_Zm9yZWlnbiBzZWNyZXQ=",
        "msg_foreign",
        now(),
        body,
    )
    .expect("sign");
    assert_refused(
        &deliver(&app, "/standard", &foreign, body).await,
        StatusCode::UNAUTHORIZED,
        "bad_signature",
    );
    // A GitHub signature on the Stripe route is no Stripe signature.
    let github = sign(Scheme::GitHub, STRIPE_SECRET, "", 0, b"x").expect("sign");
    assert_refused(
        &deliver(&app, "/stripe", &github, b"x").await,
        StatusCode::UNAUTHORIZED,
        "missing_signature",
    );
}

#[tokio::test]
async fn missing_stale_replayed_and_oversized_requests_are_refused_for_what_they_are() {
    let app = app();
    assert_refused(
        &deliver(&app, "/standard", &[], b"{}").await,
        StatusCode::UNAUTHORIZED,
        "missing_signature",
    );

    let stale = sign(
        Scheme::Standard,
        STANDARD_SECRET,
        "msg_stale",
        now() - 301,
        b"{}",
    )
    .expect("sign");
    assert_refused(
        &deliver(&app, "/standard", &stale, b"{}").await,
        StatusCode::UNAUTHORIZED,
        "stale_timestamp",
    );
    let future = sign(Scheme::Stripe, STRIPE_SECRET, "", now() + 61, b"x").expect("sign");
    assert_refused(
        &deliver(&app, "/stripe", &future, b"x").await,
        StatusCode::UNAUTHORIZED,
        "stale_timestamp",
    );

    let body = br#"{"type":"once"}"#;
    let once = sign(Scheme::Standard, STANDARD_SECRET, "msg_once", now(), body).expect("sign");
    assert_eq!(
        deliver(&app, "/standard", &once, body).await.status,
        StatusCode::OK
    );
    assert_refused(
        &deliver(&app, "/standard", &once, body).await,
        StatusCode::CONFLICT,
        "replayed",
    );
    // Stripe has no id: the same signature is the same message.
    let charge = sign(Scheme::Stripe, STRIPE_SECRET, "", now(), b"once").expect("sign");
    assert_eq!(
        deliver(&app, "/stripe", &charge, b"once").await.status,
        StatusCode::OK
    );
    assert_refused(
        &deliver(&app, "/stripe", &charge, b"once").await,
        StatusCode::CONFLICT,
        "replayed",
    );

    let big = vec![b'x'; 65];
    let signed = sign(Scheme::GitHub, GITHUB_SECRET, "", 0, &big).expect("sign");
    assert_refused(
        &deliver(&app, "/github", &signed, &big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    // Without a length announced, the body is cut at the limit as it is read.
    let mut streamed = request("/github", &signed, &[]);
    *streamed.body_mut() = Body::from_stream(futures_stream(big.clone()));
    let answer = send(app.clone(), streamed).await;
    assert_refused(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
}

/// A body sent in chunks, with no `content-length`.
fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(8)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    tokio_stream_iter(chunks)
}

fn tokio_stream_iter<T: Send + 'static>(
    items: Vec<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static {
    struct Iter<T>(std::vec::IntoIter<T>);
    impl<T> futures_core::Stream for Iter<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    impl<T> Unpin for Iter<T> {}
    Iter(items.into_iter())
}

#[tokio::test]
async fn refusals_are_audited_without_secret_or_signature() {
    let logs = global_logs();
    let app = app();
    let body = b"{\"type\":\"audited\"}";
    let headers = sign(Scheme::Standard, STANDARD_SECRET, "msg_audit", now(), body).expect("sign");
    deliver(&app, "/standard", &headers, b"{\"type\":\"forged\"}").await;
    let logged = logs.text();
    assert!(
        logged
            .lines()
            .any(|line| line.contains("reason=\"bad_signature\"")
                && line.contains("scheme=\"standard\"")),
        "{logged}"
    );
    assert!(!logged.contains(&headers[2].1[3..]), "{logged}");
    assert!(
        !logged.contains(STANDARD_SECRET) && !logged.contains(GITHUB_SECRET),
        "{logged}"
    );
}
