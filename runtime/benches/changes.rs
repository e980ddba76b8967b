//! What a change to a live store costs at 1,000 and at 1,000,000 keys, what a key costs in
//! memory, and what verifying costs at either size: in one process, the sizes interleaved.
//!
//! `cargo bench -p axum-api-key --bench changes` (options after `--`: `--rounds 15`,
//! `--changes 200` of each kind per size and round, `--same` to revoke one key over and over
//! rather than keys spread over the store).
//!
//! Each round makes, on each store in turn, 200 `revoke`s of keys spread over the store, 200
//! `add`s of new keys and 200 `rotate`s of other keys spread over it, and times each change
//! alone; the report gives the median and the worst of each kind per size, and the median of
//! the per-round ratios of the 1M store's median to the 1K store's (the sizes are those the
//! stores start with; each round adds to both). Memory is the growth of the process's resident set while the
//! 1,000,000-key store is built, per key. Before the changes, each round also verifies keys
//! spread over the whole 1,000,000-key store and one key of a one-key store, in turn, for the
//! median of the per-round ratios. Last, the slowest verification by a thread reading a store
//! while keys added to it grow its table past 2^20 slots.

#![allow(clippy::print_stdout)] // the report is the output

mod common;

use common::{option, resident_bytes};
use std::hint::black_box;
use std::time::Instant;

use axum_api_key::{ApiKeys, Key, digest};

fn key_of(i: usize) -> String {
    format!("bench_{i:08}_k3Yq9Vx2Lm7Tr4Wp")
}

/// A store of `size` keys, and the longest any one of them took to add: the add that grows the
/// table moves every key into a table twice as large. With `format`, the store has one, for
/// `rotate` to issue keys in (and then refuses the keys `key_of` makes before hashing them, as
/// they are not of it: verification is measured on stores without one).
fn store(size: usize, format: bool) -> (ApiKeys, f64) {
    let mut keys = ApiKeys::new();
    if format {
        keys = keys.with_format(axum_api_key::KeyFormat::new("bench").expect("a prefix"));
    }
    let mut slowest = 0.0f64;
    for i in 0..size {
        let key = Key::from_digest(format!("key-{i}"), digest(key_of(i).as_bytes()));
        let started = Instant::now();
        keys = keys.with(key);
        slowest = slowest.max(started.elapsed().as_nanos() as f64);
    }
    (keys, slowest)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let rounds = if benchmarking {
        option("--rounds", 15)
    } else {
        1
    };
    let per_round = if benchmarking {
        option("--changes", 200)
    } else {
        5
    };
    let big = if benchmarking { 1_000_000 } else { 10_000 };
    let same = std::env::args().any(|arg| arg == "--same");

    let (small, _) = store(1_000, true);
    let resident = resident_bytes();
    let (large, slowest_add) = store(big, true);
    let resident_per_key = resident_bytes().saturating_sub(resident) as f64 / big as f64;

    // Verification with traffic spread over every key of the large store, beside a store of
    // one key, interleaved: the cost of a table that does not fit in cache. The keys are laid
    // end to end and read in order, as a request's key arrives in a buffer already in cache.
    let (one, _) = store(1, false);
    let (plain_small, _) = store(1_000, false);
    let (plain, _) = store(big, false);
    // What is timed below is keys let in, never refusals that skip the hashing.
    for (keys, i) in [
        (&one, 0),
        (&plain_small, 1),
        (&plain, big / 2 + 1),
        (&plain, 7),
    ] {
        assert!(
            keys.verify(key_of(i).as_bytes()).is_ok(),
            "key {i} is let in"
        );
    }
    let width = key_of(0).len();
    let spread: Vec<u8> = (0..big)
        .step_by(7)
        .flat_map(|i| key_of(i).into_bytes())
        .collect();
    let lookups = if benchmarking { 100_000 } else { 1_000 };
    let (mut hot_times, mut spread_times, mut spread_ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut cursor = spread.chunks_exact(width).cycle();
    for round in 0..rounds {
        let mut pair = [0.0; 2];
        for offset in 0..2 {
            let which = (round + offset) % 2;
            let started = Instant::now();
            if which == 0 {
                let key = key_of(0);
                for _ in 0..lookups {
                    black_box(one.verify(black_box(key.as_bytes())).is_ok());
                }
            } else {
                for _ in 0..lookups {
                    let key = cursor.next().unwrap_or_default();
                    black_box(plain.verify(black_box(key)).is_ok());
                }
            }
            pair[which] = started.elapsed().as_nanos() as f64 / lookups as f64;
        }
        hot_times.push(pair[0]);
        spread_times.push(pair[1]);
        spread_ratios.push(pair[1] / pair[0]);
    }

    // The slowest verification on a thread that reads the store while a key added grows its
    // table: the thread lets go of the version before, and with it the old table's slots.
    let growing = {
        let threshold = if benchmarking { 734_003 } else { 11_469 }; // 70% of 2^20, of 2^14
        let (keys, _) = store(threshold - 50, false);
        let reader = keys.clone();
        let mut slowest = 0.0f64;
        for i in threshold - 50..threshold + 50 {
            keys.add(Key::from_digest(
                format!("key-{i}"),
                digest(key_of(i).as_bytes()),
            ))
            .expect("a new key");
            let started = Instant::now();
            black_box(reader.verify(black_box(key_of(7).as_bytes())).is_ok());
            slowest = slowest.max(started.elapsed().as_nanos() as f64);
        }
        slowest
    };

    let sizes = [(&small, 1_000usize, "1k"), (&large, big, "1m")];
    // Per size: revoke times, add times (ns), and per-round medians for the ratios.
    let mut revokes = [Vec::new(), Vec::new()];
    let mut adds = [Vec::new(), Vec::new()];
    let mut rotates = [Vec::new(), Vec::new()];
    // Revoke, add and rotate medians per round: 1k then 1m for each.
    let mut round_medians: [Vec<f64>; 6] = Default::default();
    let mut fresh = 0usize;
    for round in 0..rounds {
        for offset in 0..2 {
            let index = (round + offset) % 2;
            let (keys, size, _) = sizes[index];
            let mut revoke_times = Vec::with_capacity(per_round);
            let mut add_times = Vec::with_capacity(per_round);
            let mut rotate_times = Vec::with_capacity(per_round);
            for i in 0..per_round {
                // Spread over the store (each change on memory the last one did not touch), or
                // with `--same`, the same key every time (the memory of the change in cache).
                let spread = if same {
                    1
                } else {
                    (round * per_round + i) * 7919
                };
                // Revokes take the even ids, rotations the odd ones: a rotated id is never
                // one revoked before.
                let id = format!("key-{}", (spread % (size / 2)) * 2);
                let started = Instant::now();
                black_box(keys.revoke(&id).expect("a known id"));
                revoke_times.push(started.elapsed().as_nanos() as f64);

                fresh += 1;
                let key = Key::from_digest(
                    format!("new-{fresh}"),
                    digest(format!("fresh-{fresh}").as_bytes()),
                );
                let started = Instant::now();
                keys.add(key).expect("a new key");
                add_times.push(started.elapsed().as_nanos() as f64);

                // A key rotated: its successor issued, the old key's expiry shortened.
                let id = format!("key-{}", ((spread + size / 4) % (size / 2)) * 2 + 1);
                let started = Instant::now();
                black_box(
                    keys.rotate(&id, std::time::Duration::from_secs(3600))
                        .expect("a live id"),
                );
                rotate_times.push(started.elapsed().as_nanos() as f64);
            }
            round_medians[index].push(median(&mut revoke_times.clone()));
            round_medians[2 + index].push(median(&mut add_times.clone()));
            round_medians[4 + index].push(median(&mut rotate_times.clone()));
            revokes[index].extend(revoke_times);
            adds[index].extend(add_times);
            rotates[index].extend(rotate_times);
        }
    }

    // Verification, cache-warm, at either size.
    let verify = |keys: &ApiKeys, key: &str| {
        let started = Instant::now();
        for _ in 0..200_000 {
            black_box(keys.verify(black_box(key.as_bytes())).ok());
        }
        started.elapsed().as_nanos() as f64 / 200_000.0
    };
    let mut verify_ratios = Vec::new();
    let (mut verify_small, mut verify_large) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let one = verify(&plain_small, &key_of(1));
        let many = verify(&plain, &key_of(big / 2 + 1));
        verify_small.push(one);
        verify_large.push(many);
        verify_ratios.push(many / one);
    }
    if !benchmarking {
        return;
    }

    let which = if same {
        "the same key"
    } else {
        "keys spread over the store"
    };
    println!(
        "{rounds} rounds of {per_round} revokes ({which}) and {per_round} adds per size, interleaved\n"
    );
    println!("| change | size | median | worst |");
    println!("| --- | --- | --- | --- |");
    for (name, times) in [
        ("revoke", &mut revokes),
        ("add", &mut adds),
        ("rotate", &mut rotates),
    ] {
        for (index, (_, _, label)) in sizes.iter().enumerate() {
            let worst = times[index].iter().copied().fold(0.0, f64::max);
            println!(
                "| {name} | {label} | {:.1} µs | {:.1} µs |",
                median(&mut times[index]) / 1_000.0,
                worst / 1_000.0
            );
        }
    }
    let ratio = |top: &[f64], bottom: &[f64]| {
        let mut ratios: Vec<f64> = top.iter().zip(bottom).map(|(t, b)| t / b).collect();
        let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let high = ratios.iter().copied().fold(0.0, f64::max);
        (median(&mut ratios), low, high)
    };
    println!("\n| ratio | median of per-round ratios | extremes | target |");
    println!("| --- | --- | --- | --- |");
    let (m, low, high) = ratio(&round_medians[1], &round_medians[0]);
    println!("| revoke 1m / 1k | {m:.2} | {low:.2} to {high:.2} | <= 2 |");
    let (m, low, high) = ratio(&round_medians[3], &round_medians[2]);
    println!("| add 1m / 1k | {m:.2} | {low:.2} to {high:.2} | <= 2 |");
    let (m, low, high) = ratio(&round_medians[5], &round_medians[4]);
    println!("| rotate 1m / 1k | {m:.2} | {low:.2} to {high:.2} | <= 2 |");
    let (m, low, high) = {
        let mut ratios = verify_ratios.clone();
        let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let high = ratios.iter().copied().fold(0.0, f64::max);
        (median(&mut ratios), low, high)
    };
    println!("| verify 1m / 1k (cache-warm) | {m:.3} | {low:.3} to {high:.3} | <= 1.1 |");
    let (m, low, high) = ratio(&spread_times, &hot_times);
    println!("| verify 1m spread / 1 key | {m:.2} | {low:.2} to {high:.2} | <= 2.5 |");
    println!(
        "\nverify: 1k {:.1} ns, 1m {:.1} ns (medians)",
        median(&mut verify_small),
        median(&mut verify_large)
    );
    println!(
        "verify: 1 key {:.1} ns, 1m spread {:.1} ns (medians)",
        median(&mut hot_times),
        median(&mut spread_times)
    );
    println!(
        "slowest add while the {big}-key store was built (the table growing): {:.1} ms",
        slowest_add / 1e6
    );
    println!(
        "slowest verification on a thread reading the store as its table grew: {:.1} µs",
        growing / 1e3
    );
    println!("memory per key at {big} keys: {resident_per_key:.0} bytes resident (target <= 128)");
}
