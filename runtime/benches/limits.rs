//! What rate limiting costs where it is not a few nanoseconds: memory under a spray of
//! addresses and keys, and a budget counted in Redis beside a bare Redis round trip.
//!
//! `cargo bench -p axum-api-key --features redis --bench limits` (options after `--`:
//! `--addresses 1000000`, `--rounds 40`, `--per-round 500`; `REDIS_URL`, default
//! `redis://127.0.0.1:6379`).
//!
//! - Spray: one store with the default throttle (4 MiB) and one valid key; its resident memory
//!   (`VmRSS`) before any request, after the first, and after `--addresses` requests each from a
//!   distinct address with a random key, through a real `Router` in-process; with how many
//!   addresses the throttle holds and how many rate-limit budgets exist.
//! - Redis (feature `redis`): per round, `--per-round` requests of each variant interleaved one
//!   by one: a `PING` on its own connection, a request whose key's budget is counted in Redis,
//!   and one counted in process. Reports the median and p99 latency of each.

#![allow(clippy::print_stdout)] // the report is the output

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum_api_key::{ApiKeys, Key, RateLimits, api_key};
use common::{benchmarking, option};
use tower::ServiceExt;

const KEY: &str = "bench_k3Yq9Vx2Lm7Tr4Wp8Zn1Cs6";

#[api_key]
async fn protected() -> &'static str {
    "ok"
}

fn request(key: &str, from: Option<IpAddr>) -> Request<Body> {
    let mut request = Request::get("/")
        .header("x-api-key", key)
        .body(Body::empty())
        .expect("a valid request");
    if let Some(ip) = from {
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip, 50_000)));
    }
    request
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    spray(&runtime);
    #[cfg(feature = "redis")]
    redis_latency(&runtime);
}

fn spray(runtime: &tokio::runtime::Runtime) {
    let addresses = if benchmarking() {
        option("--addresses", 1_000_000)
    } else {
        1_000
    };
    let keys = ApiKeys::new()
        .with(Key::new("bench", KEY).rate_limit("1000/s".parse().expect("a rate")))
        .with_rate_limits(RateLimits::new());
    let app = Router::new()
        .route("/", get(protected))
        .with_state(keys.clone());
    let call = |key: &str, from| {
        runtime
            .block_on(app.clone().oneshot(request(key, from)))
            .expect("infallible")
            .status()
    };
    let at_start = rss_kib();
    assert_eq!(
        call(KEY, Some(IpAddr::from([192, 0, 2, 1]))),
        StatusCode::OK
    );
    assert_eq!(
        call("bench_first-wrong-key", Some(IpAddr::from([192, 0, 2, 1]))),
        StatusCode::UNAUTHORIZED
    );
    let after_first = rss_kib();
    let started = Instant::now();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut refused = 0usize;
    for i in 0..addresses {
        // A distinct address each time: IPv4 for half, an IPv6 /64 of its own for the rest.
        let ip = if i % 2 == 0 {
            IpAddr::from((0x0b00_0000_u32 + i as u32).to_be_bytes())
        } else {
            IpAddr::from(((0x2001_0db8_u128 << 96) | ((i as u128) << 64)).to_be_bytes())
        };
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let key = format!("bench_{state:016x}{:08x}", i);
        if call(&key, Some(ip)) == StatusCode::UNAUTHORIZED {
            refused += 1;
        }
    }
    let elapsed = started.elapsed();
    let after = rss_kib();
    let (budgets, held) = keys.rate_limits().__sizes();
    println!("## Spray: {addresses} requests, each from its own address with a random key\n");
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| RSS before any request | {at_start} KiB |");
    println!("| RSS after the first requests | {after_first} KiB |");
    println!(
        "| RSS after the spray | {after} KiB ({:+} KiB) |",
        after as i64 - after_first as i64
    );
    println!("| refused 401 | {refused} |");
    println!("| addresses the throttle holds | {held} |");
    println!("| rate-limit budgets | {budgets} (the valid key's) |");
    println!(
        "| time | {:.1} s ({:.0} ns per request) |\n",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / addresses as f64
    );
}

#[cfg(feature = "redis")]
fn redis_latency(runtime: &tokio::runtime::Runtime) {
    use axum_api_key::{RedisFailure, RedisLimits};
    use common::quantile;

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let (rounds, per_round) = if benchmarking() {
        (option("--rounds", 40), option("--per-round", 500))
    } else {
        (1, 5)
    };
    let prefix = format!("axum-api-key-bench:{}", std::process::id());
    let limits = RateLimits::new().with_redis(
        RedisLimits::new(&url)
            .expect("a Redis URL")
            .prefix(&prefix)
            .timeout(std::time::Duration::from_millis(50))
            .on_failure(RedisFailure::Refuse),
    );
    let connected = runtime.block_on(limits.connect());
    if let Err(error) = connected {
        println!("## Redis: skipped, {url} does not answer ({error})");
        return;
    }
    let limited = |limits: RateLimits| {
        let keys = ApiKeys::new()
            .with(Key::new("bench", KEY).rate_limit("1000000/ms".parse().expect("a rate")))
            .with_rate_limits(limits);
        Router::new().route("/", get(protected)).with_state(keys)
    };
    let in_redis = limited(limits);
    let in_process = limited(RateLimits::new());
    let client = redis::Client::open(url.as_str()).expect("a Redis URL");
    let mut ping = runtime
        .block_on(client.get_multiplexed_async_connection())
        .expect("a connection");
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        for i in 0..per_round {
            for offset in 0..3 {
                let variant = (round + i + offset) % 3;
                let started = Instant::now();
                match variant {
                    0 => {
                        let _: String = runtime
                            .block_on(redis::cmd("PING").query_async(&mut ping))
                            .expect("PONG");
                    }
                    1 => {
                        let status = runtime
                            .block_on(in_redis.clone().oneshot(request(KEY, None)))
                            .expect("infallible")
                            .status();
                        assert_eq!(status, StatusCode::OK, "counted in Redis");
                    }
                    _ => {
                        let status = runtime
                            .block_on(in_process.clone().oneshot(request(KEY, None)))
                            .expect("infallible")
                            .status();
                        assert_eq!(status, StatusCode::OK);
                    }
                }
                samples[variant].push(started.elapsed().as_nanos() as f64 / 1000.0);
            }
        }
    }
    println!(
        "## Redis on loopback: {rounds} rounds of {per_round} requests per variant, interleaved\n"
    );
    println!("| variant | median µs | p99 µs |");
    println!("| --- | --- | --- |");
    for (name, sample) in [
        "PING",
        "request counted in Redis",
        "request counted in process",
    ]
    .iter()
    .zip(&mut samples)
    {
        sample.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} | {:.1} |",
            quantile(sample, 0.5),
            quantile(sample, 0.99)
        );
    }
}
