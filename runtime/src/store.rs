//! The key store: SHA-256 digests of the valid keys, looked up in O(1) and compared in constant
//! time, changed at run time without blocking a request.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, ConfigErrorKind};
use crate::format::KeyFormat;
use crate::https::HttpsPolicy;
use crate::key::{KeyRecord, VerifiedKey};
use crate::radix::Radix;

/// The longest key, in bytes, that is ever hashed. Longer keys are refused before any work.
///
/// Generous for any real key (a 256-bit random key is 43 characters in base64) while bounding the
/// work an attacker can make one request cost.
pub const MAX_KEY_LEN: usize = 256;

/// The SHA-256 digest of a key: what the store holds instead of the key.
pub type KeyDigest = [u8; 32];

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
///   the change, requests in flight finish on the set they started with, and no request waits.
///   Each change makes a new version of the set that shares all but the changed path with the
///   last (a few microseconds at a million keys) and swaps it in whole, so a request never sees
///   half of one. A store read from a records file (`from_file`) writes every change to
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

#[derive(Default)]
struct Shared {
    /// The set requests read, swapped whole on every change.
    current: ArcSwap<KeySet>,
    /// Serialises changes: each one makes a new version of the current set and swaps it in.
    changing: Mutex<()>,
    /// Fixed when the store is built, so that a request reads it without touching the set.
    https: Option<HttpsPolicy>,
}

/// One version of the store: what a request reads, all of it immutable.
///
/// Both tables are [`Radix`] maps, which share all but the changed path with the version they
/// were made from: copying a set and changing a key costs the same at any size.
#[derive(Clone, Default)]
pub(crate) struct KeySet {
    /// The keys, by their digest's first word, which is already a uniform hash.
    by_digest: Radix<Entry>,
    /// The first word of the digest of every key, by a hash of its id: the keys an id names
    /// (more than one during a rotation) without a scan.
    by_id: Radix<u64>,
    len: usize,
    pub(crate) format: Option<KeyFormat>,
    /// The records file the set was read from, for [`ApiKeys::reload`].
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) file: Option<Arc<std::path::Path>>,
    /// Whether the records file may hold no key (`from_file_allowing_empty`).
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) allow_empty: bool,
    /// Which file (device and inode) the set was last read from, to tell a file replaced by a
    /// rename from one rewritten in place.
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) file_id: Option<(u64, u64)>,
}

#[derive(Clone)]
pub(crate) struct Entry {
    digest: Words,
    pub(crate) key: VerifiedKey,
}

/// The hash an id is filed under in [`KeySet::by_id`]: SipHash with fixed keys (ids come from
/// the service's own configuration, not from requests).
fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

impl ApiKeys {
    /// An empty store, which refuses every key. Add keys with [`with_key`](Self::with_key).
    pub fn new() -> Self {
        Self::default()
    }

    /// A store of `set`, not shared with any other.
    pub(crate) fn from_parts(set: KeySet, https: Option<HttpsPolicy>) -> Self {
        let shared = Shared {
            current: ArcSwap::from_pointee(set),
            changing: Mutex::new(()),
            https,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Adds a key under `id`, keeping only the key's digest. Shorthand for
    /// `with(Key::new(id, key))`.
    ///
    /// For tests and tools; services read their keys from configuration with
    /// [`from_env`](Self::from_env).
    ///
    /// # Panics
    ///
    /// When [`try_with`](Self::try_with) would return an error.
    #[track_caller]
    pub fn with_key(self, id: impl Into<String>, key: impl AsRef<[u8]>) -> Self {
        self.with(Key::new(id, key))
    }

    /// Adds a key under `id`, keeping only the key's digest, or says why it cannot.
    ///
    /// ```
    /// use axum_api_key::ApiKeys;
    ///
    /// let keys = ApiKeys::new().try_with_key("ci", "ci_kP3vN8qZ1xT6")?;
    /// assert!(keys.try_with_key("ci", "another").is_err()); // the id is taken
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn try_with_key(
        self,
        id: impl Into<String>,
        key: impl AsRef<[u8]>,
    ) -> Result<Self, ConfigError> {
        self.try_with(Key::new(id, key))
    }

    /// Adds a key described by a [`Key`]: its id, its digest, its scopes and validity.
    ///
    /// # Panics
    ///
    /// When [`try_with`](Self::try_with) would return an error: an empty or repeated id, an
    /// empty key, a key longer than [`MAX_KEY_LEN`], a key with characters other than visible
    /// ASCII or not of the store's format, an invalid scope, or a key already in the store.
    #[track_caller]
    pub fn with(self, key: Key) -> Self {
        match self.try_with(key) {
            Ok(keys) => keys,
            Err(error) => panic!("ApiKeys::with: {error}"),
        }
    }

    /// Adds a key described by a [`Key`], or says why it cannot.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, Key, digest};
    ///
    /// let keys = ApiKeys::new()
    ///     .try_with(Key::new("reader", "rd_9Xc2Vb7Nm4Lk").scopes(["orders:read"]))?
    ///     .try_with(Key::from_digest("partner-a", digest(b"pa_7Qm2xY9wLkV3rT8s")))?;
    /// assert!(keys.verify(b"rd_9Xc2Vb7Nm4Lk").unwrap().has_scope("orders:read"));
    /// assert_eq!(keys.verify(b"pa_7Qm2xY9wLkV3rT8s").unwrap().id(), "partner-a");
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn try_with(self, key: Key) -> Result<Self, ConfigError> {
        self.build(|set| set.insert(key, false))
    }

    /// Requires every key to have `format`: a key without its prefix, length or checksum is
    /// refused before it is hashed, and keys added in plaintext are checked too.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, KeyFormat};
    ///
    /// let format = KeyFormat::new("myapp")?;
    /// let key = format.generate();
    /// let keys = ApiKeys::new().with_format(format).try_with_key("partner-a", &key)?;
    /// assert!(keys.verify(key.as_bytes()).is_ok());
    /// assert_eq!(keys.verify(b"myapp_typo").unwrap_err(), axum_api_key::KeyError::Malformed);
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn with_format(self, format: KeyFormat) -> Self {
        let built = self.build(|set| {
            set.format = Some(format);
            Ok(())
        });
        built.unwrap_or_else(|_| unreachable!("setting the format cannot fail"))
    }

    /// Requires keys to arrive over HTTPS; see [`HttpsPolicy`]. A key sent over plain HTTP is
    /// refused without being verified, and the refusal is logged as a warning that the key
    /// travelled in clear and should be rotated.
    pub fn with_https(mut self, policy: HttpsPolicy) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.https = Some(policy);
            return self;
        }
        Self::from_parts(KeySet::clone(&self.shared.current.load()), Some(policy))
    }

    /// How many keys the store holds, revoked ones included.
    pub fn len(&self) -> usize {
        self.shared.current.load().len
    }

    /// Whether the store holds no key, and so refuses every request.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks a presented key: refuses it unhashed when it is too long, malformed or not of the
    /// store's format; otherwise hashes it, looks the digest up comparing digests in constant
    /// time, and checks that the key is neither revoked, expired nor not yet valid.
    ///
    /// The cost does not grow with the number of keys, and no change to the store makes it
    /// wait.
    pub fn verify(&self, presented: &[u8]) -> Result<VerifiedKey, KeyError> {
        self.lookup(checked(presented)?.as_bytes())
    }

    /// Checks the format of a key already checked for length and shape, hashes it and looks it
    /// up.
    fn lookup(&self, key: &[u8]) -> Result<VerifiedKey, KeyError> {
        let set = self.shared.current.load();
        if let Some(format) = &set.format
            && !format.is_well_formed(key)
        {
            return Err(KeyError::Malformed);
        }
        let entry = set.find(&digest(key)).ok_or(KeyError::Unknown)?;
        valid_now(&entry.key)?;
        Ok(entry.key.clone())
    }

    /// The HTTPS requirement, if any.
    pub(crate) fn https(&self) -> Option<&HttpsPolicy> {
        self.shared.https.as_ref()
    }

    /// Adds a key to the live store; every clone sees it from the next request on.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, Key};
    ///
    /// let keys = ApiKeys::new();
    /// let served = keys.clone(); // as the router holds it
    /// keys.add(Key::new("late", "lt_Qw8Er2Ty6Ui1"))?;
    /// assert_eq!(served.verify(b"lt_Qw8Er2Ty6Ui1").unwrap().id(), "late");
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn add(&self, key: Key) -> Result<(), ConfigError> {
        self.change(|set, edits| {
            let digest = key.digest;
            set.insert(key, false)?;
            if let Ok(digest) = digest
                && let Some(entry) = set.find(&digest)
            {
                edits.push(FileEdit::Append {
                    digest,
                    record: entry.key.record().clone(),
                });
            }
            Ok(())
        })
    }

    /// Revokes every key with this id: from the moment it returns, no request is let in with
    /// them. Returns how many keys were revoked.
    pub fn revoke(&self, id: &str) -> Result<usize, ConfigError> {
        self.change(|set, edits| {
            let revoked = set.update(id, |record| record.revoked = true);
            if revoked == 0 {
                return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
            }
            edits.push(FileEdit::Revoke { id: id.into() });
            Ok(revoked)
        })
    }

    /// Issues a new key for `id`, in the store's [`KeyFormat`], and lets the old ones keep
    /// working until `grace` has passed. The new key has the old one's scopes and metadata and
    /// no expiry. Returns the new key, which is not kept anywhere: hand it to its owner now.
    ///
    /// The store needs a key format to generate the key in ([`with_format`](Self::with_format),
    /// or `format = "…"` in the records file); without one, `rotate` returns an error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum_api_key::{ApiKeys, Key, KeyFormat};
    ///
    /// let format = KeyFormat::new("myapp")?;
    /// let old = format.generate();
    /// let keys = ApiKeys::new().with_format(format).try_with(Key::new("partner-a", &old).scopes(["orders:read"]))?;
    ///
    /// let new = keys.rotate("partner-a", Duration::from_secs(24 * 3600))?;
    /// assert_eq!(keys.verify(new.as_bytes()).unwrap().scopes().collect::<Vec<_>>(), ["orders:read"]);
    /// assert!(keys.verify(old.as_bytes()).is_ok()); // until the grace period ends
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn rotate(&self, id: &str, grace: Duration) -> Result<String, ConfigError> {
        // A grace period past what a clock can hold never ends: the old key keeps its expiry.
        let deadline = SystemTime::now().checked_add(grace);
        self.change(|set, edits| {
            let Some(format) = set.format.clone() else {
                return Err(ConfigError::new(ConfigErrorKind::NoFormat).with_id(id));
            };
            let Some(template) = set.live_record(id) else {
                return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
            };
            if let Some(deadline) = deadline {
                set.update(id, |record| {
                    record
                        .set_expires(Some(record.expires().map_or(deadline, |e| e.min(deadline))));
                });
                edits.push(FileEdit::Expire {
                    id: id.into(),
                    at: deadline,
                });
            }
            let new = format.generate();
            // The new key keeps what the key may do, not when: its own validity starts now.
            let mut record = template;
            record.revoked = false;
            record.set_not_before(None);
            record.set_expires(None);
            let digest = digest(new.as_bytes());
            set.insert_record(digest, record.clone(), true)?;
            edits.push(FileEdit::Append { digest, record });
            Ok(new)
        })
    }

    /// Runs one change on a copy of the live set and swaps it in, or leaves the set as it was.
    ///
    /// For a store read from a records file, the change's edits are written to the file first,
    /// and the set swapped in is the file as written: a change that cannot be written is not
    /// made, and changes another process wrote to the file meanwhile are taken along.
    pub(crate) fn change<T>(
        &self,
        change: impl FnOnce(&mut KeySet, &mut Vec<FileEdit>) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        let _one_at_a_time = self
            .shared
            .changing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = KeySet::clone(&self.shared.current.load());
        let mut edits = Vec::new();
        let out = change(&mut next, &mut edits)?;
        #[cfg(feature = "file")]
        if let Some(path) = next.file.clone()
            && !edits.is_empty()
        {
            next = crate::file::write_through(&path, &edits, &next)?;
        }
        self.shared.current.store(Arc::new(next));
        Ok(out)
    }

    /// Runs one change for a builder: in place when no one else holds this store, on a copy
    /// otherwise, so that other clones do not change.
    fn build(
        mut self,
        change: impl FnOnce(&mut KeySet) -> Result<(), ConfigError>,
    ) -> Result<Self, ConfigError> {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => {
                let mut set = shared.current.swap(Arc::default());
                let result = change(Arc::make_mut(&mut set));
                shared.current.store(set);
                result.map(|()| self)
            }
            None => {
                let mut set = KeySet::clone(&self.shared.current.load());
                change(&mut set)?;
                Ok(Self::from_parts(set, self.shared.https.clone()))
            }
        }
    }
}

/// One change of a live store, as the records file of a store read from one records it.
#[cfg_attr(not(feature = "file"), allow(dead_code))]
pub(crate) enum FileEdit {
    /// A new key.
    Append {
        digest: KeyDigest,
        record: KeyRecord,
    },
    /// Every key of this id revoked.
    Revoke { id: Box<str> },
    /// Every key of this id expiring at this time at the latest.
    Expire { id: Box<str>, at: SystemTime },
}

/// Whether the key may be used now: not revoked, not expired, not before its time.
fn valid_now(key: &VerifiedKey) -> Result<(), KeyError> {
    let record = key.record();
    if record.revoked {
        return Err(KeyError::Revoked);
    }
    if !record.has_validity() {
        return Ok(());
    }
    let now = SystemTime::now();
    if record.expires().is_some_and(|expires| now >= expires) {
        return Err(KeyError::Expired);
    }
    if record
        .not_before()
        .is_some_and(|not_before| now < not_before)
    {
        return Err(KeyError::NotYetValid);
    }
    Ok(())
}

impl KeySet {
    /// Adds a key; `shared_id` allows an id that already names keys (a rotation).
    pub(crate) fn insert(&mut self, key: Key, shared_id: bool) -> Result<(), ConfigError> {
        let Key {
            id,
            digest,
            shape,
            record,
        } = key;
        let fail = |kind| Err(ConfigError::new(kind).with_id(&id));
        let digest = match digest {
            Ok(digest) => digest,
            Err(kind) => return fail(kind),
        };
        if let Some(format) = &self.format {
            let fits = match &shape {
                Shape::Unknown => true,
                Shape::Plain => false,
                Shape::Generated(prefix) => format.prefix() == &**prefix,
            };
            if !fits {
                return fail(ConfigErrorKind::NotOfFormat);
            }
        }
        let mut record = record;
        record.id = id.as_str().into();
        self.insert_record(digest, record, shared_id)
    }

    fn insert_record(
        &mut self,
        digest: KeyDigest,
        record: KeyRecord,
        shared_id: bool,
    ) -> Result<(), ConfigError> {
        let fail = |kind| Err(ConfigError::new(kind).with_id(&record.id));
        if let Some(kind) = invalid_id(&record.id) {
            return fail(kind);
        }
        if record.scopes.iter().any(|scope| !is_scope_token(scope)) {
            return fail(ConfigErrorKind::InvalidScope);
        }
        if !shared_id && self.named(&record.id).next().is_some() {
            return fail(ConfigErrorKind::DuplicateId);
        }
        if self.find(&digest).is_some() {
            return fail(ConfigErrorKind::DuplicateKey);
        }
        let digest = Words::of(&digest);
        let word = digest.table_hash();
        self.by_id.change(id_hash(&record.id), |words| {
            if !words.contains(&word) {
                words.push(word);
            }
        });
        let entry = Entry {
            digest,
            key: VerifiedKey::from_record(record),
        };
        self.by_digest.change(word, |entries| entries.push(entry));
        self.len += 1;
        Ok(())
    }

    /// The keys named `id`.
    fn named<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.by_id.group(id_hash(id)).iter().flat_map(move |&word| {
            self.by_digest
                .group(word)
                .iter()
                .filter(move |entry| entry.digest.table_hash() == word && entry.key.id() == id)
        })
    }

    /// Applies `update` to the record of every key named `id`; returns how many there were.
    fn update(&mut self, id: &str, update: impl Fn(&mut KeyRecord)) -> usize {
        let mut words: Vec<u64> = self.by_id.group(id_hash(id)).to_vec();
        words.dedup();
        let mut updated = 0;
        for word in words {
            updated += self.by_digest.change(word, |entries| {
                let mut count = 0;
                for entry in entries
                    .iter_mut()
                    .filter(|entry| entry.digest.table_hash() == word && entry.key.id() == id)
                {
                    let mut record = entry.key.record().clone();
                    update(&mut record);
                    entry.key = VerifiedKey::from_record(record);
                    count += 1;
                }
                count
            });
        }
        updated
    }

    /// The record of a key named `id` that is not revoked, to model a rotated key on.
    fn live_record(&self, id: &str) -> Option<KeyRecord> {
        self.named(id)
            .filter(|entry| !entry.key.record().revoked)
            .max_by_key(|entry| entry.key.record().expires().is_none())
            .map(|entry| entry.key.record().clone())
    }

    pub(crate) fn find(&self, digest: &KeyDigest) -> Option<&Entry> {
        let digest = Words::of(digest);
        // The group is searched by the digest's first word, as any hash table probes by its
        // hash; the candidate that matches it is compared whole in constant time, so the lookup
        // reveals nothing about how close a wrong key's digest came to a stored one beyond
        // sharing 64 bits, which no one can aim for.
        let word = digest.table_hash();
        self.by_digest
            .group(word)
            .iter()
            .filter(|entry| entry.digest.table_hash() == word)
            .find(|entry| entry.digest.ct_eq(&digest))
    }

    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// A key to add to a store: its id, its digest (the plaintext is hashed at once and dropped),
/// its scopes, validity and metadata.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use axum_api_key::{ApiKeys, Key};
///
/// let keys = ApiKeys::new().with(
///     Key::new("partner-a", "pa_7Qm2xY9wLkV3rT8s")
///         .scopes(["orders:read", "orders:write"])
///         .expires_at(SystemTime::now() + Duration::from_secs(90 * 24 * 3600))
///         .metadata("owner", "Partner A Ltd"),
/// );
/// let key = keys.verify(b"pa_7Qm2xY9wLkV3rT8s").unwrap();
/// assert_eq!(key.scopes().collect::<Vec<_>>(), ["orders:read", "orders:write"]);
/// assert_eq!(key.metadata("owner"), Some("Partner A Ltd"));
/// ```
#[derive(Clone)]
pub struct Key {
    id: String,
    digest: Result<KeyDigest, ConfigErrorKind>,
    /// What the plaintext looked like, to check it against a store's format later.
    shape: Shape,
    record: KeyRecord,
}

/// What is known of a key's plaintext once it is dropped.
#[derive(Clone)]
enum Shape {
    /// Given by its digest: nothing.
    Unknown,
    /// Not a generated key.
    Plain,
    /// A well-formed generated key with this prefix.
    Generated(Box<str>),
}

impl Key {
    /// A key given in plaintext. It is checked and hashed here; a key that could never be
    /// presented (empty, longer than [`MAX_KEY_LEN`], not visible ASCII) is refused when it is
    /// added to a store.
    pub fn new(id: impl Into<String>, key: impl AsRef<[u8]>) -> Self {
        let key = key.as_ref();
        let digest = if key.is_empty() {
            Err(ConfigErrorKind::EmptyKey)
        } else if key.len() > MAX_KEY_LEN {
            Err(ConfigErrorKind::KeyTooLong)
        } else if !is_key_shaped(key) {
            Err(ConfigErrorKind::KeyNotPrintable)
        } else {
            Ok(digest(key))
        };
        let shape = KeyFormat::prefix_of(key)
            .map_or(Shape::Plain, |prefix| Shape::Generated(prefix.into()));
        Self {
            id: id.into(),
            digest,
            shape,
            record: KeyRecord::default(),
        }
    }

    /// A key given by its SHA-256 [`digest`], for keys whose plaintext the service never sees.
    pub fn from_digest(id: impl Into<String>, digest: KeyDigest) -> Self {
        Self {
            id: id.into(),
            digest: Ok(digest),
            shape: Shape::Unknown,
            record: KeyRecord::default(),
        }
    }

    /// The scopes the key holds, such as `orders:read`. A scope is visible ASCII without
    /// `"`, `\`, `,`, `[` or `]` (an RFC 6750 scope token that fits in `API_KEYS`).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.record.scopes = scopes
            .into_iter()
            .map(|s| s.into().into_boxed_str())
            .collect();
        self
    }

    /// The key is refused before this time.
    pub fn not_before(mut self, time: SystemTime) -> Self {
        self.record.set_not_before(Some(time));
        self
    }

    /// The key is refused from this time on, with the detail "API key expired".
    pub fn expires_at(mut self, time: SystemTime) -> Self {
        self.record.set_expires(Some(time));
        self
    }

    /// The key is kept in the store but refused, as a revoked key.
    pub fn revoked(mut self, revoked: bool) -> Self {
        self.record.revoked = revoked;
        self
    }

    /// A free field of the key's record, such as its owner or a ticket number, which handlers
    /// read with [`VerifiedKey::metadata`].
    pub fn metadata(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.record.insert_metadata(name.into(), value.into());
        self
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("scopes", &self.record.scopes)
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
}

impl KeyStore for ApiKeys {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
        // The guard has checked the key's length and shape already.
        self.lookup(key.as_bytes())
    }

    fn https(&self) -> Option<&HttpsPolicy> {
        ApiKeys::https(self)
    }
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

/// A digest as four words, the form the table keeps: compared with four XORs, and hashed by
/// its first word, which is already uniformly distributed.
#[derive(Clone, Copy)]
struct Words([u64; 4]);

impl Words {
    fn of(digest: &KeyDigest) -> Self {
        let mut words = [0u64; 4];
        for (word, bytes) in words.iter_mut().zip(digest.chunks_exact(8)) {
            *word = u64::from_ne_bytes(bytes.try_into().unwrap_or_default());
        }
        Self(words)
    }

    fn table_hash(&self) -> u64 {
        self.0[0]
    }

    /// Equality in constant time: the differences of all words are folded into one without
    /// branching, and only that word goes through `subtle`'s comparison.
    fn ct_eq(&self, other: &Self) -> bool {
        let [a0, a1, a2, a3] = self.0;
        let [b0, b1, b2, b3] = other.0;
        let difference = (a0 ^ b0) | (a1 ^ b1) | (a2 ^ b2) | (a3 ^ b3);
        bool::from(difference.ct_eq(&0))
    }
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

/// A scope the store accepts: an RFC 6750 scope token (visible ASCII without `"` or `\`) that
/// also fits in the `API_KEYS` format (no `,`, `[` or `]`).
pub(crate) fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b',' | b'[' | b']'))
}

/// Why `id` cannot name a key, if it cannot.
fn invalid_id(id: &str) -> Option<ConfigErrorKind> {
    if id.is_empty() {
        Some(ConfigErrorKind::EmptyId)
    } else if !id.bytes().all(|b| b.is_ascii_graphic()) || id.contains([',', '=', '[', ']']) {
        Some(ConfigErrorKind::InvalidId)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_known_keys_only() {
        let keys = ApiKeys::new().with_key("a", "key-a").with_key("b", "key-b");
        assert_eq!(
            keys.verify(b"key-a").map(|k| k.id().to_owned()),
            Ok("a".to_owned())
        );
        assert_eq!(
            keys.verify(b"key-b").map(|k| k.id().to_owned()),
            Ok("b".to_owned())
        );
        assert_eq!(keys.verify(b"key-c").err(), Some(KeyError::Unknown));
        assert_eq!(keys.verify(b"").err(), Some(KeyError::Malformed));
        assert_eq!(keys.verify(b"key a").err(), Some(KeyError::Malformed));
        assert_eq!(
            keys.verify("kéy".as_bytes()).err(),
            Some(KeyError::Malformed)
        );
        assert_eq!(
            keys.verify(&[b'k'; MAX_KEY_LEN + 1]).err(),
            Some(KeyError::TooLong)
        );
    }

    #[test]
    fn the_shape_check_accepts_exactly_visible_ascii() {
        for byte in 0..=u8::MAX {
            for at in 0..17 {
                let mut key = vec![b'k'; 17];
                key[at] = byte;
                assert_eq!(
                    is_key_shaped(&key),
                    byte.is_ascii_graphic(),
                    "byte {byte:#04x} at {at}"
                );
            }
        }
        assert!(!is_key_shaped(b""));
    }

    #[test]
    fn a_key_of_the_maximum_length_is_accepted() {
        let long = "k".repeat(MAX_KEY_LEN);
        let keys = ApiKeys::new().with_key("long", &long);
        assert!(keys.verify(long.as_bytes()).is_ok());
    }

    #[test]
    fn refuses_bad_additions() {
        let keys = ApiKeys::new().with_key("a", "key-a");
        let kind = |r: Result<ApiKeys, ConfigError>| r.err().map(|e| e.kind());
        assert_eq!(
            kind(keys.clone().try_with_key("a", "other")),
            Some(ConfigErrorKind::DuplicateId)
        );
        assert_eq!(
            kind(keys.clone().try_with_key("b", "key-a")),
            Some(ConfigErrorKind::DuplicateKey)
        );
        assert_eq!(
            kind(keys.clone().try_with_key("", "x")),
            Some(ConfigErrorKind::EmptyId)
        );
        assert_eq!(
            kind(keys.clone().try_with_key("b c", "x")),
            Some(ConfigErrorKind::InvalidId)
        );
        assert_eq!(
            kind(keys.clone().try_with_key("b", "")),
            Some(ConfigErrorKind::EmptyKey)
        );
        assert_eq!(
            kind(keys.clone().try_with_key("b", "a b")),
            Some(ConfigErrorKind::KeyNotPrintable)
        );
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert_eq!(
            kind(keys.clone().try_with_key("b", long)),
            Some(ConfigErrorKind::KeyTooLong)
        );
        // A refused addition leaves the store as it was.
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn building_copies_a_shared_store_and_managing_changes_every_clone() {
        let one = ApiKeys::new().with_key("a", "key-a");
        let two = one.clone().with_key("b", "key-b");
        assert_eq!(one.len(), 1);
        assert_eq!(two.len(), 2);
        assert!(one.verify(b"key-b").is_err());

        let served = two.clone();
        two.add(Key::new("c", "key-c")).unwrap();
        assert_eq!(served.verify(b"key-c").unwrap().id(), "c");
        served.revoke("a").unwrap();
        assert_eq!(two.verify(b"key-a").unwrap_err(), KeyError::Revoked);
        assert_eq!(
            one.verify(b"key-a").unwrap().id(),
            "a",
            "a store built apart is apart"
        );
    }

    #[test]
    fn validity_times_are_enforced() {
        let hour = Duration::from_secs(3600);
        let now = SystemTime::now();
        let keys = ApiKeys::new()
            .with(Key::new("old", "key-old").expires_at(now - hour))
            .with(Key::new("early", "key-early").not_before(now + hour))
            .with(
                Key::new("current", "key-current")
                    .not_before(now - hour)
                    .expires_at(now + hour),
            )
            .with(Key::new("gone", "key-gone").revoked(true));
        assert_eq!(keys.verify(b"key-old").unwrap_err(), KeyError::Expired);
        assert_eq!(
            keys.verify(b"key-early").unwrap_err(),
            KeyError::NotYetValid
        );
        assert_eq!(keys.verify(b"key-current").unwrap().id(), "current");
        assert_eq!(keys.verify(b"key-gone").unwrap_err(), KeyError::Revoked);
        assert_eq!(
            keys.revoke("nobody").unwrap_err().kind(),
            ConfigErrorKind::UnknownId
        );
    }

    #[test]
    fn rotation_keeps_the_old_key_until_the_deadline() {
        let format = KeyFormat::new("test").unwrap();
        let old = format.generate();
        let keys = ApiKeys::new()
            .with_format(format)
            .with(Key::new("svc", &old).scopes(["a"]).metadata("owner", "ops"));
        let new = keys.rotate("svc", Duration::from_secs(60)).unwrap();
        let rotated = keys.verify(new.as_bytes()).unwrap();
        assert_eq!(
            (rotated.id(), rotated.scopes().collect::<Vec<_>>()),
            ("svc", vec!["a"])
        );
        assert_eq!(rotated.metadata("owner"), Some("ops"));
        assert!(rotated.expires_at().is_none());
        let old_key = keys.verify(old.as_bytes()).unwrap();
        assert!(
            old_key
                .expires_at()
                .is_some_and(|at| at <= SystemTime::now() + Duration::from_secs(60))
        );

        let newer = keys.rotate("svc", Duration::ZERO).unwrap();
        assert_eq!(keys.verify(old.as_bytes()).unwrap_err(), KeyError::Expired);
        assert_eq!(keys.verify(new.as_bytes()).unwrap_err(), KeyError::Expired);
        assert!(keys.verify(newer.as_bytes()).is_ok());
        // A grace period no clock can hold is no panic: the old key simply keeps working.
        let endless = keys.rotate("svc", Duration::MAX).unwrap();
        assert!(keys.verify(endless.as_bytes()).is_ok());
        assert!(keys.verify(newer.as_bytes()).is_ok());
        assert!(
            keys.verify(newer.as_bytes())
                .unwrap()
                .expires_at()
                .is_none()
        );
        assert_eq!(
            ApiKeys::new()
                .with_key("x", "key-x")
                .rotate("x", Duration::ZERO)
                .unwrap_err()
                .kind(),
            ConfigErrorKind::NoFormat
        );
    }

    #[test]
    fn a_format_refuses_other_keys_before_lookup() {
        let format = KeyFormat::new("app").unwrap();
        let good = format.generate();
        let keys = ApiKeys::new()
            .with_format(format.clone())
            .with_key("a", &good);
        assert!(keys.verify(good.as_bytes()).is_ok());
        let mut typo = good.clone().into_bytes();
        let last = typo.len() - 8;
        typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
        assert_eq!(keys.verify(&typo).unwrap_err(), KeyError::Malformed);
        assert_eq!(keys.verify(b"app_short").unwrap_err(), KeyError::Malformed);
        let other = KeyFormat::new("other").unwrap().generate();
        assert_eq!(
            keys.clone().try_with_key("b", other).unwrap_err().kind(),
            ConfigErrorKind::NotOfFormat
        );
        assert_eq!(
            keys.try_with_key("c", "plain-key").unwrap_err().kind(),
            ConfigErrorKind::NotOfFormat
        );
    }

    #[test]
    fn debug_shows_no_key_and_no_digest() {
        let keys = ApiKeys::new().with_key("a", "secret-value");
        let shown = format!("{keys:?} {keys:#?}");
        assert!(!shown.contains("secret-value"));
        assert!(!shown.contains("digest"));
        assert_eq!(format!("{keys:?}"), "ApiKeys { len: 1, .. }");
    }

    #[test]
    fn store_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<ApiKeys>();
        assert_send_sync::<VerifiedKey>();
    }
}
