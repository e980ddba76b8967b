//! Plans in the table: rate limits, self-service, disabled keys and networks, credits and last uses
//! across instances.

use super::*;

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

/// A chain of rotations by a key's holder is held to `MAX_KEYS_IN_GRACE` keys in grace at once
/// in the database as in memory: the next is refused and inserts no row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_rotations_is_held_to_a_few_keys_in_grace() {
    let Some(schema) = schema("chain").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let mut key = a.create("partner-a", ["x"], None).await.unwrap();
    let grace = Duration::from_secs(3600);
    for _ in 0..axum_api_key::MAX_KEYS_IN_GRACE {
        let presented = axum_api_key::digest(key.as_bytes());
        key = a
            .rotate_presented(&presented, grace)
            .await
            .unwrap()
            .key()
            .to_owned();
    }
    let presented = axum_api_key::digest(key.as_bytes());
    assert!(matches!(
        a.rotate_presented(&presented, grace).await,
        Err(PgKeysError::TooManyInGrace)
    ));
    assert_eq!(
        a.list().await.unwrap().len(),
        axum_api_key::MAX_KEYS_IN_GRACE + 1
    );
    assert_eq!(accepted(&a, &key).await, Ok("partner-a".to_owned()));
}

/// Rotating and revoking a key over and over does not grow the table without end: a rotation
/// deletes the id's finished rows past the newest `MAX_FINISHED_KEYS`, and every instance
/// forgets them, the newest finished key still refused as revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_and_revocations_by_a_holder_leave_the_table_bounded() {
    let Some(schema) = schema("forget").await else {
        return;
    };
    let a = instance(&schema, "a").await;
    let b = instance(&schema, "b").await;
    let first = a.create("partner-a", ["x"], None).await.unwrap();
    let mut key = first.clone();
    let mut last_finished = String::new();
    let grace = Duration::from_secs(3600);
    for _ in 0..3 * axum_api_key::MAX_FINISHED_KEYS {
        let presented = axum_api_key::digest(key.as_bytes());
        let next = a
            .rotate_presented(&presented, grace)
            .await
            .unwrap()
            .key()
            .to_owned();
        a.revoke_presented(&presented).await.unwrap();
        last_finished = std::mem::replace(&mut key, next);
    }
    let rows = a.list().await.unwrap().len();
    assert_eq!(rows, axum_api_key::MAX_FINISHED_KEYS + 2, "rows of one id");
    assert_eq!(a.len(), rows);
    for keys in [&a, &b] {
        // The last change an instance hears of is the last revocation.
        until(keys, &last_finished, Err(KeyError::Revoked)).await;
        until(keys, &key, Ok("partner-a")).await;
        until(keys, &first, Err(KeyError::Unknown)).await;
        assert_eq!(keys.len(), rows);
    }
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
