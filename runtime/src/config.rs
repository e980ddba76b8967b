//! Reading keys from configuration: the `API_KEYS` format and its errors.
//!
//! The format is a comma-separated list of entries, each one of
//!
//! - `id=key`: a key in plaintext, hashed as it is read;
//! - `id=sha256:<64 hex digits>`: a key given by its SHA-256 digest, so the plaintext never
//!   reaches the service;
//! - `key` alone: a key with the id `default`; a key holding `=` is written `default=key` (an
//!   entry that could be read both ways, such as `abc==`, is refused, never guessed);
//! - `id[scope scope]=key` or `id[scope]=sha256:<hex>`: a key holding scopes, separated by
//!   spaces inside the brackets.
//!
//! Keys given in plaintext are at least [`MIN_KEY_LEN`](crate::MIN_KEY_LEN) (16) bytes long.
//! Whitespace around entries, ids and keys is ignored, and so are empty entries (a trailing
//! comma). Ids and keys are visible ASCII without `,`; ids have no `=`, `[` or `]` either, and
//! scopes are visible ASCII without `"`, `\`, `,`, `[` or `]`.

use std::str::FromStr;

use crate::store::{ApiKeys, Key, decode_digest};

pub use crate::error::DEFAULT_ID;
use crate::error::{ConfigError, ConfigErrorKind};

impl ApiKeys {
    /// Reads keys from the environment variable `var`, in the format described in
    /// [`FromStr`](#impl-FromStr-for-ApiKeys).
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, ConfigErrorKind};
    ///
    /// # unsafe { std::env::set_var("DOC_API_KEYS", "partner-a=pa_7Qm2xY9wLkV3rT8s") };
    /// // DOC_API_KEYS="partner-a=pa_7Qm2xY9wLkV3rT8s"
    /// let keys = ApiKeys::from_env("DOC_API_KEYS")?;
    /// assert_eq!(keys.verify(b"pa_7Qm2xY9wLkV3rT8s").unwrap().id(), "partner-a");
    ///
    /// let missing = ApiKeys::from_env("DOC_NOT_SET").unwrap_err();
    /// assert_eq!(missing.kind(), ConfigErrorKind::NotSet);
    /// assert_eq!(missing.to_string(), "DOC_NOT_SET is not set; set it to `id=key` entries separated by commas");
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn from_env(var: &str) -> Result<Self, ConfigError> {
        let in_var = |error: ConfigError| error.in_origin(var);
        match std::env::var(var) {
            Ok(text) => parse(&text).map_err(in_var),
            Err(std::env::VarError::NotPresent) => {
                Err(in_var(ConfigError::new(ConfigErrorKind::NotSet)))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(in_var(ConfigError::new(ConfigErrorKind::NotUnicode)))
            }
        }
    }
}

/// Parses the `API_KEYS` format: comma-separated `id=key`, `id=sha256:<hex>` or lone `key`
/// entries.
///
/// ```
/// use axum_api_key::ApiKeys;
///
/// let keys: ApiKeys = "partner-a=pa_7Qm2xY9wLkV3rT8s, \
///     partner-b=sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
///     .parse()?;
/// assert_eq!(keys.verify(b"hello").unwrap().id(), "partner-b");
/// # Ok::<(), axum_api_key::ConfigError>(())
/// ```
impl FromStr for ApiKeys {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text)
    }
}

fn parse(text: &str) -> Result<ApiKeys, ConfigError> {
    let mut keys = ApiKeys::new();
    for (index, entry) in text.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (name, value) = match entry.split_once('=') {
            Some((name, value)) => (name.trim(), value.trim()),
            None => (DEFAULT_ID, entry),
        };
        // `abc==` is a base64 key with its padding as much as the id `abc` with the key `=`:
        // never guessed. (Any other `id=key` whose key is under 16 bytes is refused below, which
        // catches the rest of the keys holding `=` pasted alone.)
        let ambiguous = value.bytes().all(|b| b == b'=');
        let added = match id_and_scopes(name) {
            _ if ambiguous => Err(ConfigError::new(ConfigErrorKind::AmbiguousEntry)),
            None => Err(ConfigError::new(ConfigErrorKind::InvalidScope)),
            Some((id, scopes)) => {
                let key = match value.strip_prefix("sha256:") {
                    Some(hex) => decode_digest(hex).map(|digest| Key::from_digest(id, digest)),
                    None => Some(Key::new(id, value)),
                };
                match key {
                    Some(key) => keys.try_with(key.scopes(scopes)),
                    None => Err(ConfigError::new(ConfigErrorKind::BadDigest)),
                }
            }
        };
        keys = added.map_err(|mut error| {
            error.place.entry = Some(index + 1);
            // A parsed id may be the front of a key that holds `=` (a key pasted alone), so it
            // is never shown: a repeated id is named by the entry that has it first, except the
            // id every lone key gets, which is no secret.
            error.place.id = None;
            if error.kind == ConfigErrorKind::DuplicateId {
                if name == DEFAULT_ID {
                    error.place.id = Some(DEFAULT_ID.to_owned());
                }
                if let Some(first) = first_entry_with_id(text, index, name) {
                    error.place.message = Some(format!("the id of entry {first}"));
                }
            }
            error
        })?;
    }
    if keys.is_empty() {
        return Err(ConfigError::new(ConfigErrorKind::NoKeys));
    }
    Ok(keys)
}

/// The 1-based position of the first entry before `before` whose id is `name`'s.
fn first_entry_with_id(text: &str, before: usize, name: &str) -> Option<usize> {
    let id = |name: &str| id_and_scopes(name).map(|(id, _)| id.to_owned());
    let wanted = id(name)?;
    text.split(',')
        .take(before)
        .position(|entry| {
            let entry = entry.trim();
            let name = entry
                .split_once('=')
                .map_or(DEFAULT_ID, |(name, _)| name.trim());
            !entry.is_empty() && id(name).as_deref() == Some(wanted.as_str())
        })
        .map(|at| at + 1)
}

/// Splits `id[scope scope]` into the id and its scopes; `None` when the brackets are not closed.
fn id_and_scopes(name: &str) -> Option<(&str, Vec<&str>)> {
    match name.split_once('[') {
        None => Some((name, Vec::new())),
        Some((id, rest)) => {
            let scopes = rest.strip_suffix(']')?;
            Some((id.trim(), scopes.split_whitespace().collect()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest;

    fn kind(text: &str) -> Option<ConfigErrorKind> {
        text.parse::<ApiKeys>().err().map(|e| e.kind())
    }

    #[test]
    fn reads_every_entry_form() {
        let hex: String = digest(b"from-digest")
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let keys: ApiKeys =
            format!(" a = key-a-0123456789 ,b=sha256:{hex},, lone-key-0123456789 ,")
                .parse()
                .unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.verify(b"key-a-0123456789").unwrap().id(), "a");
        assert_eq!(keys.verify(b"from-digest").unwrap().id(), "b");
        assert_eq!(
            keys.verify(b"lone-key-0123456789").unwrap().id(),
            DEFAULT_ID
        );
    }

    #[test]
    fn reads_scopes() {
        let keys: ApiKeys = "reader[orders:read]=rk-0123456789abcdef, \
             admin[ orders:read  orders:write ]=ak-0123456789abcdef, plain=pk-0123456789abcdef"
            .parse()
            .unwrap();
        let scopes = |key: &[u8]| {
            keys.verify(key)
                .unwrap()
                .scopes()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(scopes(b"rk-0123456789abcdef"), ["orders:read"]);
        assert_eq!(
            scopes(b"ak-0123456789abcdef"),
            ["orders:read", "orders:write"]
        );
        assert!(scopes(b"pk-0123456789abcdef").is_empty());
        assert_eq!(
            kind("a[orders:read=key-0123456789abcdef"),
            Some(ConfigErrorKind::InvalidScope)
        );
        assert_eq!(
            kind("a[x\"y]=key-0123456789abcdef"),
            Some(ConfigErrorKind::InvalidScope)
        );
        assert_eq!(
            kind("a]b=key-0123456789abcdef"),
            Some(ConfigErrorKind::InvalidId)
        );
    }

    #[test]
    fn a_key_may_hold_equals_signs() {
        let keys: ApiKeys = "a=q83vEjRWeJq83vEjRWeJqw==".parse().unwrap();
        assert!(keys.verify(b"q83vEjRWeJq83vEjRWeJqw==").is_ok());
        let keys: ApiKeys = "default=q83vEjRWeJq83vEjRWeJqw==".parse().unwrap();
        assert_eq!(
            keys.verify(b"q83vEjRWeJq83vEjRWeJqw==").unwrap().id(),
            DEFAULT_ID
        );
    }

    #[test]
    fn an_entry_read_two_ways_is_refused_never_split() {
        // A base64 key pasted alone: `id=key` would make its padding the key.
        for text in [
            "q83vEjRWeJq83vEjRWeJqw==",
            "q83vEjRWeJq83vEjRWeJqw=",
            "fine=key-0123456789abcdef,q83vEjRWeJq83vEjRWeJqw==",
        ] {
            let error = text.parse::<ApiKeys>().unwrap_err();
            assert_eq!(error.kind(), ConfigErrorKind::AmbiguousEntry, "{text}");
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("q83v"), "{shown}");
            assert!(shown.contains("default=<key>"), "{shown}");
        }
        let error = "fine=key-0123456789abcdef,q83vEjRWeJq83vEjRWeJqw=="
            .parse::<ApiKeys>()
            .unwrap_err();
        assert_eq!(error.entry(), Some(2));
        // A key holding `=` whose tail is short: taken as `id=key`, its key is too short.
        let error = "tok=en_98765abcdef".parse::<ApiKeys>().unwrap_err();
        assert_eq!(error.kind(), ConfigErrorKind::KeyTooShort);
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains("tok") && !shown.contains("98765"),
            "{shown}"
        );
        assert!(shown.contains("default=<key>"), "{shown}");
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(kind("a=hunter2"), Some(ConfigErrorKind::KeyTooShort));
        assert_eq!(kind("hunter2"), Some(ConfigErrorKind::KeyTooShort));
        assert_eq!(
            kind("a=123456789012345"),
            Some(ConfigErrorKind::KeyTooShort)
        );
        assert!(kind("a=1234567890123456").is_none());
    }

    #[test]
    fn names_what_is_wrong() {
        let long = "key-0123456789abcdef";
        assert_eq!(kind(""), Some(ConfigErrorKind::NoKeys));
        assert_eq!(kind(" , "), Some(ConfigErrorKind::NoKeys));
        assert_eq!(kind(&format!("={long}")), Some(ConfigErrorKind::EmptyId));
        assert_eq!(
            kind(&format!("a b={long}")),
            Some(ConfigErrorKind::InvalidId)
        );
        assert_eq!(kind("a="), Some(ConfigErrorKind::AmbiguousEntry));
        assert_eq!(
            kind("a=k\u{7f}ey-0123456789abcdef"),
            Some(ConfigErrorKind::KeyNotPrintable)
        );
        assert_eq!(kind("a=sha256:xyz"), Some(ConfigErrorKind::BadDigest));
        assert_eq!(
            kind(&format!("a=sha256:{}", "g".repeat(64))),
            Some(ConfigErrorKind::BadDigest)
        );
        assert_eq!(
            kind(&format!("a=one-{long},a=two-{long}")),
            Some(ConfigErrorKind::DuplicateId)
        );
        assert_eq!(
            kind(&format!("one-{long},two-{long}")),
            Some(ConfigErrorKind::DuplicateId)
        );
        assert_eq!(
            kind(&format!("a={long},b={long}")),
            Some(ConfigErrorKind::DuplicateKey)
        );
        assert_eq!(
            kind(&format!("a={}", "k".repeat(257))),
            Some(ConfigErrorKind::KeyTooLong)
        );
    }

    #[test]
    fn errors_name_the_entry_and_never_the_key() {
        let error = "a=fine-0123456789abcdef,b=sec ret-0123456789abcdef"
            .parse::<ApiKeys>()
            .unwrap_err();
        assert_eq!(error.entry(), Some(2));
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains("sec ret") && !shown.contains("sec"),
            "{shown}"
        );

        // A lone key holding `=` is refused; its front must not be shown either.
        let error = "topsecret=".parse::<ApiKeys>().unwrap_err();
        assert!(!format!("{error} {error:?}").contains("topsecret"));

        let error = "a=one-0123456789abcdef,a=two-0123456789abcdef"
            .parse::<ApiKeys>()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "entry 2: another key already has this id: the id of entry 1"
        );

        // Keys holding `=` pasted alone parse as `id=key`, with the front of the key as the
        // id: a repeat must not show it.
        let error = "pa_7Qm2x=Y9w-0123456789abcdef,pa_7Qm2x=Zk4-0123456789abcdef"
            .parse::<ApiKeys>()
            .unwrap_err();
        assert_eq!(error.kind(), ConfigErrorKind::DuplicateId);
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("pa_7Qm2x"), "{shown}");

        let error = "one-0123456789abcdef, two-0123456789abcdef"
            .parse::<ApiKeys>()
            .unwrap_err();
        assert!(error.to_string().contains("`default`"), "{error}");
    }

    #[test]
    fn from_env_names_the_variable() {
        let error = ApiKeys::from_env("AXUM_API_KEY_TEST_SURELY_UNSET").unwrap_err();
        assert_eq!(error.kind(), ConfigErrorKind::NotSet);
        assert!(
            error
                .to_string()
                .starts_with("AXUM_API_KEY_TEST_SURELY_UNSET is not set")
        );
    }
}
