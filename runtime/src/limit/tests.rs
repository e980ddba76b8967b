//! Rate limits per key and per route, and throttling per client address.

use super::*;

#[test]
fn fields_name_each_budget() {
    let key: RateLimit = "60/min".parse().unwrap();
    let route: RateLimit = "10/s".parse().unwrap();
    let limits = RateLimits::new();
    let count = limits.count_here(
        &|| "a",
        &Budgets::new(Some(key), Some((route, "m::h"))),
        None,
        None,
    );
    assert!(count.retry_after.is_none());
    let fields = count.fields().unwrap();
    let (policy, state) = fields.policy.unwrap();
    assert_eq!(policy, r#""key";q=60;w=60, "route";q=10;w=1"#);
    assert_eq!(state, r#""key";r=59;t=1, "route";r=9;t=1"#);
    assert!(fields.credits.is_none());
}

#[test]
fn a_used_up_budget_refuses_with_the_wait() {
    let limit: RateLimit = "2/min".parse().unwrap();
    let limits = RateLimits::new();
    let spend = || limits.count_here(&|| "a", &Budgets::new(Some(limit), None), None, None);
    assert!(spend().retry_after.is_none());
    assert!(spend().retry_after.is_none());
    let refused = spend();
    let wait = refused.retry_after.expect("refused");
    assert!(
        wait > Duration::from_secs(29) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
    assert_eq!(seconds_up(wait), 30);
    // Other ids and other routes have budgets of their own.
    assert!(
        limits
            .count_here(&|| "b", &Budgets::new(Some(limit), None), None, None)
            .retry_after
            .is_none()
    );
    assert_eq!(limits.__sizes().0, 2);
}

#[test]
fn several_limits_are_each_named_after_their_window() {
    let limits = RateLimits::new();
    let plan = ["2/s".parse::<RateLimit>().unwrap(), RateLimit::per_day(100)];
    let route: RateLimit = "1/s".parse().unwrap();
    let wall = UNIX_EPOCH_PLUS(1_796_558_400);
    let budgets = Budgets::new(plan, Some((route, "m::h")));
    let count = limits.count_here(&|| "a", &budgets, None, Some(wall));
    let (policy, state) = count.fields().unwrap().policy.unwrap();
    assert_eq!(
        policy,
        r#""key-s";q=2;w=1, "key-day";q=100;w=86400, "route";q=1;w=1"#
    );
    // Noon: the day's window is whole again at midnight, twelve hours on.
    assert_eq!(
        state,
        r#""key-s";r=1;t=1, "key-day";r=99;t=43200, "route";r=0;t=1"#
    );
    // Refused by the route: neither of the key's windows spent anything.
    let refused = limits.count_here(&|| "a", &budgets, None, Some(wall));
    assert!(refused.retry_after.is_some());
    let only_key = Budgets::new(plan, None);
    let count = limits.count_here(&|| "a", &only_key, None, Some(wall));
    let (_, state) = count.fields().unwrap().policy.unwrap();
    assert_eq!(state, r#""key-s";r=0;t=1, "key-day";r=98;t=43200"#);
}

#[allow(non_snake_case)]
fn UNIX_EPOCH_PLUS(secs: u64) -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(secs)
}
