//! Custom stores: a store of one's own behind the same attribute, and two stores side by side.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use axum_api_key::{ApiKeys, KeyError, KeyStore, VerifiedKey, api_key, digest};
use axum_api_key_tests::{KEY_A, StatusCode, get as request, keys, send};

/// A row of the table: a key's digest, id and scopes.
type Row = ([u8; 32], &'static str, &'static [&'static str]);

/// A store that looks digests up in a "table" and can be taken down, counting its lookups.
#[derive(Clone, Default)]
struct TableStore {
    rows: Arc<Vec<Row>>,
    down: Arc<AtomicBool>,
    lookups: Arc<AtomicUsize>,
}

impl KeyStore for TableStore {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await; // a real store awaits its database here
        if self.down.load(Ordering::SeqCst) {
            return Err(KeyError::Unavailable);
        }
        let wanted = digest(key.as_bytes());
        self.rows
            .iter()
            .find(|(digest, _, _)| *digest == wanted)
            .map(|(_, id, scopes)| VerifiedKey::new(*id).with_scopes(scopes.iter().copied()))
            .ok_or(KeyError::Unknown)
    }
}

const ADMIN_KEY: &str = "adm_Wq3Er8Ty1Ui6Op4";

#[derive(Clone, FromRef)]
struct AppState {
    partners: ApiKeys,
    admins: TableStore,
}

#[api_key]
async fn partner(key: VerifiedKey) -> String {
    format!("partner {}", key.id())
}

#[api_key(store = TableStore, header = "x-admin-key", scopes = ["admin"])]
async fn admin(key: VerifiedKey) -> String {
    format!("admin {}", key.id())
}

fn app(admins: TableStore) -> Router {
    Router::new()
        .route("/partner", get(partner))
        .route("/admin", get(admin))
        .with_state(AppState {
            partners: keys(),
            admins,
        })
}

fn admins() -> TableStore {
    TableStore {
        rows: Arc::new(vec![(digest(ADMIN_KEY.as_bytes()), "root", &["admin"])]),
        ..TableStore::default()
    }
}

#[tokio::test]
async fn each_route_checks_its_own_store() {
    let store = admins();
    let admin_key = [("x-admin-key", ADMIN_KEY.as_bytes())];
    let answer = send(app(store.clone()), request("/admin", &admin_key)).await;
    assert_eq!(
        (answer.status, answer.text()),
        (StatusCode::OK, "admin root".to_owned())
    );
    let answer = send(
        app(store.clone()),
        request("/partner", &[("x-api-key", KEY_A.as_bytes())]),
    )
    .await;
    assert_eq!(answer.text(), "partner partner-a");

    // A partner key is no admin key, and an admin key no partner key.
    let answer = send(
        app(store.clone()),
        request("/admin", &[("x-admin-key", KEY_A.as_bytes())]),
    )
    .await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
    let answer = send(
        app(store.clone()),
        request("/partner", &[("x-api-key", ADMIN_KEY.as_bytes())]),
    )
    .await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
    assert_eq!(
        store.lookups.load(Ordering::SeqCst),
        2,
        "the partner route never asks the admin store"
    );
}

#[tokio::test]
async fn a_custom_store_gets_only_well_formed_keys() {
    let store = admins();
    let oversized = "k".repeat(axum_api_key::MAX_KEY_LEN + 1);
    for bad in [oversized.as_bytes(), b"with space", b"\xfe\xff-bytes"] {
        let answer = send(
            app(store.clone()),
            request("/admin", &[("x-admin-key", bad)]),
        )
        .await;
        answer.assert_problem(StatusCode::UNAUTHORIZED, "InvalidKey");
    }
    assert_eq!(
        store.lookups.load(Ordering::SeqCst),
        0,
        "refused before any lookup"
    );
}

#[tokio::test]
async fn a_store_that_cannot_answer_gets_503() {
    let store = admins();
    store.down.store(true, Ordering::SeqCst);
    let answer = send(
        app(store),
        request("/admin", &[("x-admin-key", ADMIN_KEY.as_bytes())]),
    )
    .await;
    answer.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "StoreUnavailable");
    answer.assert_never_contains(ADMIN_KEY.as_bytes());
    assert_eq!(answer.header("retry-after"), None);
}
