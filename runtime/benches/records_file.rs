//! What the records file costs at 1,000 and at 100,000 records: reading it (`from_file`) and
//! one change written through to it (`revoke` of one id, `add` of one key), the two sizes
//! interleaved in every round.
//!
//! `cargo bench -p axum-api-key --bench records_file` (options after `--`: `--rounds 9`,
//! `--large 100000`). The files are generated in a temporary directory, with a comment and a
//! scope, expiry and metadata on every tenth record, as an operator's file would have; they
//! are removed at the end. The report gives, per size, the median time of each operation over
//! the rounds, and the median and quartiles of the per-round ratio large / small.

#![allow(clippy::print_stdout)] // the report is the output

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum_api_key::{ApiKeys, Key, KeyFormat, digest};
use common::{benchmarking, option, quantile};

/// A records file of `records` keys, as text.
fn records_text(records: usize) -> String {
    let mut text = String::from("# Partner keys: digests only.\nformat = \"bench\"\n");
    for i in 0..records {
        let hex: String = digest(format!("bench-key-{i}").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        text.push_str(&format!(
            "\n[[keys]]\nid = \"partner-{i}\"\ndigest = \"sha256:{hex}\"\n"
        ));
        if i % 10 == 0 {
            text.push_str(
                "scopes = [\"orders:read\"]\nexpires = 2030-01-01T00:00:00Z\n\
                 metadata = { owner = \"Team\" }  # reviewed\n",
            );
        }
    }
    text
}

struct Sample {
    read: Duration,
    revoke: Duration,
    add: Duration,
}

/// One round on the file at `path`, written afresh from `text`.
fn round(path: &Path, text: &str, round: usize) -> Sample {
    std::fs::write(path, text).expect("write the records file");
    // A file just written is left to settle before it is read (it may be half written);
    // that wait is not what is measured.
    std::thread::sleep(Duration::from_millis(60));
    let start = Instant::now();
    let keys = ApiKeys::from_file(path).expect("read the records file");
    let read = start.elapsed();
    let start = Instant::now();
    keys.revoke("partner-7").expect("revoke");
    let revoke = start.elapsed();
    let start = Instant::now();
    let key = KeyFormat::new("bench").expect("format").generate();
    keys.add(Key::new(format!("added-{round}"), key))
        .expect("add");
    let add = start.elapsed();
    Sample { read, revoke, add }
}

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        quantile(&values, 0.25),
        quantile(&values, 0.5),
        quantile(&values, 0.75),
    )
}

fn main() {
    let (rounds, small, large) = if benchmarking() {
        (option("--rounds", 9), 1_000, option("--large", 100_000))
    } else {
        (1, 100, 1_000)
    };
    let dir: PathBuf =
        std::env::temp_dir().join(format!("axum-api-key-records-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let (small_text, large_text) = (records_text(small), records_text(large));
    println!(
        "records file: {small} records ({} KiB) and {large} records ({} KiB), {rounds} rounds",
        small_text.len() / 1024,
        large_text.len() / 1024
    );
    let mut samples: Vec<(Sample, Sample)> = Vec::new();
    for r in 0..rounds {
        // Interleaved, the order alternating: drift on a shared machine hits both sizes.
        let (a, b) = if r % 2 == 0 {
            let a = round(&dir.join("small.toml"), &small_text, r);
            let b = round(&dir.join("large.toml"), &large_text, r);
            (a, b)
        } else {
            let b = round(&dir.join("large.toml"), &large_text, r);
            let a = round(&dir.join("small.toml"), &small_text, r);
            (a, b)
        };
        samples.push((a, b));
    }
    std::fs::remove_dir_all(&dir).ok();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (name, pick) in [
        (
            "from_file",
            (|s: &Sample| s.read) as fn(&Sample) -> Duration,
        ),
        ("revoke", |s: &Sample| s.revoke),
        ("add", |s: &Sample| s.add),
    ] {
        let (_, small_median, _) = median(samples.iter().map(|(a, _)| ms(pick(a))).collect());
        let (_, large_median, _) = median(samples.iter().map(|(_, b)| ms(pick(b))).collect());
        let (q1, ratio, q3) = median(
            samples
                .iter()
                .map(|(a, b)| ms(pick(b)) / ms(pick(a)))
                .collect(),
        );
        println!(
            "{name:>9}: {small} records {small_median:8.2} ms | {large} records \
             {large_median:8.2} ms | ratio {ratio:6.1} (quartiles {q1:.1} to {q3:.1}; \
             {:.0}x the records)",
            large as f64 / small as f64
        );
    }
}
