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
    // Schemas of earlier runs (another process id) go; this run's stay for its other tests.
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'axum_api_key\\_%' \
         AND nspname NOT LIKE $1",
    )
    .bind(format!("%\\_{}\\_%", std::process::id()))
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    for old in stale {
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
async fn a_killed_connection_is_reopened_and_changes_made_meanwhile_caught_up() {
    let Some(schema) = schema("killed").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let b = instance(&schema, "b").await;
    let key = a
        .create("partner-a", Vec::<String>::new(), None)
        .await
        .unwrap();
    until(&b, &key, Ok("partner-a")).await;

    let pool = PgPoolOptions::new().connect(&database_url()).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(format!("{schema}-b"))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        !killed.is_empty(),
        "b's connections were found and terminated"
    );
    a.revoke("partner-a").await.unwrap();
    let delay = until(&b, &key, Err(KeyError::Revoked)).await;
    eprintln!("caught up {delay:?} after its connection was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_down_past_the_staleness_limit_answers_unavailable_then_recovers() {
    let Some(schema) = schema("down").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let key = a
        .create("partner-a", Vec::<String>::new(), None)
        .await
        .unwrap();

    // `b` reaches the database through a proxy that the test can take down.
    let proxy = Proxy::start().await;
    let upstream: PgConnectOptions = database_url().parse().unwrap();
    let through_proxy = upstream.clone().host("127.0.0.1").port(proxy.port);
    let b = PgKeys::options()
        .schema(&schema)
        .format(KeyFormat::new("pg").unwrap())
        .heartbeat(Duration::from_millis(200))
        .max_staleness(Duration::from_secs(1))
        .connect_with(through_proxy)
        .await
        .unwrap();
    assert_eq!(accepted(&b, &key).await, Ok("partner-a".to_owned()));

    proxy.set_down(true);
    // Answered from the snapshot for a while, never blocked on the database...
    let started = Instant::now();
    assert_eq!(accepted(&b, &key).await, Ok("partner-a".to_owned()));
    assert!(started.elapsed() < Duration::from_millis(50));
    // ...then refused as unavailable, once the snapshot is too old to trust.
    let delay = until(&b, &key, Err(KeyError::Unavailable)).await;
    assert!(b.staleness() >= Duration::from_secs(1));
    eprintln!("unavailable {delay:?} after the database went down");

    proxy.set_down(false);
    until(&b, &key, Ok("partner-a")).await;
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

/// A TCP proxy to the database that can be taken down, closing every connection through it.
struct Proxy {
    port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Connections accepted before this count are black-holed: kept open, never forwarded.
    holed_below: std::sync::Arc<AtomicUsize>,
    accepted: std::sync::Arc<AtomicUsize>,
}

impl Proxy {
    async fn start() -> Self {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let upstream: PgConnectOptions = database_url().parse().unwrap();
        let target = format!("{}:{}", upstream.get_host(), upstream.get_port());
        let flag = Arc::clone(&down);
        let holed_below = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (holed, count) = (Arc::clone(&holed_below), Arc::clone(&accepted));
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let number = count.fetch_add(1, Ordering::SeqCst);
                let target = target.clone();
                let (flag, holed) = (Arc::clone(&flag), Arc::clone(&holed));
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    {
                        let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                        tokio::pin!(copy);
                        loop {
                            tokio::select! {
                                _ = &mut copy => return,
                                () = tokio::time::sleep(Duration::from_millis(20)) => {
                                    if flag.load(Ordering::SeqCst) {
                                        return; // both ends dropped
                                    }
                                    if number < holed.load(Ordering::SeqCst) {
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    // Black-holed: both ends stay open, and nothing more goes through, as
                    // when a firewall or a dead peer drops packets without a FIN.
                    let _kept = (client, server);
                    std::future::pending::<()>().await;
                });
            }
        });
        Self {
            port,
            down,
            holed_below,
            accepted,
        }
    }

    /// Black-holes every connection open now; new ones go through.
    fn black_hole_open_connections(&self) {
        self.holed_below
            .store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_connection_is_replaced_within_three_heartbeats() {
    let Some(schema) = schema("black_hole").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let proxy = Proxy::start().await;
    let upstream: PgConnectOptions = database_url().parse().unwrap();
    let through_proxy = upstream.clone().host("127.0.0.1").port(proxy.port);
    let heartbeat = Duration::from_millis(300);
    let b = PgKeys::options()
        .schema(&schema)
        .format(KeyFormat::new("pg").unwrap())
        .heartbeat(heartbeat)
        .round_trip_timeout(Duration::from_millis(200))
        .max_staleness(Duration::from_secs(3))
        .connect_with(through_proxy)
        .await
        .unwrap();
    let first = a.create("partner-a", ["x"], None).await.unwrap();
    until(&b, &first, Ok("partner-a")).await;

    // Every connection `b` has goes silent without closing; new connections work.
    proxy.black_hole_open_connections();
    let started = Instant::now();
    let key = a.create("partner-b", ["x"], None).await.unwrap();
    let mut unavailable = 0;
    loop {
        match b.verify(&key).await {
            Ok(_) => break,
            Err(KeyError::Unavailable) => unavailable += 1,
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the dead connection was never replaced"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let healed = started.elapsed();
    eprintln!("a black-holed listener was replaced and the change seen after {healed:?}");
    assert_eq!(unavailable, 0, "answered 503 while healing");
    assert!(
        healed <= heartbeat * 3 + Duration::from_millis(1500),
        "{healed:?}"
    );
    // And it keeps following the table on the new connection.
    let later = a.create("partner-c", ["x"], None).await.unwrap();
    until(&b, &later, Ok("partner-c")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_capped_and_an_application_pool_is_accepted() {
    let Some(schema) = schema("pool").await else {
        return;
    };
    let options: PgConnectOptions = database_url().parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    let keys = PgKeys::options()
        .format(KeyFormat::new("pg").unwrap())
        .connect_pool(pool.clone())
        .await
        .unwrap();
    let key = keys.create("partner-a", ["x"], None).await.unwrap();
    assert_eq!(accepted(&keys, &key).await, Ok("partner-a".to_owned()));
    // The table is in the pool's schema.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);

    let long = "x".repeat(10_000);
    let error = keys.create(&long, ["x"], None).await.unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains(&"x".repeat(200)),
        "the id is never echoed whole"
    );
    // A row written past the store's rules is skipped when read, and never echoed.
    sqlx::query("INSERT INTO api_keys (digest, id) VALUES ($1, $2)")
        .bind(&axum_api_key::digest(b"a-row-of-its-own-0123")[..])
        .bind(&long)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(keys.resync().await.unwrap(), 1, "the row was skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_read_from_the_table_and_kept_through_rotation() {
    let Some(schema) = schema("limits").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let b = instance(&schema, "b").await;
    let key = a.create("partner-a", ["x"], None).await.unwrap();
    until(&b, &key, Ok("partner-a")).await;
    assert_eq!(b.verify(&key).await.unwrap().rate_limit(), None);

    let limit = "100/min".parse().unwrap();
    assert_eq!(a.set_rate_limit("partner-a", Some(limit)).await.unwrap(), 1);
    assert_eq!(a.verify(&key).await.unwrap().rate_limit(), Some(limit));
    let started = Instant::now();
    while b.verify(&key).await.unwrap().rate_limit() != Some(limit) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the limit did not reach b"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // A rotated key keeps the limit, and so shares the budget of its id.
    let rotated = a
        .rotate("partner-a", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(a.verify(&rotated).await.unwrap().rate_limit(), Some(limit));

    // A mistyped row is served without a limit rather than taking the store down.
    let pool = PgPoolOptions::new().connect(&database_url()).await.unwrap();
    sqlx::query(&format!(
        "UPDATE {schema}.api_keys SET rate_limit = 'lots' WHERE id = 'partner-a'"
    ))
    .execute(&pool)
    .await
    .unwrap();
    a.resync().await.unwrap();
    let served = a.verify(&key).await.unwrap();
    assert_eq!((served.id(), served.rate_limit()), ("partner-a", None));
    assert_eq!(a.set_rate_limit("partner-a", None).await.unwrap(), 2);

    // A plan of several windows is one text in the column, read back as its limits.
    let plan = [
        "10/s".parse().unwrap(),
        axum_api_key::RateLimit::per_day(100_000),
    ];
    assert_eq!(a.set_rate_limits("partner-a", &plan).await.unwrap(), 2);
    let text: String = sqlx::query_scalar(&format!(
        "SELECT rate_limit FROM {schema}.api_keys WHERE digest = (SELECT digest FROM {schema}.api_keys WHERE id = 'partner-a' LIMIT 1)"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(text, "10/s, 100000/day");
    assert_eq!(
        a.verify(&rotated)
            .await
            .unwrap()
            .rate_limits()
            .collect::<Vec<_>>(),
        plan
    );
    // Two limits over one window change nothing, and say why.
    let twice = ["10/s".parse().unwrap(), "20/s".parse().unwrap()];
    let error = a.set_rate_limits("partner-a", &twice).await.unwrap_err();
    assert!(error.to_string().contains("same window"), "{error}");
    assert_eq!(a.verify(&rotated).await.unwrap().rate_limits().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_service_rotates_and_revokes_in_the_database() {
    use axum::body::Body;
    use axum_api_key::{api_key, self_service};

    #[api_key]
    struct PgAccess;

    let Some(schema) = schema("self_service").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let b = instance(&schema, "b").await;
    let key = a.create("partner-a", ["x"], None).await.unwrap();
    let app = axum::Router::new()
        .nest(
            "/account",
            self_service::<PgAccess, PgKeys, _>(Duration::from_secs(60)),
        )
        .with_state(a.clone());
    let call = |method: &str, key: &str| {
        let request = http::Request::builder()
            .method(method)
            .uri(if method == "POST" {
                "/account/keys/me/rotate"
            } else {
                "/account/keys/me"
            })
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap();
        axum_api_key_tests::send(app.clone(), request)
    };
    let rotated = call("POST", &key).await;
    assert_eq!(rotated.status, http::StatusCode::OK, "{}", rotated.text());
    let new = rotated.json()["key"].as_str().unwrap().to_owned();
    // The other instance, and so a restarted one, accepts the new key.
    until(&b, &new, Ok("partner-a")).await;
    // The old key is rotated out: it cannot rotate again, here or anywhere.
    let again = call("POST", &key).await;
    again.assert_problem_status(http::StatusCode::CONFLICT);
    // A revocation acts on the presented key only.
    let revoked = call("DELETE", &new).await;
    assert_eq!(revoked.status, http::StatusCode::NO_CONTENT);
    until(&b, &new, Err(KeyError::Revoked)).await;
    assert_eq!(accepted(&b, &key).await, Ok("partner-a".to_owned()));
    assert_eq!(
        call("DELETE", &key).await.status,
        http::StatusCode::NO_CONTENT
    );
    until(&b, &key, Err(KeyError::Revoked)).await;

    // An expiring key rotates into a key that expires when it would have, never later.
    let ends = std::time::SystemTime::now() + Duration::from_secs(3600);
    let expiring = a.create("partner-b", ["x"], Some(ends)).await.unwrap();
    let rotated = call("POST", &expiring).await;
    assert_eq!(rotated.status, http::StatusCode::OK, "{}", rotated.text());
    let successor = rotated.json()["key"].as_str().unwrap().to_owned();
    let successor = until_accepted(&b, &successor).await;
    let kept = successor.expires_at().expect("the successor expires");
    let gap = kept.duration_since(ends).unwrap_or_else(|e| e.duration());
    assert!(gap < Duration::from_millis(1), "{kept:?} against {ends:?}");

    // Two instances rotating the same key at once: exactly one wins.
    let contested = a.create("partner-c", ["x"], None).await.unwrap();
    until(&b, &contested, Ok("partner-c")).await;
    let digest = axum_api_key::digest(contested.as_bytes());
    let grace = Duration::from_secs(60);
    let (one, two) = tokio::join!(
        a.rotate_presented(&digest, grace),
        b.rotate_presented(&digest, grace)
    );
    assert_eq!(
        usize::from(one.is_ok()) + usize::from(two.is_ok()),
        1,
        "{one:?} {two:?}"
    );
    assert!(matches!(
        one.err().or(two.err()),
        Some(axum_api_key::PgKeysError::Superseded)
    ));
}

async fn until_accepted(keys: &PgKeys, key: &str) -> axum_api_key::VerifiedKey {
    let start = std::time::Instant::now();
    loop {
        if let Ok(verified) = keys.verify(key).await {
            return verified;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "never accepted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_keys_and_networks_reach_every_instance_and_survive_rotation() {
    let Some(schema) = schema("plans").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let b = instance(&schema, "b").await;
    let key = a.create("partner-a", ["x"], None).await.unwrap();
    until(&b, &key, Ok("partner-a")).await;

    // Disabled on one instance: refused there at once, on the other within a second.
    assert_eq!(a.disable("partner-a").await.unwrap(), 1);
    assert_eq!(accepted(&a, &key).await, Err(KeyError::Disabled));
    until(&b, &key, Err(KeyError::Disabled)).await;
    assert_eq!(a.disable("partner-a").await.unwrap(), 0, "no change");
    assert!(matches!(
        a.disable("nobody").await,
        Err(PgKeysError::UnknownId(_))
    ));
    // A disabled key cannot rotate itself; the operator's rotation keeps it disabled.
    let presented = axum_api_key::digest(key.as_bytes());
    assert!(matches!(
        a.rotate_presented(&presented, Duration::from_secs(60))
            .await,
        Err(PgKeysError::NotLive)
    ));
    let rotated = a
        .rotate("partner-a", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(accepted(&a, &rotated).await, Err(KeyError::Disabled));
    assert_eq!(a.enable("partner-a").await.unwrap(), 2);
    until(&b, &rotated, Ok("partner-a")).await;

    // Networks: written as `cidr[]`, read back on every instance, kept through rotation.
    let office: Vec<axum_api_key::IpNetwork> = vec![
        "203.0.113.0/24".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
    ];
    assert_eq!(a.set_allowed_ips("partner-a", &office).await.unwrap(), 2);
    let started = Instant::now();
    while b.verify(&rotated).await.unwrap().allowed_ips() != office.as_slice() {
        assert!(started.elapsed() < Duration::from_secs(5), "not on b");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let newest = a.rotate("partner-a", Duration::ZERO).await.unwrap();
    assert_eq!(
        a.verify(&newest).await.unwrap().allowed_ips(),
        office.as_slice()
    );
    // The database refuses what is not a network, and an empty list.
    let pool = PgPoolOptions::new().connect(&database_url()).await.unwrap();
    for bad in ["'{office}'", "'{}'"] {
        let refused = sqlx::query(&format!(
            "UPDATE {schema}.api_keys SET allowed_ips = {bad} WHERE id = 'partner-a'"
        ))
        .execute(&pool)
        .await;
        assert!(refused.is_err(), "{bad} was accepted");
    }
    // Lifted with an empty list.
    assert_eq!(a.set_allowed_ips("partner-a", &[]).await.unwrap(), 3);
    assert!(a.verify(&newest).await.unwrap().allowed_ips().is_empty());
    let listed = a.list().await.unwrap();
    assert!(listed.iter().all(|listed| !listed.key().is_disabled()));
}

#[axum_api_key::api_key(store = PgKeys)]
async fn pg_data() -> &'static str {
    "data"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_spent_on_two_instances_all_land_in_the_table() {
    use axum::body::Body;
    use tower::ServiceExt;
    let Some(schema) = schema("credits").await else {
        return;
    };
    let (a, b) = (
        counted_instance(&schema, "a").await,
        counted_instance(&schema, "b").await,
    );
    let key = a.create("plan", ["x"], None).await.unwrap();
    assert_eq!(
        a.set_credits("plan", 10, Some("10/month".parse().unwrap()))
            .await
            .unwrap(),
        1
    );
    until(&b, &key, Ok("plan")).await;
    let started = Instant::now();
    while b.verify(&key).await.unwrap().credits() != Some(10) {
        assert!(started.elapsed() < Duration::from_secs(5), "not on b");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let call = |store: PgKeys| {
        let key = key.clone();
        async move {
            let app = axum::Router::new()
                .route("/", axum::routing::get(pg_data))
                .with_state(store);
            let request = http::Request::get("/")
                .header("x-api-key", key)
                .body(Body::empty())
                .unwrap();
            app.oneshot(request).await.unwrap().status()
        }
    };
    for _ in 0..3 {
        assert_eq!(call(a.clone()).await, http::StatusCode::OK);
    }
    for _ in 0..2 {
        assert_eq!(call(b.clone()).await, http::StatusCode::OK);
    }
    // Both write at once: each takes its own spending off the count, none overwrites.
    let (wa, wb) = tokio::join!(a.write_credits(), b.write_credits());
    assert_eq!((wa.unwrap(), wb.unwrap()), (1, 1));
    let pool = PgPoolOptions::new().connect(&database_url()).await.unwrap();
    let left: i64 = sqlx::query_scalar(&format!(
        "SELECT credits FROM {schema}.api_keys WHERE id = 'plan'"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 5);
    a.resync().await.unwrap();
    assert_eq!(a.list().await.unwrap()[0].credits_left(), Some(5));
    // The table refuses a refill it could not read.
    let refused = sqlx::query(&format!(
        "UPDATE {schema}.api_keys SET refill = '10/fortnight' WHERE id = 'plan'"
    ))
    .execute(&pool)
    .await;
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_uses_are_written_to_the_table_forward_only_and_notify_no_instance() {
    use axum::body::Body;
    use tower::ServiceExt;
    let Some(schema) = schema("last_used").await else {
        return;
    };
    let (a, b) = (
        counted_instance(&schema, "a").await,
        counted_instance(&schema, "b").await,
    );
    let key = a.create("used", ["x"], None).await.unwrap();
    until(&b, &key, Ok("used")).await;
    assert_eq!(a.list().await.unwrap()[0].last_used(), None);

    let pool = PgPoolOptions::new().connect(&database_url()).await.unwrap();
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener
        .listen(&format!("{schema}.api_keys"))
        .await
        .unwrap();

    let before = SystemTime::now();
    let app = axum::Router::new()
        .route("/", axum::routing::get(pg_data))
        .with_state(a.clone());
    let request = http::Request::get("/")
        .header("x-api-key", key.clone())
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.oneshot(request).await.unwrap().status(),
        http::StatusCode::OK
    );
    assert_eq!(a.write_last_used().await.unwrap(), 1);
    assert_eq!(
        a.write_last_used().await.unwrap(),
        0,
        "nothing new to write"
    );
    let written: i64 = sqlx::query_scalar(&format!(
        "SELECT extract(epoch FROM last_used)::int8 FROM {schema}.api_keys WHERE id = 'used'"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    let before_secs = i64::try_from(
        before
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    assert!(written >= before_secs, "{written} < {before_secs}");
    // Another instance reads it from the table; it never goes back in time.
    let listed = b.list().await.unwrap();
    assert!(
        listed[0]
            .last_used()
            .is_some_and(|at| at + Duration::from_secs(1) >= before)
    );
    sqlx::query(&format!(
        "UPDATE {schema}.api_keys SET last_used = GREATEST(last_used, timestamptz 'epoch') \
         WHERE id = 'used'"
    ))
    .execute(&pool)
    .await
    .unwrap();
    // Writing last uses notified no instance; a real change does.
    let quiet = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(quiet.is_err(), "a last-use write notified: {quiet:?}");
    a.disable("used").await.unwrap();
    let change = tokio::time::timeout(Duration::from_secs(2), listener.recv()).await;
    assert!(matches!(change, Ok(Ok(_))), "{change:?}");
}
