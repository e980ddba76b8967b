//! [`Key`]: a key to add to a store, hashed as it is made.

use std::fmt;
use std::time::SystemTime;

use super::{KeyDigest, MAX_KEY_LEN, MIN_KEY_LEN, digest, is_key_shaped};
use crate::error::ConfigErrorKind;
use crate::format::KeyFormat;
use crate::key::KeyRecord;
use crate::limit::RateLimit;

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
    pub(super) id: String,
    pub(super) digest: Result<KeyDigest, ConfigErrorKind>,
    /// The digest of a key refused only for being short, for [`Key::allow_short`].
    pub(super) short: Option<KeyDigest>,
    /// What the plaintext looked like, to check it against a store's format later.
    pub(super) shape: Shape,
    pub(super) record: KeyRecord,
}

/// What is known of a key's plaintext once it is dropped.
#[derive(Clone)]
pub(crate) enum Shape {
    /// Given by its digest: nothing.
    Unknown,
    /// Not a generated key.
    Plain,
    /// A well-formed generated key with this prefix.
    Generated(Box<str>),
}

impl Key {
    /// A key given in plaintext. It is checked and hashed here; a key that could never be
    /// presented (empty, longer than [`MAX_KEY_LEN`], not visible ASCII) or that is short
    /// enough to guess (under [`MIN_KEY_LEN`] bytes) is refused when it is added to a store.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, ConfigErrorKind, Key};
    ///
    /// let refused = ApiKeys::new().try_with(Key::new("ci", "hunter2")).unwrap_err();
    /// assert_eq!(refused.kind(), ConfigErrorKind::KeyTooShort);
    /// assert!(!refused.to_string().contains("hunter2"));
    /// ```
    pub fn new(id: impl Into<String>, key: impl AsRef<[u8]>) -> Self {
        let key = key.as_ref();
        let digest = if key.is_empty() {
            Err(ConfigErrorKind::EmptyKey)
        } else if key.len() < MIN_KEY_LEN && is_key_shaped(key) {
            // Hashed all the same, for `allow_short`.
            Err(ConfigErrorKind::KeyTooShort)
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
            short: matches!(digest, Err(ConfigErrorKind::KeyTooShort)).then(|| self::digest(key)),
            digest,
            shape,
            record: KeyRecord::default(),
        }
    }

    /// Accepts a key shorter than [`MIN_KEY_LEN`] bytes, which [`new`](Self::new) refuses: for
    /// tests and demos only, never for a key that guards anything.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, Key};
    ///
    /// let keys = ApiKeys::new().with(Key::new("test", "short").allow_short());
    /// assert!(keys.verify(b"short").is_ok());
    /// ```
    pub fn allow_short(mut self) -> Self {
        if let Some(digest) = self.short.take() {
            self.digest = Ok(digest);
        }
        self
    }

    /// A key given by its SHA-256 [`digest`], for keys whose plaintext the service never sees.
    pub fn from_digest(id: impl Into<String>, digest: KeyDigest) -> Self {
        Self {
            id: id.into(),
            digest: Ok(digest),
            short: None,
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

    /// The key is kept in the store but refused until it is enabled again
    /// ([`ApiKeys::enable`](crate::ApiKeys::enable)): a suspension, unlike revocation, which is
    /// for good. A request with it gets `403` with the problem `key-disabled`.
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.record.disabled = disabled;
        self
    }

    /// The key may be used only from an address in one of `networks`; any other address gets
    /// `403` with the problem `address-not-allowed`, and an audit warning names the key's id
    /// and the address. See [`IpNetwork`](crate::IpNetwork) for which address counts.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, Key};
    ///
    /// let keys = ApiKeys::new().with(
    ///     Key::new("partner-a", "pa_7Qm2xY9wLkV3rT8s")
    ///         .allowed_ips(["203.0.113.0/24".parse()?, "2001:db8::/32".parse()?]),
    /// );
    /// let key = keys.verify(b"pa_7Qm2xY9wLkV3rT8s").unwrap();
    /// assert!(key.allows("2001:db8::7".parse().unwrap()));
    /// assert!(!key.allows("198.51.100.1".parse().unwrap()));
    /// # Ok::<(), axum_api_key::IpNetworkError>(())
    /// ```
    pub fn allowed_ips(mut self, networks: impl IntoIterator<Item = crate::IpNetwork>) -> Self {
        self.record
            .set_allowed_ips(Some(networks.into_iter().collect()));
        self
    }

    /// Counts the key's rate limit and credits under `identity`, shared with every key of the
    /// same identity: the keys of one customer (`identity = "acme"`) spend one budget and one
    /// count of credits, whichever of them a request presents. A rotated key keeps its
    /// identity. An identity is counted under its name as a key is under its id: name it
    /// apart from every key id.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, Key};
    ///
    /// let keys = ApiKeys::new()
    ///     .with(Key::new("acme-ci", "ac_7Qm2xY9wLkV3rT8s").identity("acme").credits(100))
    ///     .with(Key::new("acme-web", "aw_Zc4nH6jR1eW5uB0d").identity("acme").credits(100));
    /// assert_eq!(keys.verify(b"ac_7Qm2xY9wLkV3rT8s").unwrap().identity(), Some("acme"));
    /// ```
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.record
            .set_identity(Some(identity.into().into_boxed_str()));
        self
    }

    /// Gives the key `credits` uses: each request it makes on a route spends the route's
    /// `cost` (`#[api_key(cost = 5)]`, 1 by default), and at zero it is refused with `429` and
    /// the problem `credits-exhausted` until it is refilled. See [`refill`](Self::refill).
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, Key};
    ///
    /// let keys = ApiKeys::new().with(
    ///     Key::new("trial", "tr_7Qm2xY9wLkV3rT8s").credits(1_000).refill("1000/month".parse()?),
    /// );
    /// assert_eq!(keys.credits_left("trial"), Some(1_000));
    /// # Ok::<(), axum_api_key::RefillError>(())
    /// ```
    pub fn credits(mut self, credits: u64) -> Self {
        let refill = self.record.credits().and_then(|c| c.refill);
        self.record.set_credits(Some(crate::credits::KeyCredits {
            remaining: credits.min(crate::credits::MAX_CREDITS),
            refill,
            counted_at: None,
            cell: Default::default(),
        }));
        self
    }

    /// Refills the key's credits on a calendar schedule ([`Refill`](crate::Refill)): at the
    /// start of each period its credits are set to the refill's amount. A key given a refill
    /// and no [`credits`](Self::credits) starts with the amount.
    pub fn refill(mut self, refill: crate::Refill) -> Self {
        let remaining = self
            .record
            .credits()
            .map_or(refill.amount(), |c| c.remaining);
        self.record.set_credits(Some(crate::credits::KeyCredits {
            remaining,
            refill: Some(refill),
            counted_at: None,
            cell: Default::default(),
        }));
        self
    }

    /// Limits the key to `limit`, counted per key id (a rotated key and its successor share
    /// the budget); see [`RateLimits`](crate::RateLimits).
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.record.set_rate_limit(Some(limit));
        self
    }

    /// Holds the key to each of `limits`, a plan of several windows (`10/s` and `100000/day`):
    /// a request must fit in every one, and each is reported in `RateLimit-Policy` under its
    /// window's name (`"key-s"`, `"key-day"`). At most
    /// [`MAX_KEY_LIMITS`](crate::MAX_KEY_LIMITS), each over a window of its own, or an error
    /// saying which rule the list breaks.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, Key};
    ///
    /// let keys = ApiKeys::new().with(
    ///     Key::new("partner-a", "pa_7Qm2xY9wLkV3rT8s")
    ///         .rate_limits(["10/s".parse()?, "100000/day".parse()?])?,
    /// );
    /// # Ok::<(), axum_api_key::RateLimitError>(())
    /// ```
    pub fn rate_limits(
        mut self,
        limits: impl IntoIterator<Item = RateLimit>,
    ) -> Result<Self, crate::RateLimitError> {
        let limits: Vec<RateLimit> = limits.into_iter().collect();
        crate::limit::check_limits(&limits)?;
        self.record.set_rate_limits(limits);
        Ok(self)
    }

    /// A free field of the key's record, such as its owner or a ticket number, which handlers
    /// read with [`VerifiedKey::metadata`](crate::VerifiedKey::metadata).
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
