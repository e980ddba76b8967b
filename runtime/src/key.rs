//! [`VerifiedKey`]: what a handler learns about the key that let the request in.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::credits::{KeyCredits, Refill};
use crate::limit::RateLimit;
use crate::network::IpNetwork;

mod parts;
pub(crate) use parts::{IdText, LastUsed, Scopes, StoredDigest};

/// The key that a request presented and the guard accepted: its id and scopes, never the key
/// itself.
///
/// A handler under `#[api_key]` takes it as an argument, in any position, and reads it without a
/// second verification: the guard stores it in the request's extensions after checking the key.
///
/// ```
/// use axum_api_key::{api_key, VerifiedKey};
///
/// #[api_key]
/// async fn whoami(key: VerifiedKey) -> String {
///     format!("you are {} with scopes {:?}", key.id(), key.scopes().collect::<Vec<_>>())
/// }
/// ```
///
/// Taken on a route with no guard in front of it, it refuses the request with a 500 and logs
/// the mistake: a handler that asks who the caller is must never run without knowing. Where
/// the guard is `optional`, take `Option<VerifiedKey>`: `None` when the request had no key. (A
/// `VerifiedKey` behind an optional guard refuses a request without a key as the guard would
/// refuse it were the key required.)
///
/// A custom [`KeyStore`](crate::KeyStore) builds one for each key it accepts:
///
/// ```
/// let key = axum_api_key::VerifiedKey::new("partner-a").with_scopes(["orders:read"]);
/// assert!(key.has_scope("orders:read"));
/// assert_eq!(format!("{key:?}"), r#"VerifiedKey { id: "partner-a", scopes: ["orders:read"] }"#);
/// ```
#[derive(Clone)]
pub struct VerifiedKey {
    record: Arc<KeyRecord>,
}

/// Everything the store knows about a key but its digest, laid out small: a store holds a
/// million of them, and most keys have no validity times and no metadata.
// In this order (`repr(C)`): what every lookup reads first, beside the `Arc`'s counts in the
// allocation's first cache line (see the `layout` test below).
#[derive(Clone, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct KeyRecord {
    pub(crate) revoked: bool,
    /// The key was rotated: it has a successor, and works only until its (shortened) expiry.
    /// It cannot be rotated again.
    pub(crate) superseded: bool,
    /// Suspended: refused until enabled again, and kept as it is meanwhile.
    pub(crate) disabled: bool,
    /// The key's last use as its record was last written, in the word the flags leave free.
    last_used: LastUsed,
    validity: Option<Box<Validity>>,
    /// The digest of the key, as the store's table compares it (zero in a record no store
    /// holds). Not part of what makes two records equal: two records of one key are.
    pub(crate) digest: StoredDigest,
    pub(crate) id: IdText,
    pub(crate) scopes: Scopes,
    /// Boxed: most keys have none, and a box is one word in every record.
    rate_limits: Option<Box<Limits>>,
    /// What most keys do not have (networks, credits, an identity, metadata), in one box: a
    /// record without any of it pays one word for all four.
    rare: Option<Box<Rare>>,
    /// Where this process counts the key's uses, once found.
    uses: UseCell,
}

/// The parts of a record most keys leave empty.
#[derive(Clone, Default, PartialEq, Eq)]
struct Rare {
    /// The networks the key may be used from; `None` for anywhere.
    allowed_ips: Option<Vec<IpNetwork>>,
    credits: Option<KeyCredits>,
    /// The name the key's budgets and credits are counted under with other keys of the same
    /// identity, if it shares them.
    identity: Option<Box<str>>,
    metadata: Option<BTreeMap<String, String>>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.allowed_ips.is_none()
            && self.credits.is_none()
            && self.identity.is_none()
            && self.metadata.is_none()
    }
}

/// The counters of a key's uses, shared by the copies of its record; no part of what the
/// record says.
#[derive(Default)]
struct UseCell(once_cell::race::OnceBox<Arc<crate::last_used::KeyUse>>);

impl Clone for UseCell {
    fn clone(&self) -> Self {
        let cell = once_cell::race::OnceBox::new();
        if let Some(uses) = self.0.get() {
            let _ = cell.set(Box::new(Arc::clone(uses)));
        }
        Self(cell)
    }
}

impl PartialEq for UseCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for UseCell {}

/// A key's rate limit, and the in-process budget it is counted in, kept once found: after its
/// first request a key reaches its budget without a lookup. Copies of the record (a rotated
/// key's successor among them) share the budget, as they share the id it is counted under.
#[derive(Clone)]
pub(crate) struct KeyLimit {
    pub(crate) limit: RateLimit,
    pub(crate) budget: std::sync::OnceLock<crate::limit::KeptBudget>,
}

/// A key's limits (at most [`MAX_KEY_LIMITS`](crate::MAX_KEY_LIMITS), each over a window of
/// its own), and the budgets of the first routes with a `rate_limit` of their own it was
/// counted on, kept once found as its own are: a key on a plan reaches every budget of a
/// request without a lookup.
#[derive(Clone)]
pub(crate) struct Limits {
    pub(crate) key: Box<[KeyLimit]>,
    pub(crate) routes: [std::sync::OnceLock<crate::limit::KeptRoute>; 2],
}

impl PartialEq for Limits {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Limits {}

impl PartialEq for KeyLimit {
    fn eq(&self, other: &Self) -> bool {
        self.limit == other.limit
    }
}

impl Eq for KeyLimit {}

#[derive(Clone, Default, PartialEq, Eq)]
struct Validity {
    not_before: Option<SystemTime>,
    expires: Option<SystemTime>,
}

impl KeyRecord {
    /// The key is refused before this time.
    pub(crate) fn not_before(&self) -> Option<SystemTime> {
        self.validity.as_ref().and_then(|v| v.not_before)
    }

    /// The key is refused from this time on.
    pub(crate) fn expires(&self) -> Option<SystemTime> {
        self.validity.as_ref().and_then(|v| v.expires)
    }

    /// Whether the key has a not-before or an expiry time.
    pub(crate) fn has_validity(&self) -> bool {
        self.validity.is_some()
    }

    pub(crate) fn set_not_before(&mut self, at: Option<SystemTime>) {
        self.validity.get_or_insert_default().not_before = at;
        self.drop_empty_validity();
    }

    pub(crate) fn set_expires(&mut self, at: Option<SystemTime>) {
        self.validity.get_or_insert_default().expires = at;
        self.drop_empty_validity();
    }

    fn drop_empty_validity(&mut self) {
        if self
            .validity
            .as_ref()
            .is_some_and(|v| v.not_before.is_none() && v.expires.is_none())
        {
            self.validity = None;
        }
    }

    /// The key's first limit (its shortest window, as limits are usually listed).
    pub(crate) fn rate_limit(&self) -> Option<RateLimit> {
        self.key_limits().first().map(|limited| limited.limit)
    }

    /// The key's limits, each with the budget its requests were last counted in.
    pub(crate) fn key_limits(&self) -> &[KeyLimit] {
        self.rate_limits
            .as_deref()
            .map_or(&[], |limits| &limits.key)
    }

    /// Where the key keeps the budgets of routes' own limits, if it has limits of its own.
    pub(crate) fn route_budgets(&self) -> &[std::sync::OnceLock<crate::limit::KeptRoute>] {
        self.rate_limits
            .as_deref()
            .map_or(&[], |limits| &limits.routes)
    }

    /// The key's limits.
    pub(crate) fn rate_limits(&self) -> impl Iterator<Item = RateLimit> + '_ {
        self.key_limits().iter().map(|limited| limited.limit)
    }

    pub(crate) fn set_rate_limit(&mut self, limit: Option<RateLimit>) {
        self.set_rate_limits(limit.into_iter().collect());
    }

    /// Sets the key's limits, checked by [`check_limits`](crate::limit::check_limits) by whoever
    /// gives them.
    pub(crate) fn set_rate_limits(&mut self, limits: Vec<RateLimit>) {
        self.rate_limits = if limits.is_empty() {
            None
        } else {
            Some(Box::new(Limits {
                key: limits
                    .into_iter()
                    .map(|limit| KeyLimit {
                        limit,
                        budget: std::sync::OnceLock::new(),
                    })
                    .collect(),
                routes: Default::default(),
            }))
        };
    }

    /// Changes the rarely set parts of the record, boxed only while one of them is set.
    fn change_rare(&mut self, change: impl FnOnce(&mut Rare)) {
        let mut rare = self.rare.take().unwrap_or_default();
        change(&mut rare);
        self.rare = (!rare.is_empty()).then_some(rare);
    }

    /// The networks the key may be used from, if it is restricted.
    pub(crate) fn allowed_ips(&self) -> Option<&[IpNetwork]> {
        self.rare.as_ref()?.allowed_ips.as_deref()
    }

    /// Restricts the key to these networks; `None` (or an empty list) lifts the restriction.
    pub(crate) fn set_allowed_ips(&mut self, networks: Option<Vec<IpNetwork>>) {
        self.change_rare(|rare| rare.allowed_ips = networks.filter(|list| !list.is_empty()));
    }

    /// Restricts the key to no address at all: for a restriction that could not be read, which
    /// must never leave the key open.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn refuse_everywhere(&mut self) {
        self.change_rare(|rare| rare.allowed_ips = Some(Vec::new()));
    }

    /// The identity the key shares its budgets and credits with, if it has one.
    pub(crate) fn identity(&self) -> Option<&str> {
        self.rare.as_ref()?.identity.as_deref()
    }

    pub(crate) fn set_identity(&mut self, identity: Option<Box<str>>) {
        self.change_rare(|rare| rare.identity = identity);
    }

    /// The name the key's budgets and credits are counted under: its identity, or its id.
    pub(crate) fn counted_as(&self) -> &str {
        self.identity().unwrap_or(&self.id)
    }

    /// The key's last use as its record was last written (seconds since 1970; 0 for never).
    pub(crate) fn last_used(&self) -> u64 {
        u64::from(self.last_used.0)
    }

    /// Moves the key's last use (seconds since 1970) forward to `at`, if it is later; a time
    /// past 2106 is held as the last second a record can hold.
    pub(crate) fn used_at(&mut self, at: u64) {
        let at = u32::try_from(at).unwrap_or(u32::MAX);
        self.last_used.0 = self.last_used.0.max(at);
    }

    /// The counters of the key's uses, found with `find` the first time.
    pub(crate) fn use_counters(
        &self,
        find: impl FnOnce() -> Arc<crate::last_used::KeyUse>,
    ) -> &crate::last_used::KeyUse {
        self.uses.0.get_or_init(|| Box::new(find()))
    }

    /// The key's credits, if it has any.
    pub(crate) fn credits(&self) -> Option<&KeyCredits> {
        self.rare.as_ref()?.credits.as_ref()
    }

    pub(crate) fn set_credits(&mut self, credits: Option<KeyCredits>) {
        self.change_rare(|rare| rare.credits = credits);
    }

    /// The key's credits, to change them.
    pub(crate) fn credits_mut(&mut self) -> Option<&mut KeyCredits> {
        self.rare.as_deref_mut()?.credits.as_mut()
    }

    /// The free metadata fields.
    #[cfg_attr(not(any(feature = "file", feature = "admin")), allow(dead_code))]
    pub(crate) fn metadata(&self) -> impl Iterator<Item = (&str, &str)> {
        self.rare
            .iter()
            .flat_map(|rare| rare.metadata.iter())
            .flat_map(|map| map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    pub(crate) fn metadata_field(&self, name: &str) -> Option<&str> {
        self.rare
            .as_ref()?
            .metadata
            .as_ref()?
            .get(name)
            .map(String::as_str)
    }

    /// Replaces the free metadata fields (none when `metadata` is empty).
    pub(crate) fn set_metadata(&mut self, metadata: BTreeMap<String, String>) {
        self.change_rare(|rare| rare.metadata = (!metadata.is_empty()).then_some(metadata));
    }

    pub(crate) fn insert_metadata(&mut self, name: String, value: String) {
        self.change_rare(|rare| {
            rare.metadata.get_or_insert_default().insert(name, value);
        });
    }
}

impl VerifiedKey {
    /// A verified key with this id and no scopes.
    pub fn new(id: impl Into<Box<str>>) -> Self {
        let id: Box<str> = id.into();
        Self::from_record(KeyRecord {
            id: IdText::from(&*id),
            ..KeyRecord::default()
        })
    }

    pub(crate) fn from_record(record: KeyRecord) -> Self {
        Self {
            record: Arc::new(record),
        }
    }

    pub(crate) fn record(&self) -> &KeyRecord {
        &self.record
    }

    /// The key of a record a store holds, shared with it.
    pub(crate) fn from_shared(record: Arc<KeyRecord>) -> Self {
        Self { record }
    }

    /// The same key, holding these scopes instead of its own.
    pub fn with_scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        Self::from_record(KeyRecord {
            scopes,
            ..KeyRecord::clone(&self.record)
        })
    }

    /// The same key, limited to `limit` (a custom [`KeyStore`](crate::KeyStore) gives its keys'
    /// limits this way; the guard enforces them).
    ///
    /// ```
    /// use axum_api_key::VerifiedKey;
    ///
    /// let key = VerifiedKey::new("partner-a").with_rate_limit("100/min".parse()?);
    /// assert_eq!(key.rate_limit().unwrap().to_string(), "100/min");
    /// # Ok::<(), axum_api_key::RateLimitError>(())
    /// ```
    pub fn with_rate_limit(self, limit: RateLimit) -> Self {
        let mut record = KeyRecord::clone(&self.record);
        record.set_rate_limit(Some(limit));
        Self::from_record(record)
    }

    /// The same key, held to each of `limits` (a custom [`KeyStore`](crate::KeyStore) gives a
    /// plan of several windows this way): at most [`MAX_KEY_LIMITS`](crate::MAX_KEY_LIMITS),
    /// each over a window of its own, or an error saying which rule the list breaks.
    ///
    /// ```
    /// use axum_api_key::VerifiedKey;
    ///
    /// let key = VerifiedKey::new("partner-a")
    ///     .with_rate_limits(["10/s".parse()?, "100000/day".parse()?])?;
    /// assert_eq!(key.rate_limits().map(|l| l.to_string()).collect::<Vec<_>>(), ["10/s", "100000/day"]);
    /// assert!(VerifiedKey::new("b").with_rate_limits(["10/s".parse()?, "20/s".parse()?]).is_err());
    /// # Ok::<(), axum_api_key::RateLimitError>(())
    /// ```
    pub fn with_rate_limits(
        self,
        limits: impl IntoIterator<Item = RateLimit>,
    ) -> Result<Self, crate::RateLimitError> {
        let limits: Vec<RateLimit> = limits.into_iter().collect();
        crate::limit::check_limits(&limits)?;
        let mut record = KeyRecord::clone(&self.record);
        record.set_rate_limits(limits);
        Ok(Self::from_record(record))
    }

    /// The key's own rate limit, counted per key id across every route, if it has one; the
    /// first of them when it has [several](Self::rate_limits).
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.record.rate_limit()
    }

    /// Every rate limit of the key, in the order they were given: a request must fit in each.
    pub fn rate_limits(&self) -> impl Iterator<Item = RateLimit> + '_ {
        self.record.rate_limits()
    }

    /// The same key, usable only from an address in one of `networks` (a custom
    /// [`KeyStore`](crate::KeyStore) gives its keys' restrictions this way; the guard enforces
    /// them, refusing any other address with `403`).
    ///
    /// ```
    /// use axum_api_key::VerifiedKey;
    ///
    /// let key = VerifiedKey::new("partner-a").with_allowed_ips(["203.0.113.0/24".parse()?]);
    /// assert!(key.allows("203.0.113.9".parse().unwrap()));
    /// assert!(!key.allows("198.51.100.1".parse().unwrap()));
    /// # Ok::<(), axum_api_key::IpNetworkError>(())
    /// ```
    pub fn with_allowed_ips(self, networks: impl IntoIterator<Item = IpNetwork>) -> Self {
        let mut record = KeyRecord::clone(&self.record);
        record.set_allowed_ips(Some(networks.into_iter().collect()));
        Self::from_record(record)
    }

    /// The networks the key may be used from; empty when it may be used from anywhere.
    pub fn allowed_ips(&self) -> &[IpNetwork] {
        self.record.allowed_ips().unwrap_or_default()
    }

    /// Whether the key may be used from `address`: always for a key with no
    /// [`allowed_ips`](Self::allowed_ips).
    pub fn allows(&self, address: std::net::IpAddr) -> bool {
        self.record
            .allowed_ips()
            .is_none_or(|networks| networks.iter().any(|network| network.contains(address)))
    }

    /// The same key, with `credits` uses left, refilled as `refill` says (a custom
    /// [`KeyStore`](crate::KeyStore) gives its keys' credits this way; the guard spends them, a
    /// route's `cost` per request, counted per key id in the store's
    /// [`RateLimits`](crate::RateLimits)).
    ///
    /// ```
    /// use axum_api_key::VerifiedKey;
    ///
    /// let key = VerifiedKey::new("trial").with_credits(100, Some("100/day".parse()?));
    /// assert_eq!(key.credits(), Some(100));
    /// # Ok::<(), axum_api_key::RefillError>(())
    /// ```
    pub fn with_credits(self, credits: u64, refill: Option<Refill>) -> Self {
        let mut record = KeyRecord::clone(&self.record);
        record.set_credits(Some(KeyCredits {
            remaining: credits.min(crate::credits::MAX_CREDITS),
            refill,
            counted_at: None,
            cell: Default::default(),
        }));
        Self::from_record(record)
    }

    /// The key's credits as its record last had them written, if it has credits: what the
    /// guard spends from. What is left right now is this less what the process spent since
    /// (see [`ApiKeys::credits_left`](crate::ApiKeys::credits_left)).
    pub fn credits(&self) -> Option<u64> {
        self.record.credits().map(|credits| credits.remaining)
    }

    /// How the key's credits are refilled, if they are.
    pub fn refill(&self) -> Option<Refill> {
        self.record.credits().and_then(|credits| credits.refill)
    }

    /// The same key, sharing its rate limits and credits with every key of `identity` (a
    /// custom [`KeyStore`](crate::KeyStore) gives its keys' identities this way).
    pub fn with_identity(self, identity: impl Into<Box<str>>) -> Self {
        let mut record = KeyRecord::clone(&self.record);
        record.set_identity(Some(identity.into()));
        Self::from_record(record)
    }

    /// The identity the key shares its rate limits and credits with, if it has one
    /// ([`Key::identity`](crate::Key::identity)).
    pub fn identity(&self) -> Option<&str> {
        self.record.identity()
    }

    /// When the key was last used, as its record was last written: see
    /// [`ListedKey::last_used`](crate::ListedKey::last_used) for the use this process saw.
    pub fn last_used(&self) -> Option<SystemTime> {
        let last_used = self.record.last_used();
        (last_used > 0).then(|| std::time::UNIX_EPOCH + std::time::Duration::from_secs(last_used))
    }

    /// Whether the key is disabled: suspended, and refused until it is enabled again. Seen in
    /// listings ([`ApiKeys::list`](crate::ApiKeys::list)); a request never gets this far with a
    /// disabled key.
    pub fn is_disabled(&self) -> bool {
        self.record.disabled
    }

    /// The id the key was configured under, e.g. `partner-a`: safe to log and to show.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The scopes the key holds, in the order they were configured.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.record.scopes.iter().map(AsRef::as_ref)
    }

    /// Whether the key holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.record.scopes.iter().any(|held| **held == *scope)
    }

    /// When the key stops being accepted, if it expires.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.record.expires()
    }

    /// A free metadata field of the key's record, such as its owner.
    pub fn metadata(&self, name: &str) -> Option<&str> {
        self.record.metadata_field(name)
    }
}

impl fmt::Debug for VerifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedKey")
            .field("id", &self.id())
            .field("scopes", &self.record.scopes)
            .finish()
    }
}

impl PartialEq for VerifiedKey {
    fn eq(&self, other: &Self) -> bool {
        self.record == other.record
    }
}

impl Eq for VerifiedKey {}

#[cfg(test)]
mod layout;
