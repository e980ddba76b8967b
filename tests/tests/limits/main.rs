//! Rate limits and brute-force throttling through a real `Router`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum_api_key::{
    ApiKeys, Key, KeyFormat, RateLimit, RateLimits, Throttle, VerifiedKey, api_key,
    rate_limit_headers,
};
use axum_api_key_tests::{Answer, KEY_A, KEY_B, global_logs, send};
use http::{Request, StatusCode};

mod stores_and_memory;

/// How many times `data` ran for the key `burst-holder`, which one test alone uses: tests run
/// at once, and others call `data` too.
static CALLS: AtomicUsize = AtomicUsize::new(0);

#[api_key]
async fn data(key: VerifiedKey) -> String {
    if key.id() == "burst-holder" {
        CALLS.fetch_add(1, Ordering::SeqCst);
    }
    format!("data for {}", key.id())
}

#[api_key(rate_limit = "2/min")]
async fn search(key: VerifiedKey) -> String {
    format!("search for {}", key.id())
}

#[api_key(rate_limit = "100/min")]
async fn reports() -> &'static str {
    "reports"
}

fn limit(text: &str) -> RateLimit {
    text.parse().expect("a rate limit")
}

/// A store of its own budgets: partner-a limited to `a_limit`, partner-b unlimited.
fn store(a_limit: &str) -> ApiKeys {
    ApiKeys::new()
        .with(Key::new("partner-a", KEY_A).rate_limit(limit(a_limit)))
        .with_key("partner-b", KEY_B)
        .with_rate_limits(RateLimits::new())
}

fn app(keys: ApiKeys) -> Router {
    Router::new()
        .route("/data", get(data))
        .route("/search", get(search))
        .route("/reports", get(reports))
        .with_state(keys)
        .layer(rate_limit_headers())
}

fn request(uri: &str, key: &str, from: Option<&str>) -> Request<Body> {
    let mut request = Request::get(uri)
        .header("x-api-key", key)
        .body(Body::empty())
        .expect("request");
    if let Some(ip) = from {
        let ip: IpAddr = ip.parse().expect("address");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
    }
    request
}

async fn call(app: &Router, uri: &str, key: &str) -> Answer {
    send(app.clone(), request(uri, key, None)).await
}

#[tokio::test]
async fn a_burst_is_allowed_then_refused_with_when_to_retry() {
    let app = app(ApiKeys::new()
        .with(Key::new("burst-holder", KEY_A).rate_limit(limit("3/min")))
        .with_rate_limits(RateLimits::new()));
    for remaining in [2, 1, 0] {
        let answer = call(&app, "/data", KEY_A).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.header("ratelimit-policy"), Some(r#""key";q=3;w=60"#));
        let expected_reset = 20 * (3 - remaining);
        assert_eq!(
            answer.header("ratelimit"),
            Some(format!(r#""key";r={remaining};t={expected_reset}"#).as_str())
        );
    }
    let before = CALLS.load(Ordering::SeqCst);
    let refused = call(&app, "/data", KEY_A).await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
    // One request's share refills in 20 s; it is all but used up.
    assert_eq!(refused.header("retry-after"), Some("20"));
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some(r#""key";q=3;w=60"#)
    );
    let state = refused.header("ratelimit").expect("RateLimit on a 429");
    assert!(state.starts_with(r#""key";r=0;t="#), "{state}");
    refused.assert_never_contains(KEY_A.as_bytes());
    assert!(!refused.text().contains("  "), "{}", refused.text());
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        before,
        "the handler never runs for a refused request"
    );
}

#[tokio::test]
async fn a_budget_refills_after_its_interval() {
    let app = app(store("2/400ms"));
    assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    let refused = call(&app, "/data", KEY_A).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("retry-after"), Some("1"), "rounded up");
    tokio::time::sleep(Duration::from_millis(210)).await;
    assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    assert_eq!(
        call(&app, "/data", KEY_A).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(420)).await;
    assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
}

#[tokio::test]
async fn keys_have_budgets_of_their_own() {
    let keys = ApiKeys::new()
        .with(Key::new("partner-a", KEY_A).rate_limit(limit("1/min")))
        .with(Key::new("partner-b", KEY_B).rate_limit(limit("1/min")))
        .with_rate_limits(RateLimits::new());
    let app = app(keys);
    assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    assert_eq!(
        call(&app, "/data", KEY_A).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(call(&app, "/data", KEY_B).await.status, StatusCode::OK);
    // An unlimited key carries no fields.
    let free = app_with_free_b().await;
    assert!(free.header("ratelimit").is_none());
    assert!(free.header("ratelimit-policy").is_none());
}

async fn app_with_free_b() -> Answer {
    call(&app(store("1/min")), "/data", KEY_B).await
}

#[tokio::test]
async fn a_rotated_key_shares_its_budget_with_its_successor() {
    let format = KeyFormat::new("rot").expect("format");
    let old = format.generate();
    let keys = ApiKeys::new()
        .with_format(format)
        .with(Key::new("svc", &old).rate_limit(limit("3/min")))
        .with_rate_limits(RateLimits::new());
    let app = app(keys.clone());
    assert_eq!(call(&app, "/data", &old).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/data", &old).await.status, StatusCode::OK);
    let new = keys.rotate("svc", Duration::from_secs(60)).expect("rotate");
    let answer = call(&app, "/data", &new).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("ratelimit"), Some(r#""key";r=0;t=60"#));
    assert_eq!(
        call(&app, "/data", &new).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        call(&app, "/data", &old).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_route_limit_is_a_budget_per_key_beside_the_keys_own() {
    let app = app(store("10/min"));
    for _ in 0..2 {
        let answer = call(&app, "/search", KEY_A).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let answer = call(&app, "/search", KEY_B).await;
    assert_eq!(answer.status, StatusCode::OK, "partner-b has its own");
    assert_eq!(
        answer.header("ratelimit-policy"),
        Some(r#""route";q=2;w=60"#)
    );
    let refused = call(&app, "/search", KEY_A).await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some(r#""key";q=10;w=60, "route";q=2;w=60"#)
    );
    assert_eq!(refused.header("retry-after"), Some("30"));
    // The key's own budget still serves other routes: 2 + 1 spent of 10. The request the
    // route refused spent nothing of the key's budget: one counting rule, in process as in
    // Redis.
    let other = call(&app, "/data", KEY_A).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.header("ratelimit"), Some(r#""key";r=7;t=18"#));
    // A route limit on a handler without arguments works the same.
    let reports = call(&app, "/reports", KEY_B).await;
    assert_eq!(reports.status, StatusCode::OK);
    assert_eq!(reports.header("ratelimit"), Some(r#""route";r=99;t=1"#));
}

#[tokio::test]
async fn failed_attempts_throttle_the_address_before_any_lookup_until_it_refills() {
    let keys = ApiKeys::new()
        .with_key("partner-a", KEY_A)
        .with_rate_limits(RateLimits::new().throttle(Throttle::new(3, Duration::from_millis(600))));
    let app = app(keys.clone());
    let attacker = Some("203.0.113.9");
    for guess in ["guess-1", "guess-2", "guess-3"] {
        let answer = send(app.clone(), request("/data", guess, attacker)).await;
        answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
    }
    let logs = global_logs();
    let throttled = send(app.clone(), request("/data", KEY_A, attacker)).await;
    throttled.assert_problem(StatusCode::TOO_MANY_REQUESTS, "TooManyAttempts");
    assert_eq!(throttled.header("retry-after"), Some("1"));
    throttled.assert_never_contains(KEY_A.as_bytes());
    let logged = logs.text();
    assert!(
        logged.lines().any(
            |line| line.contains("reason=\"throttled\"") && line.contains("client=203.0.113.9")
        ),
        "{logged}"
    );
    assert!(!logged.contains(KEY_A), "{logged}");
    // Another address is not throttled, and a request without an address is never.
    let other = send(app.clone(), request("/data", KEY_A, Some("203.0.113.10"))).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    // The throttle refills one attempt every 200 ms.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let answer = send(app.clone(), request("/data", KEY_A, attacker)).await;
    assert_eq!(answer.status, StatusCode::OK);
    // Failed keys made no budget.
    assert_eq!(keys.rate_limits().__sizes().0, 0);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_counted() {
    let keys = ApiKeys::new()
        .with_key("partner-a", KEY_A)
        .with_rate_limits(
            RateLimits::new()
                .throttle(Throttle::new(2, Duration::from_secs(60)))
                .behind_proxies(["10.0.0.2".parse().expect("address")]),
        );
    let app = app(keys);
    let through_proxy = |key: &str, forwarded: &str| {
        let mut request = request("/data", key, Some("10.0.0.2"));
        request
            .headers_mut()
            .insert("x-forwarded-for", forwarded.parse().expect("header value"));
        request
    };
    for _ in 0..2 {
        let answer = send(
            app.clone(),
            through_proxy("wrong", "192.0.2.50, 198.51.100.1"),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let throttled = send(app.clone(), through_proxy(KEY_A, "198.51.100.1")).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    // The proxy itself, and other clients behind it, go on.
    let other = send(app.clone(), through_proxy(KEY_A, "198.51.100.2")).await;
    assert_eq!(other.status, StatusCode::OK);
    // From an untrusted peer the header is ignored: a client cannot pick its address.
    for _ in 0..2 {
        let mut spoofed = request("/data", "wrong", Some("192.0.2.77"));
        spoofed
            .headers_mut()
            .insert("x-forwarded-for", "198.51.100.3".parse().expect("value"));
        send(app.clone(), spoofed).await;
    }
    let answer = send(app.clone(), through_proxy(KEY_A, "198.51.100.3")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = send(app.clone(), request("/data", KEY_A, Some("192.0.2.77"))).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_spray_of_addresses_and_keys_stays_within_the_table() {
    let throttle = Throttle::new(5, Duration::from_secs(60)).memory(64 << 10);
    let keys = ApiKeys::new()
        .with(Key::new("partner-a", KEY_A).rate_limit(limit("1000/min")))
        .with_rate_limits(RateLimits::new().throttle(throttle));
    let app = app(keys.clone());
    // A throttled client, then a spray that fills the table many times over.
    for _ in 0..5 {
        send(
            app.clone(),
            request("/data", "guess", Some("198.51.100.200")),
        )
        .await;
    }
    for i in 0..50_000u32 {
        let ip = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
        let key = format!("random-{:08x}", i.wrapping_mul(2_654_435_761));
        let answer = send(app.clone(), request("/data", &key, Some(&ip.to_string()))).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let (budgets, addresses) = keys.rate_limits().__sizes();
    assert_eq!(budgets, 0, "failing keys make no budget");
    assert!(addresses <= throttle.capacity(), "{addresses}");
    assert!(addresses > throttle.capacity() / 2, "{addresses}");
    let answer = send(app.clone(), request("/data", KEY_A, Some("198.51.100.200"))).await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the spray did not push the throttled client out"
    );
}

#[tokio::test]
async fn a_key_over_its_limit_is_a_warning_with_its_id_and_never_the_key() {
    let keys = ApiKeys::new()
        .with(Key::new("warned-key", KEY_A).rate_limit(limit("1/min")))
        .with_rate_limits(RateLimits::new());
    let app = app(keys);
    let logs = global_logs();
    call(&app, "/data", KEY_A).await;
    let refused = call(&app, "/data", KEY_A).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let logged = logs.text();
    let line = logged
        .lines()
        .find(|line| line.contains("rate_limited") && line.contains("key_id=\"warned-key\""))
        .unwrap_or_else(|| panic!("no rate_limited event: {logged}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(!logged.contains(KEY_A), "{logged}");
}
