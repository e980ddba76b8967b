//! [`PgKeys`]: keys kept in PostgreSQL, answered from an in-process snapshot that `LISTEN/NOTIFY`
//! keeps in step, so that no request waits on the database.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime};

use sqlx::postgres::{PgConnectOptions, PgPool};

mod changes;
mod follow;
mod migrate;
mod options;
mod rows;
mod spent;

pub use options::PgKeysOptions;
use rows::{SELECT_ROWS, key_record, record};

use super::set::{KeySet, valid_now};
use super::snapshot::Snapshot;
use super::{KeyDigest, KeyError, KeyStore, ListedKey, ManageError, ManagedKeys, Rotation};
use crate::format::KeyFormat;
use crate::key::VerifiedKey;
use crate::limit::RateLimits;

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
    /// The presented key's id has [`MAX_KEYS_IN_GRACE`](crate::MAX_KEYS_IN_GRACE) keys
    /// rotated out and still in their grace period: it cannot rotate until one of them ends.
    TooManyInGrace,
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
            Self::TooManyInGrace => {
                f.write_str("the id has as many rotated keys in their grace period as it may")
            }
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
            PgKeysError::TooManyInGrace => Self::TooManyInGrace,
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
    /// change already applied. It holds the changes not read back yet.
    changing: tokio::sync::Mutex<follow::Unread>,
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

impl Inner {
    /// Runs `call` (a connection taken, and the round trips of a change or a read of a few
    /// rows) within four round-trip timeouts: a connection gone silent fails the call in time,
    /// rather than holding it until the system gives up on the connection. A write whose answer
    /// never came may or may not have been made; the follower applies it if it was.
    pub(super) async fn within<T, E: Into<PgKeysError>>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, PgKeysError> {
        let deadline = self.options.round_trip_timeout.saturating_mul(4);
        match tokio::time::timeout(deadline, call).await {
            Ok(answer) => answer.map_err(Into::into),
            Err(_) => Err(follow::timed_out("the key database")),
        }
    }

    /// [`within`](Self::within) for a read of the whole table, which may take as long as the
    /// snapshot may go stale.
    pub(super) async fn within_full_read<T>(
        &self,
        call: impl Future<Output = Result<T, PgKeysError>>,
    ) -> Result<T, PgKeysError> {
        let deadline = self
            .options
            .max_staleness
            .max(self.options.round_trip_timeout);
        tokio::time::timeout(deadline, call)
            .await
            .unwrap_or_else(|_| Err(follow::timed_out("reading the keys")))
    }
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
            .read(|set| set.find(digest).map(|entry| entry.key))
    }

    /// Reads every key again now; returns how many there are.
    pub async fn resync(&self) -> Result<usize, PgKeysError> {
        self.inner.within_full_read(self.inner.resync()).await
    }

    /// Every key of the table, sorted by id: what it is and whether it is accepted now, never a
    /// key or a digest.
    pub async fn list(&self) -> Result<Vec<ListedKey>, PgKeysError> {
        let rows = self
            .inner
            .within_full_read(async {
                Ok(sqlx::query(SELECT_ROWS).fetch_all(&self.inner.pool).await?)
            })
            .await?;
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

impl PgKeys {
    /// The snapshot's answer for `key`, or `Unavailable` once it is older than allowed.
    fn answer(&self, key: &str) -> Result<VerifiedKey, KeyError> {
        let inner = &self.inner;
        if inner.staleness() > inner.options.max_staleness {
            return Err(KeyError::Unavailable);
        }
        // The guard has checked the key's length and shape already, as for `ApiKeys`.
        inner.snapshot.read(|set| set.lookup(key.as_bytes()))
    }
}

impl KeyStore for PgKeys {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
        self.answer(key)
    }

    fn verify_now(&self, key: &str) -> Option<Result<VerifiedKey, KeyError>> {
        Some(self.answer(key))
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
