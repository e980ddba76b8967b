//! Budgets counted in this process: one GCRA cell per key id, limit and route, spent together
//! or not at all, and forgotten once full again.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hashbrown::{DefaultHashBuilder, HashTable};

use super::{Budget, RateLimit, Scope};

/// One budget: its theoretical arrival time (GCRA), in nanoseconds since the budgets' epoch.
/// A time at or before now is a full budget.
pub(crate) struct Cell {
    tat: AtomicU64,
}

/// A key's budget kept in its record: the cell, and which [`LocalBudgets`] it belongs to (a
/// record may be read by stores with different limiters). The record keeps the cell alive when
/// the table forgets it (full again); so a store's keys hold at most one small cell each.
#[derive(Clone)]
pub(crate) struct KeptBudget {
    owner: u64,
    cell: Arc<Cell>,
}

/// What a budget is counted under: the key's id, the limit (a changed limit starts afresh), and
/// the route for a route's own limit.
#[derive(Hash, PartialEq, Eq)]
struct BudgetKey {
    id: Box<str>,
    route: Option<&'static str>,
    limit: RateLimit,
}

/// The same, borrowed from the request: looked up without an allocation.
#[derive(Hash)]
struct BudgetRef<'a> {
    id: &'a str,
    route: Option<&'static str>,
    limit: RateLimit,
}

impl BudgetRef<'_> {
    fn matches(&self, key: &BudgetKey) -> bool {
        *key.id == *self.id && key.route == self.route && key.limit == self.limit
    }
}

const SHARDS: usize = 16;

/// How many budgets a shard may hold before the full ones are swept out: past it, each new
/// budget first sweeps the shard.
const SWEEP_ABOVE: usize = 4_096;

/// The most budgets a shard holds, in debt or not: 16 shards of 16,384, about 30 MiB in all.
/// Requests without a key on an `optional` route make a budget per client address, which a
/// spray of addresses could multiply; past this, the half of the shard nearest to full goes. A
/// key's own budget lives on in its record; a budget dropped in debt starts again whole.
const MOST_PER_SHARD: usize = 16_384;

/// One shard of the budgets: each budget by what it is counted under, and the size at which
/// it is swept next (twice what the last sweep left, so that sweeps cost O(1) a budget made).
#[derive(Default)]
struct Shard {
    table: HashTable<(BudgetKey, Arc<Cell>)>,
    sweep_at: usize,
}

/// Every budget in use, in shards so that requests of different keys rarely meet on a lock.
/// Entries are made only for keys that were accepted, so failing keys never add one; an entry
/// whose budget is full again carries no information and is dropped when its shard is swept
/// (a new one, made full, counts the same).
pub(crate) struct LocalBudgets {
    /// Unique in the process: what kept budgets are checked against.
    id: u64,
    hasher: DefaultHashBuilder,
    shards: [Mutex<Shard>; SHARDS],
    epoch: Instant,
}

impl Default for LocalBudgets {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            hasher: DefaultHashBuilder::default(),
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            epoch: Instant::now(),
        }
    }
}

/// A budget to spend: its cell, what it counts, and its limit.
pub(crate) type Spend<'a> = (&'a Cell, Scope, RateLimit);

impl LocalBudgets {
    /// The budget of `id` under `limit` (and `route`, for a route's own limit). A key's own
    /// budget is kept in `kept` once found, and read from there after, borrowed: the request
    /// path touches no reference count. A budget found in the table is held in `held`.
    pub(crate) fn budget<'a, 'i>(
        &self,
        id: &dyn Fn() -> &'i str,
        scope: Scope,
        limit: RateLimit,
        kept: Option<&'a OnceLock<KeptBudget>>,
        held: &'a mut Option<Arc<Cell>>,
    ) -> &'a Cell {
        if let Some(budget) = kept.and_then(OnceLock::get)
            && budget.owner == self.id
        {
            return &budget.cell;
        }
        let cell = self.find(id(), scope, limit);
        if let Some(kept) = kept {
            let _ = kept.set(KeptBudget {
                owner: self.id,
                cell: Arc::clone(&cell),
            });
        }
        held.insert(cell)
    }

    /// Spends one request of every budget in `budgets`, or of none: a request refused by one
    /// budget spends nothing of the others. Returns each budget after the request, and the
    /// wait when refused.
    pub(crate) fn spend_all(
        &self,
        budgets: &[Option<Spend<'_>>; 2],
    ) -> ([Option<Budget>; 2], Option<Duration>) {
        let now = self.now();
        let mut counted = [None, None];
        for (at, (cell, scope, limit)) in budgets
            .iter()
            .enumerate()
            .filter_map(|(at, b)| Some((at, b.as_ref()?)))
        {
            match spend(cell, *limit, now) {
                Ok((remaining, reset)) => {
                    counted[at] = Some(Budget::new(*scope, *limit, remaining, reset));
                }
                Err((wait, reset)) => {
                    // Give back what the budgets before this one spent.
                    for (cell, _, limit) in budgets[..at].iter().flatten() {
                        refund(cell, *limit);
                    }
                    counted[at] = Some(Budget::new(*scope, *limit, 0, reset));
                    return (counted, Some(Duration::from_nanos(wait)));
                }
            }
        }
        (counted, None)
    }

    /// Sets `cell` to the state the shared limiter reported: whole again in `reset`
    /// nanoseconds. A request counted here while Redis is slow spends from what Redis last
    /// said, never from a full budget of this process's own.
    #[cfg(feature = "redis")]
    pub(crate) fn mirror(&self, cell: &Cell, reset: u64) {
        let tat = if reset == 0 {
            0
        } else {
            self.now().saturating_add(reset)
        };
        cell.tat.store(tat, Ordering::Release);
    }

    /// The budget of `id` under `limit` and `scope`, made on first use.
    fn find(&self, id: &str, scope: Scope, limit: RateLimit) -> Arc<Cell> {
        let route = match scope {
            Scope::Key => None,
            Scope::Route(route) => Some(route),
        };
        let wanted = BudgetRef { id, route, limit };
        let hash = self.hasher.hash_one(&wanted);
        // The low bits pick the table's bucket; the high ones the shard.
        let shard = &self.shards[(hash >> 60) as usize % SHARDS];
        let mut shard = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, cell)) = shard.table.find(hash, |(key, _)| wanted.matches(key)) {
            return Arc::clone(cell);
        }
        if shard.table.len() >= shard.sweep_at.max(SWEEP_ABOVE) {
            let table = &mut shard.table;
            let now = self.now();
            // Full budgets go; the table gives back the memory once it is mostly empty.
            table.retain(|(_, cell)| cell.tat.load(Ordering::Relaxed) > now);
            if table.len() >= MOST_PER_SHARD {
                // Every budget here is in debt: keep those deepest in it, the ones a client is
                // pressing hardest, above the shard's mean.
                let sum: u128 = table
                    .iter()
                    .map(|(_, cell)| u128::from(cell.tat.load(Ordering::Relaxed)))
                    .sum();
                let mean = u64::try_from(sum / table.len() as u128).unwrap_or(u64::MAX);
                table.retain(|(_, cell)| cell.tat.load(Ordering::Relaxed) > mean);
            }
            if table.len() * 4 < table.capacity() {
                let hasher = &self.hasher;
                let keep = table.len() * 2;
                table.shrink_to(keep, |(key, _)| rehash(hasher, key));
            }
            shard.sweep_at = (shard.table.len() * 2).clamp(SWEEP_ABOVE, MOST_PER_SHARD);
        }
        let key = BudgetKey {
            id: id.into(),
            route,
            limit,
        };
        let cell = Arc::new(Cell {
            tat: AtomicU64::new(0),
        });
        let hasher = &self.hasher;
        shard
            .table
            .insert_unique(hash, (key, Arc::clone(&cell)), |(key, _)| {
                rehash(hasher, key)
            });
        cell
    }

    /// Nanoseconds since the epoch, never 0.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// How many budgets are kept, for tests and measurements.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .table
                    .len()
            })
            .sum()
    }

    /// Drops every budget that is full again, in every shard: what a sweep does to a shard
    /// that grew past its bound, for tests and measurements.
    pub(crate) fn sweep(&self) {
        let now = self.now();
        for shard in &self.shards {
            let mut shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let table = &mut shard.table;
            table.retain(|(_, cell)| cell.tat.load(Ordering::Relaxed) > now);
            let hasher = &self.hasher;
            let keep = table.len();
            table.shrink_to(keep, |(key, _)| rehash(hasher, key));
        }
    }
}

fn rehash(hasher: &DefaultHashBuilder, key: &BudgetKey) -> u64 {
    hasher.hash_one(BudgetRef {
        id: &key.id,
        route: key.route,
        limit: key.limit,
    })
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// GCRA: spends one request of `cell` if it fits in the burst. `Ok` with the requests left and
/// the nanoseconds until the budget is whole again; `Err` with the nanoseconds to wait and
/// until whole.
fn spend(cell: &Cell, limit: RateLimit, now: u64) -> Result<(u32, u64), (u64, u64)> {
    let interval = nanos(limit.interval()).max(1);
    let capacity = interval.saturating_mul(u64::from(limit.burst()));
    let mut tat = cell.tat.load(Ordering::Acquire);
    loop {
        let next = tat.max(now).saturating_add(interval);
        let ahead = next - now;
        if ahead > capacity {
            return Err((ahead - capacity, tat.saturating_sub(now)));
        }
        match cell
            .tat
            .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                let remaining = u32::try_from((capacity - ahead) / interval).unwrap_or(u32::MAX);
                return Ok((remaining, ahead));
            }
            Err(current) => tat = current,
        }
    }
}

/// Gives back one request spent of `cell`.
fn refund(cell: &Cell, limit: RateLimit) {
    let interval = nanos(limit.interval()).max(1);
    let _ = cell
        .tat
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
            Some(tat.saturating_sub(interval))
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let limit = RateLimit::new(10, Duration::from_secs(1)).with_burst(3);
        let cell = Cell {
            tat: AtomicU64::new(0),
        };
        let now = 1_000_000_000;
        assert_eq!(spend(&cell, limit, now), Ok((2, 100_000_000)));
        assert_eq!(spend(&cell, limit, now), Ok((1, 200_000_000)));
        assert_eq!(spend(&cell, limit, now), Ok((0, 300_000_000)));
        assert_eq!(spend(&cell, limit, now), Err((100_000_000, 300_000_000)));
        // One interval later, one more.
        assert_eq!(spend(&cell, limit, now + 100_000_000), Ok((0, 300_000_000)));
    }

    #[test]
    fn a_refusal_by_one_budget_spends_none_of_the_others() {
        let budgets = LocalBudgets::default();
        let key = RateLimit::new(100, Duration::from_secs(60));
        let route = RateLimit::new(1, Duration::from_secs(60));
        let (mut a, mut b) = (None, None);
        let key_cell = budgets.budget(&|| "a", Scope::Key, key, None, &mut a);
        let route_cell = budgets.budget(&|| "a", Scope::Route("r"), route, None, &mut b);
        let spends = [
            Some((key_cell, Scope::Key, key)),
            Some((route_cell, Scope::Route("r"), route)),
        ];
        let (first, wait) = budgets.spend_all(&spends);
        assert!(wait.is_none());
        assert_eq!(first[0].map(|b| b.remaining), Some(99));
        for _ in 0..10 {
            let (_, wait) = budgets.spend_all(&spends);
            assert!(wait.is_some(), "the route's budget is used up");
        }
        // The key's own budget lost only the one request that was let in.
        let only_key = [Some((key_cell, Scope::Key, key)), None];
        let (after, wait) = budgets.spend_all(&only_key);
        assert!(wait.is_none());
        assert_eq!(after[0].map(|b| b.remaining), Some(98));
    }

    #[test]
    fn full_budgets_are_swept_and_kept_ones_found_again() {
        let budgets = LocalBudgets::default();
        let limit = RateLimit::new(1_000, Duration::from_millis(1));
        for i in 0..10_000 {
            let id = format!("id-{i}");
            let mut held = None;
            let cell = budgets.budget(&|| id.as_str(), Scope::Key, limit, None, &mut held);
            let _ = budgets.spend_all(&[Some((cell, Scope::Key, limit)), None]);
        }
        std::thread::sleep(Duration::from_millis(5));
        budgets.sweep();
        assert_eq!(budgets.len(), 0, "every budget is full again");
        // A key that keeps its budget in its record keeps counting in it, swept or not.
        let kept = OnceLock::new();
        let mut held = None;
        let cell = budgets.budget(&|| "kept", Scope::Key, limit, Some(&kept), &mut held);
        let _ = budgets.spend_all(&[Some((cell, Scope::Key, limit)), None]);
        budgets.sweep();
        let mut held = None;
        let again = budgets.budget(&|| "kept", Scope::Key, limit, Some(&kept), &mut held);
        assert_ne!(again.tat.load(Ordering::Relaxed), 0);
    }
}
