//! [`ReplayGuard`]: message ids already accepted, refused if they come again.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hashbrown::DefaultHashBuilder;

/// Remembers the messages a webhook route accepted, for as long as their timestamp could still
/// pass, so that the same signed request sent again is refused (`replayed`).
///
/// [`SeenIds`] keeps them in this process; a guard shared between instances (a Redis
/// `SET key 1 NX PX ttl`, say) makes every instance refuse what another accepted.
pub trait ReplayGuard: Send + Sync + 'static {
    /// Records `id` for `ttl`; resolves to `true` when it was not recorded yet (the message is
    /// new), `false` when it was (a replay). A guard that cannot answer should say `false`
    /// only if it prefers refusing to accepting twice.
    fn first_sighting<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}

/// The message ids seen in the last while, in this process: at most
/// [`capacity`](Self::with_capacity) of them (100,000 by default, about 4 MiB), each kept
/// until its timestamp could no longer pass. When full, the oldest goes first.
pub struct SeenIds {
    capacity: usize,
    hasher: DefaultHashBuilder,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// A keyed hash of each id, with when it may be forgotten.
    until: HashMap<u64, Instant>,
    /// The same, oldest first.
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
        self.lock().until.len()
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

    fn record(&self, id: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let hash = self.hasher.hash_one(id);
        let mut seen = self.lock();
        // Forget what has expired, oldest first; then make room.
        while let Some(&(until, old)) = seen.order.front() {
            let full = seen.until.len() >= self.capacity;
            if until > now && !full {
                break;
            }
            seen.order.pop_front();
            if seen.until.get(&old) == Some(&until) {
                seen.until.remove(&old);
            }
        }
        if seen.until.get(&hash).is_some_and(|&until| until > now) {
            return false;
        }
        let until = now + ttl;
        seen.until.insert(hash, until);
        seen.order.push_back((until, hash));
        true
    }
}

impl ReplayGuard for SeenIds {
    fn first_sighting<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        let first = self.record(id, ttl);
        Box::pin(std::future::ready(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_refused_until_its_time_is_over() {
        let seen = SeenIds::default();
        assert!(seen.record("a", Duration::from_millis(50)));
        assert!(!seen.record("a", Duration::from_millis(50)));
        assert!(seen.record("b", Duration::from_millis(50)));
        std::thread::sleep(Duration::from_millis(60));
        assert!(seen.record("a", Duration::from_millis(50)));
    }

    #[test]
    fn memory_is_bounded() {
        let seen = SeenIds::with_capacity(100);
        for i in 0..10_000 {
            assert!(seen.record(&format!("id-{i}"), Duration::from_secs(600)));
        }
        assert_eq!(seen.len(), 100);
        assert!(!seen.record("id-9999", Duration::from_secs(600)));
    }
}
