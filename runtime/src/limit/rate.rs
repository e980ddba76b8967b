//! [`RateLimit`]: how many requests a key may make in a window, and its text form.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::credits::RefillPeriod;

/// A rate limit: `count` requests per `period`, with bursts of up to `burst` requests (by
/// default `count`), enforced by GCRA: the budget refills one request every `period / count`,
/// so a client that waited a whole period may spend it at once, and one that keeps pace is never
/// refused.
///
/// Written as text (records files, the database, `#[api_key(rate_limit = "...")]`):
///
/// | text | meaning |
/// | --- | --- |
/// | `100/min` | 100 requests a minute (units `s`, `sec`, `second`, `m`, `min`, `minute`, `h`, `hour`, `d`, `day`) |
/// | `10/5s` | 10 requests every 5 seconds |
/// | `10/s burst 20` | 10 requests a second on average, up to 20 at once |
/// | `100000/day` | 100,000 requests each calendar day (UTC), counted afresh at midnight |
/// | `1000000/month` | 1,000,000 requests each calendar month (UTC), afresh on the 1st |
///
/// A day or a month is a **calendar window**, counted exactly rather than by GCRA: at most
/// `count` requests between two midnights (or two firsts of the month), whenever they come, and
/// the whole count again as the next window starts; so a plan's "100,000 a day" means what it
/// says. Any other period (`24h`, `86400s` among them) is a rolling GCRA budget. A calendar
/// window has no burst, and no multiple (`2d` is refused: write `48h` for a rolling one). It is
/// read from [`RateLimits::with_clock`](crate::RateLimits::with_clock)'s clock, the system's by
/// default.
///
/// ```
/// use std::time::Duration;
/// use axum_api_key::RateLimit;
///
/// let limit: RateLimit = "10/s burst 20".parse()?;
/// assert_eq!(limit, RateLimit::new(10, Duration::from_secs(1)).with_burst(20));
/// assert_eq!(limit.to_string(), "10/s burst 20");
/// assert_eq!("100/min".parse::<RateLimit>()?.period(), Duration::from_secs(60));
/// assert!("100 per minute".parse::<RateLimit>().is_err());
/// # Ok::<(), axum_api_key::RateLimitError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    count: u32,
    burst: u32,
    /// The period in nanoseconds (at most `u64::MAX`, some 584 years).
    period: u64,
    /// `period / count` in nanoseconds, computed once: the request path divides nothing.
    interval: u64,
    /// A calendar window (a day or a month, UTC), counted exactly; `None` for GCRA.
    calendar: Option<RefillPeriod>,
}

impl RateLimit {
    /// `count` requests per `period`, in bursts of up to `count`. A count of zero is taken as
    /// one, a period shorter than a millisecond as a millisecond, and one longer than
    /// `u64::MAX` nanoseconds (some 584 years) as that: no limit refuses every request, and
    /// none divides by zero.
    pub const fn new(count: u32, period: Duration) -> Self {
        let count = if count == 0 { 1 } else { count };
        let period = if period.as_millis() == 0 {
            1_000_000
        } else if period.as_nanos() > u64::MAX as u128 {
            u64::MAX
        } else {
            period.as_nanos() as u64
        };
        let interval = period / count as u64;
        let interval = if interval == 0 { 1 } else { interval };
        Self {
            count,
            period,
            burst: count,
            interval,
            calendar: None,
        }
    }

    /// `count` requests each calendar day (UTC): at most `count` between two midnights, and the
    /// whole count again at the next (a count of zero is taken as one).
    ///
    /// ```
    /// use axum_api_key::RateLimit;
    ///
    /// assert_eq!("100000/day".parse::<RateLimit>()?, RateLimit::per_day(100_000));
    /// assert!(RateLimit::per_day(100_000).calendar().is_some());
    /// # Ok::<(), axum_api_key::RateLimitError>(())
    /// ```
    pub const fn per_day(count: u32) -> Self {
        let mut limit = Self::new(count, Duration::from_secs(86_400));
        limit.calendar = Some(RefillPeriod::Day);
        limit
    }

    /// `count` requests each calendar month (UTC): at most `count` from the 1st at midnight to
    /// the next 1st, and the whole count again then. Its [`period`](Self::period) is its
    /// longest, 31 days.
    pub const fn per_month(count: u32) -> Self {
        let mut limit = Self::new(count, Duration::from_secs(31 * 86_400));
        limit.calendar = Some(RefillPeriod::Month);
        limit
    }

    /// The calendar window the limit counts in ([`RefillPeriod::Day`] or
    /// [`RefillPeriod::Month`]), or `None` for a rolling GCRA budget.
    pub const fn calendar(&self) -> Option<RefillPeriod> {
        self.calendar
    }

    /// Allows bursts of up to `burst` requests (at least one). A calendar window has no
    /// burst: it is left as it is.
    pub const fn with_burst(mut self, burst: u32) -> Self {
        if self.calendar.is_none() {
            self.burst = if burst == 0 { 1 } else { burst };
        }
        self
    }

    /// Requests allowed per [`period`](Self::period), on average.
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The window the count is given for.
    pub const fn period(&self) -> Duration {
        Duration::from_nanos(self.period)
    }

    /// Requests allowed at once, from a full budget.
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// The time one request's share of the budget takes to refill: `period / count`, at least a
    /// nanosecond.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// [`interval`](Self::interval) in nanoseconds, at least 1.
    pub(crate) const fn interval_nanos(&self) -> u64 {
        self.interval
    }

    /// [`period`](Self::period) in nanoseconds.
    pub(crate) const fn period_nanos(&self) -> u64 {
        self.period
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RateLimit({self})")
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.count)?;
        match self.calendar {
            Some(RefillPeriod::Month) => return f.write_str("month"),
            Some(_) => return f.write_str("day"),
            None => {}
        }
        let period = self.period();
        let (secs, nanos) = (period.as_secs(), period.subsec_nanos());
        match (secs, nanos) {
            (1, 0) => f.write_str("s")?,
            (60, 0) => f.write_str("min")?,
            (3600, 0) => f.write_str("h")?,
            // A rolling day: `d` would read back as the calendar's.
            (86_400, 0) => f.write_str("24h")?,
            (secs, 0) => write!(f, "{secs}s")?,
            _ => write!(f, "{}ms", period.as_millis())?,
        }
        if self.burst != self.count {
            write!(f, " burst {}", self.burst)?;
        }
        Ok(())
    }
}

/// Why a text is not a [`RateLimit`]: the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitError(&'static str);

impl fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for RateLimitError {}

const FORM: &str =
    "a rate limit is written `<count>/<period>`, e.g. `100/min`, `10/5s` or `10/s burst 20`";

impl FromStr for RateLimit {
    type Err = RateLimitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut words = text.split_ascii_whitespace();
        let rate = words.next().ok_or(RateLimitError(FORM))?;
        let burst = match (words.next(), words.next(), words.next()) {
            (None, _, _) => None,
            (Some("burst"), Some(burst), None) => Some(positive(burst).ok_or(RateLimitError(
                "the burst is a whole number from 1 to 4294967295, e.g. `burst 20`",
            ))?),
            _ => return Err(RateLimitError(FORM)),
        };
        let (count, period) = rate.split_once('/').ok_or(RateLimitError(FORM))?;
        let count = positive(count).ok_or(RateLimitError(
            "the count is a whole number from 1 to 4294967295, e.g. `100/min`",
        ))?;
        let limit = match period {
            "day" | "d" | "1d" | "1day" => Self::per_day(count),
            "month" | "mo" | "1month" | "1mo" => Self::per_month(count),
            _ => Self::new(count, period_of(period)?),
        };
        if burst.is_some() && limit.calendar.is_some() {
            return Err(RateLimitError(
                "a day or a month is a calendar window, counted exactly: it has no burst (its \
                 count is what the window holds)",
            ));
        }
        Ok(match burst {
            Some(burst) => limit.with_burst(burst),
            None => limit,
        })
    }
}

/// The most rate limits a key carries: a plan's few windows (a second, a minute, a day, a
/// month), each its own budget and its own `RateLimit-Policy` entry.
///
/// ```
/// use axum_api_key::{Key, MAX_KEY_LIMITS};
///
/// let five = ["1/s", "1/min", "1/h", "1/day", "1/month"].map(|text| text.parse().unwrap());
/// assert_eq!(MAX_KEY_LIMITS, 4);
/// assert!(Key::new("a", "pa_7Qm2xY9wLkV3rT8s").rate_limits(five).is_err());
/// ```
pub const MAX_KEY_LIMITS: usize = 4;

/// Checks a key's list of limits: at most [`MAX_KEY_LIMITS`], each over a window of its own
/// (two limits over one window would be one too many: keep the smaller).
pub(crate) fn check_limits(limits: &[RateLimit]) -> Result<(), RateLimitError> {
    if limits.len() > MAX_KEY_LIMITS {
        return Err(RateLimitError(
            "a key carries at most 4 rate limits, one per window (e.g. `10/s`, `1000/h`, \
             `100000/day`)",
        ));
    }
    for (at, limit) in limits.iter().enumerate() {
        if limits[..at]
            .iter()
            .any(|other| other.window_name() == limit.window_name())
        {
            return Err(RateLimitError(
                "two rate limits of a key are over the same window: keep the smaller, as a \
                 request must fit in both",
            ));
        }
    }
    Ok(())
}

/// A key's limits as one text, as the database and the command line hold them:
/// `10/s, 100000/day`.
pub(crate) fn limits_text(limits: impl IntoIterator<Item = RateLimit>) -> String {
    let mut text = String::new();
    for limit in limits {
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(&limit.to_string());
    }
    text
}

/// Reads a key's limits written as one text, comma-separated (`10/s, 100000/day`), checked as
/// [`check_limits`] does. An empty text is no limit.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn parse_limits(text: &str) -> Result<Vec<RateLimit>, RateLimitError> {
    let limits = text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<RateLimit>, _>>()?;
    check_limits(&limits)?;
    Ok(limits)
}

impl RateLimit {
    /// The window's part of the limit's text (`s`, `5s`, `min`, `day`, `month`): what its
    /// entry in `RateLimit-Policy` is named after when a key has several.
    pub(crate) fn window_name(&self) -> String {
        let text = self.to_string();
        let rate = text.split(' ').next().unwrap_or_default();
        rate.split_once('/')
            .map_or_else(String::new, |(_, window)| window.to_owned())
    }
}

fn positive(text: &str) -> Option<u32> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&n| n > 0)
}

/// `s`, `min`, `5s`, `250ms`, `2h`: an optional whole multiple and a unit.
fn period_of(text: &str) -> Result<Duration, RateLimitError> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (multiple, unit) = text.split_at(digits);
    let multiple = if multiple.is_empty() {
        1
    } else {
        positive(multiple).ok_or(RateLimitError(
            "the period's multiple is a whole number from 1, e.g. `10/5s`",
        ))?
    };
    if unit.starts_with('.') || unit.starts_with(',') {
        return Err(RateLimitError(
            "the period's multiple is a whole number, not a fraction: scale the count and the \
             period together (`10/1.5s` is `20/3s`)",
        ));
    }
    let unit = match unit {
        "ms" => Duration::from_millis(1),
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" | "month" | "mo" => {
            return Err(RateLimitError(
                "a day or a month is a calendar window, one at a time: write `100/day` or \
                 `100/month`, or hours for a rolling window (`100/48h`)",
            ));
        }
        _ => {
            return Err(RateLimitError(
                "the period's unit is one of `ms`, `s`, `min`, `h`, `day` or `month`, e.g. `100/min`",
            ));
        }
    };
    let period = unit
        .checked_mul(multiple)
        .filter(|period| *period <= Duration::from_secs(366 * 86_400))
        .ok_or(RateLimitError("the period is at most a year"))?;
    if period < Duration::from_millis(1) {
        return Err(RateLimitError("the period is at least a millisecond"));
    }
    Ok(period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let secs = Duration::from_secs;
        assert_eq!("100/min".parse(), Ok(RateLimit::new(100, secs(60))));
        assert_eq!("10/5s".parse(), Ok(RateLimit::new(10, secs(5))));
        assert_eq!(
            " 10/s  burst 20 ".parse(),
            Ok(RateLimit::new(10, secs(1)).with_burst(20))
        );
        assert_eq!(
            "5/250ms".parse(),
            Ok(RateLimit::new(5, Duration::from_millis(250)))
        );
        assert_eq!("1/day".parse(), Ok(RateLimit::per_day(1)));
        assert_eq!("7/month".parse(), Ok(RateLimit::per_month(7)));
        assert_eq!("1/24h".parse(), Ok(RateLimit::new(1, secs(86_400))));
        assert_eq!("3/2h".parse(), Ok(RateLimit::new(3, secs(7200))));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "100",
            "/min",
            "0/min",
            "-1/min",
            "1.5/min",
            "10/",
            "10/fortnight",
            "10/0s",
            "10/s burst",
            "10/s burst 0",
            "10/s burst x",
            "10/s rate 5",
            "10/s burst 5 6",
            "99999999999/s",
            "1/9999999d",
            "+5/s",
            "10/s/s",
            "10/2d",
            "10/3month",
            "10/day burst 20",
            "10/month burst 5",
        ] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?} parsed");
        }
        // Each says what is wrong: the maximum, and a fraction as a fraction.
        let say = |text: &str| text.parse::<RateLimit>().unwrap_err().to_string();
        assert!(
            say("4294967296/s").contains("4294967295"),
            "{}",
            say("4294967296/s")
        );
        assert!(
            say("10/1.5s").contains("not a fraction"),
            "{}",
            say("10/1.5s")
        );
    }

    #[test]
    fn text_round_trips() {
        for text in [
            "100/min",
            "10/5s",
            "10/s burst 20",
            "1/day",
            "9/month",
            "1/24h",
            "7/h",
            "5/250ms",
            "2/90s",
        ] {
            let limit: RateLimit = text.parse().unwrap();
            assert_eq!(limit.to_string(), text);
            assert_eq!(limit.to_string().parse(), Ok(limit));
        }
    }

    #[test]
    fn lists_of_limits() {
        let limits = parse_limits("10/s, 100000/day").unwrap();
        assert_eq!(
            limits,
            [
                RateLimit::new(10, Duration::from_secs(1)),
                RateLimit::per_day(100_000)
            ]
        );
        assert_eq!(limits_text(limits.iter().copied()), "10/s, 100000/day");
        assert_eq!(parse_limits(" ").unwrap(), []);
        assert!(
            parse_limits("10/s, 20/s")
                .unwrap_err()
                .to_string()
                .contains("same window")
        );
        assert!(parse_limits("1/s, 1/min, 1/h, 1/day, 1/month").is_err());
        assert!(parse_limits("1/s, lots").is_err());
        assert_eq!(RateLimit::per_month(3).window_name(), "month");
        assert_eq!(
            "3/5s burst 9".parse::<RateLimit>().unwrap().window_name(),
            "5s"
        );
    }

    #[test]
    fn interval() {
        let limit: RateLimit = "60/min".parse().unwrap();
        assert_eq!(limit.interval(), Duration::from_secs(1));
        let limit: RateLimit = "3/s".parse().unwrap();
        assert_eq!(limit.interval(), Duration::from_nanos(333_333_333));
        assert_eq!(
            RateLimit::new(1_000_000, Duration::from_millis(1)).interval(),
            Duration::from_nanos(1)
        );
        assert_eq!(
            RateLimit::new(0, Duration::ZERO),
            RateLimit::new(1, Duration::from_millis(1))
        );
    }
}
