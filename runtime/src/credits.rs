//! Credits: a number of uses a key may spend, optionally refilled on a calendar schedule.
//!
//! - [`Refill`]: the schedule, `10000/month`, and the arithmetic of its periods (in UTC);
//! - `KeyCredits`: what a key's record says (remaining uses, as last written, and when);
//! - `CreditTable`: what this process spent since, per key id, until it is written back.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::time::{civil_from_days, days_from_civil};

/// How often a key's credits are refilled: [`Refill::from_str`] reads `10000/month`,
/// `500/day` or `20/hour`.
///
/// A refill sets the key's remaining credits to the amount at the start of each period,
/// counted in UTC (each hour, each midnight, the first of each month at midnight): unused
/// credits do not carry over, as with a monthly plan. The schedule is the calendar's, not the
/// key's: a key made on the 20th is refilled on the 1st.
///
/// ```
/// use axum_api_key::Refill;
///
/// let plan: Refill = "10000/month".parse()?;
/// assert_eq!(plan.amount(), 10_000);
/// assert_eq!(plan.to_string(), "10000/month");
/// assert!("10000/fortnight".parse::<Refill>().is_err());
/// # Ok::<(), axum_api_key::RefillError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Refill {
    amount: u64,
    every: RefillPeriod,
}

/// The calendar period of a [`Refill`], in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefillPeriod {
    /// Each hour, on the hour.
    Hour,
    /// Each day, at midnight.
    Day,
    /// Each month, on the first at midnight.
    Month,
}

/// Why a text is not a [`Refill`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefillError;

impl fmt::Display for RefillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a refill is written `<amount>/<period>`, the period `hour`, `day` or `month`, e.g. \
             `10000/month`; the amount is a whole number from 1",
        )
    }
}

impl std::error::Error for RefillError {}

/// The longest spent credits wait in memory before [`ApiKeys`](crate::ApiKeys) writes them
/// back to its records file: what a crash can lose.
pub const CREDITS_WRITE_DELAY: Duration = Duration::from_secs(5);

/// The most credits a key can hold or be refilled with: far beyond any plan, and small enough
/// that no sum of costs overflows.
pub const MAX_CREDITS: u64 = 1 << 53;

impl Refill {
    /// A refill of `amount` credits each `every` (`amount` is capped at [`MAX_CREDITS`]).
    pub fn new(amount: u64, every: RefillPeriod) -> Self {
        Self {
            amount: amount.min(MAX_CREDITS),
            every,
        }
    }

    /// The credits the key holds after each refill.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The period.
    pub fn every(&self) -> RefillPeriod {
        self.every
    }

    /// The number of the period `at` falls in: hours, days or months since 1970 (UTC).
    pub(crate) fn period_of(&self, at: SystemTime) -> i64 {
        period_of(self.every, at)
    }

    /// When the period after `period` starts.
    pub(crate) fn next_start(&self, period: i64) -> SystemTime {
        start_of(self.every, period.saturating_add(1))
    }
}

/// The number of the period of `every` that `at` falls in (times before 1970 are period 0).
pub(crate) fn period_of(every: RefillPeriod, at: SystemTime) -> i64 {
    let seconds = at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    });
    match every {
        RefillPeriod::Hour => seconds / 3_600,
        RefillPeriod::Day => seconds / 86_400,
        RefillPeriod::Month => {
            let (year, month, _) = civil_from_days(seconds / 86_400);
            (year - 1970) * 12 + (month - 1)
        }
    }
}

/// When period number `period` of `every` starts.
pub(crate) fn start_of(every: RefillPeriod, period: i64) -> SystemTime {
    let seconds = match every {
        RefillPeriod::Hour => period.saturating_mul(3_600),
        RefillPeriod::Day => period.saturating_mul(86_400),
        RefillPeriod::Month => {
            // Beyond year 9999 nothing is scheduled: the same far end as the records file's.
            let period = period.clamp(0, (9_999 - 1970) * 12 + 12);
            let (year, month) = (1970 + period.div_euclid(12), period.rem_euclid(12) + 1);
            days_from_civil(year, month, 1).saturating_mul(86_400)
        }
    };
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

impl FromStr for Refill {
    type Err = RefillError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (amount, period) = text.trim().split_once('/').ok_or(RefillError)?;
        let amount = amount.trim();
        if amount.is_empty() || amount.len() > 16 || !amount.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RefillError);
        }
        let amount: u64 = amount.parse().map_err(|_| RefillError)?;
        if amount == 0 || amount > MAX_CREDITS {
            return Err(RefillError);
        }
        let every = match period.trim() {
            "hour" | "h" => RefillPeriod::Hour,
            "day" | "d" => RefillPeriod::Day,
            "month" => RefillPeriod::Month,
            _ => return Err(RefillError),
        };
        Ok(Self { amount, every })
    }
}

impl fmt::Display for Refill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let period = match self.every {
            RefillPeriod::Hour => "hour",
            RefillPeriod::Day => "day",
            RefillPeriod::Month => "month",
        };
        write!(f, "{}/{period}", self.amount)
    }
}

/// A key's credits as its record holds them: the uses left when they were last written, when
/// that was, and the refill schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyCredits {
    pub(crate) remaining: u64,
    pub(crate) refill: Option<Refill>,
    /// When `remaining` was written; `None` for a count set by hand (read as "now": a count
    /// set by hand is the current period's).
    pub(crate) counted_at: Option<SystemTime>,
    /// This process's count of what the key spent, found once in the [`CreditTable`]: a
    /// request then reaches it without the table's lock.
    pub(crate) cell: CellSlot,
}

/// Where a key's record keeps its count once found; no part of what the record says.
#[derive(Debug, Clone, Default)]
pub(crate) struct CellSlot(std::sync::OnceLock<Arc<Mutex<Spent>>>);

impl PartialEq for CellSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for CellSlot {}

impl KeyCredits {
    /// What tells this count from another set for the same key: a shared count of another
    /// generation starts again from the record's.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn generation(&self) -> String {
        let at = self.counted_at.map_or(0, |at| {
            at.duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_micros())
        });
        format!("{}@{at}", self.remaining)
    }

    /// What the record leaves for the period `now` is in: the written count, or the refill's
    /// amount when a refill came since it was written.
    pub(crate) fn base(&self, now: SystemTime) -> u64 {
        match (self.refill, self.counted_at) {
            (Some(refill), Some(at)) if refill.period_of(at) < refill.period_of(now) => {
                refill.amount
            }
            _ => self.remaining,
        }
    }
}

/// Credits this process spent and has not written back yet, per key id: what is left is what
/// the record says less what is spent here. Spent credits are forgotten at a refill, and handed
/// over as they are written back.
#[derive(Default)]
pub(crate) struct CreditTable {
    cells: Mutex<HashMap<Box<str>, Arc<Mutex<Spent>>>>,
}

/// What one key id spent here.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Spent {
    /// Spent and not written back.
    pub(crate) credits: u64,
    /// The refill period the spending is in (`0` for a key without a refill).
    pub(crate) period: i64,
}

/// A request's credit spend, refused or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CreditSpend {
    /// Spent; this many are left.
    Spent { left: u64 },
    /// Not enough left: nothing spent; `retry` is when the next refill comes, if any.
    Refused {
        left: u64,
        retry: Option<SystemTime>,
    },
}

impl CreditTable {
    fn cell(&self, id: &str) -> Arc<Mutex<Spent>> {
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cell) = cells.get(id) {
            return Arc::clone(cell);
        }
        let cell = Arc::new(Mutex::new(Spent::default()));
        cells.insert(id.into(), Arc::clone(&cell));
        cell
    }

    /// Spends `cost` of `credits` for `id`, all or nothing. The id is read only the first
    /// time, when the record does not hold its count yet.
    pub(crate) fn spend<'i>(
        &self,
        id: &dyn Fn() -> &'i str,
        credits: &KeyCredits,
        cost: u64,
        now: SystemTime,
    ) -> CreditSpend {
        let cell = credits.cell.0.get_or_init(|| self.cell(id()));
        let mut spent = cell.lock().unwrap_or_else(PoisonError::into_inner);
        let period = credits.refill.map_or(0, |refill| refill.period_of(now));
        if period > spent.period {
            // A refill came: what was spent before it no longer counts.
            *spent = Spent { credits: 0, period };
        }
        let left = credits.base(now).saturating_sub(spent.credits);
        if left >= cost {
            spent.credits += cost;
            CreditSpend::Spent { left: left - cost }
        } else {
            CreditSpend::Refused {
                left,
                retry: credits.refill.map(|refill| refill.next_start(period)),
            }
        }
    }

    /// Gives back `cost` spent by a request that was then refused for another reason.
    pub(crate) fn refund<'i>(
        &self,
        id: &dyn Fn() -> &'i str,
        credits: &KeyCredits,
        cost: u64,
        now: SystemTime,
    ) {
        let cell = credits.cell.0.get_or_init(|| self.cell(id()));
        let mut spent = cell.lock().unwrap_or_else(PoisonError::into_inner);
        let period = credits.refill.map_or(0, |refill| refill.period_of(now));
        if period == spent.period {
            spent.credits = spent.credits.saturating_sub(cost);
        }
    }

    /// What each id spent and has not written back, with its period.
    pub(crate) fn unwritten(&self) -> Vec<(Box<str>, Spent)> {
        let cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        cells
            .iter()
            .filter_map(|(id, cell)| {
                let spent = *cell.lock().unwrap_or_else(PoisonError::into_inner);
                (spent.credits > 0).then(|| (id.clone(), spent))
            })
            .collect()
    }

    /// `written` of what `id` spent in `period` is now in its record.
    pub(crate) fn written(&self, id: &str, period: i64, written: u64) {
        let cell = self.cell(id);
        let mut spent = cell.lock().unwrap_or_else(PoisonError::into_inner);
        if spent.period == period {
            spent.credits = spent.credits.saturating_sub(written);
        }
    }

    /// Makes this process's count of `id` follow a shared count that says `left`: a request
    /// the process must count alone (Redis slow or away) starts from there, never from the
    /// record's whole grant.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn mirror(&self, id: &str, credits: &KeyCredits, now: SystemTime, left: u64) {
        let cell = self.cell(id);
        let mut spent = cell.lock().unwrap_or_else(PoisonError::into_inner);
        *spent = Spent {
            credits: credits.base(now).saturating_sub(left),
            period: credits.refill.map_or(0, |refill| refill.period_of(now)),
        };
    }

    /// Forgets what `id` spent: its credits were set anew.
    pub(crate) fn forget(&self, id: &str) {
        // Reset in place: records that found the count keep reaching it.
        let cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cell) = cells.get(id) {
            *cell.lock().unwrap_or_else(PoisonError::into_inner) = Spent::default();
        }
    }

    /// What `id` spent here and has not written back, in the period `now` is in.
    pub(crate) fn spent(&self, id: &str, credits: &KeyCredits, now: SystemTime) -> u64 {
        let cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(cell) = cells.get(id) else {
            return 0;
        };
        let spent = *cell.lock().unwrap_or_else(PoisonError::into_inner);
        let period = credits.refill.map_or(0, |refill| refill.period_of(now));
        if spent.period == period {
            spent.credits
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(text: &str) -> SystemTime {
        // Only the forms these tests write: `YYYY-MM-DDTHH:MM:SSZ`.
        let number = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap();
        let days = days_from_civil(number(0..4), number(5..7), number(8..10));
        let seconds = days * 86_400 + number(11..13) * 3_600 + number(14..16) * 60 + number(17..19);
        UNIX_EPOCH + Duration::from_secs(seconds as u64)
    }

    #[test]
    fn reads_and_writes_schedules() {
        for text in ["10000/month", "500/day", "20/hour"] {
            assert_eq!(text.parse::<Refill>().unwrap().to_string(), text);
        }
        assert_eq!("5/d".parse::<Refill>().unwrap().to_string(), "5/day");
        for bad in [
            "",
            "0/day",
            "-1/day",
            "1.5/day",
            "10/week",
            "10",
            "/day",
            "10/",
            "10/month/2",
            "99999999999999999/day",
        ] {
            assert!(bad.parse::<Refill>().is_err(), "{bad}");
        }
    }

    #[test]
    fn months_start_on_the_first_in_utc() {
        let monthly: Refill = "10/month".parse().unwrap();
        let p = monthly.period_of(at("2024-02-29T23:59:59Z"));
        assert_eq!(monthly.next_start(p), at("2024-03-01T00:00:00Z"));
        assert_eq!(monthly.period_of(at("2024-03-01T00:00:00Z")), p + 1);
        let p = monthly.period_of(at("2026-12-31T12:00:00Z"));
        assert_eq!(monthly.next_start(p), at("2027-01-01T00:00:00Z"));
        let daily: Refill = "10/day".parse().unwrap();
        let p = daily.period_of(at("2026-12-06T15:00:00Z"));
        assert_eq!(daily.next_start(p), at("2026-12-07T00:00:00Z"));
    }

    #[test]
    fn a_refill_resets_what_was_spent_and_nothing_is_overspent() {
        let table = CreditTable::default();
        let credits = KeyCredits {
            remaining: 5,
            refill: Some("5/day".parse().unwrap()),
            counted_at: Some(at("2026-12-06T10:00:00Z")),
            cell: Default::default(),
        };
        let noon = at("2026-12-06T12:00:00Z");
        assert_eq!(
            table.spend(&|| "a", &credits, 3, noon),
            CreditSpend::Spent { left: 2 }
        );
        assert_eq!(
            table.spend(&|| "a", &credits, 3, noon),
            CreditSpend::Refused {
                left: 2,
                retry: Some(at("2026-12-07T00:00:00Z"))
            }
        );
        assert_eq!(
            table.spend(&|| "a", &credits, 2, noon),
            CreditSpend::Spent { left: 0 }
        );
        table.refund(&|| "a", &credits, 2, noon);
        assert_eq!(table.spent("a", &credits, noon), 3);
        // The next day: the refill's amount, whatever was written the day before.
        let tomorrow = at("2026-12-07T00:00:00Z");
        assert_eq!(
            table.spend(&|| "a", &credits, 5, tomorrow),
            CreditSpend::Spent { left: 0 }
        );
        // Without a refill, the count never comes back.
        let once = KeyCredits {
            remaining: 1,
            refill: None,
            counted_at: None,
            cell: Default::default(),
        };
        assert_eq!(
            table.spend(&|| "b", &once, 1, tomorrow),
            CreditSpend::Spent { left: 0 }
        );
        assert_eq!(
            table.spend(&|| "b", &once, 1, tomorrow + Duration::from_secs(1 << 30)),
            CreditSpend::Refused {
                left: 0,
                retry: None
            }
        );
    }

    proptest! {
        #[test]
        fn every_instant_lies_in_its_period(
            seconds in 0u64..253_402_300_799,
            every in prop_oneof![
                Just(RefillPeriod::Hour),
                Just(RefillPeriod::Day),
                Just(RefillPeriod::Month),
            ],
        ) {
            let now = UNIX_EPOCH + Duration::from_secs(seconds);
            let period = period_of(every, now);
            let start = start_of(every, period);
            let next = start_of(every, period + 1);
            prop_assert!(start <= now && now < next, "{start:?} {now:?} {next:?}");
            prop_assert_eq!(period_of(every, start), period);
            prop_assert_eq!(period_of(every, next), period + 1);
            let one_second_before = next - Duration::from_secs(1);
            prop_assert_eq!(period_of(every, one_second_before), period);
            // Periods are as long as the calendar says: 28 to 31 days for a month.
            let length = next.duration_since(start).unwrap().as_secs();
            let expected = match every {
                RefillPeriod::Hour => 3_600..=3_600,
                RefillPeriod::Day => 86_400..=86_400,
                RefillPeriod::Month => 28 * 86_400..=31 * 86_400,
            };
            prop_assert!(expected.contains(&length), "{length}");
        }

        #[test]
        fn spends_never_exceed_what_was_granted(
            grant in 0u64..50,
            costs in proptest::collection::vec(1u64..8, 0..40),
        ) {
            let table = CreditTable::default();
            let credits = KeyCredits { remaining: grant, refill: None, counted_at: None , cell: Default::default() };
            let now = SystemTime::now();
            let mut spent = 0;
            for cost in costs {
                match table.spend(&|| "k", &credits, cost, now) {
                    CreditSpend::Spent { left } => {
                        spent += cost;
                        prop_assert_eq!(left, grant - spent);
                    }
                    CreditSpend::Refused { left, .. } => {
                        prop_assert!(left < cost);
                        prop_assert_eq!(left, grant - spent);
                    }
                }
            }
            prop_assert!(spent <= grant);
        }
    }
}
