//! Credits shared through a real Redis server: one count across instances, exact under 64
//! concurrent clients on two servers on loopback, spent together with rate limits.
//!
//! `cargo test -p axum-api-key-tests --all-features --test redis_credits -- --nocapture` prints
//! the load figures.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;
use axum_api_key::{ApiKeys, Key, RateLimits, RedisFailure, RedisLimits, api_key};
use axum_api_key_tests::{Answer, KEY_A, get as request, redis_prefix as prefix, redis_url, send};
use http::StatusCode;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[api_key]
async fn data() -> &'static str {
    "data"
}

#[api_key(rate_limit = "2/min")]
async fn search() -> &'static str {
    "search"
}

/// One instance: its own store and limiter, counting in Redis at `url` under `prefix`.
async fn instance(url: &str, prefix: &str, key: Key) -> (Router, ApiKeys) {
    let limits = RateLimits::new().with_redis(
        RedisLimits::new(url)
            .expect("a Redis URL")
            .prefix(prefix)
            .on_failure(RedisFailure::Refuse),
    );
    limits.connect().await.expect("Redis answers");
    let keys = ApiKeys::new().with(key).with_rate_limits(limits);
    let app = Router::new()
        .route("/data", get(data))
        .route("/search", get(search))
        .with_state(keys.clone());
    (app, keys)
}

async fn call(app: &Router, uri: &str) -> Answer {
    send(
        app.clone(),
        request(uri, &[("x-api-key", KEY_A.as_bytes())]),
    )
    .await
}

#[tokio::test]
async fn two_instances_share_one_count_and_rate_limit_refusals_spend_none() {
    let Some(url) = redis_url() else { return };
    let prefix = prefix("credits-shared");
    let plan = || Key::new("trial", KEY_A).credits(5);
    let (one, _) = instance(&url, &prefix, plan()).await;
    let (two, _) = instance(&url, &prefix, plan()).await;
    // The route's 2/min budget is shared too: two go through, the rest are refused by it and
    // spend no credit.
    assert_eq!(call(&one, "/search").await.status, StatusCode::OK);
    assert_eq!(call(&two, "/search").await.status, StatusCode::OK);
    for app in [&one, &two, &one] {
        let limited = call(app, "/search").await;
        limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
    }
    for app in [&two, &one, &two] {
        assert_eq!(call(app, "/data").await.status, StatusCode::OK);
    }
    for app in [&one, &two] {
        let refused = call(app, "/data").await;
        refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "CreditsExhausted");
        assert_eq!(refused.header("retry-after"), None);
    }
}

#[tokio::test]
async fn credits_set_anew_start_a_new_shared_count() {
    let Some(url) = redis_url() else { return };
    let prefix = prefix("credits-topup");
    let (one, keys) = instance(&url, &prefix, Key::new("trial", KEY_A).credits(1)).await;
    assert_eq!(call(&one, "/data").await.status, StatusCode::OK);
    assert_eq!(
        call(&one, "/data").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    keys.set_credits("trial", 2, None).expect("topped up");
    assert_eq!(call(&one, "/data").await.status, StatusCode::OK);
    assert_eq!(call(&one, "/data").await.status, StatusCode::OK);
    assert_eq!(
        call(&one, "/data").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// One instance on its own loopback port.
async fn serve(url: &str, prefix: &str, credits: u64) -> String {
    let (app, _) = instance(url, prefix, Key::new("load", KEY_A).credits(credits)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!("http://{}/data", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_on_two_servers_never_spend_more_than_granted() {
    let Some(url) = redis_url() else { return };
    const GRANTED: usize = 2_000;
    let prefix = prefix("credits-load");
    let urls = [
        serve(&url, &prefix, GRANTED as u64).await,
        serve(&url, &prefix, GRANTED as u64).await,
    ];
    let (accepted, refused, unavailable) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let started = std::time::Instant::now();
    let clients: Vec<_> = (0..64)
        .map(|n| {
            let url = urls[n % 2].clone();
            let (accepted, refused, unavailable) = (
                Arc::clone(&accepted),
                Arc::clone(&refused),
                Arc::clone(&unavailable),
            );
            tokio::spawn(async move {
                let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                // Until this client has been refused for credits a few times in a row.
                let mut refusals_in_a_row = 0;
                while refusals_in_a_row < 3 {
                    let request = http::Request::get(&url)
                        .header("x-api-key", KEY_A)
                        .body(Empty::new())
                        .expect("request");
                    let Ok(answer) = client.request(request).await else {
                        continue;
                    };
                    match answer.status().as_u16() {
                        200 => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            refusals_in_a_row = 0;
                        }
                        429 => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            refusals_in_a_row += 1;
                        }
                        503 => {
                            unavailable.fetch_add(1, Ordering::Relaxed);
                        }
                        other => panic!("unexpected status {other}"),
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("a client");
    }
    let (accepted, refused, unavailable) = (
        accepted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        unavailable.load(Ordering::Relaxed),
    );
    eprintln!(
        "64 clients on two servers: {accepted} accepted of {GRANTED} credits, {refused} refused, \
         {unavailable} answered 503, in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert!(accepted <= GRANTED, "{accepted} accepted of {GRANTED}");
    if unavailable == 0 {
        assert_eq!(accepted, GRANTED, "every credit was spendable");
    }
}
