//! The admin API on a records file: every change written through.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_the_admin_api_are_written_to_the_records_file() {
    let dir = std::env::temp_dir().join(format!("axum-api-key-admin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("keys.toml");
    let digest: String = axum_api_key::digest(writer().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        &path,
        format!(
            "format = \"cust\"\n\n[[keys]]\nid = \"support-writer\"\ndigest = \"sha256:{digest}\"\n\
             scopes = [\"keys:read\", \"keys:write\", \"orders:read\"]\n"
        ),
    )
    .expect("written");
    let keys = ApiKeys::from_file(&path).expect("read");
    let app = app(keys);
    let created = call(
        &app,
        "POST",
        "/admin/keys",
        writer(),
        Some(json!({"id": "acme", "scopes": ["orders:read"], "credits": 9})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let key = created.json()["key"].as_str().expect("key").to_owned();
    for (method, uri, body) in [
        (
            "PUT",
            "/admin/keys/acme/rate_limit",
            Some(json!(["10/s", "500/day"])),
        ),
        (
            "PUT",
            "/admin/keys/acme/metadata",
            Some(json!({"owner": "Acme \"Ltd\""})),
        ),
        ("PUT", "/admin/keys/acme/disabled", None),
    ] {
        let answer = call(&app, method, uri, writer(), body).await;
        assert_eq!(
            answer.status,
            StatusCode::NO_CONTENT,
            "{uri}: {}",
            answer.text()
        );
    }
    // Read again from the file alone: everything the admin did is there, and no key.
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(!text.contains(&key), "{text}");
    let again = ApiKeys::from_file(&path).expect("reads back");
    assert_eq!(
        again.verify(key.as_bytes()).unwrap_err(),
        axum_api_key::KeyError::Disabled
    );
    let listed = again.list();
    let acme = listed
        .iter()
        .find(|listed| listed.key().id() == "acme")
        .expect("the new key's record");
    assert_eq!(acme.key().rate_limits().count(), 2);
    assert_eq!(acme.key().credits(), Some(9));
    assert_eq!(acme.key().metadata("owner"), Some("Acme \"Ltd\""));
    let _ = std::fs::remove_dir_all(&dir);
}
