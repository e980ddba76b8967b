//! The key store: SHA-256 digests of the valid keys, looked up in O(1) and compared in constant
//! time, changed at run time without blocking a request.
//!
//! - `mod.rs`: [`ApiKeys`], the [`KeyStore`] trait, hashing and the checks before it;
//! - `set.rs`: one version of the keys, what a request reads, and the lookup;
//! - `table.rs`: the hash table requests read without a lock and changes update in place;
//! - `memory.rs`: building a store in memory, key by key;
//! - `live.rs`: changing a live store (add, revoke, rotate), where a revoke goes;
//! - `file.rs`: the records file: reading, reloading, and writing every change through;
//! - `new_key.rs`: [`Key`], a key to add.
//!
//! Nothing here depends on how configuration is parsed: `config.rs` (the `API_KEYS` format)
//! builds on the store's types, and errors live in `error.rs`.

use std::fmt;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::format::KeyFormat;
use crate::https::HttpsPolicy;
use crate::key::VerifiedKey;
use crate::limit::RateLimits;

mod bounds;
mod change;
pub mod exposure;
#[cfg(feature = "file")]
mod file;
mod live;
mod manage;
mod memory;
mod new_key;
#[cfg(feature = "postgres")]
mod postgres;
pub(crate) mod set;
mod snapshot;
mod spent;
mod table;

pub use bounds::{KeyDigest, MAX_ID_LEN, MAX_KEY_LEN, MIN_KEY_LEN};
pub use live::{MAX_FINISHED_KEYS, MAX_KEYS_IN_GRACE, Rotation};
pub use manage::{ManageError, ManagedKeys};
pub use new_key::Key;
pub(crate) use new_key::Shape;
#[cfg(feature = "postgres")]
pub use postgres::{PgKeys, PgKeysError, PgKeysOptions};
pub(crate) use set::KeySet;
use set::valid_now;
use snapshot::Snapshot;

/// Why a presented key was not accepted by [`ApiKeys::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is longer than [`MAX_KEY_LEN`] bytes; it was not hashed.
    TooLong,
    /// The key holds bytes that a key never has (anything but visible ASCII), or does not have
    /// the store's [`KeyFormat`]: its prefix, length or checksum is wrong.
    Malformed,
    /// The key is well-formed but no key in the store has its digest.
    Unknown,
    /// The key was revoked.
    Revoked,
    /// The key's expiry has passed.
    Expired,
    /// The key's not-before time has not come yet.
    NotYetValid,
    /// The key is disabled: suspended until it is enabled again. The request gets `403
    /// Forbidden`.
    Disabled,
    /// The store could not answer (its database or key service failed). The request gets
    /// `503 Service Unavailable`; log the cause in the store, where it is known.
    Unavailable,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "the API key is longer than the longest accepted key",
            Self::Malformed => "the API key is not in the form of a key",
            Self::Unknown => "the API key is not a known key",
            Self::Revoked => "the API key was revoked",
            Self::Expired => "the API key expired",
            Self::NotYetValid => "the API key is not valid yet",
            Self::Disabled => "the API key is disabled",
            Self::Unavailable => "the key store could not answer",
        })
    }
}

impl std::error::Error for KeyError {}

/// The set of valid API keys, held as SHA-256 digests.
///
/// Cheap to clone (one reference count) and `Send + Sync`, so it can sit in the router state as
/// is or inside a state struct with `#[derive(FromRef)]`. It never holds a key in plaintext, and
/// its `Debug` output shows only how many keys it has.
///
/// Two kinds of change:
///
/// - building, with the `with_*` methods, which take the store by value: a store that has been
///   cloned is copied first, so other clones do not change;
/// - managing a live store, with [`add`](Self::add), [`revoke`](Self::revoke),
///   [`rotate`](Self::rotate) and `reload` (feature `file`), which take `&self`: every clone sees
///   the change from the moment the call returns, and no request waits. A change is made aside,
///   on a copy of the store's handle on its table, and written into the table when it is
///   complete, each key's record swapped whole with one atomic store (a few microseconds at a
///   million keys as at a thousand): a request sees a key as it was or as it is, never half of
///   a change to it. A store read from a records file (`from_file`) writes every change to
///   the file before the call returns; one that cannot be written is not made.
///
/// # Examples
///
/// ```
/// use axum_api_key::ApiKeys;
///
/// let keys = ApiKeys::new()
///     .with_key("partner-a", "pa_7Qm2xY9wLkV3rT8s")
///     .with_key("partner-b", "pb_Zc4nH6jR1eW5uB0d");
///
/// assert_eq!(keys.verify(b"pa_7Qm2xY9wLkV3rT8s").unwrap().id(), "partner-a");
/// assert!(keys.verify(b"pa_wrong").is_err());
/// assert_eq!(format!("{keys:?}"), "ApiKeys { len: 2, .. }");
///
/// keys.revoke("partner-b")?;
/// assert!(keys.verify(b"pb_Zc4nH6jR1eW5uB0d").is_err());
/// # Ok::<(), axum_api_key::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct ApiKeys {
    shared: Arc<Shared>,
}

struct Shared {
    /// The set requests read.
    snapshot: Snapshot,
    /// Serialises changes: each one makes a new version of the current set and publishes it.
    changing: Mutex<Changing>,
    /// Fixed when the store is built, so that a request reads them without touching the set.
    settings: Settings,
    /// Whether a write of spent credits is scheduled.
    credits_scheduled: std::sync::atomic::AtomicBool,
    /// Whether a write of last uses is scheduled.
    uses_scheduled: std::sync::atomic::AtomicBool,
}

/// What the changes of a store keep from one to the next, under the lock that serialises them.
#[derive(Default)]
pub(crate) struct Changing {
    /// Where each record stands in the records file as last read or written (`None` for a
    /// file laid out so that a change cannot be spliced in), so that a change is spliced into
    /// the text rather than the whole file parsed again.
    #[cfg(feature = "file")]
    pub(crate) file_index: Option<Arc<file::FileIndex>>,
}

/// What a store is built with besides its keys: fixed for its life.
#[derive(Clone, Default)]
pub(crate) struct Settings {
    pub(crate) https: Option<HttpsPolicy>,
    pub(crate) limits: Option<RateLimits>,
    pub(crate) exposure: Option<exposure::Exposure>,
}

impl Default for Shared {
    fn default() -> Self {
        Self::new(KeySet::default(), Settings::default())
    }
}

impl Shared {
    fn new(set: KeySet, settings: Settings) -> Self {
        Self {
            snapshot: Snapshot::new(set),
            changing: Mutex::new(Changing::default()),
            settings,
            credits_scheduled: std::sync::atomic::AtomicBool::new(false),
            uses_scheduled: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// A key as [`ApiKeys::list`] shows it: what it is, and whether it is accepted now. Never the
/// key, nor its digest.
#[derive(Debug, Clone)]
pub struct ListedKey {
    key: VerifiedKey,
    refused: Option<KeyError>,
    credits_left: Option<u64>,
    used: Option<(std::time::SystemTime, u64)>,
}

impl ListedKey {
    /// When the key's id was last used: the later of its record's `last_used` and the last
    /// request this process let in with it.
    pub fn last_used(&self) -> Option<std::time::SystemTime> {
        let seen = self.used.map(|(at, _)| at);
        self.key.last_used().max(seen)
    }

    /// How many requests this process let in with the key's id since it started.
    pub fn uses_since_start(&self) -> u64 {
        self.used.map_or(0, |(_, count)| count)
    }

    /// The credits the key has left now, if it has credits: its record's count less what
    /// this process spent and has not written back.
    pub fn credits_left(&self) -> Option<u64> {
        self.credits_left
    }

    /// The key's id, scopes, expiry and metadata.
    pub fn key(&self) -> &VerifiedKey {
        &self.key
    }

    /// Why the key is refused now ([`KeyError::Revoked`], [`KeyError::Expired`],
    /// [`KeyError::NotYetValid`] or [`KeyError::Disabled`]), or `None` when it is accepted.
    pub fn refused(&self) -> Option<KeyError> {
        self.refused
    }
}

impl ApiKeys {
    /// Every key of the store, sorted by id: for listings and tools.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, KeyError};
    ///
    /// let keys = ApiKeys::new().with_key("b", "kb_Zc4nH6jR1eW5Qa").with_key("a", "ka_7Qm2xY9wLkV3Qb");
    /// keys.revoke("b")?;
    /// let listed = keys.list();
    /// assert_eq!(listed[0].key().id(), "a");
    /// assert_eq!(listed[1].refused(), Some(KeyError::Revoked));
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn list(&self) -> Vec<ListedKey> {
        let now = std::time::SystemTime::now();
        let table = self.rate_limits().credit_table();
        let mut listed: Vec<ListedKey> = self.shared.snapshot.read(|set| {
            set.keys()
                .map(|key| ListedKey {
                    refused: valid_now(&key).err(),
                    credits_left: key.record().credits().map(|credits| {
                        credits.base(now).saturating_sub(table.spent(
                            key.record().counted_as(),
                            credits,
                            now,
                        ))
                    }),
                    used: self.rate_limits().uses().get(key.id()),
                    key,
                })
                .collect()
        });
        listed.sort_by(|a, b| a.key.id().cmp(b.key.id()));
        listed
    }

    /// The key format the store requires, if any: what [`rotate`](Self::rotate) generates
    /// keys in.
    pub fn format(&self) -> Option<KeyFormat> {
        self.shared.snapshot.read(|set| set.format.clone())
    }

    /// How many keys the store holds, revoked ones included.
    pub fn len(&self) -> usize {
        self.shared.snapshot.read(KeySet::len)
    }

    /// Whether the store holds no key, and so refuses every request.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks a presented key: refuses it unhashed when it is too long, malformed or not of the
    /// store's format; otherwise hashes it, looks the digest up comparing digests in constant
    /// time, and checks that the key is neither revoked, expired, not yet valid nor disabled.
    ///
    /// The cost does not grow with the number of keys, and no change to the store makes it
    /// wait.
    pub fn verify(&self, presented: &[u8]) -> Result<VerifiedKey, KeyError> {
        self.lookup(checked(presented)?.as_bytes())
    }

    /// Checks the format of a key already checked for length and shape, hashes it and looks it
    /// up.
    fn lookup(&self, key: &[u8]) -> Result<VerifiedKey, KeyError> {
        self.shared.snapshot.read(|set| set.lookup(key))
    }

    /// The key with this digest, whatever its state.
    pub(crate) fn find_digest(&self, digest: &KeyDigest) -> Option<VerifiedKey> {
        self.shared
            .snapshot
            .read(|set| set.find(digest).map(|entry| entry.key))
    }

    /// The HTTPS requirement, if any.
    pub(crate) fn https(&self) -> Option<&HttpsPolicy> {
        self.shared.settings.https.as_ref()
    }

    /// The rate limits and throttle the store's guards enforce: those given with
    /// [`with_rate_limits`](Self::with_rate_limits), or the process-wide defaults.
    pub fn rate_limits(&self) -> &RateLimits {
        self.shared
            .settings
            .limits
            .as_ref()
            .unwrap_or_else(|| RateLimits::shared())
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Where a guard looks keys up: [`ApiKeys`], or a store of your own, such as a database table
/// of key digests or a key service.
///
/// The guard calls [`verify`](Self::verify) only with a key that is visible ASCII and at most
/// [`MAX_KEY_LEN`] bytes, after every cheap check, and at most once per request. Name the store
/// in the attribute, `#[api_key(store = PartnerKeys)]`, and provide it from the router state
/// through `FromRef`, as for `ApiKeys`.
///
/// ```
/// use axum_api_key::{api_key, digest, KeyError, KeyStore, VerifiedKey};
///
/// /// Keys kept as digests in a database; a map stands in for the table here.
/// #[derive(Clone)]
/// struct PartnerKeys {
///     table: std::sync::Arc<std::collections::HashMap<[u8; 32], String>>,
/// }
///
/// impl KeyStore for PartnerKeys {
///     async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
///         // A real store would run `SELECT id FROM api_keys WHERE digest = $1` here.
///         match self.table.get(&digest(key.as_bytes())) {
///             Some(id) => Ok(VerifiedKey::new(id.as_str())),
///             None => Err(KeyError::Unknown),
///         }
///     }
/// }
///
/// #[api_key(store = PartnerKeys)]
/// async fn partner_only(key: VerifiedKey) -> String {
///     format!("hello {}", key.id())
/// }
/// ```
///
/// A lookup by digest in an indexed column is as safe as the in-memory store's: the digest of
/// a guess reveals nothing about the digests that are stored.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an API key store",
    label = "named as the store here",
    note = "implement `axum_api_key::KeyStore` for `{Self}`: `async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError>`"
)]
pub trait KeyStore: Send + Sync + 'static {
    /// Accepts `key` as one of the store's keys, or says why not: [`KeyError::Unknown`] for a
    /// key it does not hold, [`KeyError::Unavailable`] when it cannot answer.
    fn verify(&self, key: &str) -> impl Future<Output = Result<VerifiedKey, KeyError>> + Send;

    /// Whether keys must arrive over HTTPS, and how to tell; `None` (the default) accepts any
    /// transport.
    fn https(&self) -> Option<&HttpsPolicy> {
        None
    }

    /// Whether [`verify`](Self::verify) answers from memory, without waiting on anything.
    ///
    /// A store that waits (a database, a key service) leaves the default, `false`: each
    /// attempt then reserves its place in the client's brute-force budget before the store is
    /// asked, so that however many guesses one client has in flight, at most its budget
    /// reaches the store. A store that answers at once counts the attempt after it, which
    /// spares accepted requests the reservation.
    fn answers_from_memory(&self) -> bool {
        false
    }

    /// The answer of [`verify`](Self::verify) given at once, for a store that has one without
    /// waiting on anything; `None` (the default) for a store that must be awaited. The guard as
    /// a layer checks a key through it without a future of its own. Not part of the public API.
    #[doc(hidden)]
    fn verify_now(&self, key: &str) -> Option<Result<VerifiedKey, KeyError>> {
        let _ = key;
        None
    }

    /// Where the guard counts requests against rate limits, and failed attempts against the
    /// brute-force throttle. The default is one process-wide [`RateLimits`] with default
    /// settings, shared by every store that does not give its own, so a custom store enforces
    /// the limits its keys carry ([`VerifiedKey::with_rate_limit`]) without any code.
    fn rate_limits(&self) -> &RateLimits {
        RateLimits::shared()
    }

    /// Called after a request spent credits, so that a store that writes them back can do so
    /// in batches. Not part of the public API.
    #[doc(hidden)]
    fn credits_spent(&self) {}

    /// Called after a request was let in with a key, so that a store that writes last uses
    /// back can do so in batches. Not part of the public API.
    #[doc(hidden)]
    fn key_used(&self) {}

    /// Called when one of the store's keys was seen over plain HTTP (on `route`), so that a
    /// store with an [`Exposure`](exposure::Exposure) acts on it. Not part of the
    /// public API.
    #[doc(hidden)]
    fn key_exposed(&self, key: &str, route: String) -> impl Future<Output = ()> + Send {
        let _ = (key, route);
        async {}
    }
}

impl KeyStore for ApiKeys {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
        // The guard has checked the key's length and shape already.
        self.lookup(key.as_bytes())
    }

    fn verify_now(&self, key: &str) -> Option<Result<VerifiedKey, KeyError>> {
        Some(self.lookup(key.as_bytes()))
    }

    fn https(&self) -> Option<&HttpsPolicy> {
        ApiKeys::https(self)
    }

    fn answers_from_memory(&self) -> bool {
        true
    }

    fn rate_limits(&self) -> &RateLimits {
        ApiKeys::rate_limits(self)
    }

    fn credits_spent(&self) {
        self.schedule_credits_write();
    }

    fn key_used(&self) {
        self.schedule_uses_write();
    }

    fn key_exposed(&self, key: &str, route: String) -> impl Future<Output = ()> + Send {
        let exposure = self.shared.settings.exposure.clone();
        let digest = digest(key.as_bytes());
        let store = self.clone();
        async move {
            let Some(exposure) = exposure else { return };
            let Some(found) = store.find_digest(&digest) else {
                return;
            };
            let revoked = found.record().revoked;
            let acted = exposure::act(
                &exposure,
                &store,
                &digest,
                found.id().to_owned(),
                revoked,
                exposure::Found {
                    how: "plain_http",
                    url: Some(&route),
                    source: None,
                },
            )
            .await;
            if let Err(error) = acted {
                tracing::error!(
                    target: "axum_api_key::audit",
                    outcome = "failed",
                    reason = "key_exposed",
                    key_id = found.id(),
                    error = %error,
                    "a key seen over plain HTTP could not be acted on"
                );
            }
        }
    }
}

/// The digest written as 64 hexadecimal digits, as records and `sha256:` entries give it.
pub(crate) fn decode_digest(hex: &str) -> Option<KeyDigest> {
    crate::hex::decode32(hex.as_bytes())
}

/// The SHA-256 digest of a key, as the store keeps it and as `id=sha256:<hex>` entries give it.
///
/// ```
/// let d = axum_api_key::digest(b"hello");
/// assert_eq!(d[..4], [0x2c, 0xf2, 0x4d, 0xba]);
/// ```
pub fn digest(key: &[u8]) -> KeyDigest {
    Sha256::digest(key).into()
}

/// The key's text, once its length and characters are those of a key: both are checked before
/// any hashing or lookup, so an oversized or garbage key costs almost nothing.
pub(crate) fn checked(key: &[u8]) -> Result<&str, KeyError> {
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong);
    }
    if !is_key_shaped(key) {
        return Err(KeyError::Malformed);
    }
    std::str::from_utf8(key).map_err(|_| KeyError::Malformed)
}

/// Keys are visible ASCII: anything else cannot be a key, whatever the store holds.
///
/// Eight bytes at a time: a byte is visible ASCII (0x21 to 0x7E) when its high bit is clear,
/// adding 0x5F sets it (the byte is at least 0x21), and adding 0x01 does not (it is below 0x7F).
/// No addition carries into the next byte, since every byte is below 0x80 by then.
pub(crate) fn is_key_shaped(key: &[u8]) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let graphic =
        |word: u64| word & HIGH == 0 && (word + 0x5F * LOW) & !(word + LOW) & HIGH == HIGH;
    let mut chunks = key.chunks_exact(8);
    let words_ok = chunks.by_ref().all(|chunk| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        graphic(u64::from_le_bytes(word))
    });
    !key.is_empty() && words_ok && chunks.remainder().iter().all(u8::is_ascii_graphic)
}

#[cfg(test)]
mod tests;
