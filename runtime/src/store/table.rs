//! [`Table`]: an open-addressed hash table that requests read without a lock and that a change
//! updates in place, one slot at a time.
//!
//! The slots are one array: a slot is a tag (the hash, its lowest bit set, `0` for a slot never
//! used) beside a pointer to the value, so a lookup of a key not in cache waits on memory once
//! for its slot and once for the value, whatever the size of the table. Slots are probed in
//! order from the one the hash's top bits name, and the table is rebuilt, twice as large, before
//! more than 70% of them are taken.
//!
//! A change is made on a copy of the table's handle: the copy shares the slots and keeps its
//! changes aside, by slot, where its own reads see them ([`Table::pending`]). Publishing the copy
//! ([`Table::apply`]) writes them into the shared slots, each with one atomic store, so a change
//! costs the slots it changes, at any size, and a copy that is dropped (a change that failed)
//! changes nothing. A removed value leaves its slot tagged and empty until the next rebuild, so
//! a slot never changes hands between two hashes while a request may be reading it.
//!
//! Two tables may share their slots only as versions of one store: a store built as a copy of
//! another takes a copy of the slots ([`Table::detached`]).
//!
//! A table may be `HINTED`: its values are filed and found by the top half of their hash only,
//! and the bottom half of each slot's tag is free for a hint of the caller's, such as where the
//! same value sits in another table, which [`Table::matching_ahead`] hands over as soon as a
//! slot's tag matches, before its value is read: the caller can read that other slot then
//! ([`Table::warm`]), and the processor wait on memory for both at once rather than one after
//! the other.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;

/// A slot: its tag, and the value (none in a slot whose value was removed).
struct Slot<V> {
    tag: AtomicU64,
    value: ArcSwapOption<V>,
}

/// A slot as a change sees it: its tag and its value.
type Change<V> = (u64, Option<Arc<V>>);

/// A handle on shared slots, with the changes not yet written into them.
pub(crate) struct Table<V: Send + Sync + 'static, const HINTED: bool = false> {
    slots: Arc<[Slot<V>]>,
    /// Changes made through this handle and not yet applied, by slot.
    pending: HashMap<usize, Change<V>>,
    /// Slots taken, those whose value was removed included.
    used: usize,
    /// Slots with a value.
    live: usize,
}

impl<V: Send + Sync + 'static, const HINTED: bool> Clone for Table<V, HINTED> {
    fn clone(&self) -> Self {
        Self {
            slots: self.slots.clone(),
            pending: self.pending.clone(),
            used: self.used,
            live: self.live,
        }
    }
}

impl<V: Send + Sync + 'static, const HINTED: bool> Default for Table<V, HINTED> {
    fn default() -> Self {
        Self {
            slots: Arc::new([]),
            pending: HashMap::new(),
            used: 0,
            live: 0,
        }
    }
}

/// The tag of `hash`: never `0`, the tag of a slot never used.
fn tag_of(hash: u64) -> u64 {
    hash | 1
}

/// The first slot probed for `hash` in a table of `len` slots (a power of two): the hash's top
/// bits, which its tag keeps.
fn home(hash: u64, len: usize) -> usize {
    let bits = len.trailing_zeros();
    if bits == 0 {
        return 0;
    }
    (hash >> (64 - bits)) as usize
}

/// The bits of a hinted table's tags that file and find its values: the top half.
const FILED: u64 = !0 << 32;

/// The fewest slots (a power of two, 16 at least) that hold `live` values at most half full.
fn capacity_for(live: usize) -> usize {
    live.saturating_mul(2).max(16).next_power_of_two()
}

impl<V: Send + Sync + 'static, const HINTED: bool> Table<V, HINTED> {
    /// The part of a hash or tag that files and finds a value: all of it, or the top half in a
    /// hinted table.
    fn filed(hash: u64) -> u64 {
        if HINTED { hash & FILED } else { hash }
    }

    /// Whether a slot's tag is that of `hash`.
    fn same(taken: u64, hash: u64) -> bool {
        Self::filed(taken) == Self::filed(tag_of(hash))
    }

    /// The first slot probed for `hash`.
    fn home_of(&self, hash: u64) -> usize {
        home(Self::filed(hash), self.slots.len())
    }

    /// Reads the tag of the first slot probed for `hash`, for a change that will need that slot
    /// after other memory it must wait on: the read is issued now, and the processor can wait
    /// on both at once. (A prefetch instruction would say so outright, but it takes `unsafe`
    /// code here, which this crate does not have.)
    pub(crate) fn warm(&self, hash: u64) {
        if !self.slots.is_empty() {
            std::hint::black_box(self.slots[self.home_of(hash)].tag.load(Ordering::Relaxed));
        }
    }

    /// How many values the table holds.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The tag of slot `at` as this handle sees it.
    fn tag_at(&self, at: usize) -> u64 {
        match self.pending.get(&at) {
            Some((tag, _)) => *tag,
            None => self.slots[at].tag.load(Ordering::Acquire),
        }
    }

    /// The value in slot `at` as this handle sees it: read only for a slot whose tag matched,
    /// so that a probe does not touch the reference counts of the values it passes.
    fn value_at(&self, at: usize) -> Option<Arc<V>> {
        match self.pending.get(&at) {
            Some((_, value)) => value.clone(),
            None => self.slots[at].value.load_full(),
        }
    }

    /// The first of the values filed under `hash` for which `found` returns something, and
    /// what it returned. The request path: no allocation, no lock, and a value's reference
    /// count is touched only if `found` takes it.
    pub(crate) fn find<R>(
        &self,
        hash: u64,
        mut found: impl FnMut(&Arc<V>) -> Option<R>,
    ) -> Option<R> {
        let len = self.slots.len();
        if len == 0 {
            return None;
        }
        let tag = Self::filed(tag_of(hash));
        let mut at = home(Self::filed(hash), len);
        for _ in 0..len {
            if !self.pending.is_empty()
                && let Some((taken, value)) = self.pending.get(&at)
            {
                if Self::filed(*taken) == tag
                    && let Some(value) = value
                    && let Some(out) = found(value)
                {
                    return Some(out);
                }
            } else {
                let slot = &self.slots[at];
                let taken = slot.tag.load(Ordering::Acquire);
                if taken == 0 {
                    return None;
                }
                if Self::filed(taken) == tag
                    && let Some(value) = &*slot.value.load()
                    && let Some(out) = found(value)
                {
                    return Some(out);
                }
            }
            at = (at + 1) & (len - 1);
        }
        None
    }

    /// Every value filed under `hash` that `wanted` accepts, with its slot: for changes.
    pub(crate) fn matching(&self, hash: u64, wanted: impl Fn(&V) -> bool) -> Vec<(usize, Arc<V>)> {
        self.matching_ahead(hash, |_| {}, wanted)
    }

    /// [`matching`](Self::matching), handing `ahead` the tag of each slot filed under `hash`
    /// before its value is read (in a hinted table, with the caller's hint in its bottom half).
    pub(crate) fn matching_ahead(
        &self,
        hash: u64,
        mut ahead: impl FnMut(u64),
        wanted: impl Fn(&V) -> bool,
    ) -> Vec<(usize, Arc<V>)> {
        let len = self.slots.len();
        let mut out = Vec::new();
        if len == 0 {
            return out;
        }
        let mut at = self.home_of(hash);
        for _ in 0..len {
            match self.tag_at(at) {
                0 => break,
                taken if Self::same(taken, hash) => {
                    ahead(taken);
                    if let Some(value) = self.value_at(at).filter(|value| wanted(value)) {
                        out.push((at, value));
                    }
                }
                _ => {}
            }
            at = (at + 1) & (len - 1);
        }
        out
    }

    /// Files `value` under `hash`, rebuilding the table first if it would be more than 70%
    /// taken.
    pub(crate) fn insert(&mut self, hash: u64, value: Arc<V>) {
        if (self.used + 1) * 10 > self.slots.len() * 7 {
            self.rebuild(capacity_for(self.live + 1));
        }
        let len = self.slots.len();
        let mut at = self.home_of(hash);
        while self.tag_at(at) != 0 {
            at = (at + 1) & (len - 1);
        }
        self.pending.insert(at, (tag_of(hash), Some(value)));
        self.used += 1;
        self.live += 1;
    }

    /// Replaces the value in slot `at` (a slot [`matching`](Self::matching) returned), or
    /// removes it with `None`.
    pub(crate) fn replace(&mut self, at: usize, value: Option<Arc<V>>) {
        let (tag, old) = (self.tag_at(at), self.value_at(at));
        match (old.is_some(), value.is_some()) {
            (true, false) => self.live -= 1,
            (false, true) => self.live += 1,
            _ => {}
        }
        self.pending.insert(at, (tag, value));
    }

    /// Every value, in no particular order.
    pub(crate) fn values(&self) -> Vec<Arc<V>> {
        (0..self.slots.len())
            .filter(|&at| self.tag_at(at) != 0)
            .filter_map(|at| self.value_at(at))
            .collect()
    }

    /// Writes the pending changes into the shared slots, where every reader sees them: each
    /// value before its tag, so that a reader who sees a new tag sees its value.
    pub(crate) fn apply(&mut self) {
        for (at, (tag, value)) in self.pending.drain() {
            let slot = &self.slots[at];
            slot.value.store(value);
            slot.tag.store(tag, Ordering::Release);
        }
    }

    /// A table of its own with the same values, sharing nothing with this one.
    pub(crate) fn detached(&self) -> Self {
        let mut copy = self.clone();
        copy.rebuild(capacity_for(self.live));
        copy
    }

    /// Moves every value into new slots, `len` of them, with nothing pending.
    fn rebuild(&mut self, len: usize) {
        let mut laid: Vec<Change<V>> = (0..len).map(|_| (0, None)).collect();
        for at in 0..self.slots.len() {
            let tag = self.tag_at(at);
            if tag == 0 {
                continue;
            }
            if let Some(value) = self.value_at(at) {
                let mut to = home(Self::filed(tag), len);
                while laid[to].0 != 0 {
                    to = (to + 1) & (len - 1);
                }
                laid[to] = (tag, Some(value));
            }
        }
        let old = std::mem::replace(
            &mut self.slots,
            laid.into_iter()
                .map(|(tag, value)| Slot {
                    tag: AtomicU64::new(tag),
                    value: ArcSwapOption::new(value),
                })
                .collect(),
        );
        retire(old);
        self.pending.clear();
        self.used = self.live;
    }
}

impl<V: Send + Sync + 'static, const HINTED: bool> Drop for Table<V, HINTED> {
    fn drop(&mut self) {
        if self.slots.len() >= RETIRED_APART {
            retire(std::mem::replace(&mut self.slots, Arc::new([])));
        }
    }
}

/// Slots from how many on are freed on a thread of their own when the last handle on them goes.
const RETIRED_APART: usize = 1 << 14;

/// Lets go of a handle on slots. Freeing slots costs about 200 ns each (each pointer settles
/// what readers may owe it), 200 ms at a million keys: when this is the last handle on many of
/// them, as when a thread reads a store's next version after its table grew and drops the one
/// before, they are freed on a thread of their own, never on a request's.
fn retire<V: Send + Sync + 'static>(slots: Arc<[Slot<V>]>) {
    // One handle left, and it is this one: no other can be made from it meanwhile.
    if slots.len() < RETIRED_APART || Arc::strong_count(&slots) > 1 {
        return;
    }
    #[cfg(test)]
    let at = Arc::as_ptr(&slots).cast::<()>() as usize;
    // Should no thread start, the slots are freed here as the closure is dropped.
    let _ = std::thread::Builder::new()
        .name("axum-api-key-free".into())
        .spawn(move || {
            drop(slots);
            #[cfg(test)]
            tests::freed(at);
        });
}

#[cfg(test)]
mod tests;
