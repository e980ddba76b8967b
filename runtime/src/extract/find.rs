//! The key in a request: looked for in every source the guard reads, and refused when it is
//! in more than one place.

use std::borrow::Cow;

use http::header::{AUTHORIZATION, COOKIE};
use http::request::Parts;
use http::{HeaderName, HeaderValue};

use crate::guard_config::Source;
use crate::store::KeyDigest;

/// The default source's name, built once: a lookup by a `HeaderName` hashes it without first
/// parsing and classifying the name, as a lookup by `&str` does on every request.
static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// What the sources of a request hold.
pub(super) enum Found<'a> {
    Nothing,
    One {
        key: Cow<'a, [u8]>,
        source: &'static Source,
    },
    /// A key in more than one place, or twice in one.
    Duplicate,
}

/// The digest of the one key the request presents through `sources`, if it presents exactly
/// one: what a change made at the key holder's request acts on.
pub(crate) fn presented_digest(parts: &Parts, sources: &'static [Source]) -> Option<KeyDigest> {
    match find_key(parts, sources) {
        Found::One { key, .. } => Some(crate::digest(&key)),
        Found::Nothing | Found::Duplicate => None,
    }
}

/// Reads every source; a key found in two places, or twice in one, is a duplicate.
pub(super) fn find_key<'a>(parts: &'a Parts, sources: &'static [Source]) -> Found<'a> {
    let mut found = Found::Nothing;
    for source in sources {
        let values = match source {
            Source::Header(name) => {
                let values = if *name == "x-api-key" {
                    parts.headers.get_all(&X_API_KEY)
                } else {
                    parts.headers.get_all(*name)
                };
                one_of(values.iter().map(HeaderValue::as_bytes).map(Cow::Borrowed))
            }
            Source::Query(name) => one_of(query_values(parts, name)),
            Source::Cookie(name) => one_of(cookie_values(parts, name).map(Cow::Borrowed)),
            Source::Bearer => {
                // One lookup: the fields found are walked again without hashing the name again.
                let fields = parts.headers.get_all(AUTHORIZATION);
                let mut each = fields.iter();
                match (each.next(), each.next()) {
                    (None, _) => Values::None,
                    (Some(field), None) => {
                        one_of(bearer_token(field).map(Cow::Borrowed).into_iter())
                    }
                    // A bearer token beside a second `Authorization` field is a credential sent
                    // twice, whatever the other field's scheme: never "the bearer one wins".
                    (Some(_), Some(_)) => match fields.iter().find_map(bearer_token) {
                        Some(_) => Values::Many,
                        None => Values::None,
                    },
                }
            }
        };
        found = match (found, values) {
            (found, Values::None) => found,
            (_, Values::Many) | (Found::One { .. } | Found::Duplicate, _) => {
                return Found::Duplicate;
            }
            (Found::Nothing, Values::One(key)) => Found::One { key, source },
        };
    }
    found
}

/// What one source holds: empty values count as none.
enum Values<'a> {
    None,
    One(Cow<'a, [u8]>),
    Many,
}

fn one_of<'a>(values: impl Iterator<Item = Cow<'a, [u8]>>) -> Values<'a> {
    let mut values = values.filter(|value| !value.is_empty());
    match (values.next(), values.next()) {
        (None, _) => Values::None,
        (Some(value), None) => Values::One(value),
        (Some(_), Some(_)) => Values::Many,
    }
}

fn query_values<'a>(parts: &'a Parts, name: &'static str) -> impl Iterator<Item = Cow<'a, [u8]>> {
    let query = parts.uri.query().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .filter(move |(key, _)| key == name)
        .map(|(_, value)| match value {
            Cow::Borrowed(value) => Cow::Borrowed(value.as_bytes()),
            Cow::Owned(value) => Cow::Owned(value.into_bytes()),
        })
}

/// The values of the cookie `name` across every `Cookie` header, unquoted (RFC 6265).
fn cookie_values<'a>(parts: &'a Parts, name: &'static str) -> impl Iterator<Item = &'a [u8]> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|header| header.as_bytes().split(|&b| b == b';'))
        .filter_map(move |pair| {
            let pair = pair.trim_ascii();
            let at = pair.iter().position(|&b| b == b'=')?;
            let (cookie, value) = (pair[..at].trim_ascii(), pair[at + 1..].trim_ascii());
            (cookie == name.as_bytes()).then(|| {
                value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value)
            })
        })
}

/// The token of an `Authorization: Bearer <token>` field; other schemes are not ours.
fn bearer_token(field: &HeaderValue) -> Option<&[u8]> {
    let value = field.as_bytes().trim_ascii();
    let at = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
    value[..at]
        .eq_ignore_ascii_case(b"bearer")
        .then(|| value[at..].trim_ascii())
}
