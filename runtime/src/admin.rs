//! [`router`]: an admin API over HTTP, with which support staff and back-office tools create,
//! list, rotate, suspend, top up and revoke any customer's keys, each with a narrowly scoped
//! admin key of its own (feature `admin`).

use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use serde::Deserialize;

use crate::extract::{KeyConfig, RequireApiKey};
use crate::key::VerifiedKey;
use crate::rejection::JsonStr;
use crate::self_service::ManageError;
use crate::store::{ApiKeys, Key, KeyError, ListedKey};
use crate::{IpNetwork, RateLimit, Refill};

/// The largest request body an admin route reads: far above any key's description.
pub const MAX_BODY: usize = 64 * 1024;

/// The most keys a page of `GET /keys` holds.
pub const MAX_PAGE: usize = 1_000;

/// What an admin creates: everything a key's record holds but its digest, which the store
/// makes from the key it generates.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NewKey {
    /// The id; a new `key-…` id when `None`.
    pub id: Option<String>,
    /// The scopes the key holds.
    pub scopes: Vec<String>,
    /// When the key stops working.
    pub expires_at: Option<SystemTime>,
    /// Its rate limits, one per window.
    pub rate_limits: Vec<RateLimit>,
    /// Its credits and their refill.
    pub credits: Option<(u64, Option<Refill>)>,
    /// The identity it shares limits and credits under.
    pub identity: Option<String>,
    /// The networks it may be used from; anywhere when empty.
    pub allowed_ips: Vec<IpNetwork>,
}

/// A store whose keys an admin manages through [`router`]: [`ApiKeys`] (its records file, if
/// it has one, written through) and `PgKeys` (feature `postgres`). Every call names keys by id
/// and acts on every key of it, as the command-line tool does.
pub trait AdminKeys: crate::ManagedKeys {
    /// Every key, sorted by id: never a key or a digest.
    fn list_keys(&self) -> impl Future<Output = Result<Vec<ListedKey>, ManageError>> + Send;

    /// Makes a key as `new` describes and returns it: the only time it is seen.
    fn create_key(&self, new: NewKey) -> impl Future<Output = Result<String, ManageError>> + Send;

    /// Issues a successor to `id`'s current key, which keeps working for `grace`.
    fn rotate_key(
        &self,
        id: &str,
        grace: Duration,
    ) -> impl Future<Output = Result<String, ManageError>> + Send;

    /// Revokes every key of `id`; how many were live.
    fn revoke_key(&self, id: &str) -> impl Future<Output = Result<u64, ManageError>> + Send;

    /// Disables (or enables again) every key of `id`.
    fn set_disabled(
        &self,
        id: &str,
        disabled: bool,
    ) -> impl Future<Output = Result<u64, ManageError>> + Send;

    /// Holds every key of `id` to `limits` (none: no limit).
    fn set_key_rate_limits(
        &self,
        id: &str,
        limits: Vec<RateLimit>,
    ) -> impl Future<Output = Result<u64, ManageError>> + Send;

    /// Sets the credits of every key of `id` (a top-up), and their refill.
    fn set_key_credits(
        &self,
        id: &str,
        credits: u64,
        refill: Option<Refill>,
    ) -> impl Future<Output = Result<u64, ManageError>> + Send;
}

/// A change to the records file blocks while it writes: it runs off the async workers.
async fn blocking<T: Send + 'static>(
    keys: &ApiKeys,
    change: impl FnOnce(ApiKeys) -> Result<T, crate::ConfigError> + Send + 'static,
) -> Result<T, ManageError> {
    let keys = keys.clone();
    let done = tokio::task::spawn_blocking(move || change(keys))
        .await
        .map_err(|error| ManageError::Failed(error.into()))?;
    done.map_err(ManageError::from)
}

impl AdminKeys for ApiKeys {
    async fn list_keys(&self) -> Result<Vec<ListedKey>, ManageError> {
        Ok(self.list())
    }

    async fn create_key(&self, new: NewKey) -> Result<String, ManageError> {
        let format = self.format().ok_or(ManageError::NoFormat)?;
        let key = format.generate();
        let id = new.id.clone().unwrap_or_else(new_id);
        let mut record = Key::new(id.as_str(), &key).scopes(new.scopes.iter().cloned());
        if let Some(at) = new.expires_at {
            record = record.expires_at(at);
        }
        if !new.rate_limits.is_empty() {
            record = record
                .rate_limits(new.rate_limits.iter().copied())
                .map_err(|error| ManageError::Invalid(error.to_string()))?;
        }
        if let Some((credits, refill)) = new.credits {
            if let Some(refill) = refill {
                record = record.refill(refill);
            }
            record = record.credits(credits);
        }
        if let Some(identity) = &new.identity {
            record = record.identity(identity.as_str());
        }
        if !new.allowed_ips.is_empty() {
            record = record.allowed_ips(new.allowed_ips.iter().copied());
        }
        blocking(self, move |keys| keys.add(record)).await?;
        Ok(key)
    }

    async fn rotate_key(&self, id: &str, grace: Duration) -> Result<String, ManageError> {
        let id = id.to_owned();
        blocking(self, move |keys| keys.rotate(&id, grace)).await
    }

    async fn revoke_key(&self, id: &str) -> Result<u64, ManageError> {
        let id = id.to_owned();
        blocking(self, move |keys| keys.revoke(&id).map(|n| n as u64)).await
    }

    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<u64, ManageError> {
        let id = id.to_owned();
        blocking(self, move |keys| {
            let changed = if disabled {
                keys.disable(&id)
            } else {
                keys.enable(&id)
            };
            changed.map(|n| n as u64)
        })
        .await
    }

    async fn set_key_rate_limits(
        &self,
        id: &str,
        limits: Vec<RateLimit>,
    ) -> Result<u64, ManageError> {
        let id = id.to_owned();
        blocking(self, move |keys| {
            keys.set_rate_limits(&id, &limits).map(|n| n as u64)
        })
        .await
    }

    async fn set_key_credits(
        &self,
        id: &str,
        credits: u64,
        refill: Option<Refill>,
    ) -> Result<u64, ManageError> {
        let id = id.to_owned();
        blocking(self, move |keys| {
            keys.set_credits(&id, credits, refill).map(|n| n as u64)
        })
        .await
    }
}

#[cfg(feature = "postgres")]
impl AdminKeys for crate::PgKeys {
    async fn list_keys(&self) -> Result<Vec<ListedKey>, ManageError> {
        self.list().await.map_err(Into::into)
    }

    async fn create_key(&self, new: NewKey) -> Result<String, ManageError> {
        crate::limit::check_limits(&new.rate_limits)
            .map_err(|error| ManageError::Invalid(error.to_string()))?;
        let id = new.id.clone().unwrap_or_else(new_id);
        let key = self.create(&id, new.scopes.clone(), new.expires_at).await?;
        // The key is not out yet: if its plan or its restrictions cannot be written, it is
        // revoked rather than handed out open.
        let plan = async {
            if !new.allowed_ips.is_empty() {
                self.set_allowed_ips(&id, &new.allowed_ips).await?;
            }
            if !new.rate_limits.is_empty() {
                self.set_rate_limits(&id, &new.rate_limits).await?;
            }
            if let Some((credits, refill)) = new.credits {
                self.set_credits(&id, credits, refill).await?;
            }
            if let Some(identity) = &new.identity {
                self.set_identity(&id, Some(identity)).await?;
            }
            Ok::<_, crate::PgKeysError>(())
        };
        if let Err(error) = plan.await {
            let _ = self.revoke(&id).await;
            return Err(error.into());
        }
        Ok(key)
    }

    async fn rotate_key(&self, id: &str, grace: Duration) -> Result<String, ManageError> {
        self.rotate(id, grace).await.map_err(Into::into)
    }

    async fn revoke_key(&self, id: &str) -> Result<u64, ManageError> {
        self.revoke(id).await.map_err(Into::into)
    }

    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<u64, ManageError> {
        let changed = if disabled {
            self.disable(id).await
        } else {
            self.enable(id).await
        };
        changed.map_err(Into::into)
    }

    async fn set_key_rate_limits(
        &self,
        id: &str,
        limits: Vec<RateLimit>,
    ) -> Result<u64, ManageError> {
        self.set_rate_limits(id, &limits).await.map_err(Into::into)
    }

    async fn set_key_credits(
        &self,
        id: &str,
        credits: u64,
        refill: Option<Refill>,
    ) -> Result<u64, ManageError> {
        self.set_credits(id, credits, refill)
            .await
            .map_err(Into::into)
    }
}

/// A new id, `key-` and 16 random hex digits.
fn new_id() -> String {
    let mut bytes = [0u8; 8];
    // A failing system random source leaves zeros: the store refuses the id if it is taken.
    let _ = getrandom::fill(&mut bytes);
    let mut id = String::from("key-");
    for byte in bytes {
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// The admin API, guarded by `R` for reading and `W` for changes (two `#[api_key(scopes =
/// [...])]` guard types), over the store `S`:
///
/// | route | guard | answer |
/// | --- | --- | --- |
/// | `GET /keys?prefix=&state=&identity=&limit=&cursor=` | `R` | `200`, `{"keys": [...], "next_cursor": "…" or null}`: each key's `id`, `state` (`valid`, `revoked`, `expired`, `not_yet_valid`, `disabled`), `scopes`, `expires_at`, `rate_limit`, `credits_left`, `refill`, `identity`, `allowed_ips`, `last_used`; sorted by id, `limit` per page (100 by default, at most [`MAX_PAGE`]) |
/// | `GET /keys/{id}` | `R` | `200`, `{"id", "keys": [...]}`: every key of the id (a rotated one beside its successor); `404` for none |
/// | `POST /keys` | `W` | `201`, the new key's record and the `key`, once, with `Cache-Control: no-store`; the body names `id`, `scopes`, `expires_at` (RFC 3339), `rate_limit` (a list), `credits`, `refill`, `identity`, `allowed_ips`, each optional |
/// | `POST /keys/{id}/rotate` | `W` | `200`, the new `key`, once; the body may name `grace_seconds` (0 by default) |
/// | `DELETE /keys/{id}` | `W` | `204`, every key of the id revoked; again, `204` (idempotent) |
/// | `PUT /keys/{id}/disabled` / `DELETE /keys/{id}/disabled` | `W` | `204`, suspended / enabled again; idempotent |
/// | `PUT /keys/{id}/credits` | `W` | `204`; the body is `{"credits": 10000, "refill": "10000/month"}` (`refill` optional) |
/// | `PUT /keys/{id}/rate_limit` | `W` | `204`; the body is the plan, `["10/s", "100000/day"]` (`[]` for none) |
///
/// A key is never answered but the one just created or rotated. **An admin key cannot create
/// a key with a scope it does not hold itself** (`403`, naming the scopes): a support tool
/// with `keys:write` and `orders:read` issues `orders:read` keys, never `admin` ones. Every
/// change is an audit event (`INFO`, target `axum_api_key::audit`) naming the admin key's id,
/// the action and the key id; refusals are `application/problem+json` (`400` for a body that
/// is not what the route reads, `404` for an unknown id, `409` for a store that cannot
/// generate keys, `422` for a plan the store refuses, `503` for a store that fails, its cause
/// logged and never sent). Bodies are read up to [`MAX_BODY`].
///
/// ```
/// use axum::Router;
/// use axum_api_key::{admin, api_key, ApiKeys, KeyFormat};
///
/// #[api_key(scopes = ["keys:read"])]
/// struct AdminRead;
///
/// #[api_key(scopes = ["keys:write"])]
/// struct AdminWrite;
///
/// let keys = ApiKeys::new().with_format(KeyFormat::new("myapp").unwrap());
/// let app: Router = Router::new()
///     .nest("/admin", admin::router::<AdminRead, AdminWrite, ApiKeys, _>())
///     .with_state(keys);
/// ```
pub fn router<R, W, S, St>() -> Router<St>
where
    R: KeyConfig,
    W: KeyConfig,
    S: AdminKeys + FromRef<St>,
    St: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/keys", get(list::<R, S>).post(create::<W, S>))
        .route("/keys/{id}", get(show::<R, S>).delete(revoke::<W, S>))
        .route("/keys/{id}/rotate", post(rotate::<W, S>))
        .route(
            "/keys/{id}/disabled",
            put(disable::<W, S>).delete(enable::<W, S>),
        )
        .route("/keys/{id}/credits", put(credits::<W, S>))
        .route("/keys/{id}/rate_limit", put(rate_limit::<W, S>))
        // A body past the cap is refused before it is buffered.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

/// `GET /keys`'s query.
#[derive(Debug, Default)]
struct ListQuery {
    prefix: Option<String>,
    state: Option<String>,
    identity: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

impl ListQuery {
    /// The query's fields, each at most once, and no others.
    fn parse(query: Option<&str>) -> Option<Self> {
        let mut read = Self::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let field = match &*name {
                "prefix" => &mut read.prefix,
                "state" => &mut read.state,
                "identity" => &mut read.identity,
                "limit" => &mut read.limit,
                "cursor" => &mut read.cursor,
                _ => return None,
            };
            if field.replace(value.into_owned()).is_some() {
                return None;
            }
        }
        Some(read)
    }
}

const STATES: [&str; 5] = ["valid", "revoked", "expired", "not_yet_valid", "disabled"];

async fn list<R: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<R, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(query) = ListQuery::parse(query.as_deref()) else {
        return bad_request(
            "The query names `prefix`, `state`, `identity`, `limit` and `cursor`, each once.",
        );
    };
    if let Some(state) = &query.state
        && !STATES.contains(&state.as_str())
    {
        return bad_request("`state` is one of valid, revoked, expired, not_yet_valid, disabled.");
    }
    let limit = match query.limit.as_deref().map(str::parse::<usize>) {
        None => 100,
        Some(Ok(limit)) if (1..=MAX_PAGE).contains(&limit) => limit,
        Some(_) => return bad_request("`limit` is from 1 to 1000."),
    };
    let skip = match query.cursor.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(skip)) => skip,
        Some(Err(_)) => return bad_request("`cursor` is the `next_cursor` of an earlier page."),
    };
    let listed = match store.list_keys().await {
        Ok(listed) => listed,
        Err(error) => return failed(&admin, "list", None, &error),
    };
    let matching: Vec<&ListedKey> = listed
        .iter()
        .filter(|listed| {
            query
                .prefix
                .as_deref()
                .is_none_or(|prefix| listed.key().id().starts_with(prefix))
                && query
                    .state
                    .as_deref()
                    .is_none_or(|state| state_of(listed) == state)
                && query
                    .identity
                    .as_deref()
                    .is_none_or(|identity| listed.key().identity() == Some(identity))
        })
        .collect();
    let page = matching.iter().skip(skip).take(limit);
    let mut body = String::from("{\"keys\":[");
    for (i, listed) in page.enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&describe(listed));
    }
    body.push_str("],\"next_cursor\":");
    match skip
        .checked_add(limit)
        .filter(|next| *next < matching.len())
    {
        Some(next) => {
            let _ = write!(body, "\"{next}\"");
        }
        None => body.push_str("null"),
    }
    body.push('}');
    audit(&admin, "list", None);
    json(StatusCode::OK, body)
}

async fn show<R: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<R, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
) -> Response {
    let listed = match store.list_keys().await {
        Ok(listed) => listed,
        Err(error) => return failed(&admin, "show", Some(&id), &error),
    };
    let of_id: Vec<&ListedKey> = listed
        .iter()
        .filter(|listed| listed.key().id() == id)
        .collect();
    if of_id.is_empty() {
        return failed(&admin, "show", Some(&id), &ManageError::UnknownId);
    }
    let mut body = format!("{{\"id\":{},\"keys\":[", JsonStr(&id));
    for (i, listed) in of_id.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&describe(listed));
    }
    body.push_str("]}");
    audit(&admin, "show", Some(&id));
    json(StatusCode::OK, body)
}

/// `POST /keys`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    id: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    expires_at: Option<String>,
    #[serde(default)]
    rate_limit: Vec<String>,
    credits: Option<u64>,
    refill: Option<String>,
    identity: Option<String>,
    #[serde(default)]
    allowed_ips: Vec<String>,
}

impl CreateBody {
    /// The key it describes, or what is wrong with it.
    fn new_key(self) -> Result<NewKey, String> {
        if let Some(id) = &self.id
            && crate::store::set::invalid_id(id).is_some()
        {
            return Err(format!(
                "`id` is 1 to {} printable characters, without `=` or `,`.",
                crate::MAX_ID_LEN
            ));
        }
        let expires_at = match &self.expires_at {
            None => None,
            Some(text) => Some(parse_time(text).ok_or(
                "`expires_at` is an RFC 3339 date-time in UTC, e.g. `2027-01-01T00:00:00Z`.",
            )?),
        };
        let rate_limits = self
            .rate_limit
            .iter()
            .map(|text| text.parse::<RateLimit>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("`rate_limit`: {error}"))?;
        crate::limit::check_limits(&rate_limits)
            .map_err(|error| format!("`rate_limit`: {error}"))?;
        let refill = self
            .refill
            .as_deref()
            .map(str::parse::<Refill>)
            .transpose()
            .map_err(|error| format!("`refill`: {error}"))?;
        let credits = match (self.credits, refill) {
            (Some(credits), refill) if credits <= crate::MAX_CREDITS => Some((credits, refill)),
            (Some(_), _) => return Err("`credits` is at most 2^53.".to_owned()),
            (None, Some(_)) => {
                return Err("`refill` needs `credits`, the uses the key starts with.".to_owned());
            }
            (None, None) => None,
        };
        if let Some(identity) = &self.identity
            && (identity.is_empty()
                || identity.len() > crate::MAX_ID_LEN
                || !identity.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(format!(
                "`identity` is 1 to {} printable ASCII characters.",
                crate::MAX_ID_LEN
            ));
        }
        let allowed_ips = self
            .allowed_ips
            .iter()
            .map(|text| text.parse::<IpNetwork>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("`allowed_ips`: {error}"))?;
        Ok(NewKey {
            id: self.id,
            scopes: self.scopes,
            expires_at,
            rate_limits,
            credits,
            identity: self.identity,
            allowed_ips,
        })
    }
}

async fn create<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    body: Bytes,
) -> Response {
    let body: CreateBody = match read_body(&body) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let new = match body.new_key() {
        Ok(new) => new,
        Err(why) => return bad_request(&why),
    };
    // An admin key widens nothing: every scope it gives, it holds.
    let lacking: Vec<&str> = new
        .scopes
        .iter()
        .map(String::as_str)
        .filter(|scope| !admin.has_scope(scope))
        .collect();
    if !lacking.is_empty() {
        tracing::warn!(
            target: "axum_api_key::audit",
            outcome = "refused",
            action = "create",
            admin_key_id = admin.id(),
            scopes = ?lacking,
            "an admin key asked for a key with scopes it does not hold"
        );
        let detail = format!(
            "This admin key cannot give scopes it does not hold: {}.",
            lacking.join(", ")
        );
        return problem(
            StatusCode::FORBIDDEN,
            "scope-not-held",
            "Scope not held",
            &detail,
        );
    }
    let mut new = new;
    let id = new.id.get_or_insert_with(new_id).clone();
    let scopes = new.scopes.clone();
    let expires_at = new.expires_at;
    match store.create_key(new).await {
        Ok(key) => {
            audit(&admin, "create", Some(&id));
            let mut body = format!("{{\"id\":{},\"scopes\":[", JsonStr(&id));
            for (i, scope) in scopes.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(&JsonStr(scope).to_string());
            }
            body.push_str("],\"expires_at\":");
            time_or_null(&mut body, expires_at);
            let _ = write!(body, ",\"key\":{}}}", JsonStr(&key));
            no_store(json(StatusCode::CREATED, body))
        }
        Err(error) => failed(&admin, "create", Some(&id), &error),
    }
}

/// `POST /keys/{id}/rotate`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    grace_seconds: u64,
}

async fn rotate<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body: RotateBody = if body.is_empty() {
        RotateBody::default()
    } else {
        match read_body(&body) {
            Ok(body) => body,
            Err(error) => return error.into_response(),
        }
    };
    // A grace no clock can hold is capped where the store caps it.
    let grace = Duration::from_secs(body.grace_seconds.min(10 * 365 * 86_400));
    match store.rotate_key(&id, grace).await {
        Ok(key) => {
            audit(&admin, "rotate", Some(&id));
            let body = format!("{{\"id\":{},\"key\":{}}}", JsonStr(&id), JsonStr(&key));
            no_store(json(StatusCode::OK, body))
        }
        Err(error) => failed(&admin, "rotate", Some(&id), &error),
    }
}

async fn revoke<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
) -> Response {
    match store.revoke_key(&id).await {
        Ok(_) => {
            audit(&admin, "revoke", Some(&id));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => failed(&admin, "revoke", Some(&id), &error),
    }
}

async fn disable<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
) -> Response {
    set_disabled(&admin, &store, &id, true).await
}

async fn enable<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
) -> Response {
    set_disabled(&admin, &store, &id, false).await
}

async fn set_disabled<S: AdminKeys>(
    admin: &VerifiedKey,
    store: &S,
    id: &str,
    disabled: bool,
) -> Response {
    let action = if disabled { "disable" } else { "enable" };
    match store.set_disabled(id, disabled).await {
        Ok(_) => {
            audit(admin, action, Some(id));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => failed(admin, action, Some(id), &error),
    }
}

/// `PUT /keys/{id}/credits`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditsBody {
    credits: u64,
    refill: Option<String>,
}

async fn credits<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body: CreditsBody = match read_body(&body) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    if body.credits > crate::MAX_CREDITS {
        return bad_request("`credits` is at most 2^53.");
    }
    let refill = match body.refill.as_deref().map(str::parse::<Refill>).transpose() {
        Ok(refill) => refill,
        Err(error) => return bad_request(&format!("`refill`: {error}")),
    };
    match store.set_key_credits(&id, body.credits, refill).await {
        Ok(_) => {
            audit(&admin, "credits", Some(&id));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => failed(&admin, "credits", Some(&id), &error),
    }
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    Unreadable(String),
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        match self {
            Self::TooLarge => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "admin-body-too-large",
                "Body too large",
                "An admin request's body is at most 64 KiB.",
            ),
            Self::Unreadable(why) => bad_request(&why),
        }
    }
}

async fn rate_limit<W: KeyConfig, S: AdminKeys>(
    _: RequireApiKey<W, S>,
    admin: VerifiedKey,
    State(store): State<S>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let texts: Vec<String> = match read_body(&body) {
        Ok(texts) => texts,
        Err(error) => return error.into_response(),
    };
    let limits = match texts
        .iter()
        .map(|text| text.parse::<RateLimit>())
        .collect::<Result<Vec<_>, _>>()
        .and_then(|limits| crate::limit::check_limits(&limits).map(|()| limits))
    {
        Ok(limits) => limits,
        Err(error) => return bad_request(&format!("`rate_limit`: {error}")),
    };
    match store.set_key_rate_limits(&id, limits).await {
        Ok(_) => {
            audit(&admin, "rate_limit", Some(&id));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => failed(&admin, "rate_limit", Some(&id), &error),
    }
}

/// A JSON body of at most [`MAX_BODY`] bytes, or what is wrong with it (never echoing it: a
/// body may hold anything).
fn read_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    if body.len() > MAX_BODY {
        return Err(BodyError::TooLarge);
    }
    serde_json::from_slice(body).map_err(|error| {
        let what = match error.classify() {
            serde_json::error::Category::Data => format!(
                "The body is not what this route reads: {} (line {}, column {}).",
                without_values(&error.to_string()),
                error.line(),
                error.column()
            ),
            _ => "The body is not a JSON object.".to_owned(),
        };
        BodyError::Unreadable(what)
    })
}

/// serde's message with the value it quotes left out (`invalid type: string "…", expected a
/// sequence` becomes `invalid type: a string, expected a sequence`): a value may be a key put
/// in the wrong field, and no answer repeats one. Field names (`unknown field `colour``) stay.
fn without_values(message: &str) -> String {
    let message = message.split(" at line").next().unwrap_or_default();
    for lead in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(lead)
            && let Some((value, expected)) = rest.split_once(", expected ")
        {
            let kind = value.split([' ', '`', '"']).next().unwrap_or_default();
            return format!("{lead}{kind}, expected {expected}");
        }
    }
    // Unknown, missing or duplicate fields name the field, at most 64 characters of it.
    message.chars().take(160).collect()
}

/// A time written as RFC 3339 in UTC (`2027-01-01T00:00:00Z`, with an optional fraction).
fn parse_time(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.ends_with('Z') || !text.is_ascii() {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i64> {
        let part = &text[from..to];
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let nanos = match &text[19..text.len() - 1] {
        "" => 0,
        fraction if fraction.len() >= 2 && fraction.len() <= 10 && fraction.starts_with('.') => {
            let digits = &fraction[1..];
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let value: u32 = digits.parse().ok()?;
            value * 10u32.pow(9 - u32::try_from(digits.len()).ok()?)
        }
        _ => return None,
    };
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..60).contains(&second)
    {
        return None;
    }
    let days = crate::time::days_from_civil(year, month, day);
    // A day past the month's end (February 30th) comes back as another date.
    if crate::time::civil_from_days(days) != (year, month, day) {
        return None;
    }
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(SystemTime::UNIX_EPOCH + Duration::new(u64::try_from(seconds).ok()?, nanos))
}

/// A listed key's state, as `GET /keys` names it.
fn state_of(listed: &ListedKey) -> &'static str {
    match listed.refused() {
        None => "valid",
        Some(KeyError::Revoked) => "revoked",
        Some(KeyError::Expired) => "expired",
        Some(KeyError::NotYetValid) => "not_yet_valid",
        Some(KeyError::Disabled) => "disabled",
        Some(_) => "refused",
    }
}

/// A listed key as the admin API shows it: never the key, never its digest.
fn describe(listed: &ListedKey) -> String {
    let key = listed.key();
    let mut body = format!(
        "{{\"id\":{},\"state\":\"{}\",\"scopes\":[",
        JsonStr(key.id()),
        state_of(listed)
    );
    for (i, scope) in key.scopes().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&JsonStr(scope).to_string());
    }
    body.push_str("],\"expires_at\":");
    time_or_null(&mut body, key.expires_at());
    body.push_str(",\"rate_limit\":[");
    for (i, limit) in key.rate_limits().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&JsonStr(&limit.to_string()).to_string());
    }
    body.push_str("],\"credits_left\":");
    match listed.credits_left() {
        Some(left) => {
            let _ = write!(body, "{left}");
        }
        None => body.push_str("null"),
    }
    body.push_str(",\"refill\":");
    match key.refill() {
        Some(refill) => body.push_str(&JsonStr(&refill.to_string()).to_string()),
        None => body.push_str("null"),
    }
    body.push_str(",\"identity\":");
    match key.identity() {
        Some(identity) => body.push_str(&JsonStr(identity).to_string()),
        None => body.push_str("null"),
    }
    body.push_str(",\"allowed_ips\":[");
    for (i, network) in key.allowed_ips().iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let _ = write!(body, "\"{network}\"");
    }
    body.push_str("],\"last_used\":");
    time_or_null(&mut body, listed.last_used());
    body.push('}');
    body
}

fn time_or_null(body: &mut String, at: Option<SystemTime>) {
    match at.and_then(crate::time::rfc3339) {
        Some(at) => {
            let _ = write!(body, "\"{at}\"");
        }
        None => body.push_str("null"),
    }
}

fn audit(admin: &VerifiedKey, action: &'static str, id: Option<&str>) {
    tracing::info!(
        target: "axum_api_key::audit",
        outcome = "admin",
        action,
        admin_key_id = admin.id(),
        key_id = id,
        "admin API"
    );
}

fn json(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn problem(status: StatusCode, slug: &'static str, title: &'static str, detail: &str) -> Response {
    crate::rejection::problem_response(status, slug, title, detail, None)
}

fn bad_request(detail: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "admin-bad-request",
        "Bad request",
        detail,
    )
}

fn failed(
    admin: &VerifiedKey,
    action: &'static str,
    id: Option<&str>,
    error: &ManageError,
) -> Response {
    let (status, slug, title, detail) = match error {
        ManageError::UnknownId => (
            StatusCode::NOT_FOUND,
            "key-id-unknown",
            "Unknown key id",
            "No key has this id.".to_owned(),
        ),
        ManageError::NoFormat => (
            StatusCode::CONFLICT,
            "keys-not-generated",
            "Keys cannot be generated",
            "This store has no key format, so it cannot issue keys.".to_owned(),
        ),
        ManageError::Superseded | ManageError::NotLive => (
            StatusCode::CONFLICT,
            "key-not-changeable",
            "Key cannot be changed",
            "This id has no live key to change.".to_owned(),
        ),
        ManageError::Invalid(why) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "key-change-invalid",
            "Change refused",
            why.clone(),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "key-change-unavailable",
            "Key store unavailable",
            "The keys could not be read or changed right now; try again later.".to_owned(),
        ),
    };
    if status.is_server_error() {
        tracing::error!(
            target: "axum_api_key::audit",
            outcome = "failed",
            action,
            admin_key_id = admin.id(),
            key_id = id,
            error = %error,
            "admin API"
        );
    } else {
        tracing::info!(
            target: "axum_api_key::audit",
            outcome = "refused",
            action,
            admin_key_id = admin.id(),
            key_id = id,
            reason = slug,
            "admin API"
        );
    }
    problem(status, slug, title, &detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_about_a_body_repeat_no_value() {
        let secret = "cust_7Qm2xY9wLkV3rT8sNc5dZc4nH6jR";
        for body in [
            format!(r#"{{"scopes": "{secret}"}}"#),
            format!(r#"{{"credits": "{secret}"}}"#),
            format!(r#"{{"id": ["{secret}"]}}"#),
            r#"{"credits": -1}"#.to_owned(),
        ] {
            let Err(BodyError::Unreadable(why)) = read_body::<CreateBody>(body.as_bytes()) else {
                panic!("{body} was read");
            };
            assert!(!why.contains(secret) && !why.contains("-1"), "{why}");
            assert!(why.contains("expected"), "{why}");
        }
        let Err(BodyError::Unreadable(why)) = read_body::<CreateBody>(br#"{"colour": 1}"#) else {
            panic!("read");
        };
        assert!(why.contains("unknown field `colour`"), "{why}");
    }

    #[test]
    fn reads_rfc3339_times_strictly() {
        let at = |secs, nanos| SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(at(0, 0)));
        assert_eq!(
            parse_time("2024-02-29T00:00:00.5Z"),
            Some(at(1_709_164_800, 500_000_000))
        );
        for bad in [
            "",
            "2024-02-30T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00+01:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1234567890Z",
            "+024-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Every time the crate writes reads back as itself, and nothing panics.
        #[test]
        fn written_times_read_back(secs in 0_u64..253_402_300_799, nanos in 0_u32..1_000_000_000) {
            let at = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
            let text = crate::time::rfc3339(at).unwrap();
            proptest::prop_assert_eq!(parse_time(&text), Some(at));
        }

        #[test]
        fn any_text_is_read_without_panic(text in "\\PC{0,40}") {
            let _ = parse_time(&text);
        }
    }
}
