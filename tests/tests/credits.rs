//! Credits through a real `Router`: a key on a plan used until refused, costs per route,
//! credits and rate limits refusing without charging each other, and spent credits written
//! back to the records file.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use axum_api_key::{ApiKeys, Key, RateLimits, Refill, VerifiedKey, api_key, rate_limit_headers};
use axum_api_key_tests::{Answer, KEY_A, KEY_B, send};
use http::{Request, StatusCode};

#[api_key]
async fn data(key: VerifiedKey) -> String {
    format!("data for {}", key.id())
}

#[api_key(cost = 3)]
async fn report() -> &'static str {
    "report"
}

#[api_key(cost = 0)]
async fn usage() -> &'static str {
    "usage"
}

#[api_key(rate_limit = "2/min", cost = 1)]
async fn search() -> &'static str {
    "search"
}

fn app(keys: ApiKeys) -> Router {
    Router::new()
        .route("/data", get(data))
        .route("/report", get(report))
        .route("/usage", get(usage))
        .route("/search", get(search))
        .with_state(keys)
        .layer(rate_limit_headers())
}

async fn call(app: &Router, uri: &str, key: &str) -> Answer {
    let request = Request::get(uri)
        .header("x-api-key", key)
        .body(Body::empty())
        .expect("request");
    send(app.clone(), request).await
}

fn refill(text: &str) -> Refill {
    text.parse().expect("a refill")
}

#[tokio::test]
async fn a_five_credit_plan_is_used_up_then_refused_with_when_it_refills() {
    let keys = ApiKeys::new()
        .with(Key::new("trial", KEY_A).credits(5).refill(refill("5/day")))
        .with_key("unlimited", KEY_B)
        .with_rate_limits(RateLimits::new());
    let app = app(keys.clone());
    for left in (0..5).rev() {
        let answer = call(&app, "/data", KEY_A).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.header("credits-remaining"),
            Some(left.to_string().as_str())
        );
    }
    let refused = call(&app, "/data", KEY_A).await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "CreditsExhausted");
    assert_eq!(refused.header("credits-remaining"), Some("0"));
    // Retry-After points at the next midnight UTC, at most a day away.
    let retry: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=86_400).contains(&retry), "{retry}");
    refused.assert_never_contains(KEY_A.as_bytes());
    assert_eq!(keys.credits_left("trial"), Some(0));
    // A free route still answers; a key without credits is untouched.
    assert_eq!(call(&app, "/usage", KEY_A).await.status, StatusCode::OK);
    let other = call(&app, "/data", KEY_B).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.header("credits-remaining"), None);
}

#[tokio::test]
async fn a_route_costs_what_it_says_and_a_request_that_does_not_fit_spends_nothing() {
    let keys = ApiKeys::new()
        .with(Key::new("analyst", KEY_A).credits(7))
        .with_rate_limits(RateLimits::new());
    let app = app(keys.clone());
    assert_eq!(call(&app, "/report", KEY_A).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/report", KEY_A).await.status, StatusCode::OK);
    assert_eq!(keys.credits_left("analyst"), Some(1));
    // Three do not fit in one: refused, and the one is still there.
    let refused = call(&app, "/report", KEY_A).await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "CreditsExhausted");
    assert_eq!(
        refused.header("retry-after"),
        None,
        "no refill: waiting will not help"
    );
    assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    assert_eq!(keys.credits_left("analyst"), Some(0));
    // A top-up is counted from at once.
    keys.set_credits("analyst", 3, None).expect("topped up");
    assert_eq!(call(&app, "/report", KEY_A).await.status, StatusCode::OK);
    assert_eq!(keys.credits_left("analyst"), Some(0));
}

#[tokio::test]
async fn a_rate_limit_refusal_spends_no_credit_and_a_credit_refusal_no_budget() {
    let keys = ApiKeys::new()
        .with(Key::new("both", KEY_A).credits(3))
        .with_rate_limits(RateLimits::new());
    let app = app(keys.clone());
    assert_eq!(call(&app, "/search", KEY_A).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/search", KEY_A).await.status, StatusCode::OK);
    for _ in 0..5 {
        let limited = call(&app, "/search", KEY_A).await;
        limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
    }
    assert_eq!(
        keys.credits_left("both"),
        Some(1),
        "the rate limit charged nothing"
    );

    let keys = ApiKeys::new()
        .with(Key::new("poor", KEY_B).credits(0))
        .with_rate_limits(RateLimits::new());
    let poor = self::app(keys.clone());
    for _ in 0..5 {
        let refused = call(&poor, "/search", KEY_B).await;
        refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "CreditsExhausted");
    }
    keys.set_credits("poor", 10, None).expect("topped up");
    // The five refusals spent nothing of the route's 2/min budget.
    assert_eq!(call(&poor, "/search", KEY_B).await.status, StatusCode::OK);
    assert_eq!(call(&poor, "/search", KEY_B).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_never_spend_more_than_granted() {
    let keys = ApiKeys::new()
        .with(Key::new("shared", KEY_A).credits(1_000))
        .with_rate_limits(RateLimits::new());
    let app = app(keys.clone());
    let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..64 {
        let (app, accepted) = (app.clone(), Arc::clone(&accepted));
        clients.push(tokio::spawn(async move {
            for n in 0..40 {
                let uri = if n % 4 == 0 { "/report" } else { "/data" };
                let answer = call(&app, uri, KEY_A).await;
                match answer.status {
                    StatusCode::OK => {
                        let cost = if uri == "/report" { 3 } else { 1 };
                        accepted.fetch_add(cost, std::sync::atomic::Ordering::Relaxed);
                    }
                    StatusCode::TOO_MANY_REQUESTS => {}
                    other => panic!("{other}"),
                }
            }
        }));
    }
    for client in clients {
        client.await.expect("client");
    }
    let spent = accepted.load(std::sync::atomic::Ordering::Relaxed);
    let left = keys.credits_left("shared").expect("credits");
    assert_eq!(spent + left, 1_000, "spent {spent}, left {left}");
    assert!(
        left < 3,
        "every credit that could be spent was: {left} left"
    );
}

fn records_file(name: &str, body: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "axum-api-key-credits-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("keys.toml");
    let digest: String = axum_api_key::digest(KEY_A.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        &path,
        format!("# plans\n[[keys]]\nid = \"trial\"\ndigest = \"sha256:{digest}\"\n{body}"),
    )
    .expect("written");
    path
}

#[tokio::test]
async fn spent_credits_are_written_back_and_a_crash_loses_only_the_unwritten() {
    let path = records_file("write-back", "credits = 10\nrefill = \"10/month\"\n");
    let keys = ApiKeys::from_file(&path)
        .expect("read")
        .with_rate_limits(RateLimits::new());
    let app = app(keys.clone());
    for _ in 0..3 {
        assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    }
    assert_eq!(keys.write_credits().expect("written"), 1);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("credits = 7"), "{text}");
    assert!(text.contains("credits_at = "), "{text}");
    assert!(text.starts_with("# plans\n"), "{text}");
    // Two more, not written yet: a process that dies now loses exactly those two (a store
    // read anew with limits of its own stands for the restarted process).
    for _ in 0..2 {
        assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    }
    assert_eq!(keys.credits_left("trial"), Some(5));
    let after_crash = ApiKeys::from_file(&path)
        .expect("read again")
        .with_rate_limits(RateLimits::new());
    let lost = after_crash.credits_left("trial").expect("credits") - 5;
    assert_eq!(lost, 2, "the loss is what was spent since the last write");
    // Nothing is counted twice once written: the store goes on from 5.
    assert_eq!(keys.write_credits().expect("written"), 1);
    assert_eq!(keys.credits_left("trial"), Some(5));
    assert_eq!(keys.write_credits().expect("nothing to write"), 0);
    let reread = ApiKeys::from_file(&path)
        .expect("read")
        .with_rate_limits(RateLimits::new());
    assert_eq!(reread.credits_left("trial"), Some(5));
    assert_eq!(reread.list()[0].credits_left(), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_credits_are_written_back_on_their_own_within_the_delay() {
    let path = records_file("background", "credits = 4\n");
    let keys = ApiKeys::from_file(&path)
        .expect("read")
        .with_rate_limits(RateLimits::new());
    let app = app(keys.clone());
    assert_eq!(call(&app, "/report", KEY_A).await.status, StatusCode::OK);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("credits = 4")
    );
    // Written within the delay (and a margin for a busy machine), with no call.
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("credits = 1") {
            break;
        }
        assert!(
            started.elapsed() < axum_api_key::CREDITS_WRITE_DELAY + Duration::from_secs(10),
            "not written: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn last_uses_are_counted_listed_and_written_back_once() {
    let path = records_file("last-used", "");
    let keys = ApiKeys::from_file(&path)
        .expect("read")
        .with_rate_limits(RateLimits::new());
    let app = app(keys.clone());
    assert_eq!(keys.list()[0].last_used(), None);
    let before = std::time::SystemTime::now() - Duration::from_secs(1);
    for _ in 0..3 {
        assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    }
    // A refused request is no use.
    assert_eq!(
        call(&app, "/data", "pa_not-a-key-0123456789").await.status,
        StatusCode::UNAUTHORIZED
    );
    let listed = &keys.list()[0];
    assert_eq!(listed.uses_since_start(), 3);
    assert!(listed.last_used().is_some_and(|at| at >= before));
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains("last_used")
    );

    assert_eq!(keys.write_last_used().expect("written"), 1);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("last_used = "), "{text}");
    // Nothing new: nothing written.
    assert_eq!(keys.write_last_used().expect("nothing"), 0);
    // A restarted process reads it back.
    let reread = ApiKeys::from_file(&path)
        .expect("read")
        .with_rate_limits(RateLimits::new());
    let listed = &reread.list()[0];
    assert_eq!(listed.uses_since_start(), 0);
    assert!(listed.last_used().is_some_and(|at| at >= before));
    assert!(listed.key().last_used().is_some());
}

#[tokio::test]
async fn a_used_up_key_is_refilled_when_its_period_turns() {
    // Counted on a day long past and used up: today's period starts from the refill's amount.
    let path = records_file(
        "refilled",
        "credits = 0\nrefill = \"5/day\"\ncredits_at = 2020-01-01T12:00:00Z\n",
    );
    let keys = ApiKeys::from_file(&path)
        .expect("read")
        .with_rate_limits(RateLimits::new());
    let app = app(keys.clone());
    for _ in 0..5 {
        assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    }
    let refused = call(&app, "/data", KEY_A).await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "CreditsExhausted");
    assert!(refused.header("retry-after").is_some());
    // Written back as today's count: read again, it stays used up until tomorrow.
    keys.write_credits().expect("written");
    let reread = ApiKeys::from_file(&path)
        .expect("read")
        .with_rate_limits(RateLimits::new());
    assert_eq!(reread.credits_left("trial"), Some(0));
    let again = self::app(reread);
    let refused = call(&again, "/data", KEY_A).await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "CreditsExhausted");

    // Set by hand to nothing (no `credits_at`: a count of the current period): refused until
    // the next period.
    let path = records_file("not-yet", "credits = 0\nrefill = \"5/day\"\n");
    let keys = ApiKeys::from_file(&path)
        .expect("read")
        .with_rate_limits(RateLimits::new());
    let refused = call(&self::app(keys), "/data", KEY_A).await;
    refused.assert_problem(StatusCode::TOO_MANY_REQUESTS, "CreditsExhausted");
}

#[tokio::test]
async fn keys_of_one_identity_share_their_credits_and_limits_and_keep_them_through_rotation() {
    let format = axum_api_key::KeyFormat::new("acme").expect("format");
    let (ci, web, other) = (format.generate(), format.generate(), format.generate());
    let keys = ApiKeys::new()
        .with_format(format)
        .with(
            Key::new("acme-ci", &ci)
                .identity("acme")
                .credits(4)
                .rate_limit("3/min".parse().expect("limit")),
        )
        .with(
            Key::new("acme-web", &web)
                .identity("acme")
                .credits(4)
                .rate_limit("3/min".parse().expect("limit")),
        )
        .with(Key::new("other", &other).credits(4))
        .with_rate_limits(RateLimits::new());
    let app = app(keys.clone());
    // One budget of 3 a minute for both keys.
    assert_eq!(call(&app, "/data", &ci).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/data", &web).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/data", &ci).await.status, StatusCode::OK);
    let limited = call(&app, "/data", &web).await;
    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "RateLimited");
    // One count of credits: three spent of four, whichever key spent them.
    assert_eq!(keys.credits_left("acme-web"), Some(1));
    assert_eq!(keys.credits_left("acme-ci"), Some(1));
    // Another customer is apart.
    assert_eq!(call(&app, "/data", &other).await.status, StatusCode::OK);
    assert_eq!(keys.credits_left("other"), Some(3));
    // A rotated key keeps its identity, and so the shared count.
    let rotated = keys.rotate("acme-ci", Duration::ZERO).expect("rotated");
    assert_eq!(
        keys.verify(rotated.as_bytes()).expect("valid").identity(),
        Some("acme")
    );
    // A top-up of one key tops up the identity.
    keys.set_credits("acme-web", 10, None).expect("topped up");
    assert_eq!(keys.credits_left("acme-ci"), Some(10));
}

#[tokio::test]
async fn an_identitys_spending_is_written_to_each_of_its_keys() {
    let digest = |key: &str| -> String {
        axum_api_key::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let path = records_file("identity", "identity = \"acme\"\ncredits = 10\n");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str(&format!(
        "\n[[keys]]\nid = \"acme-web\"\ndigest = \"sha256:{}\"\nidentity = \"acme\"\ncredits = 10\n",
        digest(KEY_B)
    ));
    std::fs::write(&path, text).expect("written");
    let keys = ApiKeys::from_file(&path)
        .expect("read")
        .with_rate_limits(RateLimits::new());
    let app = app(keys.clone());
    assert_eq!(call(&app, "/data", KEY_A).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/report", KEY_B).await.status, StatusCode::OK);
    assert_eq!(keys.write_credits().expect("written"), 1);
    let written = std::fs::read_to_string(&path).expect("read");
    assert_eq!(written.matches("credits = 6").count(), 2, "{written}");
    let reread = ApiKeys::from_file(&path)
        .expect("read")
        .with_rate_limits(RateLimits::new());
    assert_eq!(reread.credits_left("trial"), Some(6));
}
