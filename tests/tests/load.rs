//! A load run on loopback through a real server: the limit holds within a few percent of the
//! configured rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::get;
use axum_api_key::{ApiKeys, Key, RateLimits, api_key};
use axum_api_key_tests::KEY_A;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[api_key]
async fn data() -> &'static str {
    "data"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_get_the_configured_rate_and_no_more() {
    const RATE: f64 = 200.0;
    const BURST: f64 = 20.0;
    let keys = ApiKeys::new()
        .with(Key::new("partner-a", KEY_A).rate_limit("200/s burst 20".parse().expect("rate")))
        .with_rate_limits(RateLimits::new());
    let app = axum::Router::new()
        .route("/data", get(data))
        .with_state(keys);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!("http://{}/data", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let run = Duration::from_secs(3);
    let start = Instant::now();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (url, accepted, refused) =
                (url.clone(), Arc::clone(&accepted), Arc::clone(&refused));
            tokio::spawn(async move {
                let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
                while start.elapsed() < run {
                    let request = http::Request::get(&url)
                        .header("x-api-key", KEY_A)
                        .body(Empty::new())
                        .expect("request");
                    let status = client.request(request).await.expect("an answer").status();
                    match status.as_u16() {
                        200 => accepted.fetch_add(1, Ordering::Relaxed),
                        429 => refused.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected status {other}"),
                    };
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("a client");
    }
    let elapsed = start.elapsed().as_secs_f64();
    server.abort();
    let accepted = accepted.load(Ordering::Relaxed) as f64;
    let refused = refused.load(Ordering::Relaxed);
    // The budget starts whole (the burst) and refills at the rate for the whole run.
    let allowed = BURST + RATE * elapsed;
    eprintln!(
        "load: {accepted} accepted of {allowed:.0} allowed ({:.1}%), {refused} refused in {elapsed:.2} s",
        100.0 * accepted / allowed
    );
    assert!(refused > 0, "the clients must press harder than the limit");
    assert!(
        accepted <= allowed + 1.0,
        "{accepted} accepted, {allowed:.0} allowed"
    );
    assert!(
        accepted >= 0.95 * allowed,
        "{accepted} accepted, {allowed:.0} allowed"
    );
}
