//! The table against a model, its hinted form, and where its slots are freed.

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
