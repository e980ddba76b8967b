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
mod tests {
    use super::*;

    /// The slot arrays freed apart, by address, with the thread that freed them.
    static FREED: std::sync::Mutex<Vec<(usize, std::thread::ThreadId)>> =
        std::sync::Mutex::new(Vec::new());

    pub(super) fn freed(at: usize) {
        FREED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((at, std::thread::current().id()));
    }

    fn freed_by(at: usize) -> Option<std::thread::ThreadId> {
        let freed = FREED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        freed
            .iter()
            .find(|(address, _)| *address == at)
            .map(|(_, by)| *by)
    }

    /// A large table's slots are freed on a thread of their own when its last handle goes,
    /// never on the thread that dropped it (a request, reading the next version of a store),
    /// and not while another handle shares them.
    #[test]
    fn large_slots_are_freed_apart_when_the_last_handle_goes() {
        let mut table = Table::<_>::default();
        for i in 0..20_000u64 {
            table.insert(spread(i), Arc::new(i));
        }
        assert!(table.slots.len() >= RETIRED_APART);
        let at = Arc::as_ptr(&table.slots).cast::<()>() as usize;
        // An array freed before this one was made may have had its address.
        FREED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(address, _)| *address != at);
        let copy = table.clone();
        drop(table);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(freed_by(at), None, "freed while a copy holds them");
        let weak = Arc::downgrade(&copy.slots);
        drop(copy);
        let started = std::time::Instant::now();
        while weak.upgrade().is_some() || freed_by(at).is_none() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "never freed"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_ne!(freed_by(at), Some(std::thread::current().id()));
    }

    fn spread(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn get(table: &Table<u64>, i: u64) -> Option<u64> {
        table.find(spread(i), |value| (**value == i).then_some(i))
    }

    #[test]
    fn holds_what_was_put_and_a_copy_changes_nothing_until_applied() {
        let mut table = Table::<_>::default();
        for i in 0..10_000u64 {
            table.insert(spread(i), Arc::new(i));
        }
        table.apply();
        assert_eq!(table.len(), 10_000);
        assert!((0..10_000).all(|i| get(&table, i) == Some(i)));
        assert_eq!(get(&table, 10_001), None);

        // A copy's changes are its own until applied.
        let mut copy = table.clone();
        let (at, _) = copy.matching(spread(7), |value| *value == 7)[0];
        copy.replace(at, None);
        copy.insert(spread(20_000), Arc::new(20_000));
        assert_eq!(get(&copy, 7), None);
        assert_eq!(get(&copy, 20_000), Some(20_000));
        assert_eq!(
            get(&table, 7),
            Some(7),
            "the table read meanwhile is unchanged"
        );
        assert_eq!(get(&table, 20_000), None);
        drop(copy.clone()); // a dropped copy changes nothing either
        copy.apply();
        assert_eq!(get(&table, 7), None, "applied: every handle sees it");
        assert_eq!(get(&table, 20_000), Some(20_000));
        assert_eq!(copy.len(), 10_000);

        // A detached copy shares nothing.
        let mut apart = copy.detached();
        let (at, _) = apart.matching(spread(8), |value| *value == 8)[0];
        apart.replace(at, None);
        apart.apply();
        assert_eq!(get(&apart, 8), None);
        assert_eq!(get(&copy, 8), Some(8));
    }

    /// A hinted table files and finds by the top half of the hash alone: values filed with the
    /// same top half and different hints are found under either, each handed over with its
    /// hint before its value is read, across a rebuild; a different top half finds nothing.
    #[test]
    fn a_hinted_table_finds_by_the_top_half_and_hands_over_the_hint() {
        let mut table: Table<u64, true> = Table::default();
        let top = spread(1) & FILED;
        table.insert(top | 0xAAAA, Arc::new(1));
        table.insert(top | 0x5555, Arc::new(2));
        for i in 10..2_000u64 {
            table.insert(spread(i) & FILED | i, Arc::new(i)); // grows the table past its first size
        }
        table.apply();
        for asked in [top, top | 0x1234] {
            let mut hints = Vec::new();
            let found = table.matching_ahead(asked, |tag| hints.push(tag & !FILED), |_| true);
            let mut values: Vec<u64> = found.iter().map(|(_, value)| **value).collect();
            values.sort_unstable();
            assert_eq!(values, [1, 2]);
            hints.sort_unstable();
            assert_eq!(
                hints,
                [0x5555, 0xAAAB],
                "each hint, its lowest bit set as in any tag"
            );
        }
        assert!(matches!(
            table.find(top | 7, |value| Some(**value)),
            Some(1 | 2)
        ));
        assert!(table.matching(top ^ (1 << 40), |_| true).is_empty());
        assert!((10..2_000u64).all(|i| {
            table.find(spread(i) & FILED, |value| (**value == i).then_some(i)) == Some(i)
        }));
    }

    proptest::proptest! {
        /// A hint made of a hash's top half, as a hinted table's tag keeps it in its bottom
        /// half (its lowest bit set), names the same first slot as the whole hash in any table
        /// of up to 2^31 slots: what lets a change ask for a slot of another table ahead.
        #[test]
        fn a_hint_names_the_home_of_the_hash_it_was_made_of(hash: u64, bits in 0u32..32) {
            let tag = tag_of(hash >> 32);
            let len = 1usize << bits;
            proptest::prop_assert_eq!(home(tag << 32, len), home(hash, len));
        }
    }

    /// One step of a table's life, for the model below.
    #[derive(Debug, Clone)]
    enum Step {
        Insert(u64),
        Remove(u64),
        Replace(u64, u64),
        Apply,
        Detach,
        /// A copy changed and dropped unpublished: a failed change.
        Abandon(u64),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        // Few keys, so that inserts, removals and reuse meet often.
        let key = 0u64..48;
        prop_oneof![
            4 => key.clone().prop_map(Step::Insert),
            2 => key.clone().prop_map(Step::Remove),
            2 => (key.clone(), any::<u64>()).prop_map(|(k, v)| Step::Replace(k, v)),
            2 => Just(Step::Apply),
            1 => Just(Step::Detach),
            1 => key.prop_map(Step::Abandon),
        ]
    }

    /// The hash of key `k`: few distinct top bits, so that probes run through each other's
    /// slots and tombstones.
    fn crowded(k: u64) -> u64 {
        (k % 5) << 61 | k
    }

    /// Against a map: whatever the sequence of inserts, removals, replacements, copies and
    /// rebuilds, the table holds exactly what the map holds, and a published copy shows it to
    /// every handle. Values are filed under `filed(k)` and looked up under `crowded(k)`: the same
    /// hash, or in a hinted table the same top half with a hint of the key's own below.
    fn behaves_as_a_map<const HINTED: bool>(
        steps: Vec<Step>,
        filed: impl Fn(u64) -> u64,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        use std::collections::HashMap;
        let mut model: HashMap<u64, u64> = HashMap::new();
        let mut table: Table<(u64, u64), HINTED> = Table::default();
        let get = |table: &Table<(u64, u64), HINTED>, k: u64| {
            table.find(crowded(k), |value| (value.0 == k).then_some(value.1))
        };
        for step in steps {
            match step {
                Step::Insert(k) => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = model.entry(k) {
                        slot.insert(k);
                        table.insert(filed(k), Arc::new((k, k)));
                    }
                }
                Step::Remove(k) => {
                    if model.remove(&k).is_some() {
                        let found = table.matching(crowded(k), |value| value.0 == k);
                        proptest::prop_assert_eq!(found.len(), 1);
                        table.replace(found[0].0, None);
                    }
                }
                Step::Replace(k, v) => {
                    if let Some(value) = model.get_mut(&k) {
                        *value = v;
                        let found = table.matching(crowded(k), |value| value.0 == k);
                        table.replace(found[0].0, Some(Arc::new((k, v))));
                    }
                }
                Step::Apply => {
                    let reader = table.clone();
                    table.apply();
                    // A handle taken before, on the same slots, sees what was applied
                    // unless the table was rebuilt under it.
                    if Arc::ptr_eq(&reader.slots, &table.slots) {
                        for (&k, &v) in &model {
                            proptest::prop_assert_eq!(get(&reader, k), Some(v));
                        }
                    }
                }
                Step::Detach => {
                    let mut apart = table.detached();
                    for k in 0..48 {
                        proptest::prop_assert_eq!(get(&apart, k), model.get(&k).copied());
                    }
                    // Changing the detached copy leaves the table alone.
                    for (at, _) in apart.matching(crowded(0), |value| value.0 == 0) {
                        apart.replace(at, None);
                    }
                    apart.apply();
                }
                Step::Abandon(k) => {
                    let mut copy = table.clone();
                    copy.insert(filed(k + 1_000), Arc::new((k + 1_000, 0)));
                    for (at, _) in copy.matching(crowded(k), |value| value.0 == k) {
                        copy.replace(at, None);
                    }
                }
            }
            proptest::prop_assert_eq!(table.len(), model.len());
            for k in 0..48 {
                proptest::prop_assert_eq!(get(&table, k), model.get(&k).copied(), "key {}", k);
            }
            for k in 1_000..1_048 {
                proptest::prop_assert!(get(&table, k).is_none(), "abandoned key {}", k);
            }
            proptest::prop_assert!(table.used * 10 <= table.slots.len() * 7);
        }
        table.apply();
        let mut values: Vec<(u64, u64)> = table.values().iter().map(|value| **value).collect();
        values.sort_unstable();
        let mut expected: Vec<(u64, u64)> = model.into_iter().collect();
        expected.sort_unstable();
        proptest::prop_assert_eq!(values, expected);
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn a_table_behaves_as_a_map(steps in proptest::collection::vec(step(), 1..200)) {
            behaves_as_a_map::<false>(steps, crowded)?;
        }

        #[test]
        fn a_hinted_table_behaves_as_a_map(steps in proptest::collection::vec(step(), 1..200)) {
            behaves_as_a_map::<true>(steps, |k| {
                crowded(k) & FILED | spread(k) >> 32
            })?;
        }
    }

    #[test]
    fn removed_slots_are_reclaimed_by_rebuilding() {
        let mut table = Table::<_>::default();
        for round in 0..50u64 {
            for i in 0..100 {
                table.insert(spread(round * 1_000 + i), Arc::new(round * 1_000 + i));
            }
            for i in 0..100 {
                let key = round * 1_000 + i;
                let (at, _) = table.matching(spread(key), |value| *value == key)[0];
                table.replace(at, None);
            }
            table.apply();
        }
        assert_eq!(table.len(), 0);
        assert!(table.slots.len() <= 256, "{} slots", table.slots.len());
        // Hashes that share their top bits probe on.
        let mut crowded = Table::<_>::default();
        for i in 0..100u64 {
            crowded.insert(i, Arc::new(i));
        }
        assert!((0..100).all(|i| crowded.find(i, |v| (**v == i).then_some(())).is_some()));
    }
}
