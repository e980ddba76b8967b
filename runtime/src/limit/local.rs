//! Budgets counted in this process: one `governor` cell per key id, limit and route.

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use governor::clock::{Clock, QuantaClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use hashbrown::{DefaultHashBuilder, HashTable};

use super::{Budget, RateLimit, Scope};

type Cell = RateLimiter<NotKeyed, InMemoryState, QuantaClock, StateInformationMiddleware>;

/// A key's budget kept in its record: the cell, and which [`LocalBudgets`] it belongs to (a
/// record may be read by stores with different limiters).
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

/// One shard of the budgets: each budget by what it is counted under.
type Shard = HashTable<(BudgetKey, Arc<Cell>)>;

/// Every budget in use, in shards so that requests of different keys rarely meet on a lock.
/// Entries are made only for keys that were accepted, so failing keys never add one.
pub(crate) struct LocalBudgets {
    /// Unique in the process: what kept budgets are checked against.
    id: u64,
    hasher: DefaultHashBuilder,
    shards: [Mutex<Shard>; SHARDS],
    clock: QuantaClock,
}

impl Default for LocalBudgets {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            hasher: DefaultHashBuilder::default(),
            shards: std::array::from_fn(|_| Mutex::new(HashTable::new())),
            clock: QuantaClock::default(),
        }
    }
}

impl LocalBudgets {
    /// Spends one request of the budget of `id` under `limit` (and `route`, for a route's own
    /// limit). A key's own budget is kept in `kept` once found, and read from there after.
    pub(crate) fn spend<'a>(
        &self,
        id: &dyn Fn() -> &'a str,
        scope: Scope,
        limit: RateLimit,
        kept: Option<&OnceLock<KeptBudget>>,
    ) -> (Budget, Option<Duration>) {
        if let Some(budget) = kept.and_then(OnceLock::get)
            && budget.owner == self.id
        {
            return self.check(&budget.cell, scope, limit);
        }
        let cell = self.find(id(), scope, limit);
        if let Some(kept) = kept {
            let _ = kept.set(KeptBudget {
                owner: self.id,
                cell: Arc::clone(&cell),
            });
        }
        self.check(&cell, scope, limit)
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
        let mut table = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, cell)) = table.find(hash, |(key, _)| wanted.matches(key)) {
            return Arc::clone(cell);
        }
        let key = BudgetKey {
            id: id.into(),
            route,
            limit,
        };
        let cell = Arc::new(
            RateLimiter::direct_with_clock(quota(limit), self.clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
        );
        let hasher = &self.hasher;
        table.insert_unique(hash, (key, Arc::clone(&cell)), |(key, _)| {
            hasher.hash_one(BudgetRef {
                id: &key.id,
                route: key.route,
                limit: key.limit,
            })
        });
        cell
    }

    /// Spends one request of `cell`: the budget after it, and how long to wait when refused.
    fn check(&self, cell: &Cell, scope: Scope, limit: RateLimit) -> (Budget, Option<Duration>) {
        let interval = u64::try_from(limit.interval().as_nanos()).unwrap_or(u64::MAX);
        match cell.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let spent = u64::from(limit.burst().saturating_sub(remaining));
                let reset = interval.saturating_mul(spent);
                (Budget::new(scope, limit, remaining, reset), None)
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let rest = interval.saturating_mul(u64::from(limit.burst().saturating_sub(1)));
                let wait_nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
                let reset = wait_nanos.saturating_add(rest);
                (Budget::new(scope, limit, 0, reset), Some(wait))
            }
        }
    }

    /// How many budgets are kept, for tests and measurements.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len()
            })
            .sum()
    }
}

fn quota(limit: RateLimit) -> Quota {
    let burst = NonZeroU32::new(limit.burst()).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(limit.interval().max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}
