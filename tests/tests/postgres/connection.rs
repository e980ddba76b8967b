//! Connections that die, black-hole or pool: the follower replaces them and catches up.

use super::*;

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

    /// An instance connected through the proxy, quick to give up on a silent connection: a
    /// heartbeat of 300 ms, round trips of 200 ms, a snapshot stale after 3 s.
    async fn instance(&self, schema: &str) -> PgKeys {
        let upstream: PgConnectOptions = database_url().parse().unwrap();
        PgKeys::options()
            .schema(schema)
            .format(KeyFormat::new("pg").unwrap())
            .heartbeat(Duration::from_millis(300))
            .round_trip_timeout(Duration::from_millis(200))
            .max_staleness(Duration::from_secs(3))
            .connect_with(upstream.host("127.0.0.1").port(self.port))
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_connection_is_replaced_within_three_heartbeats() {
    let Some(schema) = schema("black_hole").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let proxy = Proxy::start().await;
    let heartbeat = Duration::from_millis(300);
    let b = proxy.instance(&schema).await;
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

/// A full read, done in place on a copy of the current set: rows deleted or changed behind the
/// store's back are dropped or changed, rows left alone stay accepted, and the count is right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_read_drops_deleted_rows_and_applies_changed_ones() {
    let Some(schema) = schema("fullread").await else {
        return;
    };
    let keys = instance(&schema, "a").await;
    let kept = keys.create("kept", ["x"], None).await.unwrap();
    let gone = keys.create("gone", ["x"], None).await.unwrap();
    let changed = keys.create("changed", ["x"], None).await.unwrap();
    let options: PgConnectOptions = database_url().parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    sqlx::query("DELETE FROM api_keys WHERE id = 'gone'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE api_keys SET scopes = '{y}' WHERE id = 'changed'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(keys.resync().await.unwrap(), 2);
    assert_eq!(accepted(&keys, &kept).await, Ok("kept".to_owned()));
    assert_eq!(accepted(&keys, &gone).await, Err(KeyError::Unknown));
    let verified = keys.verify(&changed).await.unwrap();
    assert!(verified.has_scope("y") && !verified.has_scope("x"));
    // A second read with nothing changed changes nothing.
    assert_eq!(keys.resync().await.unwrap(), 2);
    assert_eq!(accepted(&keys, &kept).await, Ok("kept".to_owned()));
}

/// A change asked while the database is silent (every open connection black-holed, before the
/// call or while its statement is in flight) fails within its deadline rather than waiting on
/// the dead connection until the system gives up on it, holds nothing the follower needs
/// meanwhile, and a retry goes through once connections are replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_a_silent_connection_fails_in_time_and_holds_nothing() {
    let Some(schema) = schema("silent_change").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let proxy = Proxy::start().await;
    let b = proxy.instance(&schema).await;
    let first = a.create("partner-a", ["x"], None).await.unwrap();
    let other = a.create("partner-c", ["x"], None).await.unwrap();
    until(&b, &first, Ok("partner-a")).await;
    until(&b, &other, Ok("partner-c")).await;
    let timed = |b: PgKeys, id: &'static str| async move {
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(30), b.disable(id)).await;
        let answer = answer.expect("the change waited on a dead connection for 30 s");
        (answer.map_err(|error| error.to_string()), started.elapsed())
    };

    // Silent before the call.
    proxy.black_hole_open_connections();
    let (answer, took) = timed(b.clone(), "partner-c").await;
    eprintln!("a change on a silent connection answered {answer:?} after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // A retry goes through once the pool has replaced its dead connections, and the instance
    // sees the change when the call returns.
    let started = Instant::now();
    while timed(b.clone(), "partner-c").await.0.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never went through"
        );
    }
    assert_eq!(accepted(&b, &other).await, Err(KeyError::Disabled));

    // Silent while the statement is in flight: it waits on a row lock at the server, the
    // connection goes silent, and the lock is let go, so that its answer never comes.
    let admin = PgPoolOptions::new().connect(&database_url()).await.unwrap();
    let mut lock = admin.begin().await.unwrap();
    sqlx::query(&format!(
        "SELECT 1 FROM {schema}.api_keys WHERE id = 'partner-a' FOR UPDATE"
    ))
    .execute(&mut *lock)
    .await
    .unwrap();
    let in_flight = tokio::spawn(timed(b.clone(), "partner-a"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.black_hole_open_connections();
    // The proxy stops forwarding within its 20 ms check.
    tokio::time::sleep(Duration::from_millis(100)).await;
    lock.commit().await.unwrap();
    let (answer, took) = in_flight.await.unwrap();
    eprintln!("a change whose connection went silent in flight answered {answer:?} after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(answer.is_err(), "{answer:?}");

    // Meanwhile and after, the instance answers and follows the table: the change was made
    // at the server, and is seen here once the follower has a live connection.
    assert_ne!(accepted(&b, &first).await, Err(KeyError::Unavailable));
    until(&b, &first, Err(KeyError::Disabled)).await;
    let second = a.create("partner-b", ["x"], None).await.unwrap();
    until(&b, &second, Ok("partner-b")).await;
    // And changes through it go through again.
    let started = Instant::now();
    while b.enable("partner-a").await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never went through"
        );
    }
    assert_eq!(accepted(&b, &first).await, Ok("partner-a".to_owned()));
}
