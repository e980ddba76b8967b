//! What the admin routes read: the list's query and JSON bodies, checked before anything is
//! asked of the store, with messages that name what is wrong and never repeat a value.

use std::time::{Duration, SystemTime};

use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::store::NewKey;
use super::{MAX_BODY, bad_request, problem};
use crate::{IpNetwork, RateLimit, Refill};
use http::StatusCode;

/// `GET /keys`'s query.
#[derive(Debug, Default)]
pub(super) struct ListQuery {
    pub(super) prefix: Option<String>,
    pub(super) state: Option<String>,
    pub(super) identity: Option<String>,
    pub(super) limit: Option<String>,
    pub(super) cursor: Option<String>,
}

impl ListQuery {
    /// The query's fields, each at most once, and no others.
    pub(super) fn parse(query: Option<&str>) -> Option<Self> {
        let mut read = Self::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let field = match &*name {
                "prefix" => &mut read.prefix,
                "state" => &mut read.state,
                "identity" => &mut read.identity,
                "limit" => &mut read.limit,
                "cursor" => &mut read.cursor,
                _ => return None,
            };
            if field.replace(value.into_owned()).is_some() {
                return None;
            }
        }
        Some(read)
    }
}

/// `POST /keys`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    id: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    expires_at: Option<String>,
    #[serde(default)]
    rate_limit: Vec<String>,
    credits: Option<u64>,
    refill: Option<String>,
    identity: Option<String>,
    #[serde(default)]
    allowed_ips: Vec<String>,
}

impl CreateBody {
    /// The key it describes, or what is wrong with it.
    pub(super) fn new_key(self) -> Result<NewKey, String> {
        if let Some(id) = &self.id
            && crate::store::set::invalid_id(id).is_some()
        {
            return Err(format!(
                "`id` is 1 to {} printable characters, without `=` or `,`.",
                crate::MAX_ID_LEN
            ));
        }
        let expires_at = match &self.expires_at {
            None => None,
            Some(text) => Some(parse_time(text).ok_or(
                "`expires_at` is an RFC 3339 date-time in UTC, e.g. `2027-01-01T00:00:00Z`.",
            )?),
        };
        let rate_limits = self
            .rate_limit
            .iter()
            .map(|text| text.parse::<RateLimit>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("`rate_limit`: {error}"))?;
        crate::limit::check_limits(&rate_limits)
            .map_err(|error| format!("`rate_limit`: {error}"))?;
        let refill = self
            .refill
            .as_deref()
            .map(str::parse::<Refill>)
            .transpose()
            .map_err(|error| format!("`refill`: {error}"))?;
        let credits = match (self.credits, refill) {
            (Some(credits), refill) if credits <= crate::MAX_CREDITS => Some((credits, refill)),
            (Some(_), _) => return Err("`credits` is at most 2^53.".to_owned()),
            (None, Some(_)) => {
                return Err("`refill` needs `credits`, the uses the key starts with.".to_owned());
            }
            (None, None) => None,
        };
        if let Some(identity) = &self.identity
            && (identity.is_empty()
                || identity.len() > crate::MAX_ID_LEN
                || !identity.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(format!(
                "`identity` is 1 to {} printable ASCII characters.",
                crate::MAX_ID_LEN
            ));
        }
        let allowed_ips = self
            .allowed_ips
            .iter()
            .map(|text| text.parse::<IpNetwork>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("`allowed_ips`: {error}"))?;
        Ok(NewKey {
            id: self.id,
            scopes: self.scopes,
            expires_at,
            rate_limits,
            credits,
            identity: self.identity,
            allowed_ips,
        })
    }
}

/// Why a body was not read.
pub(super) enum BodyError {
    TooLarge,
    Unreadable(String),
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        match self {
            Self::TooLarge => problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "admin-body-too-large",
                "Body too large",
                "An admin request's body is at most 64 KiB.",
            ),
            Self::Unreadable(why) => bad_request(&why),
        }
    }
}

/// A JSON body of at most [`MAX_BODY`] bytes, or what is wrong with it (never echoing it: a
/// body may hold anything).
pub(super) fn read_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    if body.len() > MAX_BODY {
        return Err(BodyError::TooLarge);
    }
    serde_json::from_slice(body).map_err(|error| {
        let what = match error.classify() {
            serde_json::error::Category::Data => format!(
                "The body is not what this route reads: {} (line {}, column {}).",
                without_values(&error.to_string()),
                error.line(),
                error.column()
            ),
            _ => "The body is not a JSON object.".to_owned(),
        };
        BodyError::Unreadable(what)
    })
}

/// serde's message with the value it quotes left out (`invalid type: string "…", expected a
/// sequence` becomes `invalid type: a string, expected a sequence`): a value may be a key put
/// in the wrong field, and no answer repeats one. Field names (`unknown field `colour``) stay.
fn without_values(message: &str) -> String {
    let message = message.split(" at line").next().unwrap_or_default();
    for lead in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(lead)
            && let Some((value, expected)) = rest.split_once(", expected ")
        {
            let kind = value.split([' ', '`', '"']).next().unwrap_or_default();
            return format!("{lead}{kind}, expected {expected}");
        }
    }
    // Unknown, missing or duplicate fields name the field, at most 64 characters of it.
    message.chars().take(160).collect()
}

/// A time written as RFC 3339 in UTC (`2027-01-01T00:00:00Z`, with an optional fraction).
fn parse_time(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.ends_with('Z') || !text.is_ascii() {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i64> {
        let part = &text[from..to];
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let nanos = match &text[19..text.len() - 1] {
        "" => 0,
        fraction if fraction.len() >= 2 && fraction.len() <= 10 && fraction.starts_with('.') => {
            let digits = &fraction[1..];
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let value: u32 = digits.parse().ok()?;
            value * 10u32.pow(9 - u32::try_from(digits.len()).ok()?)
        }
        _ => return None,
    };
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..60).contains(&second)
    {
        return None;
    }
    let days = crate::time::days_from_civil(year, month, day);
    // A day past the month's end (February 30th) comes back as another date.
    if crate::time::civil_from_days(days) != (year, month, day) {
        return None;
    }
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(SystemTime::UNIX_EPOCH + Duration::new(u64::try_from(seconds).ok()?, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_about_a_body_repeat_no_value() {
        let secret = "cust_7Qm2xY9wLkV3rT8sNc5dZc4nH6jR";
        for body in [
            format!(r#"{{"scopes": "{secret}"}}"#),
            format!(r#"{{"credits": "{secret}"}}"#),
            format!(r#"{{"id": ["{secret}"]}}"#),
            r#"{"credits": -1}"#.to_owned(),
        ] {
            let Err(BodyError::Unreadable(why)) = read_body::<CreateBody>(body.as_bytes()) else {
                panic!("{body} was read");
            };
            assert!(!why.contains(secret) && !why.contains("-1"), "{why}");
            assert!(why.contains("expected"), "{why}");
        }
        let Err(BodyError::Unreadable(why)) = read_body::<CreateBody>(br#"{"colour": 1}"#) else {
            panic!("read");
        };
        assert!(why.contains("unknown field `colour`"), "{why}");
    }

    #[test]
    fn reads_rfc3339_times_strictly() {
        let at = |secs, nanos| SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(at(0, 0)));
        assert_eq!(
            parse_time("2024-02-29T00:00:00.5Z"),
            Some(at(1_709_164_800, 500_000_000))
        );
        for bad in [
            "",
            "2024-02-30T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00+01:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1234567890Z",
            "+024-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Every time the crate writes reads back as itself, and nothing panics.
        #[test]
        fn written_times_read_back(secs in 0_u64..253_402_300_799, nanos in 0_u32..1_000_000_000) {
            let at = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
            let text = crate::time::rfc3339(at).unwrap();
            proptest::prop_assert_eq!(parse_time(&text), Some(at));
        }

        #[test]
        fn any_text_is_read_without_panic(text in "\\PC{0,40}") {
            let _ = parse_time(&text);
        }
    }
}
