//! [`Throttle`]: failed attempts counted per client address, in a table of fixed size.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hashbrown::DefaultHashBuilder;

/// Brute-force throttling: a client address that fails `failures` times within `per` (unknown,
/// malformed, revoked or expired keys) gets `429 Too Many Requests` for its next attempts,
/// before any hashing or lookup, until its budget refills (one attempt every `per / failures`).
///
/// Addresses are counted in a table of fixed size ([`memory`](Self::memory), 4 MiB by
/// default, about 240,000 addresses), taken whole at the first failure, so memory does not grow
/// whatever the traffic. When the table is full a new address takes the place of the one with
/// the most attempts left, so a spray of addresses cannot push out a client that is being
/// throttled. IPv6 clients are counted per /64, the block one host usually holds.
///
/// The client address is the connection's peer (serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`), or the last `X-Forwarded-For`
/// entry when the peer is a trusted proxy ([`RateLimits::behind_proxies`](super::RateLimits::behind_proxies)).
/// Without `ConnectInfo` no address is known and nothing is throttled.
///
/// ```
/// use std::time::Duration;
/// use axum_api_key::{ApiKeys, RateLimits, Throttle};
///
/// // 5 failures a minute, in 1 MiB.
/// let throttle = Throttle::new(5, Duration::from_secs(60)).memory(1 << 20);
/// let keys = ApiKeys::new().with_rate_limits(RateLimits::new().throttle(throttle));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    failures: u32,
    per: Duration,
    memory: usize,
}

impl Default for Throttle {
    /// 30 failures a minute, in 4 MiB.
    fn default() -> Self {
        Self::new(30, Duration::from_secs(60))
    }
}

impl Throttle {
    /// At most `failures` failed attempts (at least one) per `per` from one address.
    pub fn new(failures: u32, per: Duration) -> Self {
        Self {
            failures: failures.max(1),
            per: per.max(Duration::from_millis(1)),
            memory: 4 << 20,
        }
    }

    /// The table's size in bytes (at least one bucket of eight addresses).
    pub fn memory(mut self, bytes: usize) -> Self {
        self.memory = bytes;
        self
    }

    /// How many addresses the table holds.
    pub fn capacity(&self) -> usize {
        self.buckets() * WAYS
    }

    fn buckets(&self) -> usize {
        (self.memory / std::mem::size_of::<Mutex<Bucket>>()).max(1)
    }
}

/// One address: a keyed hash of it (never 0) and its theoretical arrival time, in nanoseconds
/// since the table's epoch (0 for a free slot).
#[derive(Clone, Copy, Default)]
struct Slot {
    client: u64,
    tat: u64,
}

const WAYS: usize = 8;

type Bucket = [Slot; WAYS];

/// The live table of a [`Throttle`].
pub(crate) struct ThrottleTable {
    config: Throttle,
    interval: u64,
    tolerance: u64,
    hasher: DefaultHashBuilder,
    epoch: Instant,
    buckets: OnceLock<Box<[Mutex<Bucket>]>>,
    /// Set while some address may be out of attempts: otherwise no request looks its client up.
    engaged: AtomicBool,
    /// Until when, in nanoseconds since the epoch, the last address to run out is blocked.
    engaged_until: AtomicU64,
}

impl ThrottleTable {
    pub(crate) fn new(config: Throttle) -> Self {
        let per = u64::try_from(config.per.as_nanos()).unwrap_or(u64::MAX);
        let interval = (per / u64::from(config.failures)).max(1);
        Self {
            config,
            interval,
            // After `failures` failures at once the arrival time is `per` ahead: blocked.
            tolerance: per.saturating_sub(interval),
            hasher: DefaultHashBuilder::default(),
            epoch: Instant::now(),
            buckets: OnceLock::new(),
            engaged: AtomicBool::new(false),
            engaged_until: AtomicU64::new(0),
        }
    }

    pub(crate) fn config(&self) -> &Throttle {
        &self.config
    }

    /// Whether some address may be out of attempts now. Free while none ran out; once the last
    /// block has ended, the next request clears the flag and requests are free again.
    pub(crate) fn engaged(&self) -> bool {
        if !self.engaged.load(Ordering::Relaxed) {
            return false;
        }
        if self.now() < self.engaged_until.load(Ordering::Relaxed) {
            return true;
        }
        // A block that starts meanwhile sets the flag again with its next failure.
        self.engaged.store(false, Ordering::Relaxed);
        false
    }

    /// How long `client` must still wait, if it ran out of attempts.
    pub(crate) fn blocked(&self, client: IpAddr) -> Option<Duration> {
        if !self.engaged() {
            return None;
        }
        let (hash, bucket) = self.place(client);
        let now = self.now();
        let bucket = lock(bucket);
        let slot = bucket.iter().find(|slot| slot.client == hash)?;
        let over = slot.tat.checked_sub(now)?.checked_sub(self.tolerance)?;
        (over > 0).then(|| Duration::from_nanos(over))
    }

    /// Counts a failed attempt of `client`.
    pub(crate) fn fail(&self, client: IpAddr) {
        let _ = self.spend(client, false);
    }

    /// Reserves an attempt of `client` before a store that waits is asked: counted as failed
    /// unless [`release`](Self::release)d, refused (with the wait) when the client is out of
    /// attempts. However many requests of one client are in flight, at most its budget is let
    /// through to the store.
    pub(crate) fn reserve(&self, client: IpAddr) -> Result<(), Duration> {
        self.spend(client, true)
    }

    /// Gives back an attempt reserved for a request that was not a failed one.
    pub(crate) fn release(&self, client: IpAddr) {
        let (hash, bucket) = self.place(client);
        let mut bucket = lock(bucket);
        if let Some(slot) = bucket.iter_mut().find(|slot| slot.client == hash) {
            slot.tat = slot.tat.saturating_sub(self.interval).max(1);
        }
    }

    /// Counts one attempt of `client`; with `checked`, only if it has one left.
    fn spend(&self, client: IpAddr, checked: bool) -> Result<(), Duration> {
        let (hash, bucket) = self.place(client);
        let now = self.now();
        let mut bucket = lock(bucket);
        let at = match bucket.iter().position(|slot| slot.client == hash) {
            Some(at) => at,
            None => {
                // A free slot, or the one with the most attempts left: the earliest arrival time.
                let (at, _) = bucket
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, slot)| slot.tat)
                    .unwrap_or((0, &Slot::default()));
                bucket[at] = Slot {
                    client: hash,
                    tat: 0,
                };
                at
            }
        };
        let slot = &mut bucket[at];
        if checked
            && let Some(over) = slot
                .tat
                .checked_sub(now)
                .and_then(|ahead| ahead.checked_sub(self.tolerance))
                .filter(|over| *over > 0)
        {
            return Err(Duration::from_nanos(over));
        }
        slot.tat = slot.tat.max(now).saturating_add(self.interval);
        if slot.tat - now > self.tolerance {
            self.engaged_until
                .fetch_max(slot.tat - self.tolerance, Ordering::Relaxed);
            self.engaged.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// How many addresses the table holds now, for tests and measurements.
    pub(crate) fn len(&self) -> usize {
        self.buckets.get().map_or(0, |buckets| {
            buckets
                .iter()
                .map(|bucket| lock(bucket).iter().filter(|slot| slot.tat != 0).count())
                .sum()
        })
    }

    fn place(&self, client: IpAddr) -> (u64, &Mutex<Bucket>) {
        let buckets = self.buckets.get_or_init(|| {
            (0..self.config.buckets())
                .map(|_| Mutex::new(Bucket::default()))
                .collect()
        });
        let hash = self.hasher.hash_one(group(client)).max(1);
        let at = usize::try_from(hash % buckets.len() as u64).unwrap_or(0);
        (hash, &buckets[at])
    }

    /// Nanoseconds since the epoch, never 0.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

fn lock(bucket: &Mutex<Bucket>) -> std::sync::MutexGuard<'_, Bucket> {
    bucket
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What an address is counted as: an IPv4 address alone, an IPv6 address by its /64.
fn group(client: IpAddr) -> u128 {
    match client.to_canonical() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6) & !u128::from(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_threshold_and_refills() {
        let table = ThrottleTable::new(Throttle::new(3, Duration::from_millis(300)));
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(table.blocked(client), None);
            table.fail(client);
        }
        let wait = table.blocked(client).expect("blocked after 3 failures");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert_eq!(table.blocked(other), None);
        assert!(table.engaged());
        std::thread::sleep(wait + Duration::from_millis(5));
        assert_eq!(table.blocked(client), None);
        assert!(
            !table.engaged(),
            "once the block ended, requests are free again"
        );
    }

    #[test]
    fn reservations_let_through_at_most_the_budget() {
        let table = ThrottleTable::new(Throttle::new(3, Duration::from_secs(60)));
        let client: IpAddr = "192.0.2.9".parse().unwrap();
        // Three in flight at once: all reserved; the fourth is refused before the store.
        for _ in 0..3 {
            assert_eq!(table.reserve(client), Ok(()));
        }
        assert!(table.reserve(client).is_err());
        // A reservation given back (the key was good) makes room for one more.
        table.release(client);
        assert_eq!(table.reserve(client), Ok(()));
        assert!(table.reserve(client).is_err());
    }

    #[test]
    fn ipv6_counts_per_64_and_ipv4_mapped_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(group(a), group(b));
        assert_ne!(group(a), group(c));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(group(v4), group(mapped));
    }

    #[test]
    fn a_spray_cannot_evict_a_throttled_client() {
        // One bucket of eight: every address meets in it.
        let config =
            Throttle::new(2, Duration::from_secs(60)).memory(std::mem::size_of::<Mutex<Bucket>>());
        assert_eq!(config.capacity(), WAYS);
        let table = ThrottleTable::new(config);
        let attacker: IpAddr = "198.51.100.7".parse().unwrap();
        table.fail(attacker);
        table.fail(attacker);
        assert!(table.blocked(attacker).is_some());
        for i in 0..10_000u32 {
            table.fail(IpAddr::from(i.to_be_bytes()));
        }
        assert!(table.blocked(attacker).is_some());
        assert_eq!(table.len(), WAYS);
    }

    #[test]
    fn memory_is_the_configured_size() {
        let config = Throttle::default();
        let table = ThrottleTable::new(config);
        table.fail("192.0.2.1".parse().unwrap());
        let buckets = table.buckets.get().unwrap();
        let bytes = std::mem::size_of_val::<[Mutex<Bucket>]>(buckets);
        assert!(bytes <= 4 << 20 && bytes > (4 << 20) - 256, "{bytes}");
        assert!(config.capacity() > 200_000, "{}", config.capacity());
    }
}
