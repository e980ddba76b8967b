//! `PgKeys` against a real PostgreSQL server: `DATABASE_URL`, the server on 127.0.0.1:5432
//! (database `test`), or a throwaway one started from the installed binaries (see
//! `axum_api_key_tests::postgres_url`). Each test works in a schema of its own, so they run in
//! parallel. Without any server these tests say so in one line and pass, except under CI
//! (`CI=true`), where a missing database fails them.
#![cfg(feature = "postgres")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum_api_key::{KeyError, KeyFormat, KeyStore, PgKeys, PgKeysError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

mod connection;
mod plans;
mod read_back;

fn database_url() -> String {
    axum_api_key_tests::postgres_url().expect("a server, checked by `schema` first")
}

/// A schema of this test's own, or `None` (said once) when no server can be had.
async fn schema(name: &str) -> Option<String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let url = tokio::task::spawn_blocking(axum_api_key_tests::postgres_url)
        .await
        .unwrap()?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .expect("the server answers");
    let schema = format!(
        "axum_api_key_{name}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    // Schemas of earlier runs go: those of processes that are gone. This run's stay for its
    // other tests, and so do those of other test processes running now (a runner that starts
    // a process per test, as cargo-nextest does, runs several at once).
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'axum_api_key\\_%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    for old in stale.into_iter().filter(|old| !owner_running(old)) {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {old} CASCADE"))
            .execute(&pool)
            .await;
    }
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    Some(schema)
}

/// Whether the test process that made this schema is running: its id is the schema name's
/// first number (`axum_api_key_{name}_{pid}_{n}` here, `axum_api_key_admin_{pid}` and the like
/// in other test files). On Linux, whether `/proc` has it; elsewhere, taken to be running (its
/// schema stays).
fn owner_running(schema: &str) -> bool {
    let pid = schema.split('_').find_map(|part| part.parse::<u32>().ok());
    match pid {
        Some(pid) if cfg!(target_os = "linux") => {
            pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => true,
    }
}

async fn instance(schema: &str, name: &str) -> PgKeys {
    let options: PgConnectOptions = database_url().parse().unwrap();
    PgKeys::options()
        .schema(schema)
        .format(KeyFormat::new("pg").unwrap())
        .heartbeat(Duration::from_millis(200))
        .max_staleness(Duration::from_secs(2))
        .connect_with(options.application_name(&format!("{schema}-{name}")))
        .await
        .expect("PgKeys connects")
}

/// An instance counting in limits of its own (so that its credits and last uses are its own).
async fn counted_instance(schema: &str, name: &str) -> PgKeys {
    let options: PgConnectOptions = database_url().parse().unwrap();
    PgKeys::options()
        .schema(schema)
        .format(KeyFormat::new("pg").unwrap())
        .rate_limits(axum_api_key::RateLimits::new())
        .connect_with(options.application_name(&format!("{schema}-{name}")))
        .await
        .expect("PgKeys connects")
}

async fn accepted(keys: &PgKeys, key: &str) -> Result<String, KeyError> {
    keys.verify(key).await.map(|key| key.id().to_owned())
}

/// Waits until `keys` answers `key` as `expected`; returns how long it took.
async fn until(keys: &PgKeys, key: &str, expected: Result<&str, KeyError>) -> Duration {
    let started = Instant::now();
    loop {
        let answer = accepted(keys, key).await;
        if answer.as_deref().map_err(|e| *e) == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still {answer:?}, not {expected:?}, after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_created_revoked_and_rotated_on_one_instance_reach_the_other() {
    let Some(schema) = schema("lifecycle").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    // The second instance runs the migrations again: nothing changes.
    let b = instance(&schema, "b").await;

    let key = a.create("partner-a", ["orders:read"], None).await.unwrap();
    assert_eq!(accepted(&a, &key).await, Ok("partner-a".to_owned()));
    until(&b, &key, Ok("partner-a")).await;
    let verified = b.verify(&key).await.unwrap();
    assert!(verified.has_scope("orders:read"));

    // The table holds the digest only.
    let pool = PgPoolOptions::new().connect(&database_url()).await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT row_to_json(k)::text FROM {schema}.api_keys k"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].contains(&key), "the key itself is never stored");

    // Rotation: the new key everywhere, the old one until its deadline.
    let rotated = a
        .rotate("partner-a", Duration::from_secs(3600))
        .await
        .unwrap();
    until(&b, &rotated, Ok("partner-a")).await;
    assert!(b.verify(&key).await.unwrap().expires_at().is_some());
    let again = a.rotate("partner-a", Duration::ZERO).await.unwrap();
    until(&b, &key, Err(KeyError::Expired)).await;
    until(&b, &again, Ok("partner-a")).await;

    // Revocation: refused here at once, there within a second.
    assert_eq!(a.revoke("partner-a").await.unwrap(), 3);
    assert_eq!(accepted(&a, &again).await, Err(KeyError::Revoked));
    let delay = until(&b, &again, Err(KeyError::Revoked)).await;
    assert!(delay < Duration::from_secs(1), "{delay:?}");

    let listed = b.list().await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .all(|k| k.refused() == Some(KeyError::Revoked))
    );
    assert!(matches!(
        a.revoke("nobody").await,
        Err(PgKeysError::UnknownId(_))
    ));
    assert!(matches!(
        a.create("a b", Vec::<String>::new(), None).await,
        Err(PgKeysError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_spread_to_another_instance_within_a_second() {
    let Some(schema) = schema("delay").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let b = instance(&schema, "b").await;
    let (mut created, mut revoked) = (Vec::new(), Vec::new());
    // Each delay runs from the start of the call on `a` to the first answer of `b` that shows
    // the change.
    for trial in 0..200 {
        let id = format!("trial-{trial}");
        let started = Instant::now();
        let key = a
            .create(
                &id,
                Vec::<String>::new(),
                Some(SystemTime::now() + Duration::from_secs(600)),
            )
            .await
            .unwrap();
        until(&b, &key, Ok(&id)).await;
        created.push(started.elapsed());
        let started = Instant::now();
        a.revoke(&id).await.unwrap();
        until(&b, &key, Err(KeyError::Revoked)).await;
        revoked.push(started.elapsed());
    }
    for (what, delays) in [("created", &mut created), ("revoked", &mut revoked)] {
        delays.sort();
        let (median, worst) = (delays[delays.len() / 2], delays[delays.len() - 1]);
        let p99 = delays[delays.len() * 99 / 100 - 1];
        eprintln!(
            "{what}: median {median:?}, p99 {p99:?}, worst {worst:?} over {} trials",
            delays.len()
        );
        assert!(worst < Duration::from_secs(1), "{what}: {worst:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_keys_load_at_start() {
    let Some(schema) = schema("load").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let pool = PgPoolOptions::new().connect(&database_url()).await.unwrap();
    sqlx::query(&format!(
        "INSERT INTO {schema}.api_keys (digest, id) \
         SELECT sha256(('bulk-' || i)::bytea), 'bulk-' || i FROM generate_series(1, 100000) i"
    ))
    .execute(&pool)
    .await
    .unwrap();
    drop(a);
    let started = Instant::now();
    let b = instance(&schema, "b").await;
    let took = started.elapsed();
    eprintln!("100,000 keys loaded in {took:?}");
    assert_eq!(b.len(), 100_000);
    assert_eq!(
        accepted(&b, "bulk-77").await,
        Err(KeyError::Malformed),
        "not of the format"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_revokes_from_two_instances_all_land() {
    let Some(schema) = schema("concurrent").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let b = instance(&schema, "b").await;
    let mut keys = Vec::new();
    for i in 0..20 {
        keys.push(
            a.create(&format!("k-{i}"), Vec::<String>::new(), None)
                .await
                .unwrap(),
        );
    }
    let (left, right) = tokio::join!(
        async {
            for i in 0..20 {
                let _ = a.revoke(&format!("k-{i}")).await;
            }
        },
        async {
            for i in (0..20).rev() {
                let _ = b.revoke(&format!("k-{i}")).await;
            }
        }
    );
    let ((), ()) = (left, right);
    for key in &keys {
        until(&a, key, Err(KeyError::Revoked)).await;
        until(&b, key, Err(KeyError::Revoked)).await;
    }
}
