//! Delivery at least once and never twice: retries, duplicates in flight, cancelled and slow
//! deliveries, several signatures, and any body extractor last.

use super::*;

/// Fails its first `FAILURES` deliveries with a 500, as a handler whose database is down does,
/// then handles every one; counts the deliveries it saw.
static SEEN_BY_FLAKY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[axum_api_key::webhook(scheme = "standard")]
async fn flaky(Json(event): Json<serde_json::Value>) -> Result<String, StatusCode> {
    let seen = SEEN_BY_FLAKY.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if seen == 0 {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Ok(format!("handled {}", event["type"].as_str().unwrap_or("?")))
}

/// Holds each delivery until told to answer, so that a duplicate arrives while it runs.
static HOLD: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(0));

#[axum_api_key::webhook(scheme = "standard")]
async fn slow(body: Bytes) -> String {
    let _permit = HOLD.acquire().await.expect("open");
    format!("{} bytes", body.len())
}

/// The same, with a gate of its own for the cancellation test.
static HOLD_CANCELLED: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(0));

#[axum_api_key::webhook(scheme = "standard")]
async fn slow_cancelled(body: Bytes) -> String {
    let _permit = HOLD_CANCELLED.acquire().await.expect("open");
    format!("{} bytes", body.len())
}

#[tokio::test]
async fn a_retry_after_a_failed_delivery_is_accepted_and_a_handled_one_is_not() {
    let app = Router::new()
        .route("/flaky", post(flaky))
        .with_state(WebhookSecrets::new().with_secret(STANDARD_SECRET));
    let body = br#"{"type":"invoice.paid"}"#;
    let headers = sign(
        Scheme::Standard,
        STANDARD_SECRET,
        "msg_retry_1",
        now(),
        body,
    )
    .expect("sign");
    // The handler fails: the sender retries the very same delivery, which is accepted.
    let first = deliver(&app, "/flaky", &headers, body).await;
    assert_eq!(first.status, StatusCode::INTERNAL_SERVER_ERROR);
    let retry = deliver(&app, "/flaky", &headers, body).await;
    assert_eq!(
        (retry.status, retry.text().as_str()),
        (StatusCode::OK, "handled invoice.paid")
    );
    // Handled: the same delivery again is a replay.
    let again = deliver(&app, "/flaky", &headers, body).await;
    assert_refused(&again, StatusCode::CONFLICT, "replayed");
    assert_eq!(SEEN_BY_FLAKY.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_its_extractor_refuses_does_not_burn_the_message_id() {
    let app = app();
    let body = b"{not json";
    let headers = sign(
        Scheme::Standard,
        STANDARD_SECRET,
        "msg_bad_json",
        now(),
        body,
    )
    .expect("sign");
    for _ in 0..2 {
        let answer = deliver(&app, "/standard", &headers, body).await;
        assert!(
            answer.status.is_client_error() && answer.status != StatusCode::CONFLICT,
            "{}: {}",
            answer.status,
            answer.text()
        );
    }
}

/// A delivery of message `id` to `route` at `/slow`, started and left waiting in its handler;
/// the app, the signed headers and the running delivery.
async fn a_held_delivery(
    route: axum::routing::MethodRouter<WebhookSecrets>,
    id: &str,
) -> (
    Router,
    Vec<(&'static str, String)>,
    tokio::task::JoinHandle<Answer>,
) {
    let app = Router::new()
        .route("/slow", route)
        .with_state(WebhookSecrets::new().with_secret(STANDARD_SECRET));
    let headers = sign(Scheme::Standard, STANDARD_SECRET, id, now(), b"payload").expect("sign");
    let first = {
        let (app, headers) = (app.clone(), headers.clone());
        tokio::spawn(async move { deliver(&app, "/slow", &headers, b"payload").await })
    };
    // The delivery holds its claim while its handler waits.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    (app, headers, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_while_the_first_delivery_runs_is_refused_and_nothing_is_lost() {
    let (app, headers, first) = a_held_delivery(post(slow), "msg_in_flight").await;
    let duplicate = deliver(&app, "/slow", &headers, b"payload").await;
    assert_refused(&duplicate, StatusCode::CONFLICT, "in_flight");
    HOLD.add_permits(1);
    let first = first.await.expect("task");
    assert_eq!(first.status, StatusCode::OK);
    assert_refused(
        &deliver(&app, "/slow", &headers, b"payload").await,
        StatusCode::CONFLICT,
        "replayed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_delivery_releases_its_claim() {
    let (app, headers, first) = a_held_delivery(post(slow_cancelled), "msg_cancelled").await;
    // The sender gives up mid-delivery (its connection closes): the handler is dropped.
    first.abort();
    let _ = first.await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // Its retry is handled.
    HOLD_CANCELLED.add_permits(1);
    let retry = deliver(&app, "/slow", &headers, b"payload").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text());
}

#[tokio::test]
async fn svix_headers_and_a_secret_without_its_prefix_are_taken_as_the_reference_libraries_take_them()
 {
    let body = br#"{"type":"invoice.paid"}"#;
    let headers = sign(Scheme::Standard, STANDARD_SECRET, "msg_svix_1", now(), body).expect("sign");
    // Svix's own header names.
    let svix: Vec<(&str, String)> = headers
        .iter()
        .map(|(name, value)| {
            let name = match *name {
                "webhook-id" => "svix-id",
                "webhook-timestamp" => "svix-timestamp",
                "webhook-signature" => "svix-signature",
                other => other,
            };
            (name, value.clone())
        })
        .collect();
    let answer = deliver(&app(), "/standard", &svix, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    // Both prefixes, agreeing: fine; disagreeing: refused, never "the first wins".
    let body_two = br#"{"type":"invoice.sent"}"#;
    let headers_two = sign(
        Scheme::Standard,
        STANDARD_SECRET,
        "msg_svix_2",
        now(),
        body_two,
    )
    .expect("sign");
    let mut both_two = headers_two.clone();
    both_two.extend(
        headers_two
            .iter()
            .map(|(name, value)| (name.replacen("webhook", "svix", 1), value.clone()))
            .map(|(name, value)| (&*Box::leak(name.into_boxed_str()), value)),
    );
    let answer = deliver(&app(), "/standard", &both_two, body_two).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let mut clash = headers_two.clone();
    clash.push(("svix-id", "msg_other".to_owned()));
    assert_refused(
        &deliver(&app(), "/standard", &clash, body_two).await,
        StatusCode::UNAUTHORIZED,
        "missing_signature",
    );

    // The secret configured without `whsec_`, as svix and standardwebhooks accept it.
    let bare = STANDARD_SECRET.trim_start_matches("whsec_");
    let app = Router::new()
        .route("/standard", post(standard))
        .with_state(WebhookSecrets::new().with_secret(bare));
    let headers = sign(Scheme::Standard, STANDARD_SECRET, "msg_bare_1", now(), body).expect("sign");
    let answer = deliver(&app, "/standard", &headers, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[tokio::test]
async fn every_signature_up_to_thirty_two_is_compared() {
    let body = br#"{"type":"invoice.paid"}"#;
    let headers = sign(Scheme::Standard, STANDARD_SECRET, "msg_many_1", now(), body).expect("sign");
    let real = headers
        .iter()
        .find(|(name, _)| *name == "webhook-signature")
        .map(|(_, value)| value.clone())
        .expect("a signature");
    let bogus = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=";
    let with_real_at = |at: usize| {
        let mut signatures = vec![bogus; 40];
        signatures[at] = real.as_str();
        let mut sent = headers.clone();
        for (name, value) in &mut sent {
            if *name == "webhook-signature" {
                *value = signatures.join(" ");
            }
        }
        sent
    };
    // The 9th (which a cap of 8 missed) and the 32nd are compared.
    for at in [8, 31] {
        let answer = deliver(&app(), "/standard", &with_real_at(at), body).await;
        assert_eq!(answer.status, StatusCode::OK, "at {at}: {}", answer.text());
    }
    // Past the documented cap of 32, the rest are not looked at.
    assert_refused(
        &deliver(&app(), "/standard", &with_real_at(35), body).await,
        StatusCode::UNAUTHORIZED,
        "bad_signature",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_announced_is_answered_408_after_the_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = Router::new().route("/standard", post(standard)).with_state(
        WebhookSecrets::new()
            .with_secret(STANDARD_SECRET)
            .with_read_timeout(std::time::Duration::from_millis(300)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let body = br#"{"type":"invoice.paid"}"#;
    let headers = sign(
        Scheme::Standard,
        STANDARD_SECRET,
        "msg_stall_1",
        now(),
        body,
    )
    .expect("sign");
    let mut request = format!(
        "POST /standard HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n"
    );
    for (name, value) in &headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    stream.write_all(body).await.expect("send");
    // 23 of the 100 bytes announced, then nothing: the request is answered, not held.
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered before the client gives up")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    server.abort();
}

/// A body extractor of the application's own: made from the verified bytes.
struct Shout(String);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Shout {
    type Rejection = StatusCode;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, StatusCode> {
        let text = String::from_request(request, state)
            .await
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        Ok(Shout(text.to_uppercase()))
    }
}

#[axum_api_key::webhook(scheme = "github")]
async fn shout(Shout(text): Shout) -> String {
    text
}

/// An extractor of the request's parts last: the body is verified all the same.
#[axum_api_key::webhook(scheme = "github")]
async fn method_last(uri: http::Uri, method: http::Method) -> String {
    format!("{method} {uri}")
}

/// Fifteen extractors and the body: axum's sixteen, the guard included.
#[axum_api_key::webhook(scheme = "github")]
#[allow(clippy::too_many_arguments)]
async fn sixteen(
    _: http::Method,
    _: http::Method,
    _: http::Method,
    _: http::Method,
    _: http::Method,
    _: http::Method,
    _: http::Method,
    _: http::Method,
    _: http::Method,
    _: http::Method,
    _: http::Method,
    _: http::Method,
    _: http::Method,
    _: http::Method,
    method: http::Method,
    body: Bytes,
) -> String {
    format!("{method} {}", body.len())
}

#[tokio::test]
async fn the_last_argument_is_made_from_the_verified_request_whatever_extractor_it_is() {
    let app = Router::new()
        .route("/shout", post(shout))
        .route("/method", post(method_last))
        .route("/sixteen", post(sixteen))
        .with_state(WebhookSecrets::new().with_secret(GITHUB_SECRET));
    let body = b"hello, world";
    let headers = sign(Scheme::GitHub, GITHUB_SECRET, "", 0, body).expect("sign");
    for (uri, expected) in [
        ("/shout", "HELLO, WORLD"),
        ("/method", "POST /method"),
        ("/sixteen", "POST 12"),
    ] {
        let answer = deliver(&app, uri, &headers, body).await;
        assert_eq!(
            (answer.status, answer.text().as_str()),
            (StatusCode::OK, expected)
        );
        let forged = sign(Scheme::GitHub, "not the secret", "", 0, body).expect("sign");
        let refused = deliver(&app, uri, &forged, body).await;
        assert_refused(&refused, StatusCode::UNAUTHORIZED, "bad_signature");
        let tampered = deliver(&app, uri, &headers, b"hello, world!").await;
        assert_refused(&tampered, StatusCode::UNAUTHORIZED, "bad_signature");
    }
}
