//! Usage metrics through the `metrics` facade, read back from the Prometheus exporter the
//! `metrics` example serves.
#![cfg(feature = "metrics")]

use axum_api_key::{ApiKeys, Key};
use axum_api_key_tests::{KEY_A, KEY_B, get, send};
use http::StatusCode;
use metrics_exporter_prometheus::PrometheusBuilder;

#[allow(dead_code)]
#[path = "../../examples/metrics.rs"]
mod example;

#[tokio::test]
async fn decisions_refusals_and_guard_time_are_counted() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test binary");
    let keys = ApiKeys::new()
        .with(Key::new("partner-a", KEY_A).rate_limit("2/min".parse().expect("rate")))
        .with(Key::new("partner-b", KEY_B).credits(10));
    let app = example::app(keys, handle);
    let call =
        |key: &'static str| send(app.clone(), get("/data", &[("x-api-key", key.as_bytes())]));
    assert_eq!(call(KEY_A).await.status, StatusCode::OK);
    assert_eq!(call(KEY_A).await.status, StatusCode::OK);
    assert_eq!(call(KEY_A).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(call("not-a-key").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(call(KEY_B).await.status, StatusCode::OK);

    let page = send(app.clone(), get("/metrics", &[])).await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    let value = |series: &str| -> u64 {
        text.lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(
        value(r#"api_key_decisions_total{outcome="accepted",reason=""}"#),
        3
    );
    assert_eq!(
        value(r#"api_key_decisions_total{outcome="refused",reason="rate_limited"}"#),
        1
    );
    assert_eq!(
        value(r#"api_key_decisions_total{outcome="refused",reason="unknown"}"#),
        1
    );
    assert_eq!(value("api_key_rate_limited_total"), 1);
    assert_eq!(value("api_key_credits_spent_total"), 1);
    assert_eq!(value("api_key_guard_seconds_count"), 5);
    // Key ids are not labels until asked for, and keys never appear.
    assert!(!text.contains("partner-a"), "{text}");
    assert!(
        !text.contains(KEY_A) && !text.contains("not-a-key"),
        "{text}"
    );

    axum_api_key::metrics::label_key_ids(true);
    assert_eq!(call(KEY_B).await.status, StatusCode::OK);
    let text = send(app.clone(), get("/metrics", &[])).await.text();
    assert!(
        text.contains(
            r#"api_key_decisions_total{outcome="accepted",reason="",key_id="partner-b"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"api_key_credits_spent_total{key_id="partner-b"} 1"#),
        "{text}"
    );
    axum_api_key::metrics::label_key_ids(false);

    // A router's settings label its own requests only, over the process-wide default (off).
    let labelled = app.clone().layer(
        axum_api_key::RouterSettings::new()
            .label_key_ids(true)
            .layer(),
    );
    let call_labelled = |key: &'static str| {
        send(
            labelled.clone(),
            get("/data", &[("x-api-key", key.as_bytes())]),
        )
    };
    assert_eq!(call_labelled(KEY_B).await.status, StatusCode::OK);
    assert_eq!(call(KEY_B).await.status, StatusCode::OK);
    let text = send(app.clone(), get("/metrics", &[])).await.text();
    assert!(
        text.contains(
            r#"api_key_decisions_total{outcome="accepted",reason="",key_id="partner-b"} 2"#
        ),
        "one more under the labelling router: {text}"
    );
    assert!(
        text.contains(r#"api_key_decisions_total{outcome="accepted",reason=""} 4"#),
        "one more without the label elsewhere: {text}"
    );
}
