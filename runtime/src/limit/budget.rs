//! The budgets a request is counted in, and what they tell the client afterwards: which
//! budgets apply ([`Budgets`]), each one's state after the request ([`Budget`]), and the
//! `RateLimit-Policy`, `RateLimit` and `Credits-Remaining` fields made of them ([`Count`]).

use std::fmt::Write as _;
use std::time::Duration;

use http::HeaderValue;

use super::rate::{self, RateLimit};

/// Which budget a limit counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// The key's own limit, across every route.
    Key,
    /// A route's `rate_limit`, per key, named by its handler (a hash of the handler's module,
    /// name and place, for `#[api_key]`).
    Route(&'static str),
}

/// The most budgets a request is counted in: the key's limits and the route's.
pub(crate) const MOST_BUDGETS: usize = rate::MAX_KEY_LIMITS + 1;

/// The budgets a request is counted in: the key's own (first, in the key's order) and the
/// route's, each if it has one. Held on the stack: the request path allocates nothing for them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Budgets {
    entries: [Option<(Scope, RateLimit)>; MOST_BUDGETS],
    /// The key has several limits: each is named after its window.
    several: bool,
}

impl Budgets {
    pub(crate) fn new(
        key: impl IntoIterator<Item = RateLimit>,
        route: Option<(RateLimit, &'static str)>,
    ) -> Self {
        let mut entries = [None; MOST_BUDGETS];
        let mut len = 0;
        for (slot, limit) in entries[..MOST_BUDGETS - 1].iter_mut().zip(key) {
            *slot = Some((Scope::Key, limit));
            len += 1;
        }
        if let Some((limit, route)) = route {
            entries[len] = Some((Scope::Route(route), limit));
        }
        Self {
            entries,
            several: len > 1,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries[0].is_none()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(Scope, RateLimit)> {
        self.entries.iter().map_while(Option::as_ref)
    }

    /// Whether the key's budgets are named after their windows.
    pub(crate) fn several(&self) -> bool {
        self.several
    }
}

/// One budget after a request was counted: what its `RateLimit` fields say, small enough to
/// pass around on the request path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(super) route: bool,
    /// A key's limit among several, whose entry is named after its window: the window, as
    /// [`window_code`] packs it.
    named: Option<std::num::NonZeroU64>,
    quota: u32,
    pub(super) remaining: u32,
    /// The window's length, in nanoseconds.
    pub(super) window: u64,
    /// Nanoseconds until the budget is whole again.
    pub(super) reset: u64,
}

impl Budget {
    /// Plain integer work: the request path neither divides nor formats.
    ///
    /// The quota named in `RateLimit-Policy` is the burst, over the time the burst takes to
    /// refill (`burst × period / count`): what a full budget holds, so that `RateLimit`'s
    /// remaining never exceeds it. Without a burst these are the limit's count and period; for
    /// a calendar window, the count over the window's length, `calendar_length` nanoseconds (a
    /// month of 28 to 31 days).
    pub(crate) fn new(
        scope: Scope,
        limit: RateLimit,
        remaining: u32,
        reset: u64,
        several: bool,
        calendar_length: u64,
    ) -> Self {
        let window = if limit.calendar().is_some() {
            calendar_length
        } else if limit.burst() == limit.count() {
            limit.period_nanos()
        } else {
            limit
                .interval_nanos()
                .saturating_mul(u64::from(limit.burst()))
        };
        let route = matches!(scope, Scope::Route(_));
        Self {
            route,
            named: if several && !route {
                window_code(limit)
            } else {
                None
            },
            quota: limit.burst(),
            remaining: remaining.min(limit.burst()),
            window,
            reset,
        }
    }
}

/// A limit's window in one word, for a budget to carry its name cheaply: 1 a calendar day, 2 a
/// calendar month, else the period in nanoseconds (at least a millisecond).
fn window_code(limit: RateLimit) -> Option<std::num::NonZeroU64> {
    use crate::credits::RefillPeriod;
    let code = match limit.calendar() {
        Some(RefillPeriod::Month) => 2,
        Some(_) => 1,
        None => limit.period_nanos(),
    };
    std::num::NonZeroU64::new(code)
}

/// A limit over the window [`window_code`] packed, to name it.
fn window_limit(code: std::num::NonZeroU64) -> RateLimit {
    match code.get() {
        1 => RateLimit::per_day(1),
        2 => RateLimit::per_month(1),
        nanos => RateLimit::new(1, Duration::from_nanos(nanos)),
    }
}

/// The budgets a request was counted in, and whether it was refused.
#[derive(Debug, Clone, Default)]
pub(crate) struct Count {
    pub(super) budgets: [Option<Budget>; MOST_BUDGETS],
    /// `Some` when a budget was used up: how long until it allows one more request.
    pub(crate) retry_after: Option<Duration>,
    /// The shared limiter could not be asked, and it is configured to refuse.
    pub(crate) unavailable: bool,
    /// What the key's credits hold after the request, when it has credits.
    pub(crate) credits: Option<u64>,
    /// The key has too few credits for the request: refused, with `retry_after` until the
    /// refill, if any.
    pub(crate) credits_exhausted: bool,
}

impl Count {
    /// A request counted against no budget, by a key with credits.
    pub(crate) fn credits_only(left: u64) -> Self {
        Self {
            credits: Some(left),
            ..Self::default()
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn unavailable() -> Self {
        Self {
            unavailable: true,
            ..Self::default()
        }
    }

    /// The fields that tell a client its budgets, `RateLimit-Policy` and `RateLimit`.
    pub(crate) fn fields(&self) -> Option<LimitFields> {
        let credits = self.credits.map(HeaderValue::from);
        if self.budgets.iter().all(Option::is_none) {
            return credits.map(|credits| LimitFields {
                policy: None,
                credits: Some(credits),
            });
        }
        let (mut policy, mut state) = (String::new(), String::new());
        for budget in self.budgets.iter().flatten() {
            let separator = if policy.is_empty() { "" } else { ", " };
            let name = match budget.named {
                _ if budget.route => "route".into(),
                Some(code) => format!("key-{}", window_limit(code).window_name()).into(),
                None => std::borrow::Cow::Borrowed("key"),
            };
            let _ = write!(
                policy,
                "{separator}\"{name}\";q={};w={}",
                budget.quota,
                seconds_up(Duration::from_nanos(budget.window)).max(1)
            );
            let _ = write!(
                state,
                "{separator}\"{name}\";r={};t={}",
                budget.remaining,
                seconds_up(Duration::from_nanos(budget.reset))
            );
        }
        Some(LimitFields {
            policy: Some((
                HeaderValue::try_from(policy).ok()?,
                HeaderValue::try_from(state).ok()?,
            )),
            credits,
        })
    }
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers), and
/// `Credits-Remaining` for a key with credits.
#[derive(Debug, Clone)]
pub(crate) struct LimitFields {
    /// `RateLimit-Policy` and `RateLimit`, when the request was counted in a budget.
    pub(crate) policy: Option<(HeaderValue, HeaderValue)>,
    /// The credits the key has left.
    pub(crate) credits: Option<HeaderValue>,
}

impl LimitFields {
    /// Sets the fields on a response.
    pub(crate) fn apply(&self, headers: &mut http::HeaderMap) {
        if let Some((policy, state)) = &self.policy {
            headers.insert("ratelimit-policy", policy.clone());
            headers.insert("ratelimit", state.clone());
        }
        if let Some(credits) = &self.credits {
            headers.insert("credits-remaining", credits.clone());
        }
    }
}

/// Whole seconds, rounded up: a client that waits this long is never early.
pub(crate) fn seconds_up(duration: Duration) -> u64 {
    let secs = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    }
}
