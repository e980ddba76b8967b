//! Times written as RFC 3339, as records files and self-service answers give them, and the
//! calendar arithmetic of daily and monthly windows. Written here rather than taken from a time
//! crate: the default features stay within their dependency budget, and a property test holds
//! the writer to `humantime`'s.

use std::time::{SystemTime, UNIX_EPOCH};

/// `at` as an RFC 3339 date-time in UTC, with nanoseconds when it has any:
/// `2027-01-01T00:00:00Z`. `None` before 1970 or after the year 9999.
pub(crate) fn rfc3339(at: SystemTime) -> Option<String> {
    let since = at.duration_since(UNIX_EPOCH).ok()?;
    if since.as_secs() > 253_402_300_799 {
        return None;
    }
    let seconds = i64::try_from(since.as_secs()).ok()?;
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    let fraction = match since.subsec_nanos() {
        0 => String::new(),
        nanos => format!(".{nanos:09}"),
    };
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    ))
}

/// The date of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day counted from 1970-01-01 of a date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn writes_utc_date_times() {
        let at = |secs, nanos| UNIX_EPOCH + Duration::new(secs, nanos);
        assert_eq!(rfc3339(at(0, 0)).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(at(1_709_164_800, 5)).as_deref(),
            Some("2024-02-29T00:00:00.000000005Z")
        );
        assert_eq!(
            rfc3339(at(253_402_300_799, 0)).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(rfc3339(at(253_402_300_800, 0)), None);
    }

    proptest::proptest! {
        /// Every time the writer takes, checked against `humantime`, an RFC 3339 implementation
        /// of its own: it reads back the same instant, and with nanoseconds it is written alike.
        #[test]
        fn agrees_with_humantime(secs in 0u64..=253_402_300_799, nanos in 0u32..1_000_000_000) {
            let at = UNIX_EPOCH + Duration::new(secs, nanos);
            let written = rfc3339(at).expect("within years 1970 to 9999");
            proptest::prop_assert_eq!(humantime::parse_rfc3339(&written).expect("RFC 3339"), at);
            if nanos > 0 {
                proptest::prop_assert_eq!(
                    &written,
                    &humantime::format_rfc3339_nanos(at).to_string()
                );
            } else {
                proptest::prop_assert_eq!(
                    &written,
                    &humantime::format_rfc3339_seconds(at).to_string()
                );
            }
        }

        /// Days and dates convert both ways, over every date the records file can hold.
        #[test]
        fn days_and_dates_round_trip(days in 0i64..2_932_897) {
            let (year, month, day) = civil_from_days(days);
            proptest::prop_assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}
