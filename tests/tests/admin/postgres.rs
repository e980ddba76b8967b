//! The admin API on PgKeys: the same routes, the changes in the table.

use super::*;
use axum_api_key::{KeyStore, PgKeys};

fn pg_app(keys: PgKeys) -> Router {
    Router::new()
        .nest(
            "/admin",
            admin::router::<AdminRead, AdminWrite, PgKeys, _>(),
        )
        .with_state(keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_works_on_postgresql() {
    let Some(url) = axum_api_key_tests::postgres_url() else {
        return;
    };
    let schema = format!("axum_api_key_admin_{}", std::process::id());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect(&url)
        .await
        .expect("the server answers");
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await
        .expect("dropped");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .expect("made");
    let keys = PgKeys::options()
        .schema(&schema)
        .format(KeyFormat::new("cust").expect("format"))
        .rate_limits(axum_api_key::RateLimits::new())
        .connect(&url)
        .await
        .expect("PgKeys connects");
    let writer = keys
        .create(
            "support-writer",
            ["keys:read", "keys:write", "orders:read"],
            None,
        )
        .await
        .expect("an admin key");
    let reader = keys
        .create("support-reader", ["keys:read"], None)
        .await
        .expect("a read-only admin key");
    let app = pg_app(keys.clone());

    let created = call(
        &app,
        "POST",
        "/admin/keys",
        &writer,
        Some(json!({
            "id": "acme-web",
            "scopes": ["orders:read"],
            "rate_limit": ["10/s", "1000/day"],
            "credits": 50,
            "refill": "50/day",
            "identity": "acme",
        })),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let key = created.json()["key"].as_str().expect("key").to_owned();
    let shown = call(&app, "GET", "/admin/keys/acme-web", &reader, None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text());
    shown.assert_never_contains(key.as_bytes());
    let record = &shown.json()["keys"][0];
    assert_eq!(record["rate_limit"], json!(["10/s", "1000/day"]));
    assert_eq!(record["credits_left"], 50);
    assert_eq!(record["identity"], "acme");

    let widened = call(
        &app,
        "POST",
        "/admin/keys",
        &writer,
        Some(json!({"id": "root", "scopes": ["admin"]})),
    )
    .await;
    assert_eq!(widened.status, StatusCode::FORBIDDEN);
    let refused = call(&app, "DELETE", "/admin/keys/acme-web", &reader, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let scoped = call(
        &app,
        "PUT",
        "/admin/keys/acme-web/scopes",
        &writer,
        Some(json!(["orders:read", "keys:read"])),
    )
    .await;
    assert_eq!(scoped.status, StatusCode::NO_CONTENT, "{}", scoped.text());
    assert_eq!(keys.verify(&key).await.expect("valid").scopes().count(), 2);
    let noted = call(
        &app,
        "PUT",
        "/admin/keys/acme-web/metadata",
        &writer,
        Some(json!({"owner": "Acme Ltd"})),
    )
    .await;
    assert_eq!(noted.status, StatusCode::NO_CONTENT, "{}", noted.text());
    assert_eq!(
        keys.verify(&key).await.expect("valid").metadata("owner"),
        Some("Acme Ltd")
    );
    let bad = call(
        &app,
        "PUT",
        "/admin/keys/acme-web/scopes",
        &writer,
        Some(json!(["orders read"])),
    )
    .await;
    assert_eq!(bad.status, StatusCode::FORBIDDEN, "not a scope it holds");

    assert_eq!(
        call(&app, "PUT", "/admin/keys/acme-web/disabled", &writer, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        keys.verify(&key).await.unwrap_err(),
        axum_api_key::KeyError::Disabled
    );
    assert_eq!(
        call(
            &app,
            "DELETE",
            "/admin/keys/acme-web/disabled",
            &writer,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let rotated = call(&app, "POST", "/admin/keys/acme-web/rotate", &writer, None).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    let new = rotated.json()["key"].as_str().expect("key").to_owned();
    assert!(keys.verify(&new).await.is_ok());
    for _ in 0..2 {
        let revoked = call(&app, "DELETE", "/admin/keys/acme-web", &writer, None).await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());
    }
    assert!(keys.verify(&new).await.is_err());
    let unknown = call(&app, "DELETE", "/admin/keys/nobody", &writer, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&pool)
        .await;
}
