//! The self-service router: a key holder reads, rotates and revokes its own key, through a
//! real `Router`.

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum_api_key::{
    ApiKeys, Key, KeyFormat, MAX_FINISHED_KEYS, MAX_KEYS_IN_GRACE, MAX_SELF_SERVICE_ROTATIONS,
    api_key, digest, self_service,
};
use axum_api_key_tests::{Answer, global_logs, send};
use http::{Request, StatusCode};

#[api_key]
struct ApiAccess;

fn app(keys: ApiKeys) -> Router {
    Router::new()
        .nest(
            "/account",
            self_service::<ApiAccess, ApiKeys, _>(Duration::from_secs(3600)),
        )
        .with_state(keys)
}

fn store() -> (ApiKeys, String) {
    store_of("partner-a")
}

fn store_of(id: &str) -> (ApiKeys, String) {
    let format = KeyFormat::new("ss").expect("format");
    let key = format.generate();
    let keys = ApiKeys::new().with_format(format).with(
        Key::new(id, &key)
            .scopes(["orders:read", "orders:write"])
            .rate_limit("100/min".parse().expect("rate")),
    );
    (keys, key)
}

async fn call(app: &Router, method: &str, uri: &str, key: Option<&str>) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    send(app.clone(), request.body(Body::empty()).expect("request")).await
}

#[tokio::test]
async fn the_holder_reads_its_key_but_never_the_key_itself() {
    let (keys, key) = store();
    let app = app(keys);
    let answer = call(&app, "GET", "/account/keys/me", Some(&key)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let mut body = answer.json();
    // This very request is the key's last use.
    let last_used = body["last_used"].take();
    assert!(
        last_used.as_str().is_some_and(|at| at.ends_with('Z')),
        "{last_used}"
    );
    body.as_object_mut().unwrap().remove("last_used");
    assert_eq!(
        body,
        serde_json::json!({
            "id": "partner-a",
            "scopes": ["orders:read", "orders:write"],
            "expires_at": null,
            "rate_limit": "100/min",
            "credits_left": null,
        })
    );
    answer.assert_never_contains(key.as_bytes());
}

#[tokio::test]
async fn the_holder_sees_its_credits_left() {
    let format = KeyFormat::new("ss").expect("format");
    let key = format.generate();
    let keys = ApiKeys::new()
        .with_format(format)
        .with(Key::new("on-a-plan", &key).credits(10))
        .with_rate_limits(axum_api_key::RateLimits::new());
    let app = app(keys);
    let first = call(&app, "GET", "/account/keys/me", Some(&key)).await;
    assert_eq!(first.json()["credits_left"], 9, "the read itself costs one");
    let second = call(&app, "GET", "/account/keys/me", Some(&key)).await;
    assert_eq!(second.json()["credits_left"], 8);
}

#[tokio::test]
async fn every_route_refuses_a_request_without_its_key() {
    let (keys, _) = store();
    let app = app(keys);
    for (method, uri) in [
        ("GET", "/account/keys/me"),
        ("POST", "/account/keys/me/rotate"),
        ("DELETE", "/account/keys/me"),
    ] {
        call(&app, method, uri, None)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "MissingKey");
        let wrong = call(&app, method, uri, Some("ss_wrong")).await;
        wrong.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
    }
}

#[tokio::test]
async fn a_rotation_gives_the_new_key_once_and_keeps_the_old_one_for_the_grace() {
    let (keys, old) = store_of("rotating-holder");
    let app = app(keys.clone());
    let logs = global_logs();
    let answer = call(&app, "POST", "/account/keys/me/rotate", Some(&old)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body = answer.json();
    let new = body["key"].as_str().expect("the new key").to_owned();
    assert!(new.starts_with("ss_") && new != old);
    assert_eq!(body["id"], "rotating-holder");
    let ends = body["expires_at"]
        .as_str()
        .expect("when the presented key stops working");
    assert!(ends.ends_with('Z'), "{ends}");
    assert!(!answer.text().contains(&old), "the old key is never echoed");

    // The new key holds what the old one held; the old one works until the grace ends.
    let me = call(&app, "GET", "/account/keys/me", Some(&new))
        .await
        .json();
    assert_eq!(
        me["scopes"],
        serde_json::json!(["orders:read", "orders:write"])
    );
    assert_eq!(me["rate_limit"], "100/min");
    let old_me = call(&app, "GET", "/account/keys/me", Some(&old))
        .await
        .json();
    let expires = old_me["expires_at"]
        .as_str()
        .expect("the old key now expires");
    assert!(expires.ends_with('Z') && expires.len() >= 20, "{expires}");

    let logged = logs.text();
    assert!(
        logged
            .lines()
            .any(|line| line.contains("outcome=\"rotated\"")
                && line.contains("key_id=\"rotating-holder\"")),
        "{logged}"
    );
    assert!(!logged.contains(&old) && !logged.contains(&new), "{logged}");
}

/// A leaked key cannot multiply itself: each rotation leaves the rotated key working for the
/// grace, so a chain of rotations by its holder is held to `MAX_KEYS_IN_GRACE` keys in grace
/// at once. The next rotation is refused with 429 and issues nothing; the current key keeps
/// working, and a key in grace revoked frees its place.
#[tokio::test]
async fn a_chain_of_rotations_is_held_to_a_few_keys_in_grace() {
    let (keys, first) = store();
    let app = app(keys.clone());
    let mut issued = vec![first];
    for _ in 0..MAX_KEYS_IN_GRACE {
        let key = issued.last().expect("a key").clone();
        let answer = call(&app, "POST", "/account/keys/me/rotate", Some(&key)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        issued.push(answer.json()["key"].as_str().expect("key").to_owned());
    }
    let current = issued.last().expect("a key").clone();
    let refused = call(&app, "POST", "/account/keys/me/rotate", Some(&current)).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text()
    );
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(refused.json()["title"], "Too many rotations");
    for key in &issued {
        assert!(
            !refused.text().contains(key.as_str()),
            "a key in the refusal"
        );
    }
    assert_eq!(keys.len(), MAX_KEYS_IN_GRACE + 1, "a key was issued");
    for key in &issued {
        assert!(keys.verify(key.as_bytes()).is_ok(), "a key stopped working");
    }

    // The holder revokes its oldest key: one place in grace is free again.
    let revoked = call(&app, "DELETE", "/account/keys/me", Some(&issued[0])).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());
    let answer = call(&app, "POST", "/account/keys/me/rotate", Some(&current)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

/// A leaked key cannot grow the store without end either: rotating and then revoking the key
/// just rotated out (or waiting out its grace) finishes one key each turn, and a store keeps
/// only the newest `MAX_FINISHED_KEYS` finished keys of an id past a self-service rotation. The
/// keys forgotten stay refused. (Through the store's calls: the router holds an id to fewer.)
#[tokio::test]
async fn a_loop_of_rotations_and_revocations_keeps_the_store_bounded() {
    let (keys, first) = store();
    let app = app(keys.clone());
    let grace = Duration::from_secs(3600);
    let mut current = first.clone();
    let mut finished = Vec::new();
    for _ in 0..40 {
        let next = keys
            .rotate_presented(&digest(current.as_bytes()), grace)
            .expect("rotated")
            .key()
            .to_owned();
        keys.revoke_presented(&digest(current.as_bytes())).unwrap();
        finished.push(std::mem::replace(&mut current, next));
    }
    // The current key, and at most the newest finished ones (the last revoked was finished
    // after the last rotation pruned).
    assert_eq!(
        keys.len(),
        2 + MAX_FINISHED_KEYS,
        "records for one id after 40 turns"
    );
    assert!(keys.verify(current.as_bytes()).is_ok());
    for key in &finished {
        assert!(keys.verify(key.as_bytes()).is_err(), "a finished key works");
        let answer = call(&app, "GET", "/account/keys/me", Some(key)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    // The newest finished key is still known as revoked.
    call(
        &app,
        "GET",
        "/account/keys/me",
        finished.last().map(String::as_str),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED, "RevokedKey");
}

/// Each rotation is a write where the keys live (a whole records file, rewritten and flushed
/// to disk, or a transaction) and makes a key: one key held by an attacker must not buy an
/// endless stream of them. A router lets the holders of one id make `MAX_SELF_SERVICE_ROTATIONS`
/// an hour; the next gets 429 with `Retry-After` and issues nothing, while reading goes on, the
/// holders of another id are not held back, and a revocation is never refused: whoever spent
/// the id's rotations, the holder of a leaked key can still end it.
#[tokio::test]
async fn the_rotations_of_one_id_are_held_to_a_budget_an_hour() {
    let format = KeyFormat::new("ss").expect("format");
    let (first, other) = (format.generate(), format.generate());
    // No rate limit of its own: the budget is the router's.
    let keys = ApiKeys::new()
        .with_format(format)
        .with(Key::new("partner-a", &first))
        .with(Key::new("partner-b", &other));
    let app = app(keys.clone());
    let mut current = first;
    let mut rotations = 0;
    let refused = loop {
        assert!(rotations <= 100, "100 rotations and never held back");
        let answer = call(&app, "POST", "/account/keys/me/rotate", Some(&current)).await;
        if answer.status != StatusCode::OK {
            break answer;
        }
        rotations += 1;
        let next = answer.json()["key"].as_str().expect("key").to_owned();
        let revoked = call(&app, "DELETE", "/account/keys/me", Some(&current)).await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());
        current = next;
    };
    assert_eq!(rotations, MAX_SELF_SERVICE_ROTATIONS as usize);
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text()
    );
    assert_eq!(refused.json()["title"], "Too many rotations this hour");
    let wait: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((3500..=3600).contains(&wait), "{wait}");
    refused.assert_never_contains(current.as_bytes());
    assert_eq!(keys.len(), 2 + MAX_FINISHED_KEYS + 1, "a key was issued");
    // Held back: reading goes on, another id rotates, and the key can still be ended.
    let read = call(&app, "GET", "/account/keys/me", Some(&current));
    assert_eq!(read.await.status, StatusCode::OK);
    let answer = call(&app, "POST", "/account/keys/me/rotate", Some(&other)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let revoked = call(&app, "DELETE", "/account/keys/me", Some(&current)).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());
    assert!(keys.verify(current.as_bytes()).is_err());
}

#[tokio::test]
async fn a_revocation_ends_the_presented_key_only() {
    let (keys, key) = store();
    let app = app(keys.clone());
    let rotated = call(&app, "POST", "/account/keys/me/rotate", Some(&key))
        .await
        .json();
    let new = rotated["key"].as_str().expect("key").to_owned();
    let answer = call(&app, "DELETE", "/account/keys/me", Some(&new)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(answer.body.is_empty());
    call(&app, "GET", "/account/keys/me", Some(&new))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "RevokedKey");
    // The old key, in its grace period, is another key: untouched.
    assert_eq!(
        call(&app, "GET", "/account/keys/me", Some(&key))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "DELETE", "/account/keys/me", Some(&key))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    call(&app, "GET", "/account/keys/me", Some(&key))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "RevokedKey");
}

#[tokio::test]
async fn an_expiring_key_rotates_into_a_key_that_expires_no_later() {
    let format = KeyFormat::new("ss").expect("format");
    let key = format.generate();
    let ends = SystemTime::now() + Duration::from_secs(3600);
    let keys = ApiKeys::new().with_format(format).with(
        Key::new("expiring", &key)
            .scopes(["orders:read"])
            .expires_at(ends),
    );
    // A grace longer than the key's remaining life: the key still ends when it would have.
    let app = Router::new()
        .nest(
            "/account",
            self_service::<ApiAccess, ApiKeys, _>(Duration::from_secs(7 * 24 * 3600)),
        )
        .with_state(keys.clone());
    let answer = call(&app, "POST", "/account/keys/me/rotate", Some(&key)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let new = answer.json()["key"].as_str().expect("key").to_owned();
    let successor = keys.verify(new.as_bytes()).expect("the new key works");
    assert_eq!(successor.expires_at(), Some(ends), "never a longer life");
    assert_eq!(successor.scopes().collect::<Vec<_>>(), ["orders:read"]);
    let presented = keys.verify(key.as_bytes()).expect("in its grace");
    assert_eq!(
        presented.expires_at(),
        Some(ends),
        "grace capped at its life"
    );
    // The answer says when the presented key stops working: when it would have anyway.
    let presented_me = call(&app, "GET", "/account/keys/me", Some(&key))
        .await
        .json();
    assert_eq!(answer.json()["expires_at"], presented_me["expires_at"]);
}

#[tokio::test]
async fn a_key_rotated_out_by_the_operator_can_neither_rotate_nor_touch_its_successor() {
    let (keys, leaked) = store_of("leaky");
    let app = app(keys.clone());
    // The operator rotates the leaked key out, with a day's grace for the real owner.
    let owners = keys
        .rotate("leaky", Duration::from_secs(24 * 3600))
        .expect("rotate");
    // The attacker holding the leaked key tries to buy a permanent one.
    let answer = call(&app, "POST", "/account/keys/me/rotate", Some(&leaked)).await;
    answer.assert_problem_status(StatusCode::CONFLICT);
    answer.assert_never_contains(leaked.as_bytes());
    assert_eq!(keys.len(), 2, "no key was made");
    // Its revocation ends itself, never the owner's new key.
    let answer = call(&app, "DELETE", "/account/keys/me", Some(&leaked)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(keys.verify(leaked.as_bytes()).is_err());
    let owner = keys
        .verify(owners.as_bytes())
        .expect("the owner's key still works");
    assert!(owner.expires_at().is_none(), "and keeps its life");
}

#[tokio::test]
async fn concurrent_rotations_by_one_key_let_exactly_one_win() {
    let (keys, key) = store_of("racing");
    let app = app(keys.clone());
    let calls = (0..8).map(|_| {
        let (app, key) = (app.clone(), key.clone());
        tokio::spawn(async move { call(&app, "POST", "/account/keys/me/rotate", Some(&key)).await })
    });
    let mut won = Vec::new();
    for handle in calls {
        let answer = handle.await.expect("task");
        match answer.status {
            StatusCode::OK => won.push(answer.json()["key"].as_str().expect("key").to_owned()),
            StatusCode::CONFLICT => answer.assert_problem_status(StatusCode::CONFLICT),
            other => panic!("{other}: {}", answer.text()),
        }
    }
    assert_eq!(won.len(), 1, "exactly one rotation wins");
    // The winner's answer describes a key that works, and keeps working.
    let winner = keys
        .verify(won[0].as_bytes())
        .expect("the winner's key works");
    assert!(winner.expires_at().is_none());
    assert_eq!(keys.len(), 2);
}

#[tokio::test]
async fn a_store_without_a_format_answers_409_and_keeps_the_key() {
    let keys = ApiKeys::new().with_key("partner-a", "plain-key-123456789");
    let app = app(keys);
    let answer = call(
        &app,
        "POST",
        "/account/keys/me/rotate",
        Some("plain-key-123456789"),
    )
    .await;
    answer.assert_problem_status(StatusCode::CONFLICT);
    answer.assert_never_contains(b"plain-key-123456789");
    let me = call(&app, "GET", "/account/keys/me", Some("plain-key-123456789")).await;
    assert_eq!(me.status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_revoked_in_the_file_by_another_process_cannot_rotate_before_a_reload() {
    let dir = std::env::temp_dir().join(format!(
        "axum-api-key-self-service-revoked-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("keys.toml");
    let format = KeyFormat::new("ss").expect("format");
    let key = format.generate();
    std::fs::write(
        &path,
        format!("format = \"ss\"\n\n{}", record("partner-a", &key)),
    )
    .expect("write");
    let served = ApiKeys::from_file(&path).expect("read");
    let app = app(served.clone());
    // Another process (the command-line tool, say) revokes the key in the file.
    ApiKeys::from_file(&path)
        .expect("read")
        .revoke("partner-a")
        .expect("revoke");
    // The server has not reloaded: its guard still lets the key in, but no change is made.
    let answer = call(&app, "POST", "/account/keys/me/rotate", Some(&key)).await;
    answer.assert_problem_status(StatusCode::FORBIDDEN);
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(
        text.matches("[[keys]]").count(),
        1,
        "no key was added: {text}"
    );
    // And a restart reads the revocation.
    let restarted = ApiKeys::from_file(&path).expect("read");
    assert_eq!(
        restarted.verify(key.as_bytes()).unwrap_err(),
        axum_api_key::KeyError::Revoked
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn record(id: &str, key: &str) -> String {
    let digest: String = axum_api_key::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("[[keys]]\nid = \"{id}\"\ndigest = \"sha256:{digest}\"\n")
}

#[tokio::test]
async fn a_rotation_on_a_records_file_survives_a_restart() {
    let dir =
        std::env::temp_dir().join(format!("axum-api-key-self-service-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("keys.toml");
    let format = KeyFormat::new("ss").expect("format");
    let old = format.generate();
    let digest: String = axum_api_key::digest(old.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        &path,
        format!("format = \"ss\"\n\n[[keys]]\nid = \"partner-a\"\ndigest = \"sha256:{digest}\"\nrate_limit = \"5/s\"\n"),
    )
    .expect("write");
    let app_before = app(ApiKeys::from_file(&path).expect("read"));
    let rotated = call(&app_before, "POST", "/account/keys/me/rotate", Some(&old)).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let new = rotated.json()["key"].as_str().expect("key").to_owned();
    assert!(!std::fs::read_to_string(&path).expect("read").contains(&new));

    // A new process reads the file: the new key works, with its limit.
    let app_after = app(ApiKeys::from_file(&path).expect("read again"));
    let me = call(&app_after, "GET", "/account/keys/me", Some(&new)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["rate_limit"], "5/s");
    std::fs::remove_dir_all(&dir).ok();
}

/// What one key's holder may ask of the self-service router.
#[derive(Debug, Clone)]
enum Call {
    /// Rotate with the n-th key issued so far (modulo their number).
    Rotate(usize),
    /// Revoke with the n-th key issued so far.
    Revoke(usize),
    /// The operator rotates the id.
    OperatorRotate,
}

fn calls() -> impl proptest::strategy::Strategy<Value = Vec<Call>> {
    use proptest::prelude::*;
    proptest::collection::vec(
        prop_oneof![
            4 => any::<usize>().prop_map(Call::Rotate),
            1 => any::<usize>().prop_map(Call::Revoke),
            1 => Just(Call::OperatorRotate),
        ],
        1..10,
    )
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// No sequence of self-service calls by one key's holder (and rotations by the operator)
    /// yields a key that expires later, holds more scopes or a higher limit than the first.
    #[test]
    fn no_sequence_of_calls_widens_a_key(calls in calls()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let format = KeyFormat::new("ss").expect("format");
            let first = format.generate();
            let ends = SystemTime::now() + Duration::from_secs(3600);
            let keys = ApiKeys::new().with_format(format).with(
                Key::new("holder", &first)
                    .scopes(["orders:read"])
                    .rate_limit("10/min".parse().expect("rate"))
                    .expires_at(ends),
            );
            let app = app(keys.clone());
            let mut issued = vec![first];
            for call_made in calls {
                match call_made {
                    Call::Rotate(n) => {
                        let key = issued[n % issued.len()].clone();
                        let answer = call(&app, "POST", "/account/keys/me/rotate", Some(&key)).await;
                        if answer.status == StatusCode::OK {
                            issued.push(answer.json()["key"].as_str().expect("key").to_owned());
                        }
                    }
                    Call::Revoke(n) => {
                        let key = issued[n % issued.len()].clone();
                        call(&app, "DELETE", "/account/keys/me", Some(&key)).await;
                    }
                    Call::OperatorRotate => {
                        if let Ok(key) = keys.rotate("holder", Duration::from_secs(600)) {
                            issued.push(key);
                        }
                    }
                }
                for key in &issued {
                    if let Ok(verified) = keys.verify(key.as_bytes()) {
                        let expires = verified.expires_at().expect("every key expires");
                        assert!(expires <= ends, "a later expiry");
                        assert_eq!(verified.scopes().collect::<Vec<_>>(), ["orders:read"]);
                        assert_eq!(verified.rate_limit().map(|l| l.to_string()).as_deref(), Some("10/min"));
                    }
                }
                // At most one key per rotation made, and never two live successors of one key:
                // live keys are the current one and those in their grace period.
                assert!(keys.len() == issued.len());
            }
        });
    }
}
