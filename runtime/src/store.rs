//! The key store: SHA-256 digests of the valid keys, looked up in O(1) and compared in constant
//! time.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use hashbrown::HashTable;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, ConfigErrorKind};
use crate::key::VerifiedKey;

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
    /// The key holds bytes that a key never has: anything but visible ASCII (`!` to `~`).
    Malformed,
    /// The key is well-formed but no key in the store has its digest.
    Unknown,
    /// The store could not answer (its database or key service failed). The request gets
    /// `503 Service Unavailable`; log the cause in the store, where it is known.
    Unavailable,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "the API key is longer than the longest accepted key",
            Self::Malformed => "the API key holds characters that no key has",
            Self::Unknown => "the API key is not a known key",
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
/// ```
#[derive(Clone, Default)]
pub struct ApiKeys {
    inner: Arc<Inner>,
}

#[derive(Clone, Default)]
struct Inner {
    /// Keyed by the digest itself: its first word is already a uniform hash.
    by_digest: HashTable<Entry>,
    ids: HashSet<Box<str>>,
}

#[derive(Clone)]
struct Entry {
    digest: Words,
    key: VerifiedKey,
}

impl ApiKeys {
    /// An empty store, which refuses every key. Add keys with [`with_key`](Self::with_key).
    pub fn new() -> Self {
        Self::default()
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

    /// Adds a key described by a [`Key`]: its id, its digest and its scopes.
    ///
    /// # Panics
    ///
    /// When [`try_with`](Self::try_with) would return an error: an empty or repeated id, an
    /// empty key, a key longer than [`MAX_KEY_LEN`], a key with characters other than visible
    /// ASCII, an invalid scope, or a key already in the store.
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
    pub fn try_with(mut self, key: Key) -> Result<Self, ConfigError> {
        let Key { id, digest, scopes } = key;
        let fail = |kind| Err(ConfigError::new(kind).with_id(&id));
        if let Some(kind) = invalid_id(&id) {
            return fail(kind);
        }
        let digest = match digest {
            Ok(digest) => digest,
            Err(kind) => return fail(kind),
        };
        if scopes.iter().any(|scope| !is_scope_token(scope)) {
            return fail(ConfigErrorKind::InvalidScope);
        }
        let inner = Arc::make_mut(&mut self.inner);
        if inner.ids.contains(id.as_str()) {
            return fail(ConfigErrorKind::DuplicateId);
        }
        if inner.find(&digest).is_some() {
            return fail(ConfigErrorKind::DuplicateKey);
        }
        let digest = Words::of(&digest);
        let entry = Entry {
            digest,
            key: VerifiedKey::new(id.as_str()).with_scopes(scopes),
        };
        inner.ids.insert(id.into_boxed_str());
        inner
            .by_digest
            .insert_unique(digest.table_hash(), entry, |e| e.digest.table_hash());
        Ok(self)
    }

    /// How many keys the store holds.
    pub fn len(&self) -> usize {
        self.inner.by_digest.len()
    }

    /// Whether the store holds no key, and so refuses every request.
    pub fn is_empty(&self) -> bool {
        self.inner.by_digest.is_empty()
    }

    /// Checks a presented key: refuses it unhashed when it is too long or malformed, otherwise
    /// hashes it and looks the digest up, comparing digests in constant time.
    ///
    /// The cost does not grow with the number of keys.
    pub fn verify(&self, presented: &[u8]) -> Result<VerifiedKey, KeyError> {
        // Both checks come before hashing, so an oversized or garbage key costs almost nothing.
        if presented.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong);
        }
        if !is_key_shaped(presented) {
            return Err(KeyError::Malformed);
        }
        self.lookup(presented)
    }

    /// Hashes a key already checked for length and shape, and looks its digest up.
    fn lookup(&self, key: &[u8]) -> Result<VerifiedKey, KeyError> {
        let digest = digest(key);
        self.inner
            .find(&digest)
            .map(|entry| entry.key.clone())
            .ok_or(KeyError::Unknown)
    }
}

/// A key to add to a store: its id, its digest (the plaintext is hashed at once and dropped),
/// and the scopes it holds.
///
/// ```
/// use axum_api_key::{ApiKeys, Key};
///
/// let keys = ApiKeys::new().with(Key::new("partner-a", "pa_7Qm2xY9wLkV3rT8s").scopes(["orders:read", "orders:write"]));
/// let key = keys.verify(b"pa_7Qm2xY9wLkV3rT8s").unwrap();
/// assert_eq!(key.scopes().collect::<Vec<_>>(), ["orders:read", "orders:write"]);
/// ```
#[derive(Clone)]
pub struct Key {
    id: String,
    digest: Result<KeyDigest, ConfigErrorKind>,
    scopes: Vec<String>,
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
        Self {
            id: id.into(),
            digest,
            scopes: Vec::new(),
        }
    }

    /// A key given by its SHA-256 [`digest`], for keys whose plaintext the service never sees.
    pub fn from_digest(id: impl Into<String>, digest: KeyDigest) -> Self {
        Self {
            id: id.into(),
            digest: Ok(digest),
            scopes: Vec::new(),
        }
    }

    /// The scopes the key holds, such as `orders:read`. A scope is visible ASCII without
    /// `"`, `\`, `,`, `[` or `]` (an RFC 6750 scope token that fits in `API_KEYS`).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("scopes", &self.scopes)
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
}

impl KeyStore for ApiKeys {
    async fn verify(&self, key: &str) -> Result<VerifiedKey, KeyError> {
        // The guard has checked the key's length and shape already.
        self.lookup(key.as_bytes())
    }
}

impl Inner {
    fn find(&self, digest: &KeyDigest) -> Option<&Entry> {
        let digest = Words::of(digest);
        // Every candidate the table probes is compared in constant time, so the lookup reveals
        // nothing about how close a wrong key's digest came to a stored one.
        self.by_digest
            .find(digest.table_hash(), |entry| entry.digest.ct_eq(&digest))
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("len", &self.len())
            .finish_non_exhaustive()
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

/// Keys are visible ASCII: anything else cannot be a key, whatever the store holds.
pub(crate) fn is_key_shaped(key: &[u8]) -> bool {
    !key.is_empty() && key.iter().all(|b| b.is_ascii_graphic())
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
    fn clones_share_until_changed() {
        let one = ApiKeys::new().with_key("a", "key-a");
        let two = one.clone().with_key("b", "key-b");
        assert_eq!(one.len(), 1);
        assert_eq!(two.len(), 2);
        assert!(one.verify(b"key-b").is_err());
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
