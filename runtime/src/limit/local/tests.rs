//! Budgets counted in this process: GCRA, calendar windows, and budgets spent together or not at all.

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
    let (k, r) = ((Scope::Key, key), (Scope::Route("r"), route));
    let spends = [(key_cell, &k), (route_cell, &r)];
    let wall = SystemTime::now();
    let (first, wait) = budgets.spend_all(&spends, false, wall);
    assert!(wait.is_none());
    assert_eq!(first[0].map(|b| b.remaining), Some(99));
    for _ in 0..10 {
        let (_, wait) = budgets.spend_all(&spends, false, wall);
        assert!(wait.is_some(), "the route's budget is used up");
    }
    // The key's own budget lost only the one request that was let in.
    let only_key = [(key_cell, &k)];
    let (after, wait) = budgets.spend_all(&only_key, false, wall);
    assert!(wait.is_none());
    assert_eq!(after[0].map(|b| b.remaining), Some(98));
}

fn one(cell: &Cell, limit: RateLimit) -> [Spend<'_>; 1] {
    [(cell, Box::leak(Box::new((Scope::Key, limit))))]
}

/// 2026-12-06T12:00:00Z plus `secs`.
fn at(secs: i64) -> SystemTime {
    let base = 1_796_558_400_i64;
    std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(base + secs).unwrap())
}

#[test]
fn a_day_window_holds_its_count_until_midnight_then_all_of_it_again() {
    let budgets = LocalBudgets::default();
    let limit = RateLimit::per_day(3);
    let cell = Cell {
        tat: AtomicU64::new(0),
    };
    let spend = |wall| budgets.spend_all(&one(&cell, limit), false, wall);
    // Noon: three, then refused until midnight, twelve hours away.
    for left in [2, 1, 0] {
        let (counted, wait) = spend(at(0));
        assert!(wait.is_none());
        assert_eq!(counted[0].unwrap().remaining, left);
    }
    let (counted, wait) = spend(at(0));
    assert_eq!(wait, Some(Duration::from_secs(12 * 3600)));
    assert_eq!(counted[0].unwrap().reset, 12 * 3600 * 1_000_000_000);
    // A second before midnight: still refused. At midnight: three more, exactly.
    assert!(spend(at(12 * 3600 - 1)).1.is_some());
    for _ in 0..3 {
        assert!(spend(at(12 * 3600)).1.is_none());
    }
    assert!(spend(at(12 * 3600 + 5)).1.is_some());
    // The window reported is the day.
    assert_eq!(
        spend(at(36 * 3600)).0[0].unwrap().window,
        86_400 * 1_000_000_000
    );
}

#[test]
fn a_month_window_is_the_calendar_month() {
    let budgets = LocalBudgets::default();
    let limit = RateLimit::per_month(2);
    let cell = Cell {
        tat: AtomicU64::new(0),
    };
    let spend = |wall| budgets.spend_all(&one(&cell, limit), false, wall);
    assert!(spend(at(0)).1.is_none());
    assert!(spend(at(0)).1.is_none());
    // December has 31 days: the window ends on January 1st, 25.5 days from noon on the 6th.
    let (counted, wait) = spend(at(86_400 * 20));
    assert_eq!(
        wait,
        Some(Duration::from_secs(25 * 86_400 + 12 * 3600 - 20 * 86_400))
    );
    assert_eq!(counted[0].unwrap().window, 31 * 86_400 * 1_000_000_000);
    let january = at(25 * 86_400 + 12 * 3600);
    assert!(spend(january).1.is_none());
    assert_eq!(
        spend(january).0[0].unwrap().window,
        31 * 86_400 * 1_000_000_000
    );
    assert!(spend(january).1.is_some());
}

#[test]
fn a_refusal_by_a_rolling_budget_gives_back_the_calendar_windows() {
    let budgets = LocalBudgets::default();
    let day = RateLimit::per_day(10);
    let second = RateLimit::new(1, Duration::from_secs(60));
    let (a, b) = (
        Cell {
            tat: AtomicU64::new(0),
        },
        Cell {
            tat: AtomicU64::new(0),
        },
    );
    let (d, s) = ((Scope::Key, day), (Scope::Key, second));
    let spends = [(&a, &d), (&b, &s)];
    assert!(budgets.spend_all(&spends, true, at(0)).1.is_none());
    for _ in 0..5 {
        assert!(budgets.spend_all(&spends, true, at(0)).1.is_some());
    }
    // The day's count lost only the request that was let in.
    let (counted, _) = budgets.spend_all(&one(&a, day), true, at(0));
    assert_eq!(counted[0].unwrap().remaining, 8);
}

proptest::proptest! {
    /// Whatever the times requests come at (in order, over a few months), a calendar
    /// window lets in exactly the first `count` of its requests and refuses the rest, and
    /// a refusal's wait ends at the window's end.
    #[test]
    fn calendar_windows_let_in_exactly_their_count(
        count in 1_u32..6,
        monthly in proptest::bool::ANY,
        mut steps in proptest::collection::vec(0_u64..400_000, 1..80),
    ) {
        let every = if monthly { RefillPeriod::Month } else { RefillPeriod::Day };
        let limit = if monthly { RateLimit::per_month(count) } else { RateLimit::per_day(count) };
        let budgets = LocalBudgets::default();
        let cell = Cell { tat: AtomicU64::new(0) };
        let mut wall = at(0);
        let mut seen: std::collections::HashMap<i64, u32> = Default::default();
        for step in steps.drain(..) {
            wall += Duration::from_secs(step);
            let window = period_of(every, wall);
            let before = *seen.get(&window).unwrap_or(&0);
            let (counted, wait) = budgets.spend_all(&one(&cell, limit), false, wall);
            let end = start_of(every, window + 1).duration_since(wall).unwrap();
            if before < count {
                proptest::prop_assert!(wait.is_none());
                proptest::prop_assert_eq!(counted[0].unwrap().remaining, count - before - 1);
                seen.insert(window, before + 1);
            } else {
                proptest::prop_assert_eq!(wait, Some(end));
            }
            proptest::prop_assert_eq!(counted[0].unwrap().reset, nanos(end));
        }
    }
}

proptest::proptest! {
    /// The request path's integer calendar agrees with the credits' schedule, for any time
    /// from 1970 to the year 9999.
    #[test]
    fn calendar_windows_agree_with_the_refill_schedule(
        secs in 0_u64..253_402_300_799,
        sub in 0_u32..1_000_000_000,
        which in 0_u8..3,
    ) {
        let every = [RefillPeriod::Hour, RefillPeriod::Day, RefillPeriod::Month][usize::from(which)];
        let wall = std::time::UNIX_EPOCH + Duration::new(secs, sub);
        let window = calendar_window(every, wall);
        let period = period_of(every, wall);
        let (start, end) = (start_of(every, period), start_of(every, period + 1));
        proptest::prop_assert_eq!(window.number, u64::try_from(period).unwrap() & u64::from(u32::MAX));
        proptest::prop_assert_eq!(window.ends_in, nanos(end.duration_since(wall).unwrap()));
        proptest::prop_assert_eq!(window.length, nanos(end.duration_since(start).unwrap()));
    }
}

#[test]
fn full_budgets_are_swept_and_kept_ones_found_again() {
    let budgets = LocalBudgets::default();
    let limit = RateLimit::new(1_000, Duration::from_millis(1));
    for i in 0..10_000 {
        let id = format!("id-{i}");
        let mut held = None;
        let cell = budgets.budget(&|| id.as_str(), Scope::Key, limit, None, &mut held);
        let _ = budgets.spend_all(&one(cell, limit), false, SystemTime::now());
    }
    std::thread::sleep(Duration::from_millis(5));
    budgets.sweep();
    assert_eq!(budgets.len(), 0, "every budget is full again");
    // A key that keeps its budget in its record keeps counting in it, swept or not.
    let kept = OnceLock::new();
    let mut held = None;
    let cell = budgets.budget(&|| "kept", Scope::Key, limit, Some(&kept), &mut held);
    let _ = budgets.spend_all(&one(cell, limit), false, SystemTime::now());
    budgets.sweep();
    let mut held = None;
    let again = budgets.budget(&|| "kept", Scope::Key, limit, Some(&kept), &mut held);
    assert_ne!(again.tat.load(Ordering::Relaxed), 0);
}
