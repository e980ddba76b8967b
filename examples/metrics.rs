//! Usage metrics for Prometheus: every decision of the guard counted, at `/metrics`.
//!
//! ```sh
//! cargo run --example metrics --features metrics
//! curl -H 'x-api-key: <the printed key>' http://127.0.0.1:3000/data
//! curl http://127.0.0.1:3000/metrics
//! ```
//!
//! The guard reports through the `metrics` facade (feature `metrics` of `axum-api-key`); this
//! example installs `metrics-exporter-prometheus` as the recorder and serves what it renders.
//! `api_key_decisions_total{outcome,reason}`, `api_key_rate_limited_total` and the
//! `api_key_guard_seconds` histogram appear after the first request. Key ids are a label only
//! after `axum_api_key::metrics::label_key_ids(true)`, as here. `PORT` overrides the port.

#![allow(clippy::print_stdout)]

use std::error::Error;

use axum::{Router, routing::get};
use axum_api_key::{ApiKeys, Key, KeyFormat, VerifiedKey, api_key, rate_limit_headers};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Data for callers with a key.
#[api_key]
async fn data(key: VerifiedKey) -> String {
    format!("data for {}", key.id())
}

/// The router: `/data` behind a key, `/metrics` open (put it behind a key or on an internal
/// port in production).
pub(crate) fn app(keys: ApiKeys, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/data", get(data))
        .with_state(keys)
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .layer(rate_limit_headers())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let metrics = PrometheusBuilder::new().install_recorder()?;
    axum_api_key::metrics::label_key_ids(true);
    let key = KeyFormat::new("demo")?.generate();
    let keys = ApiKeys::new().try_with(Key::new("demo", &key).rate_limit("10/min".parse()?))?;
    let listener = axum_api_key_examples::bind(3000).await?;
    let address = listener.local_addr()?;
    println!("metrics example listening on http://{address}");
    println!();
    println!("    curl -H 'x-api-key: {key}' http://{address}/data");
    println!("    curl -H 'x-api-key: wrong' http://{address}/data");
    println!("    curl http://{address}/metrics");
    axum_api_key_examples::serve(listener, app(keys, metrics)).await
}
