//! A custom key store beside the built-in one: partner keys in memory, admin keys in a
//! "database" that the store queries by digest.
//!
//! ```sh
//! cargo run --example custom_store
//! ```
//!
//! The database here is a table in memory behind an async lock, with the latency of a real
//! query; a real store runs `SELECT id, scopes FROM api_keys WHERE digest = $1 AND NOT revoked`
//! in the same place. `PORT` overrides the port (3002).
//!
//! - `GET /partner`: `#[api_key]`, partner keys from the in-memory `ApiKeys`.
//! - `GET /admin`: `#[api_key(store = AdminKeys, header = "x-admin-key", scopes = ["admin"])]`.
//! - `POST /admin/down` and `/admin/up`: take the database down to see a clean 503.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::{Router, routing::get, routing::post};
use axum_api_key::{ApiKeys, KeyDigest, KeyError, KeyStore, VerifiedKey, api_key, digest};
use tokio::sync::RwLock;

/// One row of the admin key table: never the key, only its digest.
struct Row {
    id: String,
    scopes: Vec<String>,
}

/// Admin keys, looked up by digest in a database.
#[derive(Clone, Default)]
struct AdminKeys {
    table: Arc<RwLock<HashMap<KeyDigest, Row>>>,
    down: Arc<AtomicBool>,
}

impl KeyStore for AdminKeys {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
        tokio::time::sleep(Duration::from_millis(2)).await; // the round trip to the database
        if self.down.load(Ordering::Relaxed) {
            eprintln!("admin key database unreachable");
            return Err(KeyError::Unavailable);
        }
        let table = self.table.read().await;
        let row = table
            .get(&digest(key.as_bytes()))
            .ok_or(KeyError::Unknown)?;
        Ok(VerifiedKey::new(row.id.as_str()).with_scopes(row.scopes.iter().cloned()))
    }
}

#[derive(Clone, FromRef)]
struct AppState {
    partners: ApiKeys,
    admins: AdminKeys,
}

#[api_key]
async fn partner(key: VerifiedKey) -> String {
    format!("hello partner {}\n", key.id())
}

#[api_key(store = AdminKeys, header = "x-admin-key", scopes = ["admin"])]
async fn admin(key: VerifiedKey) -> String {
    format!("hello admin {}\n", key.id())
}

async fn database_down(State(admins): State<AdminKeys>) -> &'static str {
    admins.down.store(true, Ordering::Relaxed);
    "admin database is down\n"
}

async fn database_up(State(admins): State<AdminKeys>) -> &'static str {
    admins.down.store(false, Ordering::Relaxed);
    "admin database is up\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let partner_key = axum_api_key::KeyFormat::new("pa")?.generate();
    let admin_key = axum_api_key::KeyFormat::new("adm")?.generate();
    let admins = AdminKeys::default();
    let row = Row {
        id: "root".to_owned(),
        scopes: vec!["admin".to_owned()],
    };
    admins
        .table
        .write()
        .await
        .insert(digest(admin_key.as_bytes()), row);
    let state = AppState {
        partners: ApiKeys::new().try_with_key("partner-a", &partner_key)?,
        admins,
    };

    let app = Router::new()
        .route("/partner", get(partner))
        .route("/admin", get(admin))
        .route("/admin/down", post(database_down))
        .route("/admin/up", post(database_up))
        .with_state(state);

    let listener = axum_api_key_examples::bind(3002).await?;
    let address = listener.local_addr()?;
    println!("custom store example listening on http://{address}");
    println!();
    println!("    curl -H 'x-api-key: {partner_key}' http://{address}/partner");
    println!("    curl -H 'x-admin-key: {admin_key}' http://{address}/admin");
    println!(
        "    curl -i -H 'x-admin-key: {partner_key}' http://{address}/admin   # 401: not an admin key"
    );
    println!(
        "    curl -X POST http://{address}/admin/down && curl -i -H 'x-admin-key: {admin_key}' http://{address}/admin   # 503"
    );
    axum_api_key_examples::serve(listener, app).await
}
