//! The names `#[api_key]` gives the security scheme of each place a key may be, shared by the
//! OpenAPI integrations: `apiKeyHeader_x-api-key`, `apiKeyQuery_api_key`,
//! `apiKeyCookie_session`, `bearer`. A character other than letters, digits, `_` and `-` is
//! written `.` and its two hex digits, so a name reads back exactly.

use crate::Source;

/// What a scheme name stands for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Place {
    Header(String),
    Query(String),
    Cookie(String),
    Bearer,
}

/// The scheme name of a source.
pub(crate) fn name(source: &Source) -> String {
    match source {
        Source::Header(name) => format!("apiKeyHeader_{}", escape(name)),
        Source::Query(name) => format!("apiKeyQuery_{}", escape(name)),
        Source::Cookie(name) => format!("apiKeyCookie_{}", escape(name)),
        Source::Bearer => "bearer".to_owned(),
    }
}

/// The place a scheme name of ours stands for; `None` for any other name.
pub(crate) fn place(name: &str) -> Option<Place> {
    if name == "bearer" {
        return Some(Place::Bearer);
    }
    let (kind, escaped) = name.split_once('_')?;
    let key = unescape(escaped)?;
    match kind {
        "apiKeyHeader" => Some(Place::Header(key)),
        "apiKeyQuery" => Some(Place::Query(key)),
        "apiKeyCookie" => Some(Place::Cookie(key)),
        _ => None,
    }
}

fn escape(name: &str) -> String {
    let mut escaped = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!(".{byte:02X}"));
        }
    }
    escaped
}

fn unescape(escaped: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let mut rest = escaped.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'.' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// The refusals a guard configured so may answer: status and description.
pub(crate) fn refusals(config: &crate::GuardConfig) -> Vec<(u16, &'static str)> {
    let status = config.status().as_u16();
    let mut refusals = vec![
        (
            status,
            "The API key is missing, unknown, malformed, revoked or expired.",
        ),
        (400, "The API key was sent more than once."),
        (
            429,
            "Too many requests: the key's rate limit or credits are used up, or too many invalid \
             keys came from this address.",
        ),
        (503, "The API key could not be checked right now."),
    ];
    // Any key may be disabled or held to some networks, so every guard may answer 403.
    if status != 403 {
        refusals.push((
            403,
            if config.scopes().is_empty() {
                "The API key is disabled, or may not be used from this address."
            } else {
                "The API key lacks a scope this operation requires, is disabled, or may not be \
                 used from this address."
            },
        ));
    }
    refusals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for source in [
            Source::Header("x-api-key"),
            Source::Query("api~key"),
            Source::Cookie("a.b"),
            Source::Bearer,
        ] {
            let name = name(&source);
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            );
            let expected = match source {
                Source::Header(n) => Place::Header(n.to_owned()),
                Source::Query(n) => Place::Query(n.to_owned()),
                Source::Cookie(n) => Place::Cookie(n.to_owned()),
                _ => Place::Bearer,
            };
            assert_eq!(place(&name), Some(expected));
        }
        assert_eq!(name(&Source::Query("api~key")), "apiKeyQuery_api.7Ekey");
        assert_eq!(place("apiKeyHeader_bad.4"), None);
        assert_eq!(place("other_x"), None);
    }
}
