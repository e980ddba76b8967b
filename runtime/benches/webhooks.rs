//! What verifying a signed webhook costs beside one HMAC-SHA256 of the same body.
//!
//! `cargo bench -p axum-api-key --features webhooks --bench webhooks` (options after `--`:
//! `--rounds 41`, `--iterations 2000`).
//!
//! For a 1 KiB and a 64 KiB body, each round runs, interleaved in a rotating order:
//! `hmac`, one HMAC-SHA256 of the body with the `hmac` crate; and `standard`, `github`,
//! `stripe`, the whole check of a request signed by that scheme (reading its headers, the MAC
//! with the one secret, the constant-time comparison). The report gives the median of the
//! per-round ratios to `hmac`, with quartiles (target: 1.2 at most).

#![allow(clippy::print_stdout)] // the report is the output

mod common;

use std::hint::black_box;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum_api_key::webhook::{__verify, Scheme, WebhookConfig, WebhookSecrets, sign};
use common::{benchmarking, option, quantile};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn main() {
    let (rounds, iterations) = if benchmarking() {
        (option("--rounds", 41), option("--iterations", 2000))
    } else {
        (1, 5)
    };
    let secrets = WebhookSecrets::new().with_secret(SECRET);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs();
    for size in [1024usize, 64 * 1024] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let schemes = [Scheme::Standard, Scheme::GitHub, Scheme::Stripe];
        let signed: Vec<(WebhookConfig, HeaderMap)> = schemes
            .iter()
            .map(|&scheme| {
                let mut headers = HeaderMap::new();
                for (name, value) in sign(scheme, SECRET, "msg_bench", now, &body).expect("sign") {
                    headers.insert(name, value.parse().expect("a header value"));
                }
                let config = WebhookConfig::new(scheme).with_max_body(size);
                assert!(__verify(&config, &headers, &secrets, &body), "{scheme:?}");
                (config, headers)
            })
            .collect();
        let names = ["hmac", "standard", "github", "stripe"];
        let mut times = vec![Vec::with_capacity(rounds); names.len()];
        for round in 0..rounds {
            for offset in 0..names.len() {
                let variant = (round + offset) % names.len();
                let started = Instant::now();
                for _ in 0..iterations {
                    if variant == 0 {
                        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes())
                            .expect("any key");
                        mac.update(black_box(&body));
                        black_box(mac.finalize());
                    } else {
                        let (config, headers) = &signed[variant - 1];
                        black_box(__verify(
                            config,
                            black_box(headers),
                            &secrets,
                            black_box(&body),
                        ));
                    }
                }
                times[variant].push(started.elapsed().as_nanos() as f64 / iterations as f64);
            }
        }
        if !benchmarking() {
            continue;
        }
        println!(
            "## {} KiB body: {rounds} rounds of {iterations} checks per variant, interleaved\n",
            size / 1024
        );
        println!(
            "| variant | median ns | ratio to hmac (median of per-round ratios) | quartiles |"
        );
        println!("| --- | --- | --- | --- |");
        for (at, name) in names.iter().enumerate() {
            let mut own = times[at].clone();
            own.sort_by(f64::total_cmp);
            let mut ratios: Vec<f64> = times[at]
                .iter()
                .zip(&times[0])
                .map(|(t, h)| t / h)
                .collect();
            ratios.sort_by(f64::total_cmp);
            println!(
                "| {name} | {:.0} | {:.3} | {:.3} to {:.3} |",
                quantile(&own, 0.5),
                quantile(&ratios, 0.5),
                quantile(&ratios, 0.25),
                quantile(&ratios, 0.75)
            );
        }
        println!();
    }
}
