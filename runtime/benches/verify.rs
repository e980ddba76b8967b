//! What verifying a key costs, beside one SHA-256 in the same run.
//!
//! `cargo bench -p axum-api-key --bench verify`, then `python3 runtime/benches/report.py` for
//! medians and ratios: `ApiKeys::verify` of a valid key against 1 and 1,000,000 keys, the second
//! also with a different key each time so that the lookup misses the cache. The cost of a whole
//! route is measured by the `route` benchmark, interleaved.

use std::hint::black_box;
use std::time::Duration;

use axum_api_key::{ApiKeys, digest};
use criterion::{Criterion, criterion_group, criterion_main};

const KEY: &str = "bench_k3Yq9Vx2Lm7Tr4Wp8Zn1Cs6";

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
    // A spread of valid keys, so that each lookup lands on another part of the table. They
    // are laid end to end, read in order, as a request's key arrives in a buffer already in
    // cache: a key in an allocation of its own would add a cache miss of the harness's to each
    // lookup.
    let width = keys[0].len();
    let spread: Vec<u8> = keys.iter().step_by(7).flat_map(|key| key.bytes()).collect();
    drop(keys);

    let mut group = c.benchmark_group("verify");
    group.bench_function("sha256", |b| b.iter(|| digest(black_box(KEY.as_bytes()))));
    group.bench_function("1_key", |b| {
        b.iter(|| one.verify(black_box(KEY.as_bytes())))
    });
    group.bench_function("1m_keys", |b| {
        b.iter(|| million.verify(black_box(KEY.as_bytes())))
    });
    let mut next = spread.chunks_exact(width).cycle();
    group.bench_function("1m_keys_spread", |b| {
        b.iter(|| million.verify(black_box(next.next().unwrap_or_default())))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = verify
}
criterion_main!(benches);
