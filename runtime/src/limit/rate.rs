//! [`RateLimit`]: how many requests a key may make in a window, and its text form.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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
    period: Duration,
    burst: u32,
    /// `period / count`, computed once: the request path divides nothing.
    interval: Duration,
}

impl RateLimit {
    /// `count` requests per `period`, in bursts of up to `count`. A count of zero is taken as
    /// one, and a period shorter than a millisecond as a millisecond: no limit refuses every
    /// request, and none divides by zero.
    pub const fn new(count: u32, period: Duration) -> Self {
        let count = if count == 0 { 1 } else { count };
        let period = if period.as_millis() == 0 {
            Duration::from_millis(1)
        } else {
            period
        };
        let nanos = period.as_nanos() / count as u128;
        let interval = if nanos == 0 {
            Duration::from_nanos(1)
        } else if nanos > u64::MAX as u128 {
            Duration::from_nanos(u64::MAX)
        } else {
            Duration::from_nanos(nanos as u64)
        };
        Self {
            count,
            period,
            burst: count,
            interval,
        }
    }

    /// Allows bursts of up to `burst` requests (at least one).
    pub const fn with_burst(mut self, burst: u32) -> Self {
        self.burst = if burst == 0 { 1 } else { burst };
        self
    }

    /// Requests allowed per [`period`](Self::period), on average.
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The window the count is given for.
    pub const fn period(&self) -> Duration {
        self.period
    }

    /// Requests allowed at once, from a full budget.
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// The time one request's share of the budget takes to refill: `period / count`, at least a
    /// nanosecond.
    pub fn interval(&self) -> Duration {
        self.interval
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
        let (secs, nanos) = (self.period.as_secs(), self.period.subsec_nanos());
        match (secs, nanos) {
            (1, 0) => f.write_str("s")?,
            (60, 0) => f.write_str("min")?,
            (3600, 0) => f.write_str("h")?,
            (86_400, 0) => f.write_str("d")?,
            (secs, 0) => write!(f, "{secs}s")?,
            _ => write!(f, "{}ms", self.period.as_millis())?,
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
        let period = period_of(period)?;
        let limit = Self::new(count, period);
        Ok(match burst {
            Some(burst) => limit.with_burst(burst),
            None => limit,
        })
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
        "d" | "day" => Duration::from_secs(86_400),
        _ => {
            return Err(RateLimitError(
                "the period's unit is one of `ms`, `s`, `min`, `h` or `d`, e.g. `100/min`",
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
        assert_eq!("1/day".parse(), Ok(RateLimit::new(1, secs(86_400))));
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
            "1/d",
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
