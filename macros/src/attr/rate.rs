//! `rate_limit = "<count>/<period>"`: the route's budget, read at compile time as the runtime
//! reads a key's.

use syn::Expr;

use super::{WithSpan, string_literal};

/// A rate limit as the runtime's `RateLimit` reads it: `count` per `period_nanos`, in bursts
/// of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) count: u32,
    pub(crate) period_nanos: u64,
    pub(crate) burst: u32,
    /// A calendar window, counted exactly: `Some(false)` a day, `Some(true)` a month.
    pub(crate) calendar: Option<Calendar>,
}

/// The calendar windows of the runtime's `RateLimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Calendar {
    Day,
    Month,
}

const RATE_FORM: &str = "a rate limit is written `<count>/<period>`, e.g. `rate_limit = \"10/s\"`, \
                         `\"100/min\"`, `\"10/s burst 20\"` or `\"1000/day\"`";

/// `rate_limit = "..."`: the grammar of the runtime's `RateLimit`, checked here so that a
/// mistake is an error at the literal.
pub(super) fn rate_literal(value: &Expr) -> syn::Result<WithSpan<Rate>> {
    if let Expr::Array(_) = value {
        return Err(syn::Error::new_spanned(
            value,
            "a route takes one rate limit, e.g. `rate_limit = \"10/s\"`; a plan of several \
             windows belongs to a key: `rate_limit = [\"10/s\", \"100000/day\"]` in its \
             record, or `Key::rate_limits` in code",
        ));
    }
    let Some(lit) = string_literal(value) else {
        return Err(syn::Error::new_spanned(
            value,
            format!("expected a string literal: {RATE_FORM}"),
        ));
    };
    let rate = parse_rate(&lit.value()).map_err(|why| {
        syn::Error::new_spanned(lit, format!("`{}` is not a rate limit: {why}", lit.value()))
    })?;
    Ok(WithSpan {
        value: rate,
        span: lit.span(),
    })
}

pub(crate) fn parse_rate(text: &str) -> Result<Rate, String> {
    let positive = |text: &str| -> Option<u32> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().filter(|&n| n > 0)
    };
    let mut words = text.split_ascii_whitespace();
    let rate = words.next().ok_or_else(|| RATE_FORM.to_owned())?;
    let burst =
        match (words.next(), words.next(), words.next()) {
            (None, _, _) => None,
            (Some("burst"), Some(burst), None) => Some(positive(burst).ok_or(
                "the burst is a whole number from 1 to 4294967295, e.g. `\"10/s burst 20\"`",
            )?),
            _ => return Err(RATE_FORM.to_owned()),
        };
    let (count, period) = rate.split_once('/').ok_or_else(|| RATE_FORM.to_owned())?;
    let count = positive(count)
        .ok_or("the count is a whole number from 1 to 4294967295, e.g. `\"100/min\"`")?;
    let calendar = match period {
        "day" | "d" | "1d" | "1day" => Some((Calendar::Day, 86_400_000_000_000)),
        "month" | "mo" | "1month" | "1mo" => Some((Calendar::Month, 31 * 86_400_000_000_000)),
        _ => None,
    };
    if let Some((calendar, period_nanos)) = calendar {
        if burst.is_some() {
            return Err(
                "a day or a month is a calendar window, counted exactly: it has no \
                        burst (its count is what the window holds); drop `burst`"
                    .to_owned(),
            );
        }
        return Ok(Rate {
            count,
            period_nanos,
            burst: count,
            calendar: Some(calendar),
        });
    }
    let digits = period.bytes().take_while(u8::is_ascii_digit).count();
    let (multiple, unit) = period.split_at(digits);
    let multiple = if multiple.is_empty() {
        1
    } else {
        positive(multiple)
            .ok_or("the period's multiple is a whole number from 1, e.g. `\"10/5s\"`")?
    };
    if unit.starts_with('.') || unit.starts_with(',') {
        return Err(
            "the period's multiple is a whole number, not a fraction: scale the count and \
                    the period together (`\"10/1.5s\"` is `\"20/3s\"`)"
                .to_owned(),
        );
    }
    let unit: u64 = match unit {
        "ms" => 1_000_000,
        "s" | "sec" | "second" => 1_000_000_000,
        "m" | "min" | "minute" => 60_000_000_000,
        "h" | "hour" => 3_600_000_000_000,
        "d" | "day" | "month" | "mo" => {
            return Err(
                "a day or a month is a calendar window, one at a time: write \
                        `\"100/day\"` or `\"100/month\"`, or hours for a rolling window \
                        (`\"100/48h\"`)"
                    .to_owned(),
            );
        }
        _ => {
            return Err(
                "the period's unit is one of `ms`, `s`, `min`, `h`, `day` or `month`, \
                        e.g. `\"100/min\"`"
                    .to_owned(),
            );
        }
    };
    let period_nanos = unit
        .checked_mul(u64::from(multiple))
        .filter(|&nanos| nanos <= 366 * 86_400_000_000_000)
        .ok_or("the period is at most a year")?;
    Ok(Rate {
        count,
        period_nanos,
        burst: burst.unwrap_or(count),
        calendar: None,
    })
}
