//! Connecting [`PgKeys`]: the options, the table made or upgraded, the first read, the follower started.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::super::set::KeySet;
use super::super::snapshot::Snapshot;
use super::follow::follow;
use super::migrate::migrate;
use super::{AbortOnDrop, Inner, PgKeys, PgKeysError};
use crate::format::KeyFormat;
use crate::limit::RateLimits;

/// How [`PgKeys`] connects and how stale its snapshot may grow.
#[derive(Debug, Clone)]
pub struct PgKeysOptions {
    pub(super) schema: Option<String>,
    pub(super) format: Option<KeyFormat>,
    pub(super) max_staleness: Duration,
    pub(super) resync_every: Duration,
    pub(super) heartbeat: Duration,
    pub(super) round_trip_timeout: Duration,
    pub(super) rate_limits: Option<RateLimits>,
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
    ///
    /// The calls that change the table are bounded by it too: a change (taking a connection,
    /// and its statements) fails after four of these timeouts, and reading its rows back after
    /// one more, rather than waiting on a silent connection until the system gives up on it
    /// (minutes). A change whose answer never came may or may not have been made: the
    /// follower applies it if it was, and a retry is safe. [`PgKeys::list`] and
    /// [`PgKeys::resync`] read the whole table, and may take up to the maximum staleness. The
    /// write of spent credits ([`PgKeys::write_credits`]) alone is not cut short: made twice,
    /// it would spend them twice; it runs in the background and holds up no request.
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
            changing: tokio::sync::Mutex::new(super::follow::Unread::default()),
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
