//! Rate limits shared through a real Redis server: one budget across instances, and what
//! happens when Redis goes away and comes back.
#![cfg(feature = "redis")]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use axum_api_key::{ApiKeys, Key, RateLimits, RedisFailure, RedisLimits, VerifiedKey, api_key};
use axum_api_key_tests::{
    Answer, KEY_A, RedisServer, get as request, global_logs, redis_url, send,
};
use http::StatusCode;

#[api_key]
async fn data(key: VerifiedKey) -> String {
    format!("data for {}", key.id())
}

use axum_api_key_tests::redis_prefix as prefix;

/// One instance of the app: its own store and limiter, counting in Redis at `url`.
async fn instance(url: &str, prefix: &str, limit: &str, failure: RedisFailure) -> Router {
    let redis = RedisLimits::new(url)
        .expect("a Redis URL")
        .prefix(prefix)
        .timeout(Duration::from_millis(50))
        .on_failure(failure);
    let limits = RateLimits::new().with_redis(redis);
    let _ = limits.connect().await;
    let keys = ApiKeys::new()
        .with(Key::new("partner-a", KEY_A).rate_limit(limit.parse().expect("a rate limit")))
        .with_rate_limits(limits);
    Router::new().route("/data", get(data)).with_state(keys)
}

async fn call(app: &Router) -> Answer {
    send(
        app.clone(),
        request("/data", &[("x-api-key", KEY_A.as_bytes())]),
    )
    .await
}

#[tokio::test]
async fn two_instances_share_one_budget() {
    let Some(url) = redis_url() else { return };
    let prefix = prefix("shared");
    let one = instance(&url, &prefix, "4/min", RedisFailure::Refuse).await;
    let two = instance(&url, &prefix, "4/min", RedisFailure::Refuse).await;
    let mut remaining = Vec::new();
    for app in [&one, &two, &one, &two] {
        let answer = call(app).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        remaining.push(answer.header("ratelimit").map(str::to_owned));
    }
    let refused = call(&two).await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
    assert_eq!(refused.header("retry-after"), Some("15"));
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some(r#""key";q=4;w=60"#)
    );
    assert_eq!(call(&one).await.status, StatusCode::TOO_MANY_REQUESTS);
    // Without `rate_limit_headers()`, accepted responses carry no fields.
    assert!(remaining.iter().all(Option::is_none));
}

#[tokio::test]
async fn redis_stopped_and_restarted_under_two_instances() {
    if redis_url().is_none() {
        return;
    }
    let mut server = match RedisServer::start() {
        Ok(server) => server,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => panic!("{why}"),
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let prefix = prefix("restart");
    let logs = global_logs();
    // This test's own events: those naming its prefix.
    let mine = |what: &str| {
        logs.text()
            .lines()
            .filter(|line| line.contains(what) && line.contains(prefix.as_str()))
            .count()
    };
    let one = instance(&server.url(), &prefix, "3/min", RedisFailure::FallBack).await;
    let two = instance(&server.url(), &prefix, "3/min", RedisFailure::FallBack).await;
    for app in [&one, &two, &one] {
        assert_eq!(call(app).await.status, StatusCode::OK);
    }
    assert_eq!(call(&two).await.status, StatusCode::TOO_MANY_REQUESTS);

    server.stop();
    // Each instance now counts alone, in process, from what Redis last said of the budget: it
    // is spent, so refused; never a fresh budget, never a 5xx.
    for app in [&one, &two] {
        for _ in 0..3 {
            assert_eq!(call(app).await.status, StatusCode::TOO_MANY_REQUESTS);
        }
    }
    // This test's warnings only: another test of this binary may stop its own Redis meanwhile.
    assert_eq!(
        mine("rate-limited requests are counted in this process"),
        2,
        "one warning per instance and outage: {}",
        logs.text()
    );

    server.restart().expect("redis-server starts again");
    // Redis is left alone for a second after a failure; then both instances find it again,
    // empty, and share one budget once more.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut statuses = Vec::new();
    for attempt in 0..50 {
        let answer = call(if attempt % 2 == 0 { &one } else { &two }).await;
        statuses.push(answer.status);
        if mine("Redis answers again") == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        mine("Redis answers again"),
        2,
        "both instances counted in Redis again: {statuses:?}\n{}",
        logs.text()
    );
    let fresh = format!("{prefix}-after");
    let one = instance(&server.url(), &fresh, "2/min", RedisFailure::Refuse).await;
    let two = instance(&server.url(), &fresh, "2/min", RedisFailure::Refuse).await;
    assert_eq!(call(&one).await.status, StatusCode::OK);
    assert_eq!(call(&two).await.status, StatusCode::OK);
    assert_eq!(call(&one).await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn with_redis_away_refuse_answers_503_and_fall_back_serves() {
    if redis_url().is_none() {
        return;
    }
    // A port where nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let refusing = instance(&url, &prefix("refuse"), "5/min", RedisFailure::Refuse).await;
    // A round trip that fails outright opens the breaker at once; one that times out (a
    // connection still being tried) counts toward it. Either way, by the breaker's count of
    // failures the limiter refuses.
    let mut answers = Vec::new();
    for _ in 0..RedisLimits::BREAKER_AFTER {
        answers.push(call(&refusing).await);
    }
    let answer = answers.last().expect("answers");
    answer.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "LimiterUnavailable");
    answer.assert_never_contains(KEY_A.as_bytes());
    let serving = instance(&url, &prefix("fallback"), "1/min", RedisFailure::FallBack).await;
    assert_eq!(call(&serving).await.status, StatusCode::OK);
    assert_eq!(call(&serving).await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[axum_api_key::webhook(scheme = "standard")]
async fn hook(body: axum::body::Bytes) -> String {
    format!("{} bytes", body.len())
}

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// An instance serving `route` at `/hook`, its webhook ids kept in the Redis at `url`.
async fn webhook_instance(
    url: &str,
    prefix: &str,
    route: axum::routing::MethodRouter<axum_api_key::webhook::WebhookSecrets>,
) -> Router {
    use axum_api_key::RedisReplayGuard;
    use axum_api_key::webhook::WebhookSecrets;
    let limits = RateLimits::new().with_redis(
        RedisLimits::new(url)
            .expect("a Redis URL")
            .prefix(prefix)
            .timeout(Duration::from_millis(50)),
    );
    limits.connect().await.expect("Redis answers");
    let secrets = WebhookSecrets::new()
        .with_secret(WEBHOOK_SECRET)
        .with_replay_guard(RedisReplayGuard::new(&limits).expect("counted in Redis"));
    Router::new().route("/hook", route).with_state(secrets)
}

/// Delivers the Standard Webhooks message `id` with the body `{}` to `app`.
async fn deliver_hook(app: &Router, id: &str) -> Answer {
    use axum_api_key::webhook::{Scheme, sign};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let headers = sign(Scheme::Standard, WEBHOOK_SECRET, id, now, b"{}").expect("sign");
    let mut request = http::Request::post("/hook");
    for (name, value) in &headers {
        request = request.header(*name, value);
    }
    send(
        app.clone(),
        request.body(axum::body::Body::from("{}")).expect("request"),
    )
    .await
}

#[tokio::test]
async fn a_webhook_accepted_by_one_instance_is_refused_as_replayed_by_another() {
    let Some(url) = redis_url() else { return };
    let prefix = prefix("replay");
    let one = webhook_instance(&url, &prefix, axum::routing::post(hook)).await;
    let two = webhook_instance(&url, &prefix, axum::routing::post(hook)).await;
    assert_eq!(
        deliver_hook(&one, "msg_shared_1").await.status,
        StatusCode::OK
    );
    let replayed = deliver_hook(&two, "msg_shared_1").await;
    assert_eq!(replayed.status, StatusCode::CONFLICT, "{}", replayed.text());
    assert_eq!(replayed.json()["reason"], "replayed");
}

static FAIL_NEXT_SHARED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

#[axum_api_key::webhook(scheme = "standard")]
async fn flaky_hook(body: axum::body::Bytes) -> Result<String, StatusCode> {
    if FAIL_NEXT_SHARED.swap(false, std::sync::atomic::Ordering::SeqCst) {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    Ok(format!("{} bytes", body.len()))
}

#[tokio::test]
async fn a_delivery_that_failed_on_one_instance_is_accepted_on_retry_by_another() {
    let Some(url) = redis_url() else { return };
    let prefix = prefix("retry");
    let one = webhook_instance(&url, &prefix, axum::routing::post(flaky_hook)).await;
    let two = webhook_instance(&url, &prefix, axum::routing::post(flaky_hook)).await;
    // Instance one fails the delivery; the sender's retry lands on instance two.
    assert_eq!(
        deliver_hook(&one, "msg_shared_retry").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let retried = deliver_hook(&two, "msg_shared_retry").await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text());
    // Handled now, everywhere.
    for app in [&one, &two] {
        let again = deliver_hook(app, "msg_shared_retry").await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
        assert_eq!(again.json()["reason"], "replayed");
    }
}

#[tokio::test]
async fn a_budget_spent_in_redis_stays_spent_when_redis_goes_away() {
    if redis_url().is_none() {
        return;
    }
    let mut server = match RedisServer::start() {
        Ok(server) => server,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and no throwaway Redis: {why}")
        }
        Err(why) => {
            eprintln!("skipped: no throwaway Redis ({why})");
            return;
        }
    };
    let app = instance(
        &server.url(),
        &prefix("mirror"),
        "3/min",
        RedisFailure::FallBack,
    )
    .await;
    for _ in 0..3 {
        assert_eq!(call(&app).await.status, StatusCode::OK);
    }
    assert_eq!(call(&app).await.status, StatusCode::TOO_MANY_REQUESTS);
    // Redis goes away: the requests counted here start from what Redis last said, a spent
    // budget, never from a whole one of this process's own.
    server.stop();
    for _ in 0..5 {
        let answer = call(&app).await;
        assert_eq!(
            answer.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            answer.text()
        );
    }
}

/// The guard as a layer counts in Redis as the attribute does: one budget across an instance
/// guarded by the layer and one guarded by the attribute, each request spent once.
#[tokio::test]
async fn a_layer_and_an_attribute_share_one_budget_in_redis() {
    #[api_key]
    struct Guarded;

    async fn plain(key: VerifiedKey) -> String {
        format!("data for {}", key.id())
    }

    let Some(url) = redis_url() else { return };
    let prefix = prefix("layer");
    let attribute = instance(&url, &prefix, "3/min", RedisFailure::Refuse).await;
    let redis = RedisLimits::new(&url)
        .expect("a Redis URL")
        .prefix(&prefix)
        .timeout(Duration::from_millis(50))
        .on_failure(RedisFailure::Refuse);
    let limits = RateLimits::new().with_redis(redis);
    let _ = limits.connect().await;
    let keys = ApiKeys::new()
        .with(Key::new("partner-a", KEY_A).rate_limit("3/min".parse().expect("a rate limit")))
        .with_rate_limits(limits);
    let layered = Router::new()
        .route("/data", get(plain))
        .layer(axum_api_key::RequireApiKey::<Guarded>::layer(keys));
    for app in [&layered, &attribute, &layered] {
        let answer = call(app).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.text(), "data for partner-a");
    }
    call(&layered)
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
    call(&attribute)
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
}
