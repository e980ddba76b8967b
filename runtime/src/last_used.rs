//! When each key was last used, and how often since start-up: counted on the request path
//! with two atomic operations and no lock, written back to the records file at most once a
//! [`LAST_USED_WRITE_DELAY`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest a key's last use waits in memory before [`ApiKeys`](crate::ApiKeys) writes it
/// to its records file (as `last_used`): the file is written at most once in this time,
/// whatever the traffic.
pub const LAST_USED_WRITE_DELAY: Duration = Duration::from_secs(60);

/// One key id's use: the last, in seconds since 1970, and how many since start-up.
#[derive(Debug, Default)]
pub(crate) struct KeyUse {
    last: AtomicU64,
    count: AtomicU64,
    /// The last use written back (seconds), so that only what changed is written.
    written: AtomicU64,
}

impl KeyUse {
    /// Counts a use at `now` (seconds).
    pub(crate) fn used(&self, now: u64) {
        self.last.fetch_max(now, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// The uses of every key id seen since start-up. A key reaches its counters through its
/// record once found, so the table's lock is taken once per key and record version, never per
/// request.
#[derive(Default)]
pub(crate) struct UseTable {
    uses: Mutex<HashMap<Box<str>, Arc<KeyUse>>>,
}

/// Seconds since 1970 of `at`.
pub(crate) fn seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl UseTable {
    /// The counters of `id`, made on its first use. A record keeps them once found (see
    /// `KeyRecord::use_counters`), so that this lock is taken once per record.
    pub(crate) fn of(&self, id: &str) -> Arc<KeyUse> {
        let mut uses = self.uses.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = uses.get(id) {
            return Arc::clone(found);
        }
        let made = Arc::new(KeyUse::default());
        uses.insert(id.into(), Arc::clone(&made));
        made
    }

    /// The last use of `id` since start-up and how many there were, if any.
    pub(crate) fn get(&self, id: &str) -> Option<(SystemTime, u64)> {
        let uses = self.uses.lock().unwrap_or_else(PoisonError::into_inner);
        let found = uses.get(id)?;
        let last = found.last.load(Ordering::Relaxed);
        (last > 0).then(|| {
            (
                UNIX_EPOCH + Duration::from_secs(last),
                found.count.load(Ordering::Relaxed),
            )
        })
    }

    /// The ids used since their last use was last written, with that use (seconds).
    pub(crate) fn unwritten(&self) -> Vec<(Box<str>, u64)> {
        let uses = self.uses.lock().unwrap_or_else(PoisonError::into_inner);
        uses.iter()
            .filter_map(|(id, found)| {
                let last = found.last.load(Ordering::Relaxed);
                (last > found.written.load(Ordering::Relaxed)).then(|| (id.clone(), last))
            })
            .collect()
    }

    /// `last` of `id` is written back.
    pub(crate) fn written(&self, id: &str, last: u64) {
        let uses = self.uses.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = uses.get(id) {
            found.written.fetch_max(last, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_uses_and_keeps_the_latest() {
        let table = UseTable::default();
        assert_eq!(table.get("a"), None);
        let counters = table.of("a");
        counters.used(100);
        counters.used(90); // a request that read the clock earlier finishes later
        let (last, count) = table.get("a").unwrap();
        assert_eq!((seconds(last), count), (100, 2));
        assert_eq!(table.unwritten(), vec![("a".into(), 100)]);
        table.written("a", 100);
        assert!(table.unwritten().is_empty());
        // Another record of the same id (a reloaded key) counts in the same place.
        table.of("a").used(130);
        assert_eq!(table.get("a").map(|(_, count)| count), Some(3));
        assert_eq!(table.unwritten(), vec![("a".into(), 130)]);
    }
}
