//! [`Snapshot`]: the version of a key set that requests read, swapped whole on every change, and
//! read on the request path with one atomic load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use super::set::KeySet;

/// The current set of a store, and its version.
pub(crate) struct Snapshot {
    /// The set requests read, swapped whole on every change.
    current: ArcSwap<KeySet>,
    /// The version of `current`, from a counter shared by every snapshot, set after each swap:
    /// a thread that read this version before reads its own copy of the set's pointer, without
    /// touching `current` (see [`Snapshot::read`]).
    version: AtomicU64,
    /// Which snapshot this is, from the same counter as the versions: a thread keeps one set
    /// of each snapshot it reads, and replaces it with the next version it reads.
    id: u64,
}

/// Versions of every snapshot's sets, never reused, so that a version names one set of one
/// store.
static VERSIONS: AtomicU64 = AtomicU64::new(1);

/// How many sets (of as many stores) a thread keeps at hand.
const READ_SLOTS: usize = 4;

/// A thread's sets at hand, each with its snapshot's id and its version, and the slot to fill
/// next with a snapshot the thread holds no set of.
type ReadSlots = ([Option<(u64, u64, Arc<KeySet>)>; READ_SLOTS], usize);

thread_local! {
    /// The sets this thread read last, at most one per snapshot, with their versions: reading
    /// one again costs one atomic load of the snapshot's version instead of `ArcSwap`'s
    /// protocol. A thread holds the version of a store it read last until it reads that store
    /// again (or three others), never every version it read.
    static LAST_READ: std::cell::RefCell<ReadSlots> =
        const { std::cell::RefCell::new(([const { None }; READ_SLOTS], 0)) };
}

impl Snapshot {
    pub(crate) fn new(mut set: KeySet) -> Self {
        set.apply();
        let version = VERSIONS.fetch_add(1, Ordering::Relaxed);
        Self {
            current: ArcSwap::from_pointee(set),
            version: AtomicU64::new(version),
            id: version,
        }
    }

    /// The current set, to copy and change: for writers, which the store serialises.
    pub(crate) fn load(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// Takes the current set out, leaving an empty one: for a store no one else holds, so that
    /// the set can be changed in place and published again.
    pub(crate) fn take(&self) -> Arc<KeySet> {
        self.current.swap(Arc::default())
    }

    /// Writes `set`'s changes into the slots it shares with the current set (every reader sees
    /// them from here on) and swaps it in; every thread reads it from its next read on.
    pub(crate) fn publish(&self, mut set: KeySet) {
        set.apply();
        self.current.store(Arc::new(set));
        self.version
            .store(VERSIONS.fetch_add(1, Ordering::Relaxed), Ordering::Release);
    }

    /// Runs `read` on the current set.
    pub(crate) fn read<T>(&self, read: impl FnOnce(&KeySet) -> T) -> T {
        let version = self.version.load(Ordering::Acquire);
        LAST_READ.with(|last| {
            let mut last = last.borrow_mut();
            let (slots, next) = &mut *last;
            let held = slots.iter().position(|slot| {
                slot.as_ref()
                    .is_some_and(|(snapshot, _, _)| *snapshot == self.id)
            });
            if let Some(index) = held
                && let Some((_, seen, set)) = &slots[index]
                && *seen == version
            {
                return read(set);
            }
            // Loaded after the version: a set newer than `version` is fine, an older one
            // impossible (a set is swapped in before its version is published).
            let set = self.current.load_full();
            let out = read(&set);
            // In the slot of this snapshot's older version, dropping it; else in an empty slot,
            // or the next in turn.
            let index = held
                .or_else(|| slots.iter().position(Option::is_none))
                .unwrap_or_else(|| {
                    let index = *next;
                    *next = (*next + 1) % READ_SLOTS;
                    index
                });
            slots[index] = Some((self.id, version, set));
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `snapshot`, publishes a new version and reads again: whether the version read
    /// first is still held anywhere.
    fn first_version_held_after_the_next(snapshot: &Snapshot) -> bool {
        snapshot.read(KeySet::len);
        let first = Arc::downgrade(&snapshot.load());
        snapshot.publish(KeySet::default());
        snapshot.read(KeySet::len);
        first.upgrade().is_some()
    }

    /// A thread that has read a set drops it when it reads the next version of the same store:
    /// a store replaced again and again (a resync, a reload) is held once per thread, never as
    /// every version the thread happened to read.
    #[test]
    fn a_thread_keeps_one_set_per_store() {
        let snapshot = Snapshot::new(KeySet::default());
        assert!(!first_version_held_after_the_next(&snapshot));

        // And still so with as many other stores read in between as a thread keeps.
        let others: Vec<Snapshot> = (0..READ_SLOTS)
            .map(|_| Snapshot::new(KeySet::default()))
            .collect();
        for other in &others {
            other.read(KeySet::len);
        }
        assert!(!first_version_held_after_the_next(&snapshot));
    }
}
