//! Building a store in memory: from nothing, key by key, for tests, tools and the quickstart.

use std::sync::Arc;

use super::set::KeySet;
use super::{ApiKeys, Key, Settings, Shared};
use crate::error::ConfigError;
use crate::format::KeyFormat;
use crate::https::HttpsPolicy;
use crate::limit::RateLimits;

impl ApiKeys {
    /// An empty store, which refuses every key. Add keys with [`with_key`](Self::with_key).
    pub fn new() -> Self {
        Self::default()
    }

    /// A store of `set`, not shared with any other.
    pub(crate) fn from_parts(set: KeySet, settings: Settings) -> Self {
        Self {
            shared: Arc::new(Shared::new(set, settings)),
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
    /// let keys = ApiKeys::new().try_with_key("ci", "ci_kP3vN8qZ1xT6Wy")?;
    /// assert!(keys.try_with_key("ci", "another-key-0123456").is_err()); // the id is taken
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
    /// empty key, a key longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN), a key with characters other than visible
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
    ///     .try_with(Key::new("reader", "rd_9Xc2Vb7Nm4LkJh").scopes(["orders:read"]))?
    ///     .try_with(Key::from_digest("partner-a", digest(b"pa_7Qm2xY9wLkV3rT8s")))?;
    /// assert!(keys.verify(b"rd_9Xc2Vb7Nm4LkJh").unwrap().has_scope("orders:read"));
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
    pub fn with_https(self, policy: HttpsPolicy) -> Self {
        self.with_settings(|settings| settings.https = Some(policy))
    }

    /// Answers a key of the store seen in public as `exposure` says: over plain HTTP (with
    /// [`with_https`](Self::with_https)), and, given the same [`Exposure`](super::exposure::Exposure),
    /// reported by secret scanning. Without one, a key seen over plain HTTP is only reported
    /// (a `key_exposed` warning).
    ///
    /// ```
    /// use axum_api_key::exposure::{Exposure, LeakPolicy};
    /// use axum_api_key::{ApiKeys, HttpsPolicy};
    ///
    /// let exposure = Exposure::new(LeakPolicy::Revoke);
    /// let keys = ApiKeys::new()
    ///     .with_https(HttpsPolicy::Direct)
    ///     .with_exposure(exposure.clone()); // and `SecretScanning::new().exposure(exposure)`
    /// ```
    pub fn with_exposure(self, exposure: super::exposure::Exposure) -> Self {
        self.with_settings(|settings| settings.exposure = Some(exposure))
    }

    /// Counts requests and failed attempts in `limits` rather than in the process-wide
    /// [`RateLimits`]: its throttle settings, its trusted proxies, and (feature `redis`) a
    /// budget shared with other instances through Redis.
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum_api_key::{ApiKeys, RateLimits, Throttle};
    ///
    /// let limits = RateLimits::new().throttle(Throttle::new(10, Duration::from_secs(60)));
    /// let keys = ApiKeys::new().with_rate_limits(limits);
    /// ```
    pub fn with_rate_limits(self, limits: RateLimits) -> Self {
        self.with_settings(|settings| settings.limits = Some(limits))
    }

    /// Changes a setting: in place when no one else holds this store, on a copy otherwise.
    fn with_settings(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            change(&mut shared.settings);
            return self;
        }
        let mut settings = self.shared.settings.clone();
        change(&mut settings);
        self.copied(self.shared.snapshot.load().detached(), settings)
    }

    /// A store of its own with `set` and `settings`, which keeps what this store's changes keep
    /// from one to the next (its records file's index).
    fn copied(&self, set: KeySet, settings: Settings) -> Self {
        let copy = Self::from_parts(set, settings);
        #[cfg(feature = "file")]
        {
            let index = self.one_at_a_time().file_index.clone();
            copy.one_at_a_time().file_index = index;
        }
        copy
    }

    /// Runs one change for a builder: in place when no one else holds this store, on a copy
    /// otherwise, so that other clones do not change.
    fn build(
        mut self,
        change: impl FnOnce(&mut KeySet) -> Result<(), ConfigError>,
    ) -> Result<Self, ConfigError> {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => {
                let set = shared.snapshot.take();
                let mut set = Arc::try_unwrap(set).unwrap_or_else(|shared| KeySet::clone(&shared));
                let result = change(&mut set);
                shared.snapshot.publish(set);
                result.map(|()| self)
            }
            None => {
                let mut set = self.shared.snapshot.load().detached();
                change(&mut set)?;
                Ok(self.copied(set, self.shared.settings.clone()))
            }
        }
    }
}
