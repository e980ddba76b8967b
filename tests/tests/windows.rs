//! Several rate limits per key, through a real `Router`, on a clock the test moves: a plan of
//! a per-second and a per-day window, each reported in `RateLimit-Policy`, the day counted
//! exactly and whole again at midnight (UTC); the same in a records file and, with feature
//! `redis`, shared through a real Redis by two instances.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use axum_api_key::{ApiKeys, Key, RateLimit, RateLimits, VerifiedKey, api_key, rate_limit_headers};
use axum_api_key_tests::{Answer, KEY_A, get as request, send};
use http::StatusCode;

#[api_key]
async fn data(key: VerifiedKey) -> String {
    format!("data for {}", key.id())
}

#[api_key(rate_limit = "3/day")]
async fn report() -> &'static str {
    "report"
}

/// 2026-12-06T23:59:00Z: a minute before midnight.
const BEFORE_MIDNIGHT: u64 = 1_796_601_540;

/// A clock the test sets, in seconds since 1970.
#[derive(Clone)]
struct Clock(Arc<AtomicU64>);

impl Clock {
    fn at(seconds: u64) -> Self {
        Self(Arc::new(AtomicU64::new(seconds)))
    }

    fn set(&self, seconds: u64) {
        self.0.store(seconds, Ordering::Relaxed);
    }

    fn limits(&self) -> RateLimits {
        let clock = Arc::clone(&self.0);
        RateLimits::new()
            .with_clock(move || UNIX_EPOCH + Duration::from_secs(clock.load(Ordering::Relaxed)))
    }
}

fn app(keys: ApiKeys) -> Router {
    Router::new()
        .route("/data", get(data))
        .route("/report", get(report))
        .with_state(keys)
        .layer(rate_limit_headers())
}

async fn call(app: &Router, uri: &str) -> Answer {
    send(
        app.clone(),
        request(uri, &[("x-api-key", KEY_A.as_bytes())]),
    )
    .await
}

fn plan() -> [RateLimit; 2] {
    ["1000/s".parse().expect("a limit"), RateLimit::per_day(5)]
}

#[tokio::test]
async fn a_day_window_allows_exactly_its_count_until_midnight_then_all_of_it_again() {
    let clock = Clock::at(BEFORE_MIDNIGHT);
    let keys = ApiKeys::new()
        .with(
            Key::new("partner-a", KEY_A)
                .rate_limits(plan())
                .expect("a plan"),
        )
        .with_rate_limits(clock.limits());
    let app = app(keys);

    let first = call(&app, "/data").await;
    assert_eq!(first.status, StatusCode::OK);
    // Each window is its own entry, named after it; the day is whole again in a minute.
    assert_eq!(
        first.header("ratelimit-policy"),
        Some(r#""key-s";q=1000;w=1, "key-day";q=5;w=86400"#)
    );
    assert_eq!(
        first.header("ratelimit"),
        Some(r#""key-s";r=999;t=1, "key-day";r=4;t=60"#)
    );
    for _ in 0..4 {
        assert_eq!(call(&app, "/data").await.status, StatusCode::OK);
    }
    // The sixth of the day is refused until midnight, however fast or slow it comes.
    for seconds in [0, 30, 59] {
        clock.set(BEFORE_MIDNIGHT + seconds);
        let refused = call(&app, "/data").await;
        refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
        assert_eq!(
            refused.header("retry-after"),
            Some((60 - seconds).to_string().as_str())
        );
        assert!(
            refused
                .header("ratelimit")
                .is_some_and(|state| state.contains(r#""key-day";r=0"#)),
            "{:?}",
            refused.header("ratelimit")
        );
    }
    // Midnight: five more, exactly, and the window is the new day's.
    clock.set(BEFORE_MIDNIGHT + 60);
    for left in (0..5).rev() {
        let answer = call(&app, "/data").await;
        assert_eq!(answer.status, StatusCode::OK);
        let state = answer.header("ratelimit").expect("RateLimit");
        assert!(
            state.ends_with(&format!(r#""key-day";r={left};t=86400"#)),
            "{state}"
        );
    }
    assert_eq!(
        call(&app, "/data").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_refusal_by_one_window_spends_nothing_of_the_others() {
    let clock = Clock::at(BEFORE_MIDNIGHT - 3_600);
    let keys = ApiKeys::new()
        .with(
            Key::new("partner-a", KEY_A)
                .rate_limits(["2/min".parse().expect("a limit"), RateLimit::per_day(100)])
                .expect("a plan"),
        )
        .with_rate_limits(clock.limits());
    let app = app(keys);
    assert_eq!(call(&app, "/data").await.status, StatusCode::OK);
    assert_eq!(call(&app, "/data").await.status, StatusCode::OK);
    for _ in 0..10 {
        let refused = call(&app, "/data").await;
        refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
        // Refused by the minute: the day counts only the two let in.
        let state = refused.header("ratelimit").expect("RateLimit");
        assert!(state.contains(r#""key-day";r=98;"#), "{state}");
    }
}

#[tokio::test]
async fn a_routes_day_window_is_per_key_and_exact() {
    let clock = Clock::at(BEFORE_MIDNIGHT - 7_200);
    let keys = ApiKeys::new()
        .with(Key::new("partner-a", KEY_A).rate_limit("100/min".parse().expect("a limit")))
        .with_rate_limits(clock.limits());
    let app = app(keys);
    for _ in 0..3 {
        assert_eq!(call(&app, "/report").await.status, StatusCode::OK);
    }
    let refused = call(&app, "/report").await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
    assert_eq!(refused.header("retry-after"), Some("7260"));
    // One key limit keeps its plain name beside the route's.
    assert!(
        refused
            .header("ratelimit-policy")
            .is_some_and(|policy| policy == r#""key";q=100;w=60, "route";q=3;w=86400"#),
        "{:?}",
        refused.header("ratelimit-policy")
    );
    // Other routes are the key's own budget's business only.
    assert_eq!(call(&app, "/data").await.status, StatusCode::OK);
    clock.set(BEFORE_MIDNIGHT + 60);
    assert_eq!(call(&app, "/report").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_month_window_follows_the_calendar() {
    // 2027-01-31T23:00:00Z: February starts in an hour, and is 28 days long.
    let clock = Clock::at(1_801_436_400);
    let keys = ApiKeys::new()
        .with(
            Key::new("partner-a", KEY_A)
                .rate_limits([RateLimit::per_month(2)])
                .expect("a plan"),
        )
        .with_rate_limits(clock.limits());
    let app = app(keys);
    assert_eq!(call(&app, "/data").await.status, StatusCode::OK);
    assert_eq!(call(&app, "/data").await.status, StatusCode::OK);
    let refused = call(&app, "/data").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("retry-after"), Some("3600"));
    clock.set(1_801_436_400 + 3_600);
    let february = call(&app, "/data").await;
    assert_eq!(february.status, StatusCode::OK);
    assert_eq!(
        february.header("ratelimit-policy"),
        Some(r#""key";q=2;w=2419200"#)
    );
}

#[tokio::test]
async fn a_records_file_holds_a_plan_of_several_windows_and_writes_it_back() {
    let dir = std::env::temp_dir().join(format!("axum-api-key-windows-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("keys.toml");
    let digest: String = axum_api_key::digest(KEY_A.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let digest = format!("sha256:{digest}");
    std::fs::write(
        &path,
        format!(
            "[[keys]]\nid = \"partner-a\"\ndigest = \"{digest}\"\n\
             rate_limit = [\"1000/s\", \"5/day\"]\n"
        ),
    )
    .expect("written");
    let clock = Clock::at(BEFORE_MIDNIGHT);
    let keys = ApiKeys::from_file(&path)
        .expect("a plan of two windows reads")
        .with_rate_limits(clock.limits());
    let app = app(keys.clone());
    for _ in 0..5 {
        assert_eq!(call(&app, "/data").await.status, StatusCode::OK);
    }
    assert_eq!(
        call(&app, "/data").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A change elsewhere in the file keeps the plan as it was written.
    keys.disable("partner-a").expect("disabled");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        text.contains(r#"rate_limit = ["1000/s", "5/day"]"#),
        "{text}"
    );
    let again = ApiKeys::from_file(&path).expect("reads back");
    assert_eq!(
        again
            .list()
            .first()
            .map(|listed| listed.key().rate_limits().count()),
        Some(2)
    );

    // Two limits over one window, or more than four, are refused at the line that says so.
    for bad in [
        r#"rate_limit = ["10/s", "20/s"]"#,
        r#"rate_limit = ["1/s", "1/min", "1/h", "1/day", "1/month"]"#,
        r#"rate_limit = ["10/s", "lots"]"#,
        r#"rate_limit = "10/day burst 20""#,
    ] {
        std::fs::write(
            &path,
            format!("[[keys]]\nid = \"partner-a\"\ndigest = \"{digest}\"\n{bad}\n"),
        )
        .expect("written");
        let error = ApiKeys::from_file(&path).expect_err(bad);
        assert_eq!(
            (error.kind(), error.line(), error.field()),
            (
                axum_api_key::ConfigErrorKind::BadRateLimit,
                Some(4),
                Some("rate_limit")
            ),
            "{bad}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_text_forms_of_calendar_windows() {
    assert_eq!(
        "100000/day".parse::<RateLimit>(),
        Ok(RateLimit::per_day(100_000))
    );
    assert_eq!(
        "10/month".parse::<RateLimit>(),
        Ok(RateLimit::per_month(10))
    );
    // A rolling day is written in hours, and stays rolling.
    let rolling: RateLimit = "100/24h".parse().expect("a limit");
    assert_eq!(rolling.calendar(), None);
    assert_eq!(rolling.to_string(), "100/24h");
    for bad in ["10/2d", "10/day burst 20", "10/3month"] {
        let error = bad.parse::<RateLimit>().expect_err(bad).to_string();
        assert!(error.contains("calendar window"), "{bad}: {error}");
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use axum_api_key::{RedisFailure, RedisLimits};
    use axum_api_key_tests::{redis_prefix, redis_url};

    async fn instance(url: &str, prefix: &str, clock: &Clock) -> Router {
        let limits = clock.limits().with_redis(
            RedisLimits::new(url)
                .expect("a Redis URL")
                .prefix(prefix)
                .on_failure(RedisFailure::Refuse),
        );
        limits.connect().await.expect("Redis answers");
        let keys = ApiKeys::new()
            .with(
                Key::new("partner-a", KEY_A)
                    .rate_limits(plan())
                    .expect("a plan"),
            )
            .with_rate_limits(limits);
        app(keys)
    }

    #[tokio::test]
    async fn two_instances_share_a_day_window_exactly_and_midnight_renews_it() {
        let Some(url) = redis_url() else { return };
        let prefix = redis_prefix("windows-day");
        let clock = Clock::at(BEFORE_MIDNIGHT);
        let one = instance(&url, &prefix, &clock).await;
        let two = instance(&url, &prefix, &clock).await;
        for app in [&one, &two, &one, &two, &one] {
            let answer = call(app, "/data").await;
            assert_eq!(answer.status, StatusCode::OK);
        }
        for app in [&two, &one] {
            let refused = call(app, "/data").await;
            refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
            assert_eq!(refused.header("retry-after"), Some("60"));
        }
        clock.set(BEFORE_MIDNIGHT + 60);
        let renewed = call(&two, "/data").await;
        assert_eq!(renewed.status, StatusCode::OK);
        assert!(
            renewed
                .header("ratelimit")
                .is_some_and(|state| state.ends_with(r#""key-day";r=4;t=86400"#)),
            "{:?}",
            renewed.header("ratelimit")
        );
    }
}

#[api_key(rate_limit = "5/250ms")]
async fn burst() -> &'static str {
    "burst"
}

/// Keys of one identity share one budget even after the limiter's table forgot it (a budget
/// full again is swept): a record that kept the budget and one that looks it up afresh must
/// meet on the same count, for the key's own limit and for a route's.
#[tokio::test]
async fn keys_of_one_identity_keep_one_budget_after_the_table_sweeps() {
    let format = axum_api_key::KeyFormat::new("acme").expect("format");
    let (ci, web) = (format.generate(), format.generate());
    let limits = RateLimits::new();
    let limit: RateLimit = "5/250ms".parse().expect("a limit");
    let keys = ApiKeys::new()
        .with_format(format)
        .with(Key::new("acme-ci", &ci).identity("acme").rate_limit(limit))
        .with(
            Key::new("acme-web", &web)
                .identity("acme")
                .rate_limit(limit),
        )
        .with_rate_limits(limits.clone());
    let app = Router::new()
        .route("/data", get(data))
        .route("/burst", get(burst))
        .with_state(keys);
    let call =
        |key: &str, uri: &str| send(app.clone(), request(uri, &[("x-api-key", key.as_bytes())]));
    for uri in ["/data", "/burst"] {
        // The CI key keeps the budget in its record; once it is full again, the table forgets it.
        assert_eq!(call(&ci, uri).await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(300)).await;
        limits.__sweep();
        // The web key finds the budget now: the same one, so the two share 5, not 5 each.
        assert_eq!(call(&web, uri).await.status, StatusCode::OK);
        let mut accepted = 1;
        for key in [&ci, &web].into_iter().cycle().take(10) {
            if call(key, uri).await.status == StatusCode::OK {
                accepted += 1;
            }
        }
        // Five in the burst, and at most one refilled if this machine stalls for 50 ms.
        assert!(accepted <= 6, "{uri}: {accepted} accepted of a shared 5");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
