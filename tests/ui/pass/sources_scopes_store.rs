use axum::extract::FromRef;
use axum::{Router, routing::get};
use axum_api_key::{ApiKeys, KeyError, KeyStore, RequireApiKey, VerifiedKey, api_key};

#[derive(Clone)]
struct AdminKeys(ApiKeys);

impl KeyStore for AdminKeys {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
        self.0.verify(key.as_bytes())
    }
}

#[derive(Clone, FromRef)]
struct AppState {
    partners: ApiKeys,
    admins: AdminKeys,
}

#[api_key(header = "x-api-key", query = "api_key", cookie = "session", bearer)]
async fn anywhere(key: VerifiedKey) -> String {
    key.id().to_owned()
}

#[api_key(bearer, scopes = ["orders:read", "orders:write"], status = 403)]
async fn scoped() {}

#[api_key(optional, query = "key")]
async fn maybe(key: Option<VerifiedKey>) -> String {
    key.map(|k| k.id().to_owned()).unwrap_or_default()
}

#[api_key(store = AdminKeys, header = "x-admin-key", state = AppState)]
async fn admin(key: VerifiedKey) -> String {
    key.id().to_owned()
}

/// A guard for a whole router.
#[api_key(bearer, scopes = ["api"])]
pub struct ApiAccess;

async fn inner(key: VerifiedKey) -> String {
    key.id().to_owned()
}

async fn extractor(_: RequireApiKey<ApiAccess>) {}

fn main() {
    let state = AppState { partners: ApiKeys::new(), admins: AdminKeys(ApiKeys::new()) };
    let api: Router = Router::new()
        .route("/inner", get(inner))
        .layer(RequireApiKey::<ApiAccess>::layer(ApiKeys::new()));
    let _: Router = Router::new()
        .route("/anywhere", get(anywhere))
        .route("/scoped", get(scoped))
        .route("/maybe", get(maybe))
        .route("/admin", get(admin))
        .route("/extractor", get(extractor))
        .with_state(state)
        .nest("/api", api);
    let _ = from_a_macro::routed();
}

mod generic_store {
    use axum_api_key::{KeyError, KeyStore, VerifiedKey, api_key};

    #[derive(Clone)]
    pub struct Tagged<T>(pub axum_api_key::ApiKeys, pub std::marker::PhantomData<fn() -> T>);

    impl<T: 'static> KeyStore for Tagged<T> {
        async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
            self.0.verify(key.as_bytes())
        }
    }

    #[api_key(store = Tagged<u8>)]
    pub async fn tagged() {}
}

/// A store named through a `macro_rules!` type fragment.
mod from_a_macro {
    use axum_api_key::{ApiKeys, api_key};

    macro_rules! protected_with {
        ($store:ty, $name:ident) => {
            #[api_key(store = $store)]
            pub async fn $name() {}
        };
    }

    protected_with!(ApiKeys, through_macro);

    pub fn routed() -> axum::Router {
        axum::Router::new()
            .route("/m", axum::routing::get(through_macro))
            .with_state(ApiKeys::new())
    }
}
