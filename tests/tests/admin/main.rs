//! The admin API through a real `Router`, as a support engineer would try it: a read-only and
//! a write admin key, against the in-memory store, a records file and (with feature
//! `postgres`) PostgreSQL. Keys never come back but once, changes are audited with the admin
//! key's id, and an admin key widens nothing.

use axum::Router;
use axum::body::Body;
use axum_api_key::{ApiKeys, Key, KeyFormat, admin, api_key};
use axum_api_key_tests::{Answer, global_logs, send};
use http::{Request, StatusCode};
use serde_json::{Value, json};

mod demo;
#[cfg(feature = "postgres")]
mod postgres;
mod records_file;

#[api_key(scopes = ["keys:read"])]
struct AdminRead;

#[api_key(scopes = ["keys:write"])]
struct AdminWrite;

#[api_key]
async fn data() -> &'static str {
    "data"
}

/// The admin keys, in the store's format as every key of it is.
static ADMIN: std::sync::LazyLock<(String, String)> = std::sync::LazyLock::new(|| {
    let format = KeyFormat::new("cust").expect("format");
    (format.generate(), format.generate())
});

fn reader() -> &'static str {
    &ADMIN.0
}

fn writer() -> &'static str {
    &ADMIN.1
}

fn store() -> ApiKeys {
    ApiKeys::new()
        .with_format(KeyFormat::new("cust").expect("format"))
        .with(Key::new("support-reader", reader()).scopes(["keys:read"]))
        .with(Key::new("support-writer", writer()).scopes([
            "keys:read",
            "keys:write",
            "orders:read",
        ]))
}

fn app(keys: ApiKeys) -> Router {
    Router::new()
        .nest(
            "/admin",
            admin::router::<AdminRead, AdminWrite, ApiKeys, _>(),
        )
        .route("/data", axum::routing::get(data))
        .with_state(keys)
}

async fn call(app: &Router, method: &str, uri: &str, key: &str, body: Option<Value>) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |body| Body::from(body.to_string())))
        .expect("request");
    send(app.clone(), request).await
}

#[tokio::test]
async fn a_support_engineer_creates_lists_suspends_tops_up_rotates_and_revokes() {
    let keys = store();
    let app = app(keys.clone());
    let logs = global_logs();

    // Create: the key is in the answer once, not cached, and works at once.
    let created = call(
        &app,
        "POST",
        "/admin/keys",
        writer(),
        Some(json!({
            "id": "acme-ci",
            "scopes": ["orders:read"],
            "expires_at": "2099-01-01T00:00:00Z",
            "rate_limit": ["10/s", "100000/day"],
            "credits": 500,
            "refill": "500/day",
            "identity": "acme",
            "allowed_ips": ["203.0.113.0/24"],
        })),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let body = created.json();
    let key = body["key"].as_str().expect("the key").to_owned();
    assert!(key.starts_with("cust_"), "{key}");
    assert_eq!(body["id"], "acme-ci");
    assert_eq!(body["expires_at"], "2099-01-01T00:00:00Z");
    let verified = keys.verify(key.as_bytes()).expect("the new key works");
    assert_eq!(verified.rate_limits().count(), 2);
    assert_eq!(verified.identity(), Some("acme"));
    assert_eq!(verified.credits(), Some(500));

    // Listed and shown by a read-only key, never with a key or a digest.
    for uri in [
        "/admin/keys",
        "/admin/keys/acme-ci",
        "/admin/keys?prefix=acme&state=valid",
    ] {
        let listed = call(&app, "GET", uri, reader(), None).await;
        assert_eq!(listed.status, StatusCode::OK, "{uri}: {}", listed.text());
        listed.assert_never_contains(key.as_bytes());
        listed.assert_never_contains(reader().as_bytes());
        listed.assert_never_contains(writer().as_bytes());
        assert!(!listed.text().contains("sha256"), "{}", listed.text());
    }
    let shown = call(&app, "GET", "/admin/keys/acme-ci", reader(), None)
        .await
        .json();
    let record = &shown["keys"][0];
    assert_eq!(record["state"], "valid");
    assert_eq!(record["rate_limit"], json!(["10/s", "100000/day"]));
    assert_eq!(record["credits_left"], 500);
    assert_eq!(record["refill"], "500/day");
    assert_eq!(record["identity"], "acme");
    assert_eq!(record["allowed_ips"], json!(["203.0.113.0/24"]));
    let filtered = call(&app, "GET", "/admin/keys?identity=acme", reader(), None)
        .await
        .json();
    assert_eq!(filtered["keys"].as_array().map(Vec::len), Some(1));

    // Suspended and enabled again, each idempotent.
    for _ in 0..2 {
        let disabled = call(&app, "PUT", "/admin/keys/acme-ci/disabled", writer(), None).await;
        assert_eq!(
            disabled.status,
            StatusCode::NO_CONTENT,
            "{}",
            disabled.text()
        );
    }
    assert_eq!(
        keys.verify(key.as_bytes()).unwrap_err(),
        axum_api_key::KeyError::Disabled
    );
    let listed = call(&app, "GET", "/admin/keys?state=disabled", reader(), None)
        .await
        .json();
    assert_eq!(listed["keys"][0]["id"], "acme-ci");
    for _ in 0..2 {
        let enabled = call(
            &app,
            "DELETE",
            "/admin/keys/acme-ci/disabled",
            writer(),
            None,
        )
        .await;
        assert_eq!(enabled.status, StatusCode::NO_CONTENT);
    }
    assert!(keys.verify(key.as_bytes()).is_ok());

    // A top-up.
    let topped = call(
        &app,
        "PUT",
        "/admin/keys/acme-ci/credits",
        writer(),
        Some(json!({"credits": 10000, "refill": "10000/month"})),
    )
    .await;
    assert_eq!(topped.status, StatusCode::NO_CONTENT, "{}", topped.text());
    assert_eq!(keys.credits_left("acme-ci"), Some(10000));

    // A new plan of windows, and then none; a plan the rules refuse changes nothing.
    let planned = call(
        &app,
        "PUT",
        "/admin/keys/acme-ci/rate_limit",
        writer(),
        Some(json!(["5/s", "1000/month"])),
    )
    .await;
    assert_eq!(planned.status, StatusCode::NO_CONTENT, "{}", planned.text());
    let limits: Vec<String> = keys
        .verify(key.as_bytes())
        .expect("valid")
        .rate_limits()
        .map(|limit| limit.to_string())
        .collect();
    assert_eq!(limits, ["5/s", "1000/month"]);
    let twice = call(
        &app,
        "PUT",
        "/admin/keys/acme-ci/rate_limit",
        writer(),
        Some(json!(["5/s", "9/s"])),
    )
    .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    let none = call(
        &app,
        "PUT",
        "/admin/keys/acme-ci/rate_limit",
        writer(),
        Some(json!([])),
    )
    .await;
    assert_eq!(none.status, StatusCode::NO_CONTENT);
    assert_eq!(
        keys.verify(key.as_bytes())
            .expect("valid")
            .rate_limits()
            .count(),
        0
    );

    // Scopes: only those the admin key holds, and only tokens.
    let scoped = call(
        &app,
        "PUT",
        "/admin/keys/acme-ci/scopes",
        writer(),
        Some(json!(["orders:read", "keys:read"])),
    )
    .await;
    assert_eq!(scoped.status, StatusCode::NO_CONTENT, "{}", scoped.text());
    let held: Vec<String> = keys
        .verify(key.as_bytes())
        .expect("valid")
        .scopes()
        .map(str::to_owned)
        .collect();
    assert_eq!(held, ["orders:read", "keys:read"]);
    let widened = call(
        &app,
        "PUT",
        "/admin/keys/acme-ci/scopes",
        writer(),
        Some(json!(["admin"])),
    )
    .await;
    assert_eq!(widened.status, StatusCode::FORBIDDEN);
    let by_reader = call(
        &app,
        "PUT",
        "/admin/keys/acme-ci/scopes",
        reader(),
        Some(json!([])),
    )
    .await;
    assert_eq!(by_reader.status, StatusCode::FORBIDDEN);
    assert_eq!(
        keys.verify(key.as_bytes()).expect("valid").scopes().count(),
        2,
        "refused changes changed nothing"
    );

    // Metadata: every field replaced; `{}` for none; too many or too long refused.
    let noted = call(
        &app,
        "PUT",
        "/admin/keys/acme-ci/metadata",
        writer(),
        Some(json!({"owner": "Acme Ltd", "ticket": "SUP-42"})),
    )
    .await;
    assert_eq!(noted.status, StatusCode::NO_CONTENT, "{}", noted.text());
    assert_eq!(
        keys.verify(key.as_bytes())
            .expect("valid")
            .metadata("owner"),
        Some("Acme Ltd")
    );
    let shown = call(&app, "GET", "/admin/keys/acme-ci", reader(), None)
        .await
        .json();
    assert_eq!(
        shown["keys"][0]["metadata"],
        json!({"owner": "Acme Ltd", "ticket": "SUP-42"})
    );
    let too_long = call(
        &app,
        "PUT",
        "/admin/keys/acme-ci/metadata",
        writer(),
        Some(json!({"owner": "x".repeat(2000)})),
    )
    .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);

    // A rotation: the new key once; the old one works for the grace.
    let rotated = call(
        &app,
        "POST",
        "/admin/keys/acme-ci/rotate",
        writer(),
        Some(json!({"grace_seconds": 3600})),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    assert_eq!(rotated.header("cache-control"), Some("no-store"));
    let new = rotated.json()["key"].as_str().expect("a key").to_owned();
    assert!(keys.verify(new.as_bytes()).is_ok());
    assert!(keys.verify(key.as_bytes()).is_ok(), "in its grace period");
    let shown = call(&app, "GET", "/admin/keys/acme-ci", reader(), None).await;
    assert_eq!(shown.json()["keys"].as_array().map(Vec::len), Some(2));
    shown.assert_never_contains(new.as_bytes());

    // Revoked, twice: the same answer, and every key of the id refused.
    for _ in 0..2 {
        let revoked = call(&app, "DELETE", "/admin/keys/acme-ci", writer(), None).await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());
    }
    assert!(keys.verify(new.as_bytes()).is_err());
    assert!(keys.verify(key.as_bytes()).is_err());

    // Each change is an audit event naming the admin key, never a key.
    let logged = logs.text();
    for action in [
        "create",
        "disable",
        "enable",
        "credits",
        "rate_limit",
        "rotate",
        "revoke",
    ] {
        assert!(
            logged
                .lines()
                .any(|line| line.contains(&format!("action=\"{action}\""))
                    && line.contains("admin_key_id=\"support-writer\"")
                    && line.contains("key_id=\"acme-ci\"")),
            "no {action} event: {logged}"
        );
    }
    assert!(!logged.contains(&key) && !logged.contains(&new) && !logged.contains(writer()));
}

#[tokio::test]
async fn a_read_only_key_changes_nothing_and_an_admin_key_widens_nothing() {
    let keys = store();
    let app = app(keys.clone());
    // The reader may not write: the guard's own 403 for a missing scope.
    let refused = call(
        &app,
        "POST",
        "/admin/keys",
        reader(),
        Some(json!({"id": "sneaky", "scopes": ["keys:write"]})),
    )
    .await;
    refused.assert_problem(StatusCode::FORBIDDEN, "InsufficientScope");
    for (method, uri) in [
        ("DELETE", "/admin/keys/support-writer"),
        ("PUT", "/admin/keys/support-writer/disabled"),
        ("POST", "/admin/keys/support-writer/rotate"),
    ] {
        let refused = call(&app, method, uri, reader(), None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} {uri}");
    }
    assert!(keys.verify(writer().as_bytes()).is_ok());
    // No key at all: 401, and nothing listed.
    let anonymous = send(
        app.clone(),
        Request::get("/admin/keys")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // The writer holds keys:read, keys:write and orders:read: it may give those, nothing else.
    let widened = call(
        &app,
        "POST",
        "/admin/keys",
        writer(),
        Some(json!({"id": "root", "scopes": ["orders:read", "admin"]})),
    )
    .await;
    assert_eq!(widened.status, StatusCode::FORBIDDEN, "{}", widened.text());
    // Nor take a more powerful key's place: rotating it would hand over its scopes, and a new
    // key under its id would pass for it.
    let root = KeyFormat::new("cust").expect("format").generate();
    keys.add(Key::new("superuser", &root).scopes(["admin", "keys:write"]))
        .expect("a root key");
    let rotated = call(&app, "POST", "/admin/keys/superuser/rotate", writer(), None).await;
    assert_eq!(rotated.status, StatusCode::FORBIDDEN, "{}", rotated.text());
    rotated.assert_never_contains(b"cust_");
    assert!(
        keys.verify(root.as_bytes()).is_ok(),
        "the root key was not rotated"
    );
    let impostor = call(
        &app,
        "POST",
        "/admin/keys",
        writer(),
        Some(json!({"id": "superuser", "scopes": ["orders:read"]})),
    )
    .await;
    assert_eq!(
        impostor.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        impostor.text()
    );
    assert_eq!(
        keys.list()
            .iter()
            .filter(|listed| listed.key().id() == "superuser")
            .count(),
        1
    );
    assert!(
        widened.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("admin")
    );
    assert!(keys.list().iter().all(|listed| listed.key().id() != "root"));
}

#[tokio::test]
async fn mistakes_are_problems_that_say_what_is_wrong_and_change_nothing() {
    let keys = store();
    let app = app(keys.clone());
    let before = keys.list().len();
    for (body, says) in [
        (
            json!({"id": "a", "rate_limit": ["10/s", "20/s"]}),
            "same window",
        ),
        (json!({"id": "a", "rate_limit": ["lots"]}), "rate_limit"),
        (
            json!({"id": "a", "refill": "5/day"}),
            "refill` needs `credits",
        ),
        (json!({"id": "a", "expires_at": "tomorrow"}), "expires_at"),
        (
            json!({"id": "a", "allowed_ips": ["203.0.113.5/24"]}),
            "allowed_ips",
        ),
        (json!({"id": "a", "colour": "red"}), "colour"),
        (json!({"id": "a b=c"}), "`id`"),
        (
            json!({"id": "a", "credits": -1}),
            "invalid value: integer, expected u64",
        ),
    ] {
        let refused = call(&app, "POST", "/admin/keys", writer(), Some(body.clone())).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            refused.text()
        );
        assert_eq!(
            refused.header("content-type"),
            Some("application/problem+json")
        );
        let detail = refused.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(detail.contains(says), "{body}: {detail}");
    }
    // Not JSON, and too large.
    let request = Request::post("/admin/keys")
        .header("x-api-key", writer())
        .body(Body::from("{not json"))
        .expect("request");
    assert_eq!(
        send(app.clone(), request).await.status,
        StatusCode::BAD_REQUEST
    );
    let huge = format!("{{\"id\": \"{}\"}}", "a".repeat(100_000));
    let request = Request::post("/admin/keys")
        .header("x-api-key", writer())
        .body(Body::from(huge))
        .expect("request");
    assert_eq!(
        send(app.clone(), request).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // An id taken already is the store's refusal; an unknown id is 404 everywhere.
    let taken = call(
        &app,
        "POST",
        "/admin/keys",
        writer(),
        Some(json!({"id": "support-reader"})),
    )
    .await;
    assert_eq!(
        taken.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        taken.text()
    );
    for (method, uri) in [
        ("GET", "/admin/keys/nobody"),
        ("DELETE", "/admin/keys/nobody"),
        ("PUT", "/admin/keys/nobody/disabled"),
        ("POST", "/admin/keys/nobody/rotate"),
    ] {
        let key = if method == "GET" { reader() } else { writer() };
        let unknown = call(&app, method, uri, key, None).await;
        assert_eq!(
            unknown.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {}",
            unknown.text()
        );
    }
    for uri in [
        "/admin/keys?limit=0",
        "/admin/keys?limit=5000",
        "/admin/keys?state=sleepy",
        "/admin/keys?cursor=abc",
        "/admin/keys?limit=1&limit=2",
        "/admin/keys?colour=red",
    ] {
        let refused = call(&app, "GET", uri, reader(), None).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{uri}");
    }
    assert_eq!(keys.list().len(), before, "nothing was made");
}

#[tokio::test]
async fn pages_walk_every_key_once() {
    let mut keys = store();
    for n in 0..25 {
        let key = KeyFormat::new("cust").expect("format").generate();
        keys = keys.with(Key::new(format!("cust-{n:02}"), key));
    }
    let app = app(keys);
    let mut seen = Vec::new();
    let mut uri = "/admin/keys?prefix=cust-&limit=10".to_owned();
    loop {
        let page = call(&app, "GET", &uri, reader(), None).await.json();
        let ids: Vec<String> = page["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|key| key["id"].as_str().expect("id").to_owned())
            .collect();
        assert!(ids.len() <= 10);
        seen.extend(ids);
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/admin/keys?prefix=cust-&limit=10&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|n| format!("cust-{n:02}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_created_key_without_an_id_gets_one_and_a_store_without_a_format_says_so() {
    let app = app(store());
    let created = call(&app, "POST", "/admin/keys", writer(), Some(json!({}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let id = created.json()["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("key-") && id.len() == 20, "{id}");
    let shown = call(&app, "GET", &format!("/admin/keys/{id}"), reader(), None).await;
    assert_eq!(shown.status, StatusCode::OK);

    let unformatted =
        ApiKeys::new().with(Key::new("support-writer", writer()).scopes(["keys:write"]));
    let app = self::app(unformatted);
    let refused = call(
        &app,
        "POST",
        "/admin/keys",
        writer(),
        Some(json!({"id": "x"})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
}

#[allow(dead_code)]
#[path = "../../../examples/admin.rs"]
mod example;
