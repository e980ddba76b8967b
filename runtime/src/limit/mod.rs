//! Rate limits per key and per route, and brute-force throttling per client address.
//!
//! - `rate.rs`: [`RateLimit`], a limit and its text form;
//! - `budget.rs`: the budgets a request is counted in, and the fields that tell a client;
//! - `local.rs`: budgets counted in this process (GCRA), spent together or not at all;
//! - `throttle.rs`: [`Throttle`], failed attempts per client address in a fixed-size table;
//! - `redis.rs` (feature `redis`): budgets shared between instances through Redis.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use axum::extract::ConnectInfo;
use http::request::Parts;

use crate::key::VerifiedKey;

mod budget;
mod forwarded;
mod local;
mod rate;
#[cfg(feature = "redis")]
mod redis;
mod throttle;

pub use forwarded::ForwardedHeader;
#[cfg(feature = "postgres")]
pub(crate) use rate::parse_limits;
pub use rate::{MAX_KEY_LIMITS, RateLimit, RateLimitError};
pub(crate) use rate::{check_limits, limits_text};
#[cfg(all(feature = "redis", feature = "webhooks"))]
pub use redis::RedisReplayGuard;
#[cfg(feature = "redis")]
pub use redis::{RedisFailure, RedisLimits};
pub use throttle::Throttle;

pub(crate) use budget::{Budgets, Count, LimitFields, MOST_BUDGETS, Scope, seconds_up};
use local::LocalBudgets;
pub(crate) use local::{KeptBudget, KeptRoute};
use throttle::ThrottleTable;

/// Where a store's guards count requests: the budgets of keys and routes (in this process, or
/// in Redis with feature `redis`) and the brute-force [`Throttle`].
///
/// Every store enforces the rate limits its keys carry and the `rate_limit` of each
/// `#[api_key(...)]`, with no setting: stores built without
/// [`ApiKeys::with_rate_limits`](crate::ApiKeys::with_rate_limits) share one process-wide
/// `RateLimits::new()`. Cheap to clone; clones count in the same budgets.
///
/// A key's budget is counted per key id, so a rotated key and its successor share it; a route's
/// `rate_limit` is a budget per key and per handler, beside the key's own. A request must fit in
/// both.
///
/// ```
/// use std::time::Duration;
/// use axum_api_key::{ApiKeys, Key, RateLimit, RateLimits, Throttle};
///
/// let keys = ApiKeys::new()
///     .with(Key::new("partner-a", "pa_7Qm2xY9wLkV3rT8s").rate_limit("100/min".parse()?))
///     .with_rate_limits(
///         RateLimits::new()
///             .throttle(Throttle::new(10, Duration::from_secs(60)))
///             .behind_proxies(["10.0.0.2".parse().unwrap()]),
///     );
/// # Ok::<(), axum_api_key::RateLimitError>(())
/// ```
#[derive(Clone)]
pub struct RateLimits {
    inner: Arc<Inner>,
}

struct Inner {
    local: LocalBudgets,
    /// Credits spent in this process and not written back yet.
    credits: crate::credits::CreditTable,
    /// Each key's last use and how many since start-up.
    uses: crate::last_used::UseTable,
    throttle: Option<ThrottleTable>,
    /// The trusted proxies' networks.
    proxies: Arc<[crate::IpNetwork]>,
    /// The header they write the forwarded chain into.
    forwarded: ForwardedHeader,
    /// The clock calendar windows, credits and last uses are counted by; the system's when
    /// `None`.
    clock: Option<Clock>,
    #[cfg(feature = "redis")]
    redis: Option<redis::Shared>,
}

/// A clock given to [`RateLimits::with_clock`].
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

impl Default for RateLimits {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("RateLimits");
        debug.field(
            "throttle",
            &self.inner.throttle.as_ref().map(ThrottleTable::config),
        );
        debug.field("proxies", &self.inner.proxies);
        #[cfg(feature = "redis")]
        debug.field("redis", &self.inner.redis.is_some());
        debug.finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Budgets counted in this process, and the default [`Throttle`] (30 failures a minute per
    /// address, in 4 MiB).
    pub fn new() -> Self {
        Self::from_inner(Inner {
            local: LocalBudgets::default(),
            credits: Default::default(),
            uses: Default::default(),
            throttle: Some(ThrottleTable::new(Throttle::default())),
            proxies: Arc::new([]),
            forwarded: ForwardedHeader::default(),
            clock: None,
            #[cfg(feature = "redis")]
            redis: None,
        })
    }

    fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The process-wide limits of stores that give none.
    pub(crate) fn shared() -> &'static Self {
        static SHARED: OnceLock<RateLimits> = OnceLock::new();
        SHARED.get_or_init(Self::new)
    }

    /// Throttles failed attempts as `throttle` says.
    pub fn throttle(self, throttle: Throttle) -> Self {
        self.rebuilt(|inner| inner.throttle = Some(ThrottleTable::new(throttle)))
    }

    /// Throttles nothing: every failed attempt is answered as such, however many a client
    /// makes.
    pub fn without_throttle(self) -> Self {
        self.rebuilt(|inner| inner.throttle = None)
    }

    /// Trusts `X-Forwarded-For` from these proxy addresses: a request through them is counted
    /// against the client they forwarded it for, as
    /// [`HttpsPolicy::behind_proxies`](crate::HttpsPolicy::behind_proxies) trusts
    /// `X-Forwarded-Proto`. See [`behind_proxy_networks`](Self::behind_proxy_networks) for the
    /// rule, and for proxies known by their networks.
    pub fn behind_proxies(self, proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        self.behind_proxy_networks(proxies.into_iter().map(crate::IpNetwork::host))
    }

    /// Trusts the forwarded chain from proxies in these networks (a CDN's published ranges,
    /// the load balancers' subnet): the client of a request is the rightmost address of the
    /// chain that is not in one of them. Each proxy appends the address it received the
    /// request from, so walking from the right past our own proxies reaches the address the
    /// nearest untrusted hop was seen from; everything to its left was written by the client
    /// or hops we do not trust, and is never read: a client cannot choose its own address,
    /// however many hops there are. From a peer that is not a trusted proxy, the chain is
    /// ignored and the peer is the client.
    ///
    /// The chain is `X-Forwarded-For` unless [`forwarded_header`](Self::forwarded_header) says
    /// RFC 7239 `Forwarded`; several header lines are one list. When a trusted proxy wrote an
    /// entry that is not an address (`unknown`, an obfuscated `for`), the request is counted
    /// against that proxy, and a `WARN` (once a minute per proxy) says so: better one address
    /// for many clients than a client with none.
    ///
    /// ```
    /// use axum_api_key::{IpNetwork, RateLimits, ForwardedHeader};
    ///
    /// let limits = RateLimits::new()
    ///     .behind_proxy_networks(["10.0.0.0/8".parse::<IpNetwork>()?, "2001:db8:ffff::/48".parse()?])
    ///     .forwarded_header(ForwardedHeader::Forwarded);
    /// # Ok::<(), axum_api_key::IpNetworkError>(())
    /// ```
    pub fn behind_proxy_networks(
        self,
        networks: impl IntoIterator<Item = crate::IpNetwork>,
    ) -> Self {
        let networks: Arc<[crate::IpNetwork]> = networks.into_iter().collect();
        self.rebuilt(|inner| inner.proxies = networks)
    }

    /// Reads the forwarded chain from `header`: `X-Forwarded-For` by default, or RFC 7239
    /// `Forwarded`. Only that header is read; a client sending the other names nothing.
    pub fn forwarded_header(self, header: ForwardedHeader) -> Self {
        self.rebuilt(|inner| inner.forwarded = header)
    }

    /// Counts calendar windows (`100000/day`, `/month`), credits and their refills, and keys'
    /// last uses by `clock` instead of the system's: for tests of a plan that cross a
    /// midnight or a month without waiting for one, and for a server whose time comes from
    /// elsewhere. Rolling (GCRA) budgets and the throttle count on the monotonic clock, which
    /// no wall clock moves.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use axum_api_key::RateLimits;
    ///
    /// let seconds = Arc::new(AtomicU64::new(1_796_601_599)); // 2026-12-06T23:59:59Z
    /// let clock = Arc::clone(&seconds);
    /// let limits = RateLimits::new()
    ///     .with_clock(move || UNIX_EPOCH + Duration::from_secs(clock.load(Ordering::Relaxed)));
    /// seconds.fetch_add(1, Ordering::Relaxed); // midnight: every daily window starts afresh
    /// ```
    pub fn with_clock(self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.rebuilt(|inner| inner.clock = Some(Arc::new(clock)))
    }

    /// The time by the limiter's clock.
    pub(crate) fn now(&self) -> SystemTime {
        match &self.inner.clock {
            Some(clock) => clock(),
            None => SystemTime::now(),
        }
    }

    /// A new `RateLimits` with one setting changed; budgets start afresh.
    fn rebuilt(self, change: impl FnOnce(&mut Inner)) -> Self {
        let old = &self.inner;
        let mut inner = Inner {
            local: LocalBudgets::default(),
            credits: Default::default(),
            uses: Default::default(),
            throttle: old
                .throttle
                .as_ref()
                .map(|table| ThrottleTable::new(*table.config())),
            proxies: Arc::clone(&old.proxies),
            forwarded: old.forwarded,
            clock: old.clock.clone(),
            #[cfg(feature = "redis")]
            redis: old.redis.clone(),
        };
        change(&mut inner);
        Self::from_inner(inner)
    }

    /// The address a request is counted against, when the server tells it.
    pub(crate) fn client(&self, parts: &Parts) -> Option<IpAddr> {
        let ConnectInfo(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
        let peer = peer.ip().to_canonical();
        let proxies = &self.inner.proxies;
        if !proxies.iter().any(|network| network.contains(peer)) {
            return Some(peer);
        }
        match forwarded::client(peer, proxies, &parts.headers, self.inner.forwarded) {
            Ok(client) => Some(client),
            Err(forwarded::Unreadable) => {
                if first_in_window(&("forwarded", peer), Duration::from_secs(60)) {
                    tracing::warn!(
                        target: "axum_api_key::audit",
                        proxy = %peer,
                        "a trusted proxy forwarded a request whose chain of addresses could \
                         not be read; it is counted against the proxy's address"
                    );
                }
                Some(peer)
            }
        }
    }

    /// The client's address and how long it must still wait before it may try a key again,
    /// if it is throttled. Free until some client has run out of attempts.
    pub(crate) fn throttled(&self, parts: &Parts) -> Option<(IpAddr, Duration)> {
        let throttle = self.inner.throttle.as_ref()?;
        if !throttle.engaged() {
            return None;
        }
        let client = self.client(parts)?;
        Some((client, throttle.blocked(client)?))
    }

    /// The name a request without a key is counted under in a route's budget: its client
    /// address (an IPv6 address by its /64, as the throttle counts it), or one name shared by
    /// every such request when the server tells no address.
    pub(crate) fn anonymous_id(&self, parts: &Parts) -> String {
        match self.client(parts).map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => format!("anonymous@{v4}"),
            Some(IpAddr::V6(v6)) => {
                let block = u128::from(v6) & !u128::from(u64::MAX);
                format!("anonymous@{}/64", std::net::Ipv6Addr::from(block))
            }
            None => "anonymous".to_owned(),
        }
    }

    /// Reserves an attempt of the request's client before a store that waits is asked: `Ok`
    /// with the address to [`release`](Self::release) if the attempt is not a failed one
    /// (`None` when no address is known or nothing is throttled), or the client and its wait
    /// when it is out of attempts.
    pub(crate) fn reserve(&self, parts: &Parts) -> Result<Option<IpAddr>, (IpAddr, Duration)> {
        let Some(throttle) = &self.inner.throttle else {
            return Ok(None);
        };
        let Some(client) = self.client(parts) else {
            return Ok(None);
        };
        throttle.reserve(client).map_err(|wait| (client, wait))?;
        Ok(Some(client))
    }

    /// Gives back a reserved attempt.
    pub(crate) fn release(&self, client: IpAddr) {
        if let Some(throttle) = &self.inner.throttle {
            throttle.release(client);
        }
    }

    /// Counts a failed attempt of the request's client.
    pub(crate) fn failed(&self, parts: &Parts) {
        if let Some(throttle) = &self.inner.throttle
            && let Some(client) = self.client(parts)
        {
            throttle.fail(client);
        }
    }

    /// Whether budgets and credits are counted in Redis.
    pub(crate) fn counts_in_redis(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.inner.redis.is_some();
        #[cfg(not(feature = "redis"))]
        false
    }

    /// Spends one request of each budget that applies to `key`, and `credits`, in this
    /// process, all or nothing; `None` when they are counted in Redis instead
    /// ([`spend_shared`](Self::spend_shared)).
    pub(crate) fn spend_here(
        &self,
        key: &VerifiedKey,
        budgets: &Budgets,
        credits: Option<CreditAsk<'_>>,
    ) -> Option<Count> {
        if self.counts_in_redis() {
            return None;
        }
        Some(self.count_all_here(key, budgets, credits))
    }

    /// Credits, then budgets, in this process: a request refused by a budget gets its credits
    /// back.
    fn count_all_here(
        &self,
        key: &VerifiedKey,
        budgets: &Budgets,
        credits: Option<CreditAsk<'_>>,
    ) -> Count {
        use crate::credits::CreditSpend;
        let table = &self.inner.credits;
        let mut left = None;
        // The name is read once, and only if something looks it up: kept budgets need none.
        let name = std::cell::OnceCell::new();
        let counted_as = || *name.get_or_init(|| key.record().counted_as());
        if let Some(ask) = credits {
            match table.spend(&counted_as, ask.credits, ask.cost, ask.now) {
                CreditSpend::Spent { left: after } => left = Some(after),
                CreditSpend::Refused { left, retry } => {
                    return Count {
                        credits: Some(left),
                        credits_exhausted: true,
                        retry_after: retry.map(|at| at.duration_since(ask.now).unwrap_or_default()),
                        ..Count::default()
                    };
                }
            }
        }
        let mut count = if budgets.is_empty() {
            Count::default()
        } else {
            let wall = credits.map(|ask| ask.now);
            self.count_here(&counted_as, budgets, Some(key.record()), wall)
        };
        if count.retry_after.is_some()
            && let Some(ask) = credits
        {
            table.refund(&counted_as, ask.credits, ask.cost, ask.now);
            // The refusal tells what is left: the request spent nothing.
            left = left.map(|left| left.saturating_add(ask.cost));
        }
        count.credits = left;
        count
    }

    /// Spends one request of each budget, and `credits`, in Redis, all or nothing; or as
    /// configured when Redis cannot answer.
    #[cfg(feature = "redis")]
    pub(crate) async fn spend_shared(
        &self,
        key: &VerifiedKey,
        budgets: &Budgets,
        credits: Option<CreditAsk<'_>>,
    ) -> Count {
        let kept = key.record().key_limits();
        if let Some(redis) = &self.inner.redis {
            let wall = credits.map_or_else(|| self.now(), |ask| ask.now);
            match redis
                .spend(key.record().counted_as(), budgets, credits, wall)
                .await
            {
                redis::Outcome::Counted(count) => {
                    if let (Some(ask), Some(left)) = (credits, count.credits) {
                        self.inner.credits.mirror(
                            key.record().counted_as(),
                            ask.credits,
                            ask.now,
                            left,
                        );
                    }
                    // This process's copy of each budget follows Redis, for the requests it
                    // may have to count alone.
                    for ((at, &(scope, limit)), budget) in
                        budgets.iter().enumerate().zip(count.budgets.iter())
                    {
                        if let Some(budget) = budget {
                            let mut held = None;
                            let id = || key.record().counted_as();
                            let local = &self.inner.local;
                            let cell = match scope {
                                Scope::Key => {
                                    let kept = kept.get(at).map(|limited| &limited.budget);
                                    local.budget(&id, scope, limit, kept, &mut held)
                                }
                                Scope::Route(route) => local.route_budget(
                                    &id,
                                    route,
                                    limit,
                                    key.record().route_budgets(),
                                    &mut held,
                                ),
                            };
                            self.inner.local.mirror(cell, limit, budget, wall);
                        }
                    }
                    return *count;
                }
                redis::Outcome::Refuse => return Count::unavailable(),
                redis::Outcome::FallBack => {}
            }
        }
        self.count_all_here(key, budgets, credits)
    }

    /// Counts in this process; the key's own budgets are kept in `kept` (the key's limits, in
    /// the order `budgets` lists them). `wall` is the limiter's time if the caller read it. A
    /// request refused by one budget is counted against none.
    fn count_here<'a>(
        &self,
        id: &dyn Fn() -> &'a str,
        budgets: &Budgets,
        record: Option<&crate::key::KeyRecord>,
        wall: Option<SystemTime>,
    ) -> Count {
        let local = &self.inner.local;
        let (kept, routes) = record.map_or((&[][..], &[][..]), |record| {
            (record.key_limits(), record.route_budgets())
        });
        let mut held: [Option<Arc<local::Cell>>; MOST_BUDGETS] = Default::default();
        const FILLER: &(Scope, RateLimit) =
            &(Scope::Key, RateLimit::new(1, Duration::from_secs(1)));
        let mut spends: [local::Spend<'_>; MOST_BUDGETS] = [(&local::UNUSED, FILLER); MOST_BUDGETS];
        let mut len = 0;
        let mut calendar = false;
        for ((slot, entry), held) in spends.iter_mut().zip(budgets.iter()).zip(&mut held) {
            let &(scope, limit) = entry;
            let cell = match scope {
                Scope::Key => {
                    let kept = kept.get(len).map(|limited| &limited.budget);
                    local.budget(id, scope, limit, kept, held)
                }
                Scope::Route(route) => local.route_budget(id, route, limit, routes, held),
            };
            calendar |= limit.calendar().is_some();
            *slot = (cell, entry);
            len += 1;
        }
        // The wall clock is read only for a calendar window.
        let wall = match wall {
            Some(wall) => wall,
            None if calendar => self.now(),
            None => std::time::UNIX_EPOCH,
        };
        let (budgets, retry_after) = local.spend_all(&spends[..len], budgets.several(), wall);
        Count {
            budgets,
            retry_after,
            unavailable: false,
            credits: None,
            credits_exhausted: false,
        }
    }

    /// Each key's last use and how many since start-up, per key id.
    pub(crate) fn uses(&self) -> &crate::last_used::UseTable {
        &self.inner.uses
    }

    /// Credits spent in this process and not written back yet, per key id.
    pub(crate) fn credit_table(&self) -> &crate::credits::CreditTable {
        &self.inner.credits
    }

    /// Drops the in-process budgets that are full again, as a growing table does by itself:
    /// for tests and measurements.
    #[doc(hidden)]
    pub fn __sweep(&self) {
        self.inner.local.sweep();
    }

    /// How many budgets are counted in this process, and how many addresses the throttle
    /// holds: for tests and measurements.
    #[doc(hidden)]
    pub fn __sizes(&self) -> (usize, usize) {
        (
            self.inner.local.len(),
            self.inner.throttle.as_ref().map_or(0, ThrottleTable::len),
        )
    }
}

/// Whether this refusal of `id` by `count`'s refusing budget is the first in that budget's
/// window, and so worth a warning: a client hammering past its limit writes one WARN line per
/// window, not one per request.
pub(crate) fn first_refusal_in_window(id: &str, count: &Count) -> bool {
    // The refusing budget is the one with nothing left; without one, the key's.
    let refusing = count
        .budgets
        .iter()
        .flatten()
        .find(|budget| budget.remaining == 0)
        .or_else(|| count.budgets.iter().flatten().next());
    let (route, window) = refusing.map_or((false, Duration::from_secs(60)), |budget| {
        (budget.route, Duration::from_nanos(budget.window))
    });
    first_in_window(&("limit", id, route, window), window)
}

/// Whether `what` (a refusal: its kind, the key, what it is about) was not seen in the last
/// `window`, and so worth a warning: a key refused again and again (out of credits, used from
/// a network it may not be used from) writes one WARN line per window, the rest at DEBUG.
/// Remembered in a table of bounded size (emptied when full, which at worst repeats a
/// warning), so a spray of refusals cannot grow memory.
pub(crate) fn first_in_window(what: &impl std::hash::Hash, window: Duration) -> bool {
    use std::collections::HashMap;
    use std::hash::BuildHasher;
    use std::sync::Mutex;
    use std::time::Instant;
    const MOST: usize = 16_384;
    static WARNED: OnceLock<(hashbrown::DefaultHashBuilder, Mutex<HashMap<u64, Instant>>)> =
        OnceLock::new();
    let (hasher, warned) = WARNED.get_or_init(Default::default);
    let slot = hasher.hash_one(what);
    let mut warned = warned
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = Instant::now();
    match warned.get(&slot) {
        Some(at) if now.duration_since(*at) < window => false,
        _ => {
            if warned.len() >= MOST {
                warned.clear();
            }
            warned.insert(slot, now);
            true
        }
    }
}

/// A key's credits and what a request costs, with the time it is counted at.
#[derive(Clone, Copy)]
pub(crate) struct CreditAsk<'a> {
    pub(crate) credits: &'a crate::credits::KeyCredits,
    pub(crate) cost: u64,
    pub(crate) now: std::time::SystemTime,
}

#[cfg(test)]
mod tests;
