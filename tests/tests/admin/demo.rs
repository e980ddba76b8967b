//! The admin example answers as it prints, and the document names every route.

use super::*;

#[tokio::test]
async fn the_example_answers_as_it_prints() {
    let (keys, [reader, writer, customer]) = example::demo().expect("the demo store");
    let app = example::app(keys);
    let listed = call(&app, "GET", "/admin/keys?limit=10", &reader, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    for key in [&reader, &writer, &customer] {
        listed.assert_never_contains(key.as_bytes());
    }
    let created = call(
        &app,
        "POST",
        "/admin/keys",
        &writer,
        Some(json!({"id": "globex", "scopes": ["orders:read"], "rate_limit": ["10/s", "10000/day"], "credits": 500, "refill": "500/day"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let globex = created.json()["key"].as_str().expect("key").to_owned();
    let orders = call(&app, "GET", "/orders", &globex, None).await;
    assert_eq!(orders.text(), "orders of globex\n");
    let refused = call(
        &app,
        "POST",
        "/admin/keys",
        &reader,
        Some(json!({"id": "x"})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let widened = call(
        &app,
        "POST",
        "/admin/keys",
        &writer,
        Some(json!({"id": "x", "scopes": ["admin"]})),
    )
    .await;
    assert_eq!(widened.status, StatusCode::FORBIDDEN);
    assert_eq!(
        call(&app, "GET", "/orders", &customer, None).await.status,
        StatusCode::OK
    );
}

#[test]
fn the_document_names_every_route_with_the_scopes_its_guard_asks_for() {
    use utoipa::Modify;
    let mut api = admin::document::<AdminRead, AdminWrite>("/admin");
    axum_api_key::openapi::ApiKeySecurity.modify(&mut api);
    let document: Value = serde_json::from_str(&api.to_json().expect("json")).expect("parsed");
    let paths = &document["paths"];
    for (path, method, scope, answer) in [
        ("/admin/keys", "get", "keys:read", "200"),
        ("/admin/keys", "post", "keys:write", "201"),
        ("/admin/keys/{id}", "get", "keys:read", "200"),
        ("/admin/keys/{id}", "delete", "keys:write", "204"),
        ("/admin/keys/{id}/rotate", "post", "keys:write", "200"),
        ("/admin/keys/{id}/disabled", "put", "keys:write", "204"),
        ("/admin/keys/{id}/disabled", "delete", "keys:write", "204"),
        ("/admin/keys/{id}/credits", "put", "keys:write", "204"),
        ("/admin/keys/{id}/rate_limit", "put", "keys:write", "204"),
        ("/admin/keys/{id}/scopes", "put", "keys:write", "204"),
        ("/admin/keys/{id}/metadata", "put", "keys:write", "204"),
    ] {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} undocumented");
        assert_eq!(
            operation["security"][0]["apiKeyHeader_x-api-key"],
            json!([scope]),
            "{method} {path}"
        );
        for status in [answer, "401", "403", "429"] {
            assert!(
                operation["responses"][status].is_object(),
                "{method} {path}: no {status}"
            );
        }
    }
    assert!(document["components"]["securitySchemes"]["apiKeyHeader_x-api-key"].is_object());
    for schema in [
        "AdminKey",
        "AdminKeyPage",
        "NewKeyRequest",
        "CreatedKey",
        "ApiKeyProblem",
    ] {
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
    // The listing's schema names no key field; only a created key carries one.
    assert!(document["components"]["schemas"]["AdminKey"]["properties"]["key"].is_null());
    assert!(document["components"]["schemas"]["CreatedKey"]["properties"]["key"].is_object());
}
