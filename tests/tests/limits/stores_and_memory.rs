//! Limits on custom and slow stores, per route and per key, and memory bounded under sprays of
//! addresses and ids.

use super::*;

#[tokio::test]
async fn a_custom_stores_keys_are_limited_too() {
    let counted = Arc::new(AtomicUsize::new(0));
    #[derive(Clone)]
    struct Partner(Arc<AtomicUsize>);
    impl axum_api_key::KeyStore for Partner {
        async fn verify(&self, key: &str) -> Result<VerifiedKey, axum_api_key::KeyError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            match key {
                "partner-key-1" => {
                    Ok(VerifiedKey::new("p1").with_rate_limit("1/min".parse().expect("rate")))
                }
                _ => Err(axum_api_key::KeyError::Unknown),
            }
        }
    }
    #[api_key(store = Partner)]
    async fn partner() -> &'static str {
        "ok"
    }
    let app = Router::new()
        .route("/p", get(partner))
        .with_state(Partner(Arc::clone(&counted)));
    assert_eq!(
        call(&app, "/p", "partner-key-1").await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "/p", "partner-key-1").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(counted.load(Ordering::SeqCst), 2);
}

/// A store that waits on each lookup, as a database would, and counts how many it was asked.
#[derive(Clone)]
struct SlowStore {
    asked: Arc<AtomicUsize>,
    limits: axum_api_key::RateLimits,
}

impl axum_api_key::KeyStore for SlowStore {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, axum_api_key::KeyError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        match key {
            "slow-store-real-key-0123" => Ok(VerifiedKey::new("real")),
            _ => Err(axum_api_key::KeyError::Unknown),
        }
    }

    fn rate_limits(&self) -> &axum_api_key::RateLimits {
        &self.limits
    }
}

#[api_key(store = SlowStore)]
async fn slow(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guesser_reaches_a_slow_store_at_most_its_budget_whatever_its_concurrency() {
    let store = SlowStore {
        asked: Arc::default(),
        limits: axum_api_key::RateLimits::new()
            .throttle(Throttle::new(10, Duration::from_secs(60))),
    };
    let app = Router::new()
        .route("/slow", get(slow))
        .with_state(store.clone());
    // 300 guesses at once from one address, each waiting 20 ms on the store.
    let guesses: Vec<_> = (0..300)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                send(
                    app,
                    request(
                        "/slow",
                        &format!("guess-{i:04}-0123456789"),
                        Some("203.0.113.5"),
                    ),
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.expect("task"));
    }
    let asked = store.asked.load(Ordering::SeqCst);
    eprintln!("{asked} guesses reached the store");
    assert!(asked <= 11, "{asked} guesses reached the store, budget 10");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        asked
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        300 - asked
    );
    // Another address is not held back; a good key gives its reservation back.
    for _ in 0..20 {
        let answer = send(
            app.clone(),
            request("/slow", "slow-store-real-key-0123", Some("203.0.113.6")),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
}

#[tokio::test]
async fn two_handlers_of_one_name_never_share_a_route_budget() {
    fn first() -> Router<ApiKeys> {
        #[api_key(rate_limit = "1/min")]
        async fn h() -> &'static str {
            "first"
        }
        Router::new().route("/a", get(h))
    }
    fn second() -> Router<ApiKeys> {
        #[api_key(rate_limit = "1/min")]
        async fn h() -> &'static str {
            "second"
        }
        Router::new().route("/b", get(h))
    }
    let app = first()
        .merge(second())
        .with_state(ApiKeys::new().with_key("partner-a", KEY_A));
    assert_eq!(call(&app, "/a", KEY_A).await.status, StatusCode::OK);
    let answer = call(&app, "/b", KEY_A).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        call(&app, "/a", KEY_A).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_client_hammering_past_its_limit_writes_one_warning_per_window() {
    let keys = ApiKeys::new()
        .with(Key::new("hammering-key", KEY_A).rate_limit(limit("1/min")))
        .with_rate_limits(RateLimits::new());
    let app = app(keys);
    let logs = global_logs();
    assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    for _ in 0..500 {
        assert_eq!(
            call(&app, "/data", KEY_A).await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let logged = logs.text();
    let refusals = |level: &str| {
        logged
            .lines()
            .filter(|line| {
                line.contains("rate_limited")
                    && line.contains("key_id=\"hammering-key\"")
                    && line.contains(level)
            })
            .count()
    };
    assert_eq!(refusals("WARN"), 1, "one warning for the window");
    assert_eq!(refusals("DEBUG"), 499, "the rest, quietly");
}

#[tokio::test]
async fn with_a_burst_the_quota_describes_the_burst_and_remaining_never_exceeds_it() {
    let app = app(store("10/s burst 20"));
    let answer = call(&app, "/data", KEY_A).await;
    assert_eq!(answer.status, StatusCode::OK);
    // 20 at once, refilled in 2 s: remaining 19 of a quota of 20, never 19 of 10.
    assert_eq!(answer.header("ratelimit-policy"), Some(r#""key";q=20;w=2"#));
    assert_eq!(answer.header("ratelimit"), Some(r#""key";r=19;t=1"#));
}

/// A store that gives every key a limit, as a key service would, with a new id per key.
#[derive(Clone)]
struct EveryIdLimited {
    limits: RateLimits,
}

impl axum_api_key::KeyStore for EveryIdLimited {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, axum_api_key::KeyError> {
        Ok(VerifiedKey::new(key).with_rate_limit(limit("1000/s")))
    }

    fn answers_from_memory(&self) -> bool {
        true
    }

    fn rate_limits(&self) -> &RateLimits {
        &self.limits
    }
}

#[api_key(store = EveryIdLimited)]
async fn every_id(key: VerifiedKey) -> String {
    key.id().len().to_string()
}

fn resident_kib() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4)
}

#[tokio::test]
async fn budgets_of_a_spray_of_ids_are_bounded_and_forgotten_once_full() {
    let store = EveryIdLimited {
        limits: RateLimits::new(),
    };
    let app = Router::new()
        .route("/every", get(every_id))
        .with_state(store.clone());
    let before = resident_kib();
    let mut most = 0;
    for i in 0..200_000u32 {
        let answer = send(
            app.clone(),
            request("/every", &format!("sprayed-id-{i:08}-0123456789"), None),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        if i % 1_000 == 0 {
            most = most.max(store.limits.__sizes().0);
        }
    }
    let during = store.limits.__sizes().0;
    let after_spray = resident_kib();
    // Each budget is full again a millisecond after its one request.
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.limits.__sweep();
    let (left, _) = store.limits.__sizes();
    eprintln!(
        "spray of 200,000 ids: at most {most} budgets held ({during} at the end), {left} once \
         full again; resident {before} KiB before, {after_spray} KiB after the spray, {} KiB \
         after the sweep",
        resident_kib()
    );
    assert!(most <= 16 * 4_096 + 16, "{most} budgets held at once");
    assert_eq!(left, 0, "full budgets carry nothing and are forgotten");
}

#[api_key(optional, rate_limit = "2/min")]
async fn maybe(key: Option<VerifiedKey>) -> String {
    key.map_or_else(|| "anonymous".to_owned(), |key| key.id().to_owned())
}

#[tokio::test]
async fn a_key_holder_over_its_budget_cannot_drop_the_key_to_be_served() {
    let app = Router::new()
        .route("/maybe", get(maybe))
        .with_state(store("100/min"));
    let from = |key: Option<&str>, ip: &str| {
        let mut request = Request::get("/maybe");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let mut request = request.body(Body::empty()).expect("request");
        request.extensions_mut().insert(ConnectInfo(SocketAddr::new(
            ip.parse().expect("ip"),
            40_000,
        )));
        request
    };
    for _ in 0..2 {
        let answer = send(app.clone(), from(Some(KEY_A), "198.51.100.20")).await;
        assert_eq!(answer.text(), "partner-a");
    }
    send(app.clone(), from(Some(KEY_A), "198.51.100.20"))
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
    // Without the key the route's budget is its address's: two, then refused.
    for _ in 0..2 {
        let answer = send(app.clone(), from(None, "198.51.100.20")).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.text(), "anonymous");
    }
    send(app.clone(), from(None, "198.51.100.20"))
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
    // Another address has a budget of its own; one IPv6 /64 is one address.
    assert_eq!(
        send(app.clone(), from(None, "198.51.100.21")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(app.clone(), from(None, "2001:db8:1:2::1"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(app.clone(), from(None, "2001:db8:1:2::2"))
            .await
            .status,
        StatusCode::OK
    );
    send(app.clone(), from(None, "2001:db8:1:2:ffff::3"))
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
}

#[api_key(optional, rate_limit = "1/min")]
async fn open_but_limited(key: Option<VerifiedKey>) -> &'static str {
    if key.is_some() { "known" } else { "anonymous" }
}

#[tokio::test]
async fn a_spray_of_addresses_on_an_optional_route_keeps_memory_bounded() {
    let keys = ApiKeys::new()
        .with_key("partner-a", KEY_A)
        .with_rate_limits(RateLimits::new());
    let limits = keys.rate_limits().clone();
    let app = Router::new()
        .route("/open", get(open_but_limited))
        .with_state(keys);
    // Each address spends its one request a minute: every budget stays in debt.
    let mut most = 0;
    for i in 0..300_000u32 {
        let [a, b, c, d] = i.to_be_bytes();
        let ip = format!("{}.{b}.{c}.{d}", 10 + a);
        let answer = send(app.clone(), request("/open", "", Some(&ip))).await;
        assert_eq!(answer.status, StatusCode::OK);
        if i % 5_000 == 0 {
            most = most.max(limits.__sizes().0);
        }
    }
    most = most.max(limits.__sizes().0);
    eprintln!("300,000 addresses on an optional route: at most {most} budgets held");
    assert!(most <= 16 * 16_384, "{most} budgets held");
}
