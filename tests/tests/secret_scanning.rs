//! Leaked keys reported by GitHub's secret scanning partner program, through a real `Router`,
//! as GitHub would send them: a report signed by Python's `cryptography` (an implementation
//! independent of the crate's) revokes the leaked key within the request; a forged report
//! changes nothing; each policy acts as it says.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum_api_key::secret_scanning::{self, Leak, LeakPolicy, SecretScanning};
use axum_api_key::{ApiKeys, Key, KeyError, KeyFormat};
use axum_api_key_tests::{Answer, global_logs, send};
use base64::Engine as _;
use http::{Request, StatusCode};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::EncodePublicKey as _;
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/secret_scanning");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).expect("a fixture")
}

const ID: &str = "5f1a2b";

/// The store of the fixture's leaked key, in the format `leak`, and the endpoint trusting the
/// fixture's key; the hook's calls are kept.
fn app(scanning: SecretScanning) -> (Router, ApiKeys, Arc<Mutex<Vec<Leak>>>) {
    let keys = ApiKeys::new()
        .with_format(KeyFormat::new("leak").expect("format"))
        .with(Key::new("leaked", fixture("token.txt").trim()).scopes(["orders:read"]));
    let leaks = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&leaks);
    let scanning = scanning.on_leak(move |leak| seen.lock().expect("lock").push(leak.clone()));
    let app = Router::new()
        .nest(
            "/github/secret-scanning",
            secret_scanning::router::<ApiKeys, _>(scanning),
        )
        .with_state(keys.clone());
    (app, keys, leaks)
}

fn trusted() -> SecretScanning {
    SecretScanning::new()
        .with_key(ID, &fixture("trusted.pem"))
        .expect("the fixture's key")
}

async fn report(app: &Router, body: &str, identifier: &str, signature: &str) -> Answer {
    let request = Request::post("/github/secret-scanning")
        .header("content-type", "application/json")
        .header("Github-Public-Key-Identifier", identifier)
        .header("Github-Public-Key-Signature", signature)
        .body(Body::from(body.to_owned()))
        .expect("request");
    send(app.clone(), request).await
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_report_signed_by_an_independent_implementation_revokes_the_leaked_key() {
    let (app, keys, leaks) = app(trusted());
    let token = fixture("token.txt");
    let token = token.trim();
    assert!(keys.verify(token.as_bytes()).is_ok());
    let logs = global_logs();

    let body = fixture("report.json");
    let answer = report(&app, &body, ID, fixture("signature.txt").trim()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        answer.json(),
        json!([
            {"token_hash": sha256_hex(token), "token_type": "leak_api_key", "label": "true_positive"},
            {"token_hash": sha256_hex("leak_notarealkeyatall0000000000"), "token_type": "leak_api_key", "label": "false_positive"},
        ])
    );
    answer.assert_never_contains(token.as_bytes());
    // Revoked within the request; the hook told, with where it was found.
    assert_eq!(
        keys.verify(token.as_bytes()).unwrap_err(),
        KeyError::Revoked
    );
    {
        let leaks = leaks.lock().expect("lock");
        assert_eq!(leaks.len(), 1);
        assert_eq!(leaks[0].key_id, "leaked");
        assert_eq!(leaks[0].action, "revoked");
        assert_eq!(
            leaks[0].url.as_deref(),
            Some("https://github.com/octo-org/octo-repo/blob/main/config.py")
        );
        assert_eq!(leaks[0].source.as_deref(), Some("content"));
    }
    // The same report again (GitHub retries): the same answer, nothing more done.
    let again = report(&app, &body, ID, fixture("signature.txt").trim()).await;
    assert_eq!(again.json(), answer.json());
    assert_eq!(leaks.lock().expect("lock")[1].action, "already_refused");
    // A key_exposed audit event names the key id and where it was found, never the token.
    let logged = logs.text();
    assert!(
        logged.lines().any(|line| line.contains("key_exposed")
            && line.contains("key_id=\"leaked\"")
            && line.contains("octo-repo")),
        "{logged}"
    );
    assert!(!logged.contains(token));
}

#[tokio::test]
async fn a_forged_or_unsigned_report_is_refused_and_changes_nothing() {
    let (app, keys, leaks) = app(trusted());
    let token = fixture("token.txt");
    let body = fixture("report.json");
    let signature = fixture("signature.txt");
    let tampered = body.replace("content", "commit");
    for (body, identifier, signature) in [
        (body.as_str(), ID, fixture("forged_signature.txt")),
        (tampered.as_str(), ID, signature.clone()),
        (body.as_str(), "another-identifier", signature.clone()),
        (body.as_str(), ID, "not base64!".to_owned()),
        (
            body.as_str(),
            ID,
            base64::engine::general_purpose::STANDARD.encode(b"not der"),
        ),
    ] {
        let refused = report(&app, body, identifier, signature.trim()).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{}",
            refused.text()
        );
        assert_eq!(
            refused.header("content-type"),
            Some("application/problem+json")
        );
        refused.assert_never_contains(token.trim().as_bytes());
    }
    // No signature headers at all.
    let request = Request::post("/github/secret-scanning")
        .body(Body::from(body.clone()))
        .expect("request");
    assert_eq!(
        send(app.clone(), request).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        keys.verify(token.trim().as_bytes()).is_ok(),
        "nothing was revoked"
    );
    assert!(leaks.lock().expect("lock").is_empty());
}

/// A key pair of the test's own, signing as GitHub does.
fn signer() -> (SigningKey, String) {
    let key = SigningKey::from_slice(&[0x5a; 32]).expect("a scalar");
    let pem = key
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .expect("pem");
    (key, pem)
}

fn sign(key: &SigningKey, body: &str) -> String {
    let signature: DerSignature = key.sign(body.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
}

#[tokio::test]
async fn rotate_keeps_a_grace_and_hands_the_successor_to_the_hook_and_notify_changes_nothing() {
    let (key, pem) = signer();
    let token = fixture("token.txt");
    let token = token.trim();
    let body = json!([{"token": token, "type": "t", "url": "u", "source": "commit"}]).to_string();

    let scanning = SecretScanning::new()
        .with_key("mine", &pem)
        .expect("key")
        .policy(LeakPolicy::Rotate {
            grace: Duration::from_secs(3600),
        });
    let (app, keys, leaks) = app(scanning);
    let answer = report(&app, &body, "mine", &sign(&key, &body)).await;
    assert_eq!(answer.json()[0]["label"], "true_positive");
    let new = leaks.lock().expect("lock")[0]
        .new_key
        .clone()
        .expect("a successor");
    assert!(keys.verify(new.as_bytes()).is_ok());
    assert!(keys.verify(token.as_bytes()).is_ok(), "in its grace");
    answer.assert_never_contains(new.as_bytes());
    assert!(
        !format!("{:?}", leaks.lock().expect("lock")[0]).contains(&new),
        "the successor is not in the leak's Debug"
    );

    let scanning = SecretScanning::new()
        .with_key("mine", &pem)
        .expect("key")
        .policy(LeakPolicy::Notify);
    let (app, keys, leaks) = self::app(scanning);
    let answer = report(&app, &body, "mine", &sign(&key, &body)).await;
    assert_eq!(answer.json()[0]["label"], "true_positive");
    assert!(keys.verify(token.as_bytes()).is_ok());
    assert_eq!(leaks.lock().expect("lock")[0].action, "notified");
}

#[tokio::test]
async fn a_disabled_leaked_key_is_revoked_so_that_enabling_it_cannot_bring_it_back() {
    let (app, keys, _) = app(trusted());
    keys.disable("leaked").expect("disabled");
    let answer = report(
        &app,
        &fixture("report.json"),
        ID,
        fixture("signature.txt").trim(),
    )
    .await;
    assert_eq!(answer.json()[0]["label"], "true_positive");
    keys.enable("leaked").expect("enabled");
    assert_eq!(
        keys.verify(fixture("token.txt").trim().as_bytes())
            .unwrap_err(),
        KeyError::Revoked
    );
}

#[tokio::test]
async fn reports_the_endpoint_cannot_read_are_problems() {
    let (key, pem) = signer();
    let scanning = SecretScanning::new().with_key("mine", &pem).expect("key");
    let (app, _, _) = app(scanning);
    for body in ["{}", "[{\"type\": \"t\"}]", "not json", ""] {
        let refused = report(&app, body, "mine", &sign(&key, body)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let many: Value = (0..1_001)
        .map(|n| json!({"token": format!("t{n}"), "type": "t"}))
        .collect();
    let many = many.to_string();
    let refused = report(&app, &many, "mine", &sign(&key, &many)).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Tokens of another shape, too long, or empty are false positives, looked up or not.
    let odd = json!([
        {"token": "", "type": "t"},
        {"token": "x".repeat(5000), "type": "t"},
        {"token": "leak_short", "type": "t"},
    ])
    .to_string();
    let answer = report(&app, &odd, "mine", &sign(&key, &odd)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let labels: Vec<Value> = answer
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|entry| entry["label"].clone())
        .collect();
    assert_eq!(labels, vec![json!("false_positive"); 3]);
}

#[test]
fn keys_come_from_pem_or_githubs_document_and_wrong_ones_are_refused() {
    let (_, pem) = signer();
    let document = json!({"public_keys": [
        {"key_identifier": "one", "key": pem, "is_current": true},
        {"key_identifier": "two", "key": fixture("trusted.pem"), "is_current": false},
    ]})
    .to_string();
    let scanning = SecretScanning::new()
        .with_github_keys(&document)
        .expect("GitHub's document");
    assert!(format!("{scanning:?}").contains("\"two\""));
    assert!(SecretScanning::new().with_key("x", "not a key").is_err());
    assert!(SecretScanning::new().with_github_keys("{}").is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any body GitHub could sign is answered (200 or 400) and never panics; a body that
        /// is a list of reports gets one label per token.
        #[test]
        fn any_signed_body_is_answered(
            tokens in proptest::collection::vec("\\PC{0,60}", 0..8),
            garbage in "\\PC{0,80}",
            as_list in any::<bool>(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let (key, pem) = signer();
            let scanning = SecretScanning::new().with_key("mine", &pem).expect("key");
            let (app, _, _) = app(scanning);
            let body = if as_list {
                let reports: Vec<Value> = tokens
                    .iter()
                    .map(|token| json!({"token": token, "type": "t"}))
                    .collect();
                Value::from(reports).to_string()
            } else {
                garbage
            };
            let answer = runtime.block_on(report(&app, &body, "mine", &sign(&key, &body)));
            prop_assert!(answer.status == StatusCode::OK || answer.status == StatusCode::BAD_REQUEST);
            if as_list {
                prop_assert_eq!(answer.json().as_array().map(Vec::len), Some(tokens.len()));
            }
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use axum_api_key::{KeyStore, PgKeys};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leaked_key_in_postgresql_is_revoked_within_the_request() {
        let Some(url) = axum_api_key_tests::postgres_url() else {
            return;
        };
        let schema = format!("axum_api_key_leaks_{}", std::process::id());
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect(&url)
            .await
            .expect("the server answers");
        for statement in [
            format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            format!("CREATE SCHEMA {schema}"),
        ] {
            sqlx::query(&statement)
                .execute(&pool)
                .await
                .expect("schema");
        }
        let keys = PgKeys::options()
            .schema(&schema)
            .format(KeyFormat::new("leak").expect("format"))
            .connect(&url)
            .await
            .expect("PgKeys connects");
        let leaked = keys.create("leaked", ["x"], None).await.expect("a key");
        let other = keys
            .create("leaked", ["x"], None)
            .await
            .expect("a second key");
        let (signing, pem) = signer();
        let scanning = SecretScanning::new().with_key("mine", &pem).expect("key");
        let app = Router::new()
            .nest("/leaks", secret_scanning::router::<PgKeys, _>(scanning))
            .with_state(keys.clone());
        let body =
            json!([{"token": leaked, "type": "t", "url": "u", "source": "commit"}]).to_string();
        let request = Request::post("/leaks")
            .header("Github-Public-Key-Identifier", "mine")
            .header("Github-Public-Key-Signature", sign(&signing, &body))
            .body(Body::from(body))
            .expect("request");
        let answer = send(app, request).await;
        assert_eq!(
            answer.json()[0]["label"],
            "true_positive",
            "{}",
            answer.text()
        );
        assert_eq!(keys.verify(&leaked).await.unwrap_err(), KeyError::Revoked);
        assert!(keys.verify(&other).await.is_ok(), "only the leaked key");
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&pool)
            .await;
    }
}

/// A key sent over plain HTTP to a store that requires HTTPS, and a key GitHub reports, meet
/// one `Exposure`: the same policy, the same hook, the same `key_exposed` event.
#[tokio::test]
async fn a_key_sent_in_clear_and_a_reported_key_meet_the_same_exposure() {
    use axum_api_key::HttpsPolicy;
    use axum_api_key::exposure::Exposure;

    #[axum_api_key::api_key]
    async fn data() -> &'static str {
        "data"
    }

    let leaks = Arc::new(Mutex::new(Vec::<Leak>::new()));
    let seen = Arc::clone(&leaks);
    let exposure = Exposure::new(LeakPolicy::Revoke)
        .on_leak(move |leak| seen.lock().expect("lock").push(leak.clone()));
    let format = KeyFormat::new("leak").expect("format");
    let (in_clear, reported) = (format.generate(), format.generate());
    let keys = ApiKeys::new()
        .with_format(format)
        .with(Key::new("sent-in-clear", &in_clear))
        .with(Key::new("committed", &reported))
        .with_https(HttpsPolicy::Direct)
        .with_exposure(exposure.clone());
    let (signing, pem) = signer();
    let scanning = SecretScanning::new()
        .with_key("mine", &pem)
        .expect("key")
        .exposure(exposure);
    let app = Router::new()
        .route("/data", axum::routing::get(data))
        .nest("/leaks", secret_scanning::router::<ApiKeys, _>(scanning))
        .with_state(keys.clone());

    // Over plain HTTP (no TLS marker): refused, and revoked as a leak.
    let request = Request::get("/data")
        .header("x-api-key", &in_clear)
        .body(Body::empty())
        .expect("request");
    let refused = send(app.clone(), request).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    assert_eq!(
        keys.verify(in_clear.as_bytes()).unwrap_err(),
        KeyError::Revoked
    );

    // Reported by GitHub: the same policy.
    let body = json!([{"token": reported, "type": "t", "url": "https://github.com/o/r", "source": "commit"}]).to_string();
    let request = Request::post("/leaks")
        .header("Github-Public-Key-Identifier", "mine")
        .header("Github-Public-Key-Signature", sign(&signing, &body))
        .body(Body::from(body))
        .expect("request");
    assert_eq!(send(app.clone(), request).await.status, StatusCode::OK);
    assert_eq!(
        keys.verify(reported.as_bytes()).unwrap_err(),
        KeyError::Revoked
    );

    let leaks = leaks.lock().expect("lock");
    let told: Vec<(&str, &str, &str)> = leaks
        .iter()
        .map(|leak| (leak.key_id.as_str(), leak.found, leak.action))
        .collect();
    assert_eq!(
        told,
        [
            ("sent-in-clear", "plain_http", "revoked"),
            ("committed", "secret_scanning", "revoked"),
        ]
    );
    assert_eq!(leaks[0].url.as_deref(), Some("/data"));
}

/// GitHub's keys fetched by the service's own client: once, kept, fetched again for a key the
/// document lacked at most once a minute (a forged identifier cannot make the service hammer
/// GitHub), and a fetch that hangs or fails refuses the report without hanging it.
#[tokio::test]
async fn keys_fetched_from_github_are_kept_and_a_slow_or_failed_fetch_refuses() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (signing, pem) = signer();
    let document =
        json!({"public_keys": [{"key_identifier": "gh-1", "key": pem, "is_current": true}]})
            .to_string();
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    let scanning = SecretScanning::new().fetch_github_keys(
        move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let document = document.clone();
            async move { Ok::<_, std::io::Error>(document) }
        },
        Duration::from_secs(3600),
        Duration::from_secs(5),
    );
    let (app, _, _) = app(scanning);
    let body = json!([{"token": "leak_nothing", "type": "t"}]).to_string();
    for _ in 0..3 {
        let answer = report(&app, &body, "gh-1", &sign(&signing, &body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched once, then kept");
    for _ in 0..5 {
        let refused = report(&app, &body, "forged-identifier", &sign(&signing, &body)).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "no fetch within the minute"
    );

    // A fetch that hangs is given up at the timeout; one that fails, at once.
    let hanging = SecretScanning::new().fetch_github_keys(
        || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, std::io::Error>(String::new())
        },
        Duration::from_secs(3600),
        Duration::from_millis(50),
    );
    let (app, _, _) = self::app(hanging);
    let refused = report(&app, &body, "gh-1", &sign(&signing, &body)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let failing = SecretScanning::new().fetch_github_keys(
        || async { Err::<String, _>(std::io::Error::other("connection refused")) },
        Duration::from_secs(3600),
        Duration::from_secs(5),
    );
    let (app, _, _) = self::app(failing);
    let refused = report(&app, &body, "gh-1", &sign(&signing, &body)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
}
