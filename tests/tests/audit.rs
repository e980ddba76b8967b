//! The audit trail: every decision is logged with what an operator needs, and never the key.

use axum::Router;
use axum::routing::get;
use axum_api_key::{VerifiedKey, api_key};
use axum_api_key_tests::{CapturedLogs, KEY_A, get as request, keys, send};

#[api_key]
async fn item(key: VerifiedKey) -> String {
    key.id().to_owned()
}

fn app() -> Router {
    Router::new()
        .route("/items/{id}", get(item))
        .with_state(keys())
}

#[tokio::test]
async fn decisions_are_logged_without_the_key() {
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());

    let oversized = format!("{KEY_A}{}", "z".repeat(300));
    let presented: [&[u8]; 5] = [
        KEY_A.as_bytes(),
        b"sk_live_wrong-but-plausible",
        oversized.as_bytes(),
        b"has space-in-key",
        b"\xff\xfeutf8-broken-key",
    ];
    for key in presented {
        send(app(), request("/items/7?debug=1", &[("x-api-key", key)])).await;
    }
    send(app(), request("/items/8", &[])).await;
    let twice: [(&str, &[u8]); 2] = [("x-api-key", b"dup-key-one"), ("x-api-key", b"dup-key-two")];
    send(app(), request("/items/9", &twice)).await;

    let text = logs.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "one event per decision:\n{text}");
    for line in &lines {
        assert!(line.contains("axum_api_key::audit"), "{line}");
        assert!(line.contains("method=GET"), "{line}");
        // The route pattern, not the path: ids and query strings stay out of the log.
        assert!(line.contains("route=\"/items/{id}\""), "{line}");
        assert!(!line.contains("debug=1"), "{line}");
    }
    let expected = [
        "outcome=\"accepted\" key_id=\"partner-a\"",
        "outcome=\"refused\" reason=\"unknown\" status=401",
        "outcome=\"refused\" reason=\"too_long\" status=401",
        "outcome=\"refused\" reason=\"malformed\" status=401",
        "outcome=\"refused\" reason=\"malformed\" status=401",
        "outcome=\"refused\" reason=\"missing\" status=401",
        "outcome=\"refused\" reason=\"duplicate\" status=400",
    ];
    for (line, fields) in lines.iter().zip(expected) {
        assert!(line.contains(fields), "expected {fields} in {line}");
    }
    assert!(lines[0].contains("DEBUG") && lines[1].contains("INFO"));

    for secret in [
        "pa_7Qm2",
        "sk_live_wrong",
        "zzzzzzzz",
        "has space",
        "utf8-broken",
        "dup-key",
    ] {
        assert!(
            !text.contains(secret),
            "the log holds part of a key ({secret}):\n{text}"
        );
    }
}

async fn unguarded(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[tokio::test]
async fn a_missing_guard_is_logged_as_an_error_with_the_fix() {
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let app = Router::new()
        .route("/oops", get(unguarded))
        .with_state(keys());
    send(app, request("/oops", &[("x-api-key", KEY_A.as_bytes())])).await;

    let text = logs.text();
    assert!(text.contains("ERROR"), "{text}");
    assert!(text.contains("#[api_key]"), "{text}");
    assert!(!text.contains(KEY_A), "{text}");
}

/// A store whose backend is down.
#[derive(Clone)]
struct DownStore;

impl axum_api_key::KeyStore for DownStore {
    async fn verify(&self, _key: &str) -> Result<VerifiedKey, axum_api_key::KeyError> {
        Err(axum_api_key::KeyError::Unavailable)
    }
}

#[api_key(store = DownStore, bearer, scopes = ["admin"])]
async fn admin() {}

#[api_key(optional)]
async fn maybe(_key: Option<VerifiedKey>) {}

#[tokio::test]
async fn store_failures_scopes_and_anonymous_requests_are_audited() {
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let down = Router::new()
        .route("/admin", get(admin))
        .with_state(DownStore);
    send(
        down,
        request("/admin", &[("authorization", b"Bearer adm_secret-token-1")]),
    )
    .await;
    let scoped = Router::new()
        .route("/scoped", get(admin_in_memory))
        .with_state(keys());
    send(
        scoped,
        request(
            "/scoped",
            &[("authorization", format!("Bearer {KEY_A}").as_bytes())],
        ),
    )
    .await;
    let open = Router::new().route("/maybe", get(maybe)).with_state(keys());
    send(open, request("/maybe", &[])).await;

    let text = logs.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("reason=\"store_unavailable\" status=503"),
        "{text}"
    );
    assert!(lines[0].contains("source=\"bearer\""), "{text}");
    assert!(
        lines[1].contains("reason=\"insufficient_scope\" status=403 key_id=\"partner-a\""),
        "{text}"
    );
    assert!(lines[2].contains("outcome=\"anonymous\""), "{text}");
    assert!(
        !text.contains("adm_secret") && !text.contains(KEY_A),
        "{text}"
    );
}

#[api_key(bearer, scopes = ["admin"])]
async fn admin_in_memory() {}

#[api_key]
async fn secure_only() {}

#[tokio::test]
async fn a_key_sent_in_clear_is_logged_by_its_id_and_a_non_key_leaves_no_trace() {
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let keys = keys().with_https(axum_api_key::HttpsPolicy::Direct);
    let app = Router::new()
        .route("/secure", get(secure_only))
        .with_state(keys);
    let answer = send(
        app.clone(),
        request("/secure", &[("x-api-key", KEY_A.as_bytes())]),
    )
    .await;
    assert_eq!(answer.status, http::StatusCode::FORBIDDEN);

    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("rotate"), "{text}");
    assert!(text.contains("reason=\"key_exposed\""), "{text}");
    assert!(text.contains("key_id=\"partner-a\""), "{text}");
    assert!(!text.contains(KEY_A), "{text}");

    // A password pasted by mistake: refused alike, and nothing in the log derives from it.
    let password = "correct-horse-battery-staple";
    let answer = send(
        app,
        request("/secure", &[("x-api-key", password.as_bytes())]),
    )
    .await;
    assert_eq!(answer.status, http::StatusCode::FORBIDDEN);
    let text = logs.text();
    let digest = axum_api_key::digest(password.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert!(text.contains("reason=\"insecure_transport\""), "{text}");
    assert!(!text.contains(password), "{text}");
    for at in 0..hex.len() - 8 {
        assert!(
            !text.contains(&hex[at..at + 8]),
            "a slice of its digest: {text}"
        );
    }
    assert!(!text.contains("fingerprint"), "{text}");
}
