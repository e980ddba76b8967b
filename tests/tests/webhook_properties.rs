//! Property tests of the webhook signature header parsers: whatever a client sends in them,
//! the answer is a clean refusal (never a 5xx, never the handler), and whatever body a sender
//! signs, it is accepted exactly as signed.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use axum_api_key::webhook::{Scheme, WebhookSecrets, sign};
use axum_api_key_tests::send;
use http::{HeaderValue, Request, StatusCode};
use proptest::prelude::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[axum_api_key::webhook(scheme = "standard")]
async fn standard(body: Bytes) -> Bytes {
    body
}

#[axum_api_key::webhook(scheme = "github")]
async fn github(body: Bytes) -> Bytes {
    body
}

#[axum_api_key::webhook(scheme = "stripe")]
async fn stripe(body: Bytes) -> Bytes {
    body
}

fn app() -> Router {
    Router::new()
        .route("/standard", post(standard))
        .route("/github", post(github))
        .route("/stripe", post(stripe))
        .with_state(WebhookSecrets::new().with_secret(SECRET))
}

fn runtime() -> tokio::runtime::Runtime {
    // Timers on, as `#[tokio::main]` has them: a webhook's body is read under a timeout.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

/// Header values a client can send: arbitrary bytes, and near misses of each form.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "(v1,|v1a,|sha256=|t=[0-9]{1,12},v1=)[A-Za-z0-9+/=,. ]{0,100}".prop_map(String::into_bytes),
        "[0-9]{0,25}".prop_map(String::into_bytes),
    ]
}

const HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hub-signature-256",
    "stripe-signature",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_headers_get_a_clean_refusal(
        values in proptest::collection::vec(header_value(), HEADERS.len()),
        route in prop_oneof![Just("/standard"), Just("/github"), Just("/stripe")],
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut request = Request::post(route);
        for (name, value) in HEADERS.iter().zip(&values) {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                request = request.header(*name, value);
            }
        }
        let request = request.body(Body::from(body)).expect("request");
        let answer = runtime().block_on(send(app(), request));
        prop_assert!(
            answer.status == StatusCode::UNAUTHORIZED,
            "{} {}", answer.status, answer.text()
        );
        prop_assert_eq!(answer.header("content-type"), Some("application/problem+json"));
    }

    #[test]
    fn any_signed_body_is_accepted_exactly_as_signed(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        id in "[A-Za-z0-9_-]{1,40}",
        scheme in prop_oneof![Just(Scheme::Standard), Just(Scheme::GitHub), Just(Scheme::Stripe)],
    ) {
        let headers = sign(scheme, SECRET, &id, now(), &body).expect("sign");
        let route = match scheme {
            Scheme::Standard => "/standard",
            Scheme::GitHub => "/github",
            _ => "/stripe",
        };
        let mut request = Request::post(route);
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let request = request.body(Body::from(body.clone())).expect("request");
        let answer = runtime().block_on(send(app(), request));
        prop_assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        prop_assert_eq!(answer.body, body);
    }
}
