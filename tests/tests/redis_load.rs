//! A budget shared through Redis by two instances, each a real server on loopback, hammered by
//! many keep-alive clients: the accepted requests stay within 10% of the budget, and a healthy
//! Redis never makes a `Refuse` limiter answer 503.
//!
//! `cargo test -p axum-api-key-tests --all-features --test redis_load -- --nocapture` prints the
//! figures.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::get;
use axum_api_key::{ApiKeys, Key, RateLimits, RedisFailure, RedisLimits, api_key};
use axum_api_key_tests::{KEY_A, redis_url};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[api_key]
async fn data() -> &'static str {
    "data"
}

use axum_api_key_tests::redis_prefix as prefix;

/// One instance, on its own loopback port, with the limiter's default timeout.
async fn serve(url: &str, prefix: &str, limit: &str, failure: RedisFailure) -> String {
    let limits = RateLimits::new().with_redis(
        RedisLimits::new(url)
            .expect("a Redis URL")
            .prefix(prefix)
            .on_failure(failure),
    );
    limits.connect().await.expect("Redis answers");
    let keys = ApiKeys::new()
        .with(Key::new("partner-a", KEY_A).rate_limit(limit.parse().expect("a rate limit")))
        .with_rate_limits(limits);
    let app = axum::Router::new()
        .route("/data", get(data))
        .with_state(keys);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!("http://{}/data", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[derive(Default)]
struct Tally {
    accepted: AtomicUsize,
    refused: AtomicUsize,
    unavailable: AtomicUsize,
}

/// `clients` keep-alive clients, split over the instances, for `run`.
async fn hammer(urls: &[String], clients: usize, run: Duration) -> (Arc<Tally>, f64) {
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|n| {
            let (url, tally) = (urls[n % urls.len()].clone(), Arc::clone(&tally));
            tokio::spawn(async move {
                let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                while start.elapsed() < run {
                    let request = http::Request::get(&url)
                        .header("x-api-key", KEY_A)
                        .body(Empty::new())
                        .expect("request");
                    let Ok(answer) = client.request(request).await else {
                        continue;
                    };
                    let counter = match answer.status().as_u16() {
                        200 => &tally.accepted,
                        429 => &tally.refused,
                        503 => &tally.unavailable,
                        other => panic!("unexpected status {other}"),
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a client");
    }
    (tally, start.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_hold_one_budget_within_ten_percent_at_4_16_and_64_clients() {
    let Some(url) = redis_url() else { return };
    const RATE: f64 = 10.0;
    const BURST: f64 = 20.0;
    for clients in [4, 16, 64] {
        let prefix = prefix(&format!("load-{clients}"));
        let urls = [
            serve(&url, &prefix, "10/s burst 20", RedisFailure::FallBack).await,
            serve(&url, &prefix, "10/s burst 20", RedisFailure::FallBack).await,
        ];
        let (tally, elapsed) = hammer(&urls, clients, Duration::from_secs(5)).await;
        let accepted = tally.accepted.load(Ordering::Relaxed) as f64;
        let allowed = BURST + RATE * elapsed;
        eprintln!(
            "{clients} clients on two instances: {accepted} accepted of {allowed:.0} allowed \
             (ratio {:.3}), {} refused, {} unavailable in {elapsed:.2} s",
            accepted / allowed,
            tally.refused.load(Ordering::Relaxed),
            tally.unavailable.load(Ordering::Relaxed),
        );
        assert!(
            accepted <= allowed * 1.1,
            "{clients} clients: {accepted} accepted, {allowed:.0} allowed"
        );
        assert!(
            accepted >= allowed * 0.9,
            "{clients} clients: {accepted} accepted, {allowed:.0} allowed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_limiter_never_answers_503_while_redis_is_healthy() {
    let Some(url) = redis_url() else { return };
    let prefix = prefix("refuse-healthy");
    let urls = [
        serve(&url, &prefix, "10/s burst 20", RedisFailure::Refuse).await,
        serve(&url, &prefix, "10/s burst 20", RedisFailure::Refuse).await,
    ];
    let (tally, elapsed) = hammer(&urls, 64, Duration::from_secs(5)).await;
    let unavailable = tally.unavailable.load(Ordering::Relaxed);
    eprintln!(
        "Refuse, healthy Redis, 64 clients for {elapsed:.2} s: {} accepted, {} refused, \
         {unavailable} answered 503",
        tally.accepted.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
    );
    assert_eq!(unavailable, 0, "503 with a healthy Redis");
}
