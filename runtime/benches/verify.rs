//! What the guard costs, measured against baselines in the same run.
//!
//! `cargo bench -p axum-api-key --bench verify`, then `python3 runtime/benches/report.py` for
//! medians and ratios. Groups:
//!
//! - `route`: one GET through a real `Router` in-process, unprotected, with `#[api_key]` and a
//!   valid key, with the same guard as a router layer (beside a layer that does nothing, the
//!   cost of any router layer, and the same guard in a layer written by hand), and with the
//!   hand-written `==` extractor people write today.
//! - `verify`: `ApiKeys::verify` of a valid key against 1 and 1,000,000 keys, the second also
//!   with a different key each time so that the lookup misses the cache, beside one SHA-256.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::{Request, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_api_key::{ApiKeys, RequireApiKey, api_key, digest};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

const KEY: &str = "bench_k3Yq9Vx2Lm7Tr4Wp8Zn1Cs6";

async fn open() -> &'static str {
    "ok"
}

#[api_key]
async fn protected() -> &'static str {
    "ok"
}

/// The same guard as a layer over the router.
#[api_key]
struct LayerGuard;

/// The guard in a layer written by hand, the alternative to axum's `from_extractor`: kept here
/// to show it is no faster.
#[derive(Clone)]
struct HandLayer(ApiKeys);

impl<I> tower::Layer<I> for HandLayer {
    type Service = HandService<I>;

    fn layer(&self, inner: I) -> HandService<I> {
        HandService {
            inner,
            keys: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct HandService<I> {
    inner: I,
    keys: ApiKeys,
}

type BoxedResponse<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<I> tower::Service<Request<Body>> for HandService<I>
where
    I: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    I::Future: Send + 'static,
{
    type Response = Response;
    type Error = I::Error;
    type Future = BoxedResponse<I::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let keys = self.keys.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match RequireApiKey::<LayerGuard>::from_request_parts(&mut parts, &keys).await {
                Ok(_) => inner.call(Request::from_parts(parts, body)).await,
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}

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

fn request() -> Request<Body> {
    Request::get("/")
        .header("x-api-key", KEY)
        .body(Body::empty())
        .expect("a valid request")
}

fn route(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let keys = ApiKeys::new().with_key("bench", KEY);
    let routers = [
        (
            "unprotected",
            Router::new().route("/", get(open)).with_state(keys.clone()),
        ),
        (
            "api_key",
            Router::new()
                .route("/", get(protected))
                .with_state(keys.clone()),
        ),
        (
            "seed_eq",
            Router::new().route("/", get(seed)).with_state(keys.clone()),
        ),
        (
            "identity_layer",
            Router::new()
                .route("/", get(open))
                .layer(tower::layer::util::Identity::new())
                .with_state(keys.clone()),
        ),
        (
            "hand_layer",
            Router::new()
                .route("/", get(open))
                .layer(HandLayer(keys.clone()))
                .with_state(keys.clone()),
        ),
        (
            "layer",
            Router::new()
                .route("/", get(open))
                .layer(RequireApiKey::<LayerGuard>::layer(keys.clone()))
                .with_state(keys),
        ),
    ];
    let mut group = c.benchmark_group("route");
    for (name, router) in routers {
        let answer = runtime
            .block_on(router.clone().oneshot(request()))
            .expect("infallible");
        assert_eq!(
            answer.status(),
            StatusCode::OK,
            "{name} must let the key in"
        );
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(router.clone().oneshot(black_box(request()))));
        });
    }
    group.finish();
}

fn verify(c: &mut Criterion) {
    let one = ApiKeys::new().with_key("bench", KEY);
    let mut keys = Vec::with_capacity(1_000_000);
    let mut million = ApiKeys::new();
    for i in 0..1_000_000u32 {
        let key = format!("bench_{i:08}_k3Yq9Vx2Lm7Tr4Wp");
        million = million.with_key(format!("key-{i}"), &key);
        keys.push(key);
    }
    million = million.with_key("bench", KEY);
    // A spread of valid keys, so that each lookup lands on another part of the table.
    let spread: Vec<&[u8]> = keys.iter().step_by(7).map(String::as_bytes).collect();

    let mut group = c.benchmark_group("verify");
    group.bench_function("sha256", |b| b.iter(|| digest(black_box(KEY.as_bytes()))));
    group.bench_function("1_key", |b| {
        b.iter(|| one.verify(black_box(KEY.as_bytes())))
    });
    group.bench_function("1m_keys", |b| {
        b.iter(|| million.verify(black_box(KEY.as_bytes())))
    });
    let mut next = spread.iter().cycle();
    group.bench_function("1m_keys_spread", |b| {
        b.iter(|| million.verify(black_box(next.next().copied().unwrap_or_default())))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = route, verify
}
criterion_main!(benches);
