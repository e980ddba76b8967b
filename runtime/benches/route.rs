//! What a guarded route costs beside an open one, and what a refused request costs beside an
//! accepted one: every variant in one process, interleaved.
//!
//! `cargo bench -p axum-api-key --bench route` (options after `--`: `--rounds 41`,
//! `--iterations 20000`).
//!
//! Each round runs every variant for the same number of requests, in an order that rotates
//! from round to round, and computes each ratio within the round; the report gives the median
//! of the per-round ratios and their spread (quartiles, and the extremes). A shared, noisy
//! machine moves every variant of one round alike, so the ratios hold where absolute times
//! drift; a single sequential run of each variant does not.
//!
//! Every request is one `GET /` through a real `Router` in-process (`tower::ServiceExt::oneshot`)
//! with one `x-api-key` header:
//!
//! - `unprotected`: no guard;
//! - `seed_eq`: the hand-written extractor comparing the header with `==` against a hard-coded
//!   key, as services do today;
//! - `valid`: `#[api_key]` on a handler without arguments, a valid key;
//! - `valid_key_arg`: the same on a handler that takes the `VerifiedKey`, which the guard then
//!   keeps in the request's extensions for it;
//! - `invalid`: `#[api_key]`, a well-formed key of the same length that is not in the store
//!   (the answer a client spraying guesses gets);
//! - `missing`: `#[api_key]`, no key at all;
//! - `identity_layer` and `layer`: a layer that does nothing, and the same guard as
//!   `RequireApiKey::layer` over the router, with a valid key;
//! - `limited`: `valid` with a key that carries a rate limit too high to refuse anything
//!   (1,000,000 per millisecond), counted in process: what the limiter adds to an accepted
//!   request (target: 60 ns at most);
//! - `planned`: a key on a plan (credits, its own rate limit and the route's, both too high to
//!   refuse anything, and an allowed network the request comes from), on a route with a
//!   `rate_limit` and a `cost`: what credits, two limits and an allowlist add to an accepted
//!   request over `valid` (target: 150 ns at most);
//! - `valid_served`: `valid` with the client's address in the request, as a server with connect
//!   info puts it there: the same request as `planned`'s, so `planned - valid_served` is what the
//!   plan costs and nothing of how the request was built;
//! - `windowed`: a key on a plan of two windows, a second and a calendar day, both too high to
//!   refuse anything;
//! - `valid_bearer`: `#[api_key(bearer)]`, the key as `Authorization: Bearer`, beside the peers
//!   that read the same header: `tower_http_bearer`, tower-http's `ValidateRequestHeaderLayer::
//!   bearer` over the open route, and `axum_auth_bearer`, axum-auth's `AuthBearer` extractor
//!   with the token compared by `==` in the handler, as its documentation shows.

#![allow(clippy::print_stdout)] // the report is the output

mod common;

use common::{option, quantile};
use std::hint::black_box;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::{Request, StatusCode, request::Parts};
use axum::routing::get;
use axum_api_key::{ApiKeys, Key, RateLimits, RequireApiKey, VerifiedKey, api_key};
use tower::ServiceExt;

const KEY: &str = "bench_k3Yq9Vx2Lm7Tr4Wp8Zn1Cs6";
const WRONG: &str = "bench_Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2";

async fn open() -> &'static str {
    "ok"
}

#[api_key]
async fn protected() -> &'static str {
    "ok"
}

#[api_key(rate_limit = "1000000/ms", cost = 1)]
async fn planned() -> &'static str {
    "ok"
}

#[api_key]
async fn protected_with_key(key: VerifiedKey) -> &'static str {
    black_box(key);
    "ok"
}

/// The same guard as a layer over the router.
#[api_key]
struct LayerGuard;

/// The extractor people hand-write today: one hard-coded key, compared with `==`.
struct SeedKey;

impl<S: Send + Sync> FromRequestParts<S> for SeedKey {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("x-api-key") {
            Some(value) if value == KEY => Ok(SeedKey),
            _ => Err(StatusCode::UNAUTHORIZED),
        }
    }
}

async fn seed(_: SeedKey) -> &'static str {
    "ok"
}

#[api_key(bearer)]
async fn protected_bearer() -> &'static str {
    "ok"
}

/// axum-auth's bearer extractor, the token compared in the handler.
async fn axum_auth_bearer(
    axum_auth::AuthBearer(token): axum_auth::AuthBearer,
) -> Result<&'static str, StatusCode> {
    if token == KEY {
        Ok("ok")
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}

fn request(key: Option<&str>, bearer: bool) -> Request<Body> {
    let mut request = Request::get("/");
    match key {
        Some(key) if bearer => request = request.header("authorization", format!("Bearer {key}")),
        Some(key) => request = request.header("x-api-key", key),
        None => {}
    }
    request.body(Body::empty()).expect("a valid request")
}

/// The variant's request: its key, and for `planned` the client's address, which the
/// allowlist reads (as a server with connect info puts it there).
fn request_of(variant: &Variant) -> Request<Body> {
    let mut request = request(variant.key, variant.bearer);
    if let Some(address) = variant.from {
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(address));
    }
    request
}

struct Variant {
    name: &'static str,
    router: Router,
    key: Option<&'static str>,
    status: StatusCode,
    from: Option<std::net::SocketAddr>,
    /// The key goes in `Authorization: Bearer` rather than `x-api-key`.
    bearer: bool,
}

/// `(numerator, denominator, what it says)` for each ratio the project tracks.
const RATIOS: &[(&str, &str, &str)] = &[
    (
        "valid",
        "unprotected",
        "an accepted key over the open route (target <= 1.12)",
    ),
    (
        "valid_key_arg",
        "unprotected",
        "the same, the handler taking the key",
    ),
    (
        "invalid",
        "valid",
        "a refused key over an accepted one (target <= 1.1)",
    ),
    (
        "invalid",
        "unprotected",
        "a refused key over the open route (target: valid / unprotected + 0.05)",
    ),
    ("missing", "valid", "a missing key over an accepted one"),
    (
        "seed_eq",
        "unprotected",
        "the hand-written `==` extractor over the open route",
    ),
    (
        "valid",
        "seed_eq",
        "#[api_key] over the hand-written `==` extractor",
    ),
    (
        "identity_layer",
        "unprotected",
        "a do-nothing layer over the open route: what axum's `Router::layer` costs any layer",
    ),
    (
        "layer",
        "identity_layer",
        "the guard as a layer over a do-nothing layer",
    ),
    (
        "layer",
        "unprotected",
        "the guard as a layer over the open route (target: valid / unprotected + 0.08)",
    ),
    (
        "layer",
        "valid_key_arg",
        "the layer over the attribute on a handler that takes the key: both keep it in the \
         request",
    ),
    (
        "limited",
        "valid",
        "a rate-limited key over an unlimited one",
    ),
    (
        "planned",
        "valid",
        "credits, two limits and an allowlist over none",
    ),
    (
        "planned",
        "valid_served",
        "the same, both requests carrying the client's address",
    ),
    (
        "windowed",
        "valid",
        "a second and a calendar day over no limit",
    ),
    (
        "valid_bearer",
        "unprotected",
        "#[api_key(bearer)] over the open route",
    ),
    (
        "tower_http_bearer",
        "unprotected",
        "tower-http's bearer layer over the open route",
    ),
    (
        "axum_auth_bearer",
        "unprotected",
        "axum-auth's bearer extractor and `==` over the open route",
    ),
    (
        "valid_bearer",
        "tower_http_bearer",
        "#[api_key(bearer)] over tower-http's bearer layer",
    ),
];

/// `(variant, baseline)` pairs whose difference in nanoseconds is reported too.
const DIFFERENCES: &[(&str, &str)] = &[
    ("limited", "valid"),
    ("planned", "valid"),
    ("planned", "valid_served"),
    ("windowed", "valid"),
];

fn main() {
    // `cargo test --benches` runs this with `--bench`-less arguments; a bench run passes
    // `--bench`. Without it, one short round checks that every variant answers as expected.
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let rounds = if benchmarking {
        option("--rounds", 41)
    } else {
        1
    };
    let iterations = if benchmarking {
        option("--iterations", 20_000)
    } else {
        10
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let keys = ApiKeys::new().with_key("bench", KEY);
    let variant = |name, router: Router<ApiKeys>, key, status| Variant {
        name,
        router: router.with_state(keys.clone()),
        key,
        status,
        from: None,
        bearer: false,
    };
    let planned_keys = ApiKeys::new()
        .with(
            Key::new("bench", KEY)
                .rate_limit("1000000/ms".parse().expect("a rate"))
                .credits(axum_api_key::MAX_CREDITS)
                .allowed_ips(["203.0.113.0/24".parse().expect("a network")]),
        )
        .with_rate_limits(RateLimits::new());
    let windowed_keys = ApiKeys::new()
        .with(
            Key::new("bench", KEY)
                .rate_limits([
                    "1000000/ms".parse().expect("a rate"),
                    axum_api_key::RateLimit::per_day(u32::MAX),
                ])
                .expect("a plan"),
        )
        .with_rate_limits(RateLimits::new());
    let limited_keys = ApiKeys::new()
        .with(Key::new("bench", KEY).rate_limit("1000000/ms".parse().expect("a rate")))
        .with_rate_limits(RateLimits::new());
    let variants = [
        variant(
            "unprotected",
            Router::new().route("/", get(open)),
            Some(KEY),
            StatusCode::OK,
        ),
        variant(
            "seed_eq",
            Router::new().route("/", get(seed)),
            Some(KEY),
            StatusCode::OK,
        ),
        variant(
            "valid",
            Router::new().route("/", get(protected)),
            Some(KEY),
            StatusCode::OK,
        ),
        variant(
            "valid_key_arg",
            Router::new().route("/", get(protected_with_key)),
            Some(KEY),
            StatusCode::OK,
        ),
        variant(
            "invalid",
            Router::new().route("/", get(protected)),
            Some(WRONG),
            StatusCode::UNAUTHORIZED,
        ),
        variant(
            "missing",
            Router::new().route("/", get(protected)),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        variant(
            "identity_layer",
            Router::new()
                .route("/", get(open))
                .layer(tower::layer::util::Identity::new()),
            Some(KEY),
            StatusCode::OK,
        ),
        variant(
            "layer",
            Router::new()
                .route("/", get(open))
                .layer(RequireApiKey::<LayerGuard>::layer(keys.clone())),
            Some(KEY),
            StatusCode::OK,
        ),
        Variant {
            name: "limited",
            router: Router::new()
                .route("/", get(protected))
                .with_state(limited_keys),
            key: Some(KEY),
            status: StatusCode::OK,
            from: None,
            bearer: false,
        },
        Variant {
            name: "valid_served",
            router: Router::new()
                .route("/", get(protected))
                .with_state(keys.clone()),
            key: Some(KEY),
            status: StatusCode::OK,
            from: Some("203.0.113.7:50000".parse().expect("an address")),
            bearer: false,
        },
        Variant {
            name: "windowed",
            router: Router::new()
                .route("/", get(protected))
                .with_state(windowed_keys),
            key: Some(KEY),
            status: StatusCode::OK,
            from: None,
            bearer: false,
        },
        Variant {
            name: "planned",
            router: Router::new()
                .route("/", get(planned))
                .with_state(planned_keys),
            key: Some(KEY),
            status: StatusCode::OK,
            from: Some("203.0.113.7:50000".parse().expect("an address")),
            bearer: false,
        },
        Variant {
            name: "valid_bearer",
            router: Router::new()
                .route("/", get(protected_bearer))
                .with_state(keys.clone()),
            key: Some(KEY),
            status: StatusCode::OK,
            from: None,
            bearer: true,
        },
        Variant {
            name: "tower_http_bearer",
            #[allow(deprecated)] // "too basic to be useful in real applications": the peer measured
            router: Router::new()
                .route("/", get(open))
                .layer(tower_http::validate_request::ValidateRequestHeaderLayer::bearer(KEY)),
            key: Some(KEY),
            status: StatusCode::OK,
            from: None,
            bearer: true,
        },
        Variant {
            name: "axum_auth_bearer",
            router: Router::new().route("/", get(axum_auth_bearer)),
            key: Some(KEY),
            status: StatusCode::OK,
            from: None,
            bearer: true,
        },
    ];
    for variant in &variants {
        let answer = runtime
            .block_on(variant.router.clone().oneshot(request_of(variant)))
            .expect("infallible");
        assert_eq!(answer.status(), variant.status, "{}", variant.name);
    }

    // `--only <variant>` runs that variant alone, for a profiler or an instruction counter
    // (`valgrind --tool=callgrind`), whose counts do not drift with the machine's load.
    let only = std::env::args().skip_while(|arg| arg != "--only").nth(1);
    if let Some(name) = only {
        let variant = variants
            .iter()
            .find(|v| v.name == name)
            .expect("a variant of that name");
        for _ in 0..iterations {
            let answer = runtime.block_on(
                variant
                    .router
                    .clone()
                    .oneshot(black_box(request_of(variant))),
            );
            black_box(answer.expect("infallible"));
        }
        return;
    }

    // Nanoseconds per request, per variant and round.
    let mut times = vec![Vec::with_capacity(rounds); variants.len()];
    for round in 0..rounds {
        for offset in 0..variants.len() {
            let index = (round + offset) % variants.len();
            let variant = &variants[index];
            let started = Instant::now();
            for _ in 0..iterations {
                let answer = runtime.block_on(
                    variant
                        .router
                        .clone()
                        .oneshot(black_box(request_of(variant))),
                );
                black_box(answer.expect("infallible"));
            }
            times[index].push(started.elapsed().as_nanos() as f64 / iterations as f64);
        }
    }
    if !benchmarking {
        return;
    }
    let column = |name: &str| {
        let at = variants
            .iter()
            .position(|v| v.name == name)
            .expect("a variant of that name");
        &times[at]
    };

    println!("{rounds} rounds of {iterations} requests per variant, interleaved\n");
    println!("| variant | median ns per request | quartiles |");
    println!("| --- | --- | --- |");
    for (variant, times) in variants.iter().zip(&times) {
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "| {} | {:.1} | {:.1} to {:.1} |",
            variant.name,
            quantile(&sorted, 0.5),
            quantile(&sorted, 0.25),
            quantile(&sorted, 0.75)
        );
    }
    println!("\n| ratio | median of per-round ratios | quartiles | extremes | what it says |");
    println!("| --- | --- | --- | --- | --- |");
    for (top, bottom, meaning) in RATIOS {
        let mut ratios: Vec<f64> = column(top)
            .iter()
            .zip(column(bottom))
            .map(|(t, b)| t / b)
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "| {top} / {bottom} | {:.3} | {:.3} to {:.3} | {:.3} to {:.3} | {meaning} |",
            quantile(&ratios, 0.5),
            quantile(&ratios, 0.25),
            quantile(&ratios, 0.75),
            ratios[0],
            ratios[ratios.len() - 1],
        );
    }
    println!("\n| difference | median of per-round differences | quartiles |");
    println!("| --- | --- | --- |");
    for (top, bottom) in DIFFERENCES {
        let mut differences: Vec<f64> = column(top)
            .iter()
            .zip(column(bottom))
            .map(|(t, b)| t - b)
            .collect();
        differences.sort_by(f64::total_cmp);
        println!(
            "| {top} - {bottom} | {:.1} ns | {:.1} to {:.1} ns |",
            quantile(&differences, 0.5),
            quantile(&differences, 0.25),
            quantile(&differences, 0.75),
        );
    }
    println!();
    for (top, bottom) in [("invalid", "valid"), ("limited", "valid")] {
        let mut difference: Vec<f64> = column(top)
            .iter()
            .zip(column(bottom))
            .map(|(t, b)| t - b)
            .collect();
        difference.sort_by(f64::total_cmp);
        println!(
            "{top} - {bottom}: median {:.1} ns per request (quartiles {:.1} to {:.1})",
            quantile(&difference, 0.5),
            quantile(&difference, 0.25),
            quantile(&difference, 0.75)
        );
    }
}
