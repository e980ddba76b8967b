//! [`ReplayGuard`]: message ids already accepted, refused if they come again.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hashbrown::DefaultHashBuilder;

/// How a message id stands when a delivery of it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sighting {
    /// Never seen, or its last delivery failed: claimed for this delivery, whose handler runs.
    First,
    /// Another delivery of it is being handled right now: refused with `409`.
    InFlight,
    /// A delivery of it was handled (its handler answered 2xx): refused with `409` as replayed.
    Seen,
    /// The guard cannot take one more id inside its window (every place holds an id that may
    /// still come again): refused with `503`, so that the sender retries, rather than an old
    /// id forgotten and open to a replay.
    Full,
}

/// A boxed future, as the guard's calls return it.
pub type GuardFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Remembers the messages a webhook route handled, for as long as their timestamp could still
/// pass, so that the same signed request sent again is refused (`replayed`): delivery is
/// at least once, and never twice.
///
/// A message id counts as seen only once its handler answered 2xx. While a delivery is being
/// handled, its id is claimed: a concurrent duplicate is refused (409); when the handler
/// answers anything else, or the body is refused, or the request is dropped, the claim is
/// released, so that the sender's retry is accepted.
///
/// [`SeenIds`] keeps them in this process; a guard shared between instances
/// ([`RedisReplayGuard`](crate::RedisReplayGuard) with features `redis` and `webhooks`) makes
/// every instance refuse what another handled.
pub trait ReplayGuard: Send + Sync + 'static {
    /// Claims `id` for a delivery about to be handled, for at most `ttl`.
    fn claim<'a>(&'a self, id: &'a str, ttl: Duration) -> GuardFuture<'a, Sighting>;

    /// The delivery of `id` was handled: refuse it as replayed for `ttl`.
    fn confirm<'a>(&'a self, id: &'a str, ttl: Duration) -> GuardFuture<'a, ()>;

    /// The delivery of `id` failed: forget the claim, so that a retry is accepted.
    fn release<'a>(&'a self, id: &'a str) -> GuardFuture<'a, ()>;
}

/// The message ids of the last while, in this process: at most
/// [`capacity`](Self::with_capacity) of them (100,000 by default, about 4 MiB), each kept
/// until its timestamp could no longer pass. When every place holds an id still inside its
/// window, a new id is refused ([`Sighting::Full`], `503`, counted in the metric
/// `api_key_webhook_ids_full_total`) rather than an old one forgotten: raise the capacity to
/// the messages a route receives in twice its tolerance.
pub struct SeenIds {
    capacity: usize,
    hasher: DefaultHashBuilder,
    seen: Mutex<Seen>,
}

/// Where an id stands, and until when.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Mark {
    until: Instant,
    handled: bool,
}

#[derive(Default)]
struct Seen {
    /// A keyed hash of each id, with its mark.
    marks: HashMap<u64, Mark>,
    /// When each mark may be forgotten, oldest first (a mark changed since has a later entry).
    order: VecDeque<(Instant, u64)>,
}

impl Default for SeenIds {
    fn default() -> Self {
        Self::with_capacity(100_000)
    }
}

impl std::fmt::Debug for SeenIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenIds")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl SeenIds {
    /// Remembers at most `capacity` ids (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            hasher: DefaultHashBuilder::default(),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// How many ids are remembered now.
    pub fn len(&self) -> usize {
        self.lock().marks.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mark(&self, id: &str, ttl: Duration, handled: bool) -> Sighting {
        let now = Instant::now();
        let hash = self.hasher.hash_one(id);
        let mut seen = self.lock();
        // Forget what has expired, oldest first.
        while let Some(&(until, old)) = seen.order.front() {
            if until > now {
                break;
            }
            seen.order.pop_front();
            if seen.marks.get(&old).is_some_and(|mark| mark.until == until) {
                seen.marks.remove(&old);
            }
        }
        let current = seen.marks.get(&hash).copied();
        if !handled {
            match current {
                Some(mark) if mark.handled => return Sighting::Seen,
                Some(_) => return Sighting::InFlight,
                None if seen.marks.len() >= self.capacity => return Sighting::Full,
                None => {}
            }
        }
        let until = now + ttl;
        seen.marks.insert(hash, Mark { until, handled });
        seen.order.push_back((until, hash));
        Sighting::First
    }

    fn unmark(&self, id: &str) {
        let hash = self.hasher.hash_one(id);
        let mut seen = self.lock();
        if seen.marks.get(&hash).is_some_and(|mark| !mark.handled) {
            seen.marks.remove(&hash);
        }
    }
}

impl ReplayGuard for SeenIds {
    fn claim<'a>(&'a self, id: &'a str, ttl: Duration) -> GuardFuture<'a, Sighting> {
        let sighting = self.mark(id, ttl, false);
        if sighting == Sighting::Full {
            crate::usage::webhook_ids_full();
        }
        Box::pin(std::future::ready(sighting))
    }

    fn confirm<'a>(&'a self, id: &'a str, ttl: Duration) -> GuardFuture<'a, ()> {
        self.mark(id, ttl, true);
        Box::pin(std::future::ready(()))
    }

    fn release<'a>(&'a self, id: &'a str) -> GuardFuture<'a, ()> {
        self.unmark(id);
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(seen: &SeenIds, id: &str, ttl: Duration) -> Sighting {
        seen.mark(id, ttl, false)
    }

    #[test]
    fn an_id_is_refused_while_in_flight_and_once_handled_until_its_time_is_over() {
        let seen = SeenIds::default();
        let ttl = Duration::from_millis(50);
        assert_eq!(claim(&seen, "a", ttl), Sighting::First);
        assert_eq!(claim(&seen, "a", ttl), Sighting::InFlight);
        seen.mark("a", ttl, true);
        assert_eq!(claim(&seen, "a", ttl), Sighting::Seen);
        assert_eq!(claim(&seen, "b", ttl), Sighting::First);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(claim(&seen, "a", ttl), Sighting::First);
    }

    #[test]
    fn a_released_claim_lets_the_retry_in() {
        let seen = SeenIds::default();
        let ttl = Duration::from_secs(600);
        assert_eq!(claim(&seen, "a", ttl), Sighting::First);
        seen.unmark("a");
        assert_eq!(claim(&seen, "a", ttl), Sighting::First);
        seen.mark("a", ttl, true);
        // A handled id is never released.
        seen.unmark("a");
        assert_eq!(claim(&seen, "a", ttl), Sighting::Seen);
    }

    #[test]
    fn when_full_new_ids_are_refused_and_old_ones_never_forgotten() {
        let seen = SeenIds::with_capacity(100);
        for i in 0..100 {
            assert_eq!(
                claim(&seen, &format!("id-{i}"), Duration::from_secs(600)),
                Sighting::First
            );
            seen.mark(&format!("id-{i}"), Duration::from_secs(600), true);
        }
        assert_eq!(seen.len(), 100);
        assert_eq!(
            claim(&seen, "id-new", Duration::from_secs(600)),
            Sighting::Full
        );
        assert_eq!(
            claim(&seen, "id-0", Duration::from_secs(600)),
            Sighting::Seen
        );
    }
}
