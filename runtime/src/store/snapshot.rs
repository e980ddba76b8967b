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
}

/// Versions of every snapshot's sets, never reused, so that a version names one set of one
/// store.
static VERSIONS: AtomicU64 = AtomicU64::new(1);

/// How many sets (of as many stores) a thread keeps at hand.
const READ_SLOTS: usize = 4;

/// A thread's sets at hand, each with its version, and the slot to fill next.
type ReadSlots = ([Option<(u64, Arc<KeySet>)>; READ_SLOTS], usize);

thread_local! {
    /// The sets this thread read last, with their versions: reading one again costs one atomic
    /// load of the snapshot's version instead of `ArcSwap`'s protocol.
    static LAST_READ: std::cell::RefCell<ReadSlots> =
        const { std::cell::RefCell::new(([const { None }; READ_SLOTS], 0)) };
}

impl Snapshot {
    pub(crate) fn new(mut set: KeySet) -> Self {
        set.apply();
        Self {
            current: ArcSwap::from_pointee(set),
            version: AtomicU64::new(VERSIONS.fetch_add(1, Ordering::Relaxed)),
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
            if let Some((_, set)) = slots.iter().flatten().find(|(seen, _)| *seen == version) {
                return read(set);
            }
            // Loaded after the version: a set newer than `version` is fine, an older one
            // impossible (a set is swapped in before its version is published).
            let set = self.current.load_full();
            let out = read(&set);
            slots[*next] = Some((version, set));
            *next = (*next + 1) % READ_SLOTS;
            out
        })
    }
}
