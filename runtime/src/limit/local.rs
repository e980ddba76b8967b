//! Budgets counted in this process: one GCRA cell per key id, limit and route, spent together
//! or not at all, and forgotten once full again.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use hashbrown::{DefaultHashBuilder, HashTable};

use super::budget::{Budget, MOST_BUDGETS, Scope};
use super::rate::RateLimit;
use crate::credits::RefillPeriod;
#[cfg(test)]
use crate::credits::{period_of, start_of};

/// One budget: its theoretical arrival time (GCRA), in nanoseconds since the budgets' epoch.
/// A time at or before now is a full budget. A calendar window's budget holds instead the
/// window's number (days or months since 1970) in its high 32 bits and the requests spent in it
/// in its low 32: a budget of an earlier window is a full one.
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

/// A route's budget kept in a key's record: which route and limit it counts, and where.
#[derive(Clone)]
pub(crate) struct KeptRoute {
    route: &'static str,
    limit: RateLimit,
    budget: KeptBudget,
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
pub(crate) type Spend<'a> = (&'a Cell, &'a (Scope, RateLimit));

/// A cell no budget counts in: what fills the unused places of a request's list of budgets.
pub(crate) static UNUSED: Cell = Cell {
    tat: AtomicU64::new(0),
};

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

    /// The budget of a route's own `limit` for `id`, kept in one of `slots` (a key's record)
    /// once found: the first routes a key is counted on are then reached without a lookup, the
    /// others in the table. A budget found in the table is held in `held`.
    pub(crate) fn route_budget<'a, 'i>(
        &self,
        id: &dyn Fn() -> &'i str,
        route: &'static str,
        limit: RateLimit,
        slots: &'a [OnceLock<KeptRoute>],
        held: &'a mut Option<Arc<Cell>>,
    ) -> &'a Cell {
        for slot in slots {
            match slot.get() {
                Some(kept)
                    if kept.budget.owner == self.id
                        && kept.route == route
                        && kept.limit == limit =>
                {
                    return &kept.budget.cell;
                }
                Some(_) => {}
                None => {
                    let cell = self.find(id(), Scope::Route(route), limit);
                    let _ = slot.set(KeptRoute {
                        route,
                        limit,
                        budget: KeptBudget {
                            owner: self.id,
                            cell: Arc::clone(&cell),
                        },
                    });
                    return held.insert(cell);
                }
            }
        }
        held.insert(self.find(id(), Scope::Route(route), limit))
    }

    /// Spends one request of every budget in `budgets`, or of none: a request refused by one
    /// budget spends nothing of the others. `wall` is the time calendar windows are counted at
    /// (the limiter's clock). Returns each budget after the request, and the wait when refused.
    pub(crate) fn spend_all(
        &self,
        budgets: &[Spend<'_>],
        several: bool,
        wall: SystemTime,
    ) -> ([Option<Budget>; MOST_BUDGETS], Option<Duration>) {
        let now = self.now();
        let mut counted = [None; MOST_BUDGETS];
        for (at, &(cell, (scope, limit))) in budgets.iter().enumerate().take(MOST_BUDGETS) {
            let window = limit.calendar().map(|every| calendar_window(every, wall));
            let spent = match &window {
                Some(window) => spend_window(cell, limit.count(), window),
                None => spend(cell, *limit, now),
            };
            let length = window.map_or(0, |window| window.length);
            match spent {
                Ok((remaining, reset)) => {
                    counted[at] = Some(Budget::new(
                        *scope, *limit, remaining, reset, several, length,
                    ));
                }
                Err((wait, reset)) => {
                    // Give back what the budgets before this one spent.
                    for &(cell, (_, limit)) in &budgets[..at] {
                        match limit.calendar() {
                            Some(every) => refund_window(cell, every, wall),
                            None => refund(cell, *limit),
                        }
                    }
                    counted[at] = Some(Budget::new(*scope, *limit, 0, reset, several, length));
                    // The budgets after it are told as they stand, untouched: a client learns
                    // every window it is in.
                    for (slot, &(cell, (scope, limit))) in
                        counted[at + 1..].iter_mut().zip(&budgets[at + 1..])
                    {
                        let (remaining, reset) = peek(cell, *limit, now, wall);
                        let length = limit
                            .calendar()
                            .map_or(0, |every| calendar_window(every, wall).length);
                        *slot = Some(Budget::new(
                            *scope, *limit, remaining, reset, several, length,
                        ));
                    }
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
    pub(crate) fn mirror(&self, cell: &Cell, limit: RateLimit, budget: &Budget, wall: SystemTime) {
        if let Some(every) = limit.calendar() {
            let window = window_of(every, wall);
            let used = limit.count().saturating_sub(budget.remaining);
            cell.tat
                .store(window << 32 | u64::from(used), Ordering::Release);
            return;
        }
        let reset = budget.reset;
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
            let wall = SystemTime::now();
            // Full budgets go; the table gives back the memory once it is mostly empty.
            table.retain(|(key, cell)| kept(cell) || in_debt(key.limit, cell, now, wall));
            if table.len() >= MOST_PER_SHARD {
                // Every budget here is in debt: keep those deepest in it, the ones a client is
                // pressing hardest, above the shard's mean.
                // (Calendar windows in use are kept: dropping one would forget its count.)
                let rolling = || {
                    table
                        .iter()
                        .filter(|(key, _)| key.limit.calendar().is_none())
                };
                let sum: u128 = rolling()
                    .map(|(_, cell)| u128::from(cell.tat.load(Ordering::Relaxed)))
                    .sum();
                let len = rolling().count().max(1) as u128;
                let mean = u64::try_from(sum / len).unwrap_or(u64::MAX);
                table.retain(|(key, cell)| {
                    kept(cell)
                        || key.limit.calendar().is_some()
                        || cell.tat.load(Ordering::Relaxed) > mean
                });
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
        let wall = SystemTime::now();
        for shard in &self.shards {
            let mut shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let table = &mut shard.table;
            table.retain(|(key, cell)| kept(cell) || in_debt(key.limit, cell, now, wall));
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

#[cfg(test)]
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// GCRA: spends one request of `cell` if it fits in the burst. `Ok` with the requests left and
/// the nanoseconds until the budget is whole again; `Err` with the nanoseconds to wait and
/// until whole.
fn spend(cell: &Cell, limit: RateLimit, now: u64) -> Result<(u32, u64), (u64, u64)> {
    let interval = limit.interval_nanos();
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

/// Whether a key's record holds the budget besides the table: then it stays in the table, so
/// that every record of the name it is counted under (the keys of one identity, a rotated key
/// and its successor) finds this one budget, never a fresh one beside it. Bounded by the keys.
fn kept(cell: &Arc<Cell>) -> bool {
    Arc::strong_count(cell) > 1
}

/// Whether a budget holds anything a fresh one would not: a rolling budget not yet whole, or a
/// calendar window of the current day or month with requests spent in it. (A calendar window
/// is judged by the system's clock: a limiter on a clock of its own keeps its windows.)
fn in_debt(limit: RateLimit, cell: &Cell, now: u64, wall: SystemTime) -> bool {
    let held = cell.tat.load(Ordering::Relaxed);
    match limit.calendar() {
        Some(every) => held >> 32 >= window_of(every, wall) && held & u64::from(u32::MAX) > 0,
        None => held > now,
    }
}

/// A calendar window a time falls in: its number (days or months since 1970, as a budget
/// holds it), the nanoseconds left in it and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) number: u64,
    pub(crate) ends_in: u64,
    pub(crate) length: u64,
}

/// The calendar window of `every` that `at` falls in, in integer arithmetic on one reading of
/// the time (the request path does no `SystemTime` arithmetic); the same windows as the
/// credits' [`period_of`] and [`start_of`]. Times before 1970 fall in window 0.
pub(crate) fn calendar_window(every: RefillPeriod, at: SystemTime) -> Window {
    const NANOS: u64 = 1_000_000_000;
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (secs, sub) = (since.as_secs(), u64::from(since.subsec_nanos()));
    let (number, start, end) = match every {
        RefillPeriod::Hour => {
            let hour = secs / 3_600;
            (hour, hour * 3_600, (hour + 1) * 3_600)
        }
        RefillPeriod::Day => {
            let day = secs / 86_400;
            (day, day * 86_400, (day + 1) * 86_400)
        }
        RefillPeriod::Month => {
            let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
            let (year, month, _) = crate::time::civil_from_days(days);
            let (next_year, next_month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            let start = crate::time::days_from_civil(year, month, 1).saturating_mul(86_400);
            let end = crate::time::days_from_civil(next_year, next_month, 1).saturating_mul(86_400);
            let number = (year - 1970) * 12 + (month - 1);
            let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
            (unsigned(number), unsigned(start), unsigned(end))
        }
    };
    let into = (secs.saturating_sub(start))
        .saturating_mul(NANOS)
        .saturating_add(sub);
    let length = (end - start).saturating_mul(NANOS);
    Window {
        number: number & u64::from(u32::MAX),
        ends_in: length.saturating_sub(into),
        length,
    }
}

/// The number of the calendar window `at` falls in, as a budget holds it.
pub(crate) fn window_of(every: RefillPeriod, at: SystemTime) -> u64 {
    calendar_window(every, at).number
}

/// A calendar window: spends one of `count` requests of the window `wall` falls in. `Ok` with
/// the requests left and the nanoseconds until the window ends (and the budget is whole);
/// `Err` with the wait, the same.
fn spend_window(cell: &Cell, count: u32, window: &Window) -> Result<(u32, u64), (u64, u64)> {
    let Window {
        number: window,
        ends_in,
        ..
    } = *window;
    let mut held = cell.tat.load(Ordering::Acquire);
    loop {
        // A budget of an earlier window is whole; one of a later window (a clock set back)
        // keeps its count rather than give a second window's worth.
        let (in_window, used) = (held >> 32, held & u64::from(u32::MAX));
        let (window, used) = if in_window >= window {
            (in_window, used)
        } else {
            (window, 0)
        };
        if used >= u64::from(count) {
            return Err((ends_in.max(1), ends_in));
        }
        match cell.tat.compare_exchange_weak(
            held,
            window << 32 | (used + 1),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                let remaining = u64::from(count) - used - 1;
                return Ok((u32::try_from(remaining).unwrap_or(u32::MAX), ends_in));
            }
            Err(current) => held = current,
        }
    }
}

/// Gives back one request spent of a calendar window's `cell` in the window `wall` falls in.
fn refund_window(cell: &Cell, every: RefillPeriod, wall: SystemTime) {
    let window = window_of(every, wall);
    let _ = cell
        .tat
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            (held >> 32 >= window && held & u64::from(u32::MAX) > 0).then(|| held - 1)
        });
}

/// What `cell` holds, without spending: the requests left and the nanoseconds until whole.
fn peek(cell: &Cell, limit: RateLimit, now: u64, wall: SystemTime) -> (u32, u64) {
    let held = cell.tat.load(Ordering::Acquire);
    if let Some(every) = limit.calendar() {
        let Window {
            number, ends_in, ..
        } = calendar_window(every, wall);
        let used = if held >> 32 >= number {
            held & u64::from(u32::MAX)
        } else {
            0
        };
        let left = u64::from(limit.count()).saturating_sub(used);
        return (u32::try_from(left).unwrap_or(u32::MAX), ends_in);
    }
    let interval = limit.interval_nanos();
    let capacity = interval.saturating_mul(u64::from(limit.burst()));
    let tat = held.max(now);
    let left = (now.saturating_add(capacity).saturating_sub(tat)) / interval;
    (u32::try_from(left).unwrap_or(u32::MAX), tat - now)
}

/// Gives back one request spent of `cell`.
fn refund(cell: &Cell, limit: RateLimit) {
    let interval = limit.interval_nanos();
    let _ = cell
        .tat
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
            Some(tat.saturating_sub(interval))
        });
}

#[cfg(test)]
mod tests;
