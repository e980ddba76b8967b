//! Budgets counted in this process: one `governor` cell per key id, limit and route.

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, QuantaClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use hashbrown::{DefaultHashBuilder, HashTable};

use super::{Budget, Count, RateLimit, Scope};

type Cell = RateLimiter<NotKeyed, InMemoryState, QuantaClock, StateInformationMiddleware>;

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

/// Every budget in use, in shards so that requests of different keys rarely meet on a lock.
/// Entries are made only for keys that were accepted, so failing keys never add one.
pub(crate) struct LocalBudgets {
    hasher: DefaultHashBuilder,
    shards: [Mutex<HashTable<(BudgetKey, Cell)>>; SHARDS],
    clock: QuantaClock,
}

impl Default for LocalBudgets {
    fn default() -> Self {
        Self {
            hasher: DefaultHashBuilder::default(),
            shards: std::array::from_fn(|_| Mutex::new(HashTable::new())),
            clock: QuantaClock::default(),
        }
    }
}

impl LocalBudgets {
    /// Spends one request of the budget of `id` under `limit` (and `route`, for a route's own
    /// limit).
    pub(crate) fn spend(&self, id: &str, scope: Scope, limit: RateLimit) -> Count {
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
        let cell = match table.find(hash, |(key, _)| wanted.matches(key)) {
            Some((_, cell)) => cell,
            None => {
                let key = BudgetKey {
                    id: id.into(),
                    route,
                    limit,
                };
                let cell = RateLimiter::direct_with_clock(quota(limit), self.clock.clone())
                    .with_middleware::<StateInformationMiddleware>();
                let hasher = &self.hasher;
                let entry = table.insert_unique(hash, (key, cell), |(key, _)| {
                    hasher.hash_one(BudgetRef {
                        id: &key.id,
                        route: key.route,
                        limit: key.limit,
                    })
                });
                &entry.into_mut().1
            }
        };
        let interval = limit.interval();
        match cell.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Count::allowed(Budget {
                    scope,
                    limit,
                    remaining,
                    reset: interval * (limit.burst().saturating_sub(remaining)),
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Count::refused(
                    Budget {
                        scope,
                        limit,
                        remaining: 0,
                        reset: wait + interval * limit.burst().saturating_sub(1),
                    },
                    wait,
                )
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
