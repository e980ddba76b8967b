//! [`PgKeys`]: keys kept in PostgreSQL, answered from an in-process snapshot that `LISTEN/NOTIFY`
//! keeps in step, so that no request waits on the database.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Executor, Row};

use super::set::{KeySet, valid_now};
use super::snapshot::Snapshot;
use super::{
    Key, KeyDigest, KeyError, KeyStore, ListedKey, ManageError, ManagedKeys, Rotation, digest,
};
use crate::format::KeyFormat;
use crate::key::VerifiedKey;
use crate::limit::{RateLimit, RateLimits};

/// Why [`PgKeys`] could not do what was asked. Never holds a key.
#[derive(Debug)]
#[non_exhaustive]
pub enum PgKeysError {
    /// The database refused or could not be reached.
    Database(sqlx::Error),
    /// No key has this id (or none that is not revoked, for a rotation).
    UnknownId(String),
    /// The id, a scope or the key format is not one the store accepts.
    Invalid(crate::ConfigError),
    /// Creating or rotating generates a key, and the store has no [`KeyFormat`].
    NoFormat,
    /// The presented key was rotated already and cannot rotate again.
    Superseded,
    /// The presented key is revoked, expired, not valid yet, disabled, or gone.
    NotLive,
}

impl fmt::Display for PgKeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Database(error) => write!(f, "the key database failed: {error}"),
            Self::UnknownId(id) if super::set::invalid_id(id).is_none() => {
                write!(f, "key `{id}`: no key has this id")
            }
            Self::UnknownId(_) => f.write_str("no key has this id"),
            Self::Invalid(error) => error.fmt(f),
            Self::Superseded => f.write_str("the key was rotated already"),
            Self::NotLive => {
                f.write_str("the key is revoked, expired, not valid yet, disabled or gone")
            }
            Self::NoFormat => f.write_str(
                "creating a key generates it, so the store needs a key format: \
                 `PgKeys::options().format(KeyFormat::new(\"myapp\")?)`",
            ),
        }
    }
}

impl std::error::Error for PgKeysError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Database(error) => Some(error),
            Self::Invalid(error) => Some(error),
            _ => None,
        }
    }
}

impl From<PgKeysError> for ManageError {
    fn from(error: PgKeysError) -> Self {
        match error {
            PgKeysError::NoFormat => Self::NoFormat,
            PgKeysError::Superseded => Self::Superseded,
            PgKeysError::NotLive => Self::NotLive,
            PgKeysError::UnknownId(_) => Self::UnknownId,
            PgKeysError::Invalid(error) => Self::Invalid(error.to_string()),
            other => Self::Failed(other.into()),
        }
    }
}

impl From<sqlx::Error> for PgKeysError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

/// How [`PgKeys`] connects and how stale its snapshot may grow.
#[derive(Debug, Clone)]
pub struct PgKeysOptions {
    schema: Option<String>,
    format: Option<KeyFormat>,
    max_staleness: Duration,
    resync_every: Duration,
    heartbeat: Duration,
    round_trip_timeout: Duration,
    rate_limits: Option<RateLimits>,
}

impl Default for PgKeysOptions {
    fn default() -> Self {
        Self {
            schema: None,
            format: None,
            max_staleness: Duration::from_secs(30),
            resync_every: Duration::from_secs(60),
            heartbeat: Duration::from_secs(5),
            round_trip_timeout: Duration::from_secs(2),
            rate_limits: None,
        }
    }
}

impl PgKeysOptions {
    /// The schema of the keys table (its `search_path`); the connection's default otherwise.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The format of the keys [`PgKeys::create`] and [`PgKeys::rotate`] generate; presented
    /// keys not of it are refused before any lookup.
    pub fn format(mut self, format: KeyFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// How long the snapshot may go without being confirmed in step with the database before
    /// every request is answered 503. Default: 30 seconds.
    ///
    /// While the database cannot be reached, a key revoked through another instance keeps
    /// working here, from the snapshot, until this limit: the store fails closed past it rather
    /// than honour revoked keys indefinitely.
    pub fn max_staleness(mut self, limit: Duration) -> Self {
        self.max_staleness = limit;
        self
    }

    /// How often the snapshot is read again in full, to repair a notification lost in a way
    /// the connection did not report. Default: 60 seconds.
    pub fn resync_every(mut self, period: Duration) -> Self {
        self.resync_every = period;
        self
    }

    /// How often an idle listening connection is checked. Default: 5 seconds; keep it well
    /// under the maximum staleness.
    pub fn heartbeat(mut self, period: Duration) -> Self {
        self.heartbeat = period;
        self
    }

    /// How long the follower waits for one round trip to the database (a heartbeat, the rows
    /// of a notification, a new listening connection) before it takes the connection for dead
    /// and opens another. Default: 2 seconds. A full read of the table may take up to the
    /// maximum staleness.
    ///
    /// A connection that dies silently (a peer gone without a FIN, a firewall dropping its
    /// packets) is so replaced within one heartbeat and one timeout, well before the
    /// snapshot is too stale to answer.
    pub fn round_trip_timeout(mut self, timeout: Duration) -> Self {
        self.round_trip_timeout = timeout;
        self
    }

    /// Counts requests and failed attempts in `limits` rather than in the process-wide
    /// [`RateLimits`], as [`ApiKeys::with_rate_limits`](crate::ApiKeys::with_rate_limits) does.
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = Some(limits);
        self
    }

    /// Connects to the database at `url`, creates or upgrades the keys table, reads every key
    /// and starts following changes.
    pub async fn connect(self, url: &str) -> Result<PgKeys, PgKeysError> {
        let options: PgConnectOptions = url.parse()?;
        self.connect_with(options).await
    }

    /// [`connect`](Self::connect) with connection options built in code.
    pub async fn connect_with(self, mut options: PgConnectOptions) -> Result<PgKeys, PgKeysError> {
        if let Some(schema) = &self.schema {
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        self.start(pool).await
    }

    /// Uses the application's own pool: the keys table lives in the pool's `search_path`
    /// (the [`schema`](Self::schema) option is for connections the store opens itself, and is
    /// refused here). The listening connection is the store's own, opened with the pool's
    /// connection options, so that it never holds one of the application's connections.
    ///
    /// ```no_run
    /// # async fn run(pool: sqlx::PgPool) -> Result<(), axum_api_key::PgKeysError> {
    /// let keys = axum_api_key::PgKeys::options().connect_pool(pool).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_pool(self, pool: PgPool) -> Result<PgKeys, PgKeysError> {
        if self.schema.is_some() {
            return Err(PgKeysError::Database(sqlx::Error::Configuration(
                "`schema` does not apply to an application's pool: set its search_path".into(),
            )));
        }
        self.start(pool).await
    }

    async fn start(self, pool: PgPool) -> Result<PgKeys, PgKeysError> {
        migrate(&pool).await?;
        let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&pool)
            .await?;
        let inner = Arc::new(Inner {
            listen_with: PgConnectOptions::clone(&pool.connect_options()),
            pool,
            snapshot: Snapshot::new(KeySet::default()),
            changing: tokio::sync::Mutex::new(()),
            in_step_at: AtomicU64::new(0),
            channel: format!("{schema}.api_keys"),
            format: self.format.clone(),
            options: self,
            credits_scheduled: std::sync::atomic::AtomicBool::new(false),
            uses_scheduled: std::sync::atomic::AtomicBool::new(false),
            started: Instant::now(),
        });
        inner.resync().await?;
        let follower = tokio::spawn(follow(Arc::downgrade(&inner)));
        Ok(PgKeys {
            inner,
            _follower: Arc::new(AbortOnDrop(follower)),
        })
    }
}

/// Keys kept in a PostgreSQL table, as SHA-256 digests, and answered from an in-process
/// snapshot.
///
/// The request path never waits on the database: a lookup reads the snapshot, with the same
/// O(1) table and constant-time comparison as [`ApiKeys`](crate::ApiKeys). A task follows the
/// table with `LISTEN/NOTIFY` (a trigger notifies every change), applies each change as it
/// comes, reads the table again in full on a period and after every reconnection, and checks
/// an idle connection with a heartbeat. Instances sharing the database see each other's
/// changes within a second.
///
/// When the database cannot be reached, requests go on being answered from the snapshot until
/// it is older than the maximum staleness (default 30 s); past it, every request gets 503, so
/// that a key revoked meanwhile is not honoured for long.
///
/// Cheap to clone; the follower stops with the last clone.
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use axum_api_key::{api_key, KeyFormat, PgKeys, VerifiedKey};
///
/// #[api_key(store = PgKeys)]
/// async fn data(key: VerifiedKey) -> String {
///     format!("hello {}", key.id())
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = PgKeys::options()
///     .format(KeyFormat::new("myapp")?)
///     .connect("postgres://postgres@127.0.0.1:5432/test")
///     .await?;
/// let key = keys.create("partner-a", ["orders:read"], None).await?; // shown once
/// let app: Router = Router::new().route("/data", get(data)).with_state(keys);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgKeys {
    inner: Arc<Inner>,
    _follower: Arc<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Inner {
    pool: PgPool,
    /// How the follower opens its listening connection, one of its own each time.
    listen_with: PgConnectOptions,
    snapshot: Snapshot,
    /// Serialises changes to the snapshot, from the follower and from management calls, each
    /// from its read of the table to its swap: a full read never swaps in a table older than a
    /// change already applied.
    changing: tokio::sync::Mutex<()>,
    /// When the snapshot was last confirmed in step with the table, in microseconds since
    /// `started`; 0 before the first time.
    in_step_at: AtomicU64,
    channel: String,
    format: Option<KeyFormat>,
    options: PgKeysOptions,
    /// Whether a write of spent credits is scheduled.
    credits_scheduled: std::sync::atomic::AtomicBool,
    /// Whether a write of last uses is scheduled.
    uses_scheduled: std::sync::atomic::AtomicBool,
    started: Instant,
}

impl fmt::Debug for PgKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgKeys")
            .field("len", &self.inner.snapshot.read(KeySet::len))
            .field("staleness", &self.staleness())
            .finish_non_exhaustive()
    }
}

impl PgKeys {
    /// Options to connect with: schema, key format, staleness limit, periods.
    pub fn options() -> PgKeysOptions {
        PgKeysOptions::default()
    }

    /// Connects with the default options; see [`PgKeysOptions::connect`].
    pub async fn connect(url: &str) -> Result<Self, PgKeysError> {
        Self::options().connect(url).await
    }

    /// How long since the snapshot was last confirmed in step with the database.
    pub fn staleness(&self) -> Duration {
        self.inner.staleness()
    }

    /// How many keys the snapshot holds, revoked ones included.
    pub fn len(&self) -> usize {
        self.inner.snapshot.read(KeySet::len)
    }

    /// Whether the snapshot holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The format keys are generated in, if the store has one.
    pub fn key_format(&self) -> Option<&KeyFormat> {
        self.inner.format.as_ref()
    }

    /// The key with this digest in the snapshot, whatever its state.
    #[cfg_attr(not(feature = "secret-scanning"), allow(dead_code))]
    pub(crate) fn find_digest(&self, digest: &KeyDigest) -> Option<VerifiedKey> {
        self.inner
            .snapshot
            .read(|set| set.find(digest).map(|entry| entry.key.clone()))
    }

    /// Reads every key again now; returns how many there are.
    pub async fn resync(&self) -> Result<usize, PgKeysError> {
        self.inner.resync().await
    }

    /// Disables every key of `id` ([`ApiKeys::disable`](crate::ApiKeys::disable)): refused
    /// here from the moment it returns, everywhere else within a second, until
    /// [`enable`](Self::enable). Returns how many keys changed.
    pub async fn disable(&self, id: &str) -> Result<u64, PgKeysError> {
        self.set_disabled(id, true).await
    }

    /// Enables every key of `id` again. Returns how many keys changed.
    pub async fn enable(&self, id: &str) -> Result<u64, PgKeysError> {
        self.set_disabled(id, false).await
    }

    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<u64, PgKeysError> {
        let rows = sqlx::query(
            "UPDATE api_keys SET disabled = $2 WHERE id = $1 AND disabled <> $2 RETURNING digest",
        )
        .bind(id)
        .bind(disabled)
        .fetch_all(&self.inner.pool)
        .await?;
        self.changed(id, &rows).await
    }

    /// Restricts every key of `id` to these networks (an empty list lifts the restriction):
    /// enforced here from the moment it returns, everywhere else within a second. Returns how
    /// many keys changed.
    pub async fn set_allowed_ips(
        &self,
        id: &str,
        networks: &[crate::IpNetwork],
    ) -> Result<u64, PgKeysError> {
        let texts: Option<Vec<String>> =
            (!networks.is_empty()).then(|| networks.iter().map(ToString::to_string).collect());
        let rows = sqlx::query(
            "UPDATE api_keys SET allowed_ips = $2::text[]::cidr[] WHERE id = $1 RETURNING digest",
        )
        .bind(id)
        .bind(texts)
        .fetch_all(&self.inner.pool)
        .await?;
        self.changed(id, &rows).await
    }

    /// Sets the credits of every key of `id` (and of its identity) to `credits`, refilled as
    /// `refill` says: a top-up or a new plan, counted from at once everywhere. Returns how
    /// many keys changed.
    pub async fn set_credits(
        &self,
        id: &str,
        credits: u64,
        refill: Option<crate::Refill>,
    ) -> Result<u64, PgKeysError> {
        let credits = i64::try_from(credits.min(crate::MAX_CREDITS)).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "UPDATE api_keys SET credits = $2, refill = $3, credits_at = now() \
             WHERE id = $1 OR (identity IS NOT NULL \
               AND identity = (SELECT identity FROM api_keys WHERE id = $1 LIMIT 1)) \
             RETURNING digest, COALESCE(identity, id) AS counted_as",
        )
        .bind(id)
        .bind(credits)
        .bind(refill.map(|refill| refill.to_string()))
        .fetch_all(&self.inner.pool)
        .await?;
        if let Some(row) = rows.first() {
            let counted_as: String = row.try_get("counted_as")?;
            KeyStore::rate_limits(self)
                .credit_table()
                .forget(&counted_as);
        }
        self.changed(id, &rows).await
    }

    /// Gives every key of `id` exactly `scopes`, rotated keys included: from here at once,
    /// everywhere else within a second. Returns how many keys were changed, or an error for an
    /// unknown id or a scope that is not a token, with nothing changed.
    pub async fn set_scopes<I, S>(&self, id: &str, scopes: I) -> Result<u64, PgKeysError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        if let Some(bad) = scopes
            .iter()
            .find(|scope| !super::set::is_scope_token(scope))
        {
            let shown: String = bad.chars().take(64).collect();
            return Err(PgKeysError::Invalid(
                crate::ConfigError::new(crate::ConfigErrorKind::InvalidScope)
                    .with_message(format!("`{shown}` is not a scope token"))
                    .with_id(id),
            ));
        }
        let rows = sqlx::query("UPDATE api_keys SET scopes = $2 WHERE id = $1 RETURNING digest")
            .bind(id)
            .bind(&scopes)
            .fetch_all(&self.inner.pool)
            .await?;
        self.changed(id, &rows).await
    }

    /// Replaces the free metadata fields of every key of `id`, rotated keys included (the
    /// `metadata` column, a JSON object of strings). Returns how many keys were changed.
    pub async fn set_metadata(
        &self,
        id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<u64, PgKeysError> {
        let json = serde_json::to_string(metadata).unwrap_or_else(|_| "{}".to_owned());
        let rows =
            sqlx::query("UPDATE api_keys SET metadata = $2::jsonb WHERE id = $1 RETURNING digest")
                .bind(id)
                .bind(json)
                .fetch_all(&self.inner.pool)
                .await?;
        self.changed(id, &rows).await
    }

    /// Gives every key of `id` the identity `identity` (or none), whose keys share their rate
    /// limits and credits. Returns how many keys changed.
    pub async fn set_identity(&self, id: &str, identity: Option<&str>) -> Result<u64, PgKeysError> {
        let rows = sqlx::query("UPDATE api_keys SET identity = $2 WHERE id = $1 RETURNING digest")
            .bind(id)
            .bind(identity)
            .fetch_all(&self.inner.pool)
            .await?;
        self.changed(id, &rows).await
    }

    /// Writes the credits this process spent to the table, as one statement that takes them
    /// off each key's count (or off its refill, when a refill came since the count was
    /// written): instances writing at once all land, none overwrites another. Returns how many
    /// names (key ids or identities) were written. The store calls it on its own at most
    /// [`CREDITS_WRITE_DELAY`](crate::CREDITS_WRITE_DELAY) after a request spends credits.
    ///
    /// Each instance spends from the table's count less what it spent itself since: between
    /// two writes, instances without Redis may together spend more than the count, by what
    /// the others spent in that time. With
    /// [`RateLimits::with_redis`](crate::RateLimits::with_redis) the count is shared exactly,
    /// and nothing is written here.
    pub async fn write_credits(&self) -> Result<usize, PgKeysError> {
        let limits = KeyStore::rate_limits(self);
        if limits.counts_in_redis() {
            return Ok(0);
        }
        let table = limits.credit_table();
        let now = SystemTime::now();
        // What each name spent in the current period: only that comes off the count.
        let spent: Vec<(Box<str>, i64, u64)> = table
            .unwritten()
            .into_iter()
            .filter_map(|(name, _)| {
                let credits = self
                    .inner
                    .snapshot
                    .read(|set| set.credits_counted_as(&name))?;
                let spent = table.spent(&name, &credits, now);
                let period = credits.refill.map_or(0, |refill| refill.period_of(now));
                (spent > 0).then_some((name, period, spent))
            })
            .collect();
        if spent.is_empty() {
            return Ok(0);
        }
        let names: Vec<&str> = spent.iter().map(|(name, _, _)| &**name).collect();
        let amounts: Vec<i64> = spent
            .iter()
            .map(|(_, _, spent)| i64::try_from(*spent).unwrap_or(i64::MAX))
            .collect();
        let rows = sqlx::query(
            "UPDATE api_keys AS k SET credits = GREATEST(0, \
               CASE WHEN k.refill IS NOT NULL AND k.credits_at IS NOT NULL \
                 AND date_trunc(split_part(k.refill, '/', 2), k.credits_at AT TIME ZONE 'UTC') \
                   < date_trunc(split_part(k.refill, '/', 2), now() AT TIME ZONE 'UTC') \
                 THEN split_part(k.refill, '/', 1)::int8 ELSE k.credits END - v.spent), \
               credits_at = now() \
             FROM unnest($1::text[], $2::int8[]) AS v(name, spent) \
             WHERE COALESCE(k.identity, k.id) = v.name AND k.credits IS NOT NULL \
             RETURNING k.digest",
        )
        .bind(&names)
        .bind(&amounts)
        .fetch_all(&self.inner.pool)
        .await?;
        for (name, period, spent) in &spent {
            table.written(name, *period, *spent);
        }
        self.inner.refresh(&digests_of(&rows)?).await?;
        Ok(spent.len())
    }

    /// Writes the last use of every key id this process let in since its last write to the
    /// table's `last_used` column, in one statement that only ever moves it forward (so
    /// instances writing at once all land, the latest use winning), and returns how many ids
    /// were written. The store calls it on its own at most
    /// [`LAST_USED_WRITE_DELAY`](crate::LAST_USED_WRITE_DELAY) after a key is used, whatever
    /// the traffic; call it at shutdown to write the last minute's uses. A write of
    /// `last_used` alone notifies no instance: it changes nothing about which keys are
    /// accepted.
    pub async fn write_last_used(&self) -> Result<usize, PgKeysError> {
        let uses = KeyStore::rate_limits(self).uses();
        let unwritten = uses.unwritten();
        if unwritten.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = unwritten.iter().map(|(id, _)| &**id).collect();
        let seconds: Vec<i64> = unwritten
            .iter()
            .map(|(_, at)| i64::try_from(*at).unwrap_or(i64::MAX))
            .collect();
        sqlx::query(
            "UPDATE api_keys AS k SET last_used = \
               GREATEST(k.last_used, timestamptz 'epoch' + v.at * interval '1 second') \
             FROM unnest($1::text[], $2::int8[]) AS v(id, at) WHERE k.id = v.id",
        )
        .bind(&ids)
        .bind(&seconds)
        .execute(&self.inner.pool)
        .await?;
        for (id, at) in &unwritten {
            uses.written(id, *at);
        }
        Ok(unwritten.len())
    }

    /// The rows an update of `id`'s keys returned, applied to the snapshot: how many changed,
    /// or [`PgKeysError::UnknownId`] when none changed because no key has `id`.
    async fn changed(&self, id: &str, rows: &[sqlx::postgres::PgRow]) -> Result<u64, PgKeysError> {
        if rows.is_empty() {
            self.must_exist(id).await?;
        }
        let digests = digests_of(rows)?;
        self.inner.refresh(&digests).await?;
        Ok(digests.len() as u64)
    }

    /// `Ok` when some key has `id`, [`PgKeysError::UnknownId`] otherwise.
    async fn must_exist(&self, id: &str) -> Result<(), PgKeysError> {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1)")
                .bind(id)
                .fetch_one(&self.inner.pool)
                .await?;
        if exists {
            Ok(())
        } else {
            Err(PgKeysError::UnknownId(id.to_owned()))
        }
    }

    /// Generates a key in the store's format for `id`, stores its digest (never the key) and
    /// returns the key, once: hand it to its owner now. Every instance accepts it within a
    /// second, this one from the moment this returns.
    pub async fn create<I, S>(
        &self,
        id: &str,
        scopes: I,
        expires: Option<SystemTime>,
    ) -> Result<String, PgKeysError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let format = self.inner.format.clone().ok_or(PgKeysError::NoFormat)?;
        let key = format.generate();
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        // The store's own rules judge the id and the scopes before anything is written.
        let mut check = Key::new(id, &key).scopes(scopes.iter().cloned());
        if let Some(at) = expires {
            check = check.expires_at(at);
        }
        KeySet::default()
            .insert(check, false)
            .map_err(PgKeysError::Invalid)?;
        let digest = digest(key.as_bytes());
        sqlx::query(
            "INSERT INTO api_keys (digest, id, scopes, expires_at) \
             VALUES ($1, $2, $3, timestamptz 'epoch' + $4::int8 * interval '1 microsecond')",
        )
        .bind(&digest[..])
        .bind(id)
        .bind(&scopes)
        .bind(expires.map(micros))
        .execute(&self.inner.pool)
        .await?;
        self.inner.refresh(&[digest]).await?;
        Ok(key)
    }

    /// Sets (or, with `None`, removes) the rate limit of every key of `id`, rotated ones
    /// included: counted from here at once, everywhere else within a second. Returns how many
    /// keys were changed.
    pub async fn set_rate_limit(
        &self,
        id: &str,
        limit: Option<RateLimit>,
    ) -> Result<u64, PgKeysError> {
        self.set_rate_limits(id, limit.as_slice()).await
    }

    /// Sets the rate limits of every key of `id` to the plan `limits` (`10/s` and
    /// `100000/day`; none removes them), rotated keys included: counted from here at once,
    /// everywhere else within a second. The column holds them as one text, `10/s, 100000/day`.
    /// Returns how many keys were changed, or an error for a list that breaks the rules of
    /// [`Key::rate_limits`](crate::Key::rate_limits), with nothing changed.
    pub async fn set_rate_limits(
        &self,
        id: &str,
        limits: &[RateLimit],
    ) -> Result<u64, PgKeysError> {
        crate::limit::check_limits(limits).map_err(|error| {
            PgKeysError::Invalid(
                crate::ConfigError::new(crate::ConfigErrorKind::BadRateLimit)
                    .with_message(error.to_string())
                    .with_id(id),
            )
        })?;
        let text = (!limits.is_empty()).then(|| crate::limit::limits_text(limits.iter().copied()));
        let rows =
            sqlx::query("UPDATE api_keys SET rate_limit = $2 WHERE id = $1 RETURNING digest")
                .bind(id)
                .bind(text)
                .fetch_all(&self.inner.pool)
                .await?;
        self.inner.refresh(&digests_of(&rows)?).await?;
        Ok(rows.len() as u64)
    }

    /// Revokes every key of `id`: refused here from the moment it returns, everywhere else
    /// within a second. Returns how many keys were revoked.
    pub async fn revoke(&self, id: &str) -> Result<u64, PgKeysError> {
        let rows = sqlx::query(
            "UPDATE api_keys SET revoked_at = now() \
             WHERE id = $1 AND revoked_at IS NULL RETURNING digest",
        )
        .bind(id)
        .fetch_all(&self.inner.pool)
        .await?;
        let exists = !rows.is_empty()
            || sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1)",
            )
            .bind(id)
            .fetch_one(&self.inner.pool)
            .await?;
        if !exists {
            return Err(PgKeysError::UnknownId(id.to_owned()));
        }
        let digests = digests_of(&rows)?;
        self.inner.refresh(&digests).await?;
        Ok(digests.len() as u64)
    }

    /// Issues a new key for `id` with the scopes, metadata, limit, not-before time and expiry
    /// of its current key (the one neither revoked nor rotated out), and lets the old keys work
    /// until `grace` has passed (or their own expiry, if sooner). The old keys are marked
    /// rotated out, so they cannot rotate themselves. Returns the new key, once.
    pub async fn rotate(&self, id: &str, grace: Duration) -> Result<String, PgKeysError> {
        let format = self.inner.format.clone().ok_or(PgKeysError::NoFormat)?;
        let key = format.generate();
        let digest = digest(key.as_bytes());
        let mut transaction = self.inner.pool.begin().await?;
        let live = sqlx::query(
            "SELECT digest, (extract(epoch FROM expires_at) * 1000000)::int8 AS expires \
             FROM api_keys WHERE id = $1 AND revoked_at IS NULL \
             ORDER BY superseded, expires_at IS NULL DESC, created_at DESC LIMIT 1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(live) = live else {
            return Err(PgKeysError::UnknownId(id.to_owned()));
        };
        let template: Vec<u8> = live.try_get("digest")?;
        let kept: Option<i64> = live.try_get("expires")?;
        // The old keys first, so that an instance following the table never sees the new key
        // beside an old one not rotated out yet.
        let capped = sqlx::query(&format!(
            "UPDATE api_keys SET superseded = true, \
             expires_at = LEAST(COALESCE(expires_at, {AT}), {AT}) \
             WHERE id = $1 AND revoked_at IS NULL RETURNING digest"
        ))
        .bind(id)
        .bind(micros(grace_deadline(grace)))
        .fetch_all(&mut *transaction)
        .await?;
        // The successor keeps the current key's expiry as it was before the rotation.
        sqlx::query(
            "INSERT INTO api_keys (digest, id, scopes, metadata, rate_limit, not_before, \
               disabled, allowed_ips, credits, refill, credits_at, identity, expires_at) \
             SELECT $1, id, scopes, metadata, rate_limit, not_before, disabled, allowed_ips, \
               credits, refill, credits_at, identity, \
               timestamptz 'epoch' + $3::int8 * interval '1 microsecond' \
             FROM api_keys WHERE digest = $2",
        )
        .bind(&digest[..])
        .bind(&template)
        .bind(kept)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        let mut changed = digests_of(&capped)?;
        changed.push(digest);
        self.inner.refresh(&changed).await?;
        Ok(key)
    }

    /// Rotates the key whose digest is `presented`, at its holder's request, as
    /// [`ApiKeys::rotate_presented`](crate::ApiKeys::rotate_presented) does: one statement,
    /// conditioned on the key's row being live and not rotated already, so that of two
    /// rotations by one key (on one instance or two) exactly one succeeds.
    pub async fn rotate_presented(
        &self,
        presented: &KeyDigest,
        grace: Duration,
    ) -> Result<Rotation, PgKeysError> {
        let format = self.inner.format.clone().ok_or(PgKeysError::NoFormat)?;
        let key = format.generate();
        let digest = digest(key.as_bytes());
        // `prev` is the row before the update: the successor keeps its expiry.
        let row = sqlx::query(&format!(
            "WITH old AS ( \
               UPDATE api_keys AS k SET superseded = true, \
                 expires_at = LEAST(COALESCE(k.expires_at, {AT}), {AT}) \
               FROM api_keys AS prev \
               WHERE k.digest = $1 AND prev.digest = k.digest \
                 AND k.revoked_at IS NULL AND NOT k.superseded \
                 AND (k.expires_at IS NULL OR k.expires_at > now()) \
                 AND (k.not_before IS NULL OR k.not_before <= now()) \
                 AND NOT k.disabled \
               RETURNING k.id, k.scopes, k.metadata, k.rate_limit, k.not_before, \
                 k.disabled, k.allowed_ips, k.credits, k.refill, k.credits_at, k.identity, \
                 prev.expires_at AS kept, \
                 (extract(epoch FROM k.expires_at) * 1000000)::int8 AS ends) \
             INSERT INTO api_keys (digest, id, scopes, metadata, rate_limit, not_before, \
               disabled, allowed_ips, credits, refill, credits_at, identity, expires_at) \
             SELECT $3, id, scopes, metadata, rate_limit, not_before, disabled, allowed_ips, \
               credits, refill, credits_at, identity, kept FROM old \
             RETURNING (SELECT ends FROM old) AS ends, \
               (extract(epoch FROM expires_at) * 1000000)::int8 AS expires"
        ))
        .bind(&presented[..])
        .bind(micros(grace_deadline(grace)))
        .bind(&digest[..])
        .fetch_optional(&self.inner.pool)
        .await?;
        let Some(row) = row else {
            let superseded: Option<bool> =
                sqlx::query_scalar("SELECT superseded FROM api_keys WHERE digest = $1")
                    .bind(&presented[..])
                    .fetch_optional(&self.inner.pool)
                    .await?;
            return Err(match superseded {
                Some(true) => PgKeysError::Superseded,
                _ => PgKeysError::NotLive,
            });
        };
        let ends: i64 = row.try_get("ends")?;
        let expires: Option<i64> = row.try_get("expires")?;
        self.inner.refresh(&[*presented, digest]).await?;
        Ok(Rotation::new(
            key,
            from_micros(ends),
            expires.map(from_micros),
        ))
    }

    /// Revokes the key whose digest is `presented`, and no other key of its id.
    pub async fn revoke_presented(&self, presented: &KeyDigest) -> Result<(), PgKeysError> {
        let exists: bool = sqlx::query_scalar(
            "WITH revoked AS (UPDATE api_keys SET revoked_at = now() \
               WHERE digest = $1 AND revoked_at IS NULL RETURNING digest) \
             SELECT EXISTS (SELECT 1 FROM api_keys WHERE digest = $1)",
        )
        .bind(&presented[..])
        .fetch_one(&self.inner.pool)
        .await?;
        if !exists {
            return Err(PgKeysError::NotLive);
        }
        self.inner.refresh(&[*presented]).await?;
        Ok(())
    }

    /// Every key of the table, sorted by id: what it is and whether it is accepted now, never a
    /// key or a digest.
    pub async fn list(&self) -> Result<Vec<ListedKey>, PgKeysError> {
        let rows = sqlx::query(SELECT_ROWS).fetch_all(&self.inner.pool).await?;
        let mut listed: Vec<ListedKey> = rows
            .iter()
            .filter_map(|row| record(row).ok())
            .map(|(_, key)| {
                let key = VerifiedKey::from_record(key_record(key));
                let now = SystemTime::now();
                ListedKey {
                    refused: valid_now(&key).err(),
                    credits_left: key.record().credits().map(|credits| {
                        credits.base(now).saturating_sub(
                            KeyStore::rate_limits(self).credit_table().spent(
                                key.record().counted_as(),
                                credits,
                                now,
                            ),
                        )
                    }),
                    used: KeyStore::rate_limits(self).uses().get(key.id()),
                    key,
                }
            })
            .collect();
        listed.sort_by(|a, b| a.key.id().cmp(b.key.id()));
        Ok(listed)
    }
}

/// A microsecond count bound as `$2`, as a `timestamptz`.
const AT: &str = "(timestamptz 'epoch' + $2::int8 * interval '1 microsecond')";

/// The end of a grace period starting now, at the latest the end of year 9999.
fn grace_deadline(grace: Duration) -> SystemTime {
    let latest = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    SystemTime::now()
        .checked_add(grace)
        .map_or(latest, |deadline| deadline.min(latest))
}

/// Microseconds since the Unix epoch.
fn micros(at: SystemTime) -> i64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

fn from_micros(micros: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

fn digests_of(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<KeyDigest>, PgKeysError> {
    rows.iter()
        .map(|row| {
            let bytes: Vec<u8> = row.try_get("digest")?;
            bytes.try_into().map_err(|_| {
                PgKeysError::Database(sqlx::Error::Decode("a digest of 32 bytes".into()))
            })
        })
        .collect()
}

const SELECT_ROWS: &str = "SELECT digest, id, scopes, \
     (extract(epoch FROM not_before) * 1000000)::int8 AS not_before, \
     (extract(epoch FROM expires_at) * 1000000)::int8 AS expires_at, \
     revoked_at IS NOT NULL AS revoked, superseded, metadata::text AS metadata, rate_limit, \
     disabled, allowed_ips::text[] AS allowed_ips, credits, refill, \
     (extract(epoch FROM credits_at) * 1000000)::int8 AS credits_at, identity, \
     extract(epoch FROM last_used)::int8 AS last_used \
     FROM api_keys";

/// A row as the store's [`Key`].
fn record(row: &sqlx::postgres::PgRow) -> Result<(KeyDigest, Key), sqlx::Error> {
    let bytes: Vec<u8> = row.try_get("digest")?;
    let digest: KeyDigest = bytes
        .try_into()
        .map_err(|_| sqlx::Error::Decode("a digest of 32 bytes".into()))?;
    let id: String = row.try_get("id")?;
    let scopes: Vec<String> = row.try_get("scopes")?;
    let mut key = Key::from_digest(id, digest).scopes(scopes);
    if let Some(at) = row.try_get::<Option<i64>, _>("not_before")? {
        key = key.not_before(from_micros(at));
    }
    if let Some(at) = row.try_get::<Option<i64>, _>("expires_at")? {
        key = key.expires_at(from_micros(at));
    }
    key = key.revoked(row.try_get("revoked")?);
    key.record.superseded = row.try_get("superseded")?;
    key.record.disabled = row.try_get("disabled")?;
    if let Some(identity) = row.try_get::<Option<String>, _>("identity")? {
        key = key.identity(identity);
    }
    // The columns are checked by the table; a refill this crate cannot read is none.
    if let Some(refill) = row
        .try_get::<Option<String>, _>("refill")?
        .and_then(|text| text.parse::<crate::Refill>().ok())
    {
        key = key.refill(refill);
    }
    if let Some(credits) = row.try_get::<Option<i64>, _>("credits")? {
        key = key.credits(u64::try_from(credits).unwrap_or(0));
        if let Some(at) = row.try_get::<Option<i64>, _>("credits_at")?
            && let Some(credits) = key.record.credits_mut()
        {
            credits.counted_at = Some(from_micros(at));
        }
    }
    if let Some(at) = row.try_get::<Option<i64>, _>("last_used")? {
        key.record.last_used = u64::try_from(at).unwrap_or(0);
    }
    if let Some(networks) = row.try_get::<Option<Vec<String>>, _>("allowed_ips")? {
        // The column is `cidr[]`, which PostgreSQL checks; a network this crate does not read
        // (none is known) would leave the key usable from fewer places, never more.
        let parsed: Vec<crate::IpNetwork> = networks
            .iter()
            .filter_map(|text| text.parse().ok())
            .collect();
        if parsed.len() != networks.len() || parsed.is_empty() {
            tracing::warn!(
                target: "axum_api_key::audit",
                key_id = if key.id.len() <= crate::MAX_ID_LEN { key.id.as_str() } else { "(an id too long to show)" },
                "the allowed_ips column of this key holds a network that cannot be read, or none; \
                 the key is refused everywhere until it is corrected"
            );
            key.record.refuse_everywhere();
        } else {
            key = key.allowed_ips(parsed);
        }
    }
    if let Some(text) = row.try_get::<Option<String>, _>("rate_limit")? {
        match crate::limit::parse_limits(&text) {
            Ok(limits) => key.record.set_rate_limits(limits),
            // One mistyped row must not take every key down: the key is served without a limit,
            // and the operator told which.
            Err(error) => tracing::warn!(
                target: "axum_api_key::audit",
                key_id = if key.id.len() <= crate::MAX_ID_LEN { key.id.as_str() } else { "(an id too long to show)" },
                "the rate_limit column of this key is not a rate limit ({error}); the key is \
                 served without one until it is corrected"
            ),
        }
    }
    let metadata: String = row.try_get("metadata")?;
    let metadata: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&metadata).unwrap_or_default();
    for (name, value) in metadata {
        let text = match value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        key = key.metadata(name, text);
    }
    Ok((digest, key))
}

/// The record a [`Key`] describes, for listings.
fn key_record(key: Key) -> crate::key::KeyRecord {
    let mut record = key.record;
    record.id = key.id.as_str().into();
    record
}

impl Inner {
    fn staleness(&self) -> Duration {
        let at = self.in_step_at.load(Ordering::Acquire);
        let now = self.started.elapsed();
        if at == 0 {
            return now;
        }
        now.saturating_sub(Duration::from_micros(at))
    }

    fn mark_in_step(&self) {
        let now = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.in_step_at.store(now.max(1), Ordering::Release);
    }

    /// Reads every key and swaps the snapshot whole.
    async fn resync(&self) -> Result<usize, PgKeysError> {
        self.resync_on(&self.pool).await
    }

    /// [`resync`](Self::resync) through this connection (the follower's own).
    async fn resync_on<'e>(
        &self,
        executor: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    ) -> Result<usize, PgKeysError> {
        let _one_at_a_time = self.changing.lock().await;
        let rows = sqlx::query(SELECT_ROWS).fetch_all(executor).await?;
        let mut set = KeySet::default();
        set.format = self.format.clone();
        for row in &rows {
            match record(row) {
                Ok((_, key)) => {
                    if let Err(error) = set.insert(key, true) {
                        let error = error.without_id();
                        tracing::warn!(target: "axum_api_key::audit", %error, "a row of the keys table was skipped");
                    }
                }
                Err(error) => {
                    tracing::warn!(target: "axum_api_key::audit", %error, "a row of the keys table could not be read");
                }
            }
        }
        let count = set.len();
        self.snapshot.publish(Arc::new(set));
        self.mark_in_step();
        Ok(count)
    }

    /// Reads the rows of these digests again and applies them to the snapshot: each key is
    /// replaced, added, or removed if its row is gone.
    async fn refresh(&self, digests: &[KeyDigest]) -> Result<(), PgKeysError> {
        self.refresh_on(&self.pool, digests).await
    }

    /// [`refresh`](Self::refresh) through this connection (the follower's own).
    async fn refresh_on<'e>(
        &self,
        executor: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
        digests: &[KeyDigest],
    ) -> Result<(), PgKeysError> {
        let _one_at_a_time = self.changing.lock().await;
        let slices: Vec<&[u8]> = digests.iter().map(|d| &d[..]).collect();
        let rows = sqlx::query(&format!("{SELECT_ROWS} WHERE digest = ANY($1)"))
            .bind(&slices)
            .fetch_all(executor)
            .await?;
        let mut next = KeySet::clone(&self.snapshot.load());
        for digest in digests {
            next.remove(digest);
        }
        for row in &rows {
            if let Ok((_, key)) = record(row)
                && let Err(error) = next.insert(key, true)
            {
                let error = error.without_id();
                tracing::warn!(target: "axum_api_key::audit", %error, "a row of the keys table was skipped");
            }
        }
        self.snapshot.publish(Arc::new(next));
        Ok(())
    }
}

impl KeyStore for PgKeys {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
        let inner = &self.inner;
        if inner.staleness() > inner.options.max_staleness {
            return Err(KeyError::Unavailable);
        }
        // The guard has checked the key's length and shape already, as for `ApiKeys`.
        inner.snapshot.read(|set| set.lookup(key.as_bytes()))
    }

    /// Answered from the snapshot: nothing waits on the database.
    fn answers_from_memory(&self) -> bool {
        true
    }

    fn rate_limits(&self) -> &RateLimits {
        self.inner
            .options
            .rate_limits
            .as_ref()
            .unwrap_or_else(|| RateLimits::shared())
    }

    fn key_used(&self) {
        use std::sync::atomic::Ordering;
        // Once a write is scheduled, a request pays one load.
        if self.inner.uses_scheduled.load(Ordering::Relaxed)
            || self.inner.uses_scheduled.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.uses_scheduled.store(false, Ordering::Release);
            return;
        };
        // Held weakly: a store dropped meanwhile is not kept alive a minute for this.
        let (inner, follower) = (Arc::downgrade(&self.inner), Arc::downgrade(&self._follower));
        runtime.spawn(async move {
            tokio::time::sleep(crate::LAST_USED_WRITE_DELAY).await;
            let (Some(inner), Some(_follower)) = (inner.upgrade(), follower.upgrade()) else {
                return;
            };
            let keys = PgKeys { inner, _follower };
            keys.inner.uses_scheduled.store(false, Ordering::Release);
            if let Err(error) = keys.write_last_used().await {
                tracing::warn!(
                    target: "axum_api_key::audit",
                    error = %error,
                    "keys' last uses could not be written to the table; they are kept in \
                     memory and written with the next use"
                );
            }
        });
    }

    fn credits_spent(&self) {
        use std::sync::atomic::Ordering;
        if self.inner.credits_scheduled.load(Ordering::Relaxed)
            || KeyStore::rate_limits(self).counts_in_redis()
            || self.inner.credits_scheduled.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.credits_scheduled.store(false, Ordering::Release);
            return;
        };
        let keys = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(crate::CREDITS_WRITE_DELAY).await;
            keys.inner.credits_scheduled.store(false, Ordering::Release);
            if let Err(error) = keys.write_credits().await {
                tracing::error!(
                    target: "axum_api_key::audit",
                    error = %error,
                    "spent credits could not be written to the table; they are kept in memory \
                     and written with the next spending"
                );
            }
        });
    }
}

/// Follows the table: listens for its notifications, applies them, reads it again in full on a
/// period and after every reconnection, and checks an idle connection. Ends with the store.
async fn follow(inner: Weak<Inner>) {
    use tokio::time::timeout;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let round_trip = strong.options.round_trip_timeout;
        // A full read may take longer than one round trip, but never longer than the snapshot
        // may go stale.
        let full_read = strong.options.max_staleness.max(round_trip);
        let listener = async {
            let mut listener = timeout(round_trip, async {
                // A pool of one for each listening connection: one given up may hang in
                // sqlx's own clean-up (its `UNLISTEN` waits on the silent connection until
                // the system gives up on it) and must not hold the place of the next.
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(round_trip)
                    .connect_lazy_with(strong.listen_with.clone());
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen(&strong.channel).await?;
                Ok::<_, sqlx::Error>(listener)
            })
            .await
            .map_err(|_| timed_out("listening"))??;
            // Without a connection of its own to reopen silently: a lost connection is seen
            // here, and handled as one, resync included.
            listener.eager_reconnect(false);
            // Changes made while not listening are caught up here, on the new connection: the
            // follower never waits on a connection of the shared pool, which may be as dead as
            // the one just given up.
            timeout(full_read, strong.resync_on(&mut listener))
                .await
                .map_err(|_| timed_out("reading the keys"))??;
            Ok::<_, PgKeysError>(listener)
        }
        .await;
        let mut listener = match listener {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(target: "axum_api_key::audit", %error, "the key database cannot be followed; retrying");
                drop(strong);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let (heartbeat, resync_every) = (strong.options.heartbeat, strong.options.resync_every);
        drop(strong);
        let mut last_resync = Instant::now();
        let error = loop {
            let received = timeout(heartbeat, listener.try_recv()).await;
            let Some(strong) = inner.upgrade() else {
                return;
            };
            match received {
                Ok(Ok(Some(notification))) => {
                    if let Some(digest) = decode_hex(notification.payload()) {
                        match timeout(round_trip, strong.refresh_on(&mut listener, &[digest])).await
                        {
                            Ok(Ok(())) => {}
                            Ok(Err(error)) => break error,
                            Err(_) => break timed_out("reading a changed key"),
                        }
                    }
                    strong.mark_in_step();
                }
                // The connection was lost: notifications may have been missed.
                Ok(Ok(None)) => break PgKeysError::Database(sqlx::Error::PoolClosed),
                Ok(Err(error)) => break error.into(),
                // Quiet: check the listening connection itself, which proves nothing was lost;
                // a connection that does not answer in time is taken for dead.
                Err(_) => match timeout(round_trip, listener.execute("SELECT 1")).await {
                    Ok(Ok(_)) => strong.mark_in_step(),
                    Ok(Err(error)) => break error.into(),
                    Err(_) => break timed_out("the heartbeat"),
                },
            }
            if last_resync.elapsed() >= resync_every {
                match timeout(full_read, strong.resync_on(&mut listener)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => break error,
                    Err(_) => break timed_out("reading the keys"),
                }
                last_resync = Instant::now();
            }
        };
        tracing::warn!(target: "axum_api_key::audit", %error, "the key database connection was lost; reconnecting");
        drop(listener);
    }
}

/// A round trip that did not end in time.
fn timed_out(what: &str) -> PgKeysError {
    PgKeysError::Database(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} did not answer in time"),
    )))
}

fn decode_hex(text: &str) -> Option<KeyDigest> {
    super::decode_digest(text)
}

/// Creates or upgrades the keys table, once whatever the number of instances starting.
async fn migrate(pool: &PgPool) -> Result<(), PgKeysError> {
    let mut transaction = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.api_keys'))")
        .execute(&mut *transaction)
        .await?;
    transaction
        .execute(
            "CREATE TABLE IF NOT EXISTS api_keys_schema_version (\
               version integer PRIMARY KEY, \
               applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let version: Option<i32> =
        sqlx::query_scalar("SELECT max(version) FROM api_keys_schema_version")
            .fetch_one(&mut *transaction)
            .await?;
    for (number, migration) in MIGRATIONS.iter().enumerate() {
        let number = i32::try_from(number + 1).unwrap_or(i32::MAX);
        if version.is_some_and(|version| version >= number) {
            continue;
        }
        transaction.execute(*migration).await?;
        sqlx::query("INSERT INTO api_keys_schema_version (version) VALUES ($1)")
            .bind(number)
            .execute(&mut *transaction)
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// The migrations, in order; each runs once, in the transaction that records it.
const MIGRATIONS: &[&str] = &["
CREATE TABLE api_keys (
    digest bytea PRIMARY KEY CHECK (length(digest) = 32),
    id text NOT NULL,
    scopes text[] NOT NULL DEFAULT '{}',
    not_before timestamptz,
    expires_at timestamptz,
    revoked_at timestamptz,
    metadata jsonb NOT NULL DEFAULT '{}',
    -- The per-key rate limit, such as `100/min`, for the rate limiter.
    rate_limit text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_id ON api_keys (id);
CREATE FUNCTION api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.api_keys', encode(COALESCE(NEW.digest, OLD.digest), 'hex'));
    RETURN NULL;
END
$$;
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify();
", "
-- A key rotated out: it has a successor and cannot rotate again.
ALTER TABLE api_keys ADD COLUMN superseded boolean NOT NULL DEFAULT false;
", "
-- A suspension, undone by setting it back; and the networks a key may be used from (NULL for
-- anywhere).
ALTER TABLE api_keys ADD COLUMN disabled boolean NOT NULL DEFAULT false;
ALTER TABLE api_keys ADD COLUMN allowed_ips cidr[]
    CHECK (allowed_ips IS NULL OR cardinality(allowed_ips) > 0);
", "
-- A plan: uses left as of `credits_at`, refilled as `refill` says (`10000/month`); and the
-- identity whose keys share their limits and credits.
ALTER TABLE api_keys ADD COLUMN credits bigint CHECK (credits >= 0);
ALTER TABLE api_keys ADD COLUMN refill text
    CHECK (refill ~ '^[1-9][0-9]{0,15}/(hour|day|month)$');
ALTER TABLE api_keys ADD COLUMN credits_at timestamptz;
ALTER TABLE api_keys ADD COLUMN identity text CHECK (length(identity) BETWEEN 1 AND 128);
", "
-- When a key of the row's id was last used, written at most once a minute by each instance.
-- A write of it alone tells no instance anything: it is no change to what keys are accepted.
ALTER TABLE api_keys ADD COLUMN last_used timestamptz;
DROP TRIGGER api_keys_notify ON api_keys;
CREATE TRIGGER api_keys_notify AFTER INSERT OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify();
CREATE TRIGGER api_keys_notify_update AFTER UPDATE ON api_keys
    FOR EACH ROW WHEN ((to_jsonb(OLD) - 'last_used') IS DISTINCT FROM (to_jsonb(NEW) - 'last_used'))
    EXECUTE FUNCTION api_keys_notify();
"];

/// A rotation or revocation at the holder's request, in the table.
impl ManagedKeys for PgKeys {
    async fn rotate_presented(
        &self,
        presented: &KeyDigest,
        grace: Duration,
    ) -> Result<Rotation, ManageError> {
        self.rotate_presented(presented, grace)
            .await
            .map_err(Into::into)
    }

    async fn revoke_presented(&self, presented: &KeyDigest) -> Result<(), ManageError> {
        self.revoke_presented(presented).await.map_err(Into::into)
    }
}
