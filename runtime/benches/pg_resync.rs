//! What a full read of a `PgKeys` table costs in memory: the resident set's peak during
//! `resync` at 100,000 rows, beside the resident set once the keys are loaded.
//!
//! `cargo bench -p axum-api-key --features postgres --bench pg_resync` (options after `--`:
//! `--rows 100000`, `--rounds 5`), against `DATABASE_URL` or the server on 127.0.0.1:5432
//! (database `test`), in a schema of its own that it drops at the end. Without a server it
//! says so and ends.

#![allow(clippy::print_stdout)] // the report is the output

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum_api_key::PgKeys;
use common::{option, resident_bytes};

fn main() {
    let benchmarking = common::benchmarking();
    let rows = option("--rows", if benchmarking { 100_000 } else { 1_000 });
    let rounds = option("--rounds", if benchmarking { 5 } else { 1 });
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&url)
            .await
        else {
            println!("no PostgreSQL at {url}: nothing measured");
            return;
        };
        let schema = format!("axum_api_key_bench_resync_{}", std::process::id());
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await
            .expect("a schema");
        let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a URL");
        let keys = PgKeys::options()
            .schema(&schema)
            .connect_with(options)
            .await
            .expect("PgKeys connects");
        sqlx::query(&format!(
            "INSERT INTO {schema}.api_keys (digest, id) SELECT sha256(('key-' || i)::bytea), \
             'key-' || i FROM generate_series(1, $1) AS i"
        ))
        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
        .execute(&pool)
        .await
        .expect("the rows");
        let before = resident_bytes();
        assert_eq!(keys.resync().await.expect("a full read"), rows);
        // Twice, so that what the allocator keeps from the first read is in the steady state.
        keys.resync().await.expect("a full read");
        // A table's large slot arrays are freed on a thread of their own once the last set
        // holding them goes: the steady state is the one after that, not a moment before.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let steady = resident_bytes();

        let peak = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(resident_bytes(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        for _ in 0..rounds {
            // A tenth of the rows changed between reads, as a busy table might be.
            sqlx::query(&format!(
                "UPDATE {schema}.api_keys SET scopes = ARRAY['round-' || md5(random()::text)] \
                 WHERE random() < 0.1"
            ))
            .execute(&pool)
            .await
            .expect("an update");
            keys.resync().await.expect("a full read");
        }
        done.store(true, Ordering::Relaxed);
        sampler.join().expect("the sampler");
        let peak = peak.load(Ordering::Relaxed).max(steady);
        let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
        println!(
            "{rows} rows, {rounds} full reads with a tenth of the rows changed before each\n\n\
             | resident set | MiB |\n| --- | --- |\n\
             | before the keys | {:.1} |\n| steady, keys loaded | {:.1} |\n\
             | peak during a full read | {:.1} |\n\npeak / steady: {:.2} (target <= 1.3)",
            mib(before),
            mib(steady),
            mib(peak),
            peak as f64 / steady as f64
        );
        drop(keys);
        let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&pool)
            .await;
    });
}
