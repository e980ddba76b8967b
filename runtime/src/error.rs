//! [`ConfigError`]: what is wrong with a key configuration, and where, never the key itself.
//!
//! Shared by everything that reads keys (the `API_KEYS` format, the records file) and by the
//! store's live changes, so that none of them depends on another for its errors.

use std::fmt;

/// The id of a key given alone, without `id=`.
pub const DEFAULT_ID: &str = "default";

/// What is wrong with a key configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The environment variable is not set.
    NotSet,
    /// The environment variable is not valid Unicode.
    NotUnicode,
    /// The configuration holds no key at all.
    NoKeys,
    /// An entry has an empty id (`=key`).
    EmptyId,
    /// An id is longer than [`MAX_ID_LEN`](crate::MAX_ID_LEN) bytes, or holds a space, a
    /// control character, `,`, `=`, `[` or `]`.
    InvalidId,
    /// A scope is empty or holds a character a scope cannot have, or the brackets around the
    /// scopes are not closed.
    InvalidScope,
    /// An entry has an empty key (`id=`).
    EmptyKey,
    /// A key is longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN), so no request could present it.
    KeyTooLong,
    /// A key is shorter than [`MIN_KEY_LEN`](crate::MIN_KEY_LEN) bytes: short enough to guess.
    /// [`Key::allow_short`](crate::Key::allow_short) accepts one, for tests.
    KeyTooShort,
    /// An `API_KEYS` entry could be read two ways: one key holding `=` (base64 padding, say), or
    /// `id=key`. It is refused rather than guessed; write `default=<key>` for one key.
    AmbiguousEntry,
    /// A key holds characters other than visible ASCII, so no request could present it.
    KeyNotPrintable,
    /// The text after `sha256:` is not 64 hexadecimal digits.
    BadDigest,
    /// Two keys have the same id.
    DuplicateId,
    /// The same key is given twice, under two ids.
    DuplicateKey,
    /// No key has this id.
    UnknownId,
    /// No key in the store has this digest: the presented key is gone (or never was).
    UnknownKey,
    /// The key was rotated already: it has a successor and cannot rotate again.
    Superseded,
    /// The key is revoked, expired, not valid yet or disabled, so it can change nothing.
    KeyNotLive,
    /// Its id has [`MAX_KEYS_IN_GRACE`](crate::MAX_KEYS_IN_GRACE) keys rotated out and still
    /// in their grace period: the key cannot rotate again until one of them ends.
    TooManyInGrace,
    /// Rotation generates a key, and the store has no [`KeyFormat`](crate::KeyFormat) to
    /// generate it in.
    NoFormat,
    /// A key given in plaintext is not of the store's [`KeyFormat`](crate::KeyFormat).
    NotOfFormat,
    /// A key format's prefix is not 1 to 16 ASCII letters and digits.
    InvalidPrefix,
    /// The records file could not be read.
    FileUnreadable,
    /// A change could not be written to the records file; the store was left as it was.
    FileUnwritable,
    /// The records file is not valid TOML of the documented shape.
    FileSyntax,
    /// A time in the records file is not an offset date-time such as `2027-01-01T00:00:00Z`.
    BadTime,
    /// The Redis URL of `RedisLimits` is not one, such as `redis://127.0.0.1:6379`.
    BadRedisUrl,
    /// A rate limit is not of the form `100/min`, `10/5s` or `10/s burst 20`.
    BadRateLimit,
    /// A refill is not of the form `10000/month` (see [`Refill`](crate::Refill)).
    BadRefill,
    /// An `allowed_ips` entry is not an address or a block such as `203.0.113.0/24` (see
    /// [`IpNetwork`](crate::IpNetwork)).
    BadNetwork,
    /// The store was not read from a file, so there is nothing to reload.
    NoFile,
    /// The records file holds no key, so every request would be refused; see
    /// `ApiKeys::from_file_allowing_empty`.
    FileEmpty,
    /// The records file does not end with a line break, or changed while it was read: it may
    /// have been read while being written.
    FileIncomplete,
}

/// Why a key configuration was refused: what is wrong and in which entry, never the key itself.
///
/// ```
/// let error = "partner-a=pa_secret_0123456789,partner-b=sha256:1234".parse::<axum_api_key::ApiKeys>().unwrap_err();
/// assert_eq!(error.kind(), axum_api_key::ConfigErrorKind::BadDigest);
/// assert_eq!(
///     error.to_string(),
///     "entry 2: the digest after `sha256:` must be 64 hexadecimal digits",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub(crate) kind: ConfigErrorKind,
    /// Where the error is, boxed: errors are rare and results stay small.
    pub(crate) place: Box<Place>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) origin: Option<String>,
    pub(crate) entry: Option<usize>,
    pub(crate) line: Option<usize>,
    pub(crate) field: Option<String>,
    pub(crate) id: Option<String>,
    /// What the parser said, for syntax errors.
    pub(crate) message: Option<String>,
}

impl ConfigError {
    pub(crate) fn new(kind: ConfigErrorKind) -> Self {
        Self {
            kind,
            place: Box::default(),
        }
    }

    /// Names where the configuration came from: a variable or a file.
    pub(crate) fn in_origin(mut self, origin: impl Into<String>) -> Self {
        self.place.origin = Some(origin.into());
        self
    }

    /// Places the error at a line and field of a file.
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) fn at(mut self, line: Option<usize>, field: Option<&str>) -> Self {
        self.place.line = line;
        self.place.field = field.map(str::to_owned);
        self
    }

    /// Adds what a parser said.
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Self {
        self.place.message = Some(message.into());
        self
    }

    /// Names the key the error is about, for ids given explicitly (never a parsed entry's, which
    /// could be part of a mistyped key).
    pub(crate) fn with_id(mut self, id: &str) -> Self {
        // An id no store accepts (10,000 bytes, control characters) is never echoed.
        if id.len() <= crate::MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic()) {
            self.place.id = Some(id.to_owned());
        }
        self
    }

    /// Forgets the id, for errors about configuration text: an id read from it may be a key
    /// pasted into the wrong place, and the entry or line already says where the error is.
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) fn without_id(mut self) -> Self {
        self.place.id = None;
        self
    }

    /// What is wrong.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The 1-based position of the entry at fault, counting every comma-separated entry.
    pub fn entry(&self) -> Option<usize> {
        self.place.entry
    }

    /// The 1-based line of the records file at fault.
    pub fn line(&self) -> Option<usize> {
        self.place.line
    }

    /// The field of the records file at fault.
    pub fn field(&self) -> Option<&str> {
        self.place.field.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigErrorKind as K;
        let mut place = Vec::new();
        if let Some(origin) = &self.place.origin {
            place.push(origin.clone());
        }
        if let Some(entry) = self.place.entry {
            place.push(format!("entry {entry}"));
        }
        if let Some(line) = self.place.line {
            place.push(format!("line {line}"));
        }
        if let Some(field) = &self.place.field {
            place.push(format!("field `{field}`"));
        }
        if let Some(id) = &self.place.id {
            place.push(format!("key `{id}`"));
        }
        let what = match self.kind {
            K::NotSet => "is not set; set it to `id=key` entries separated by commas",
            K::NotUnicode => "is not valid Unicode",
            K::NoKeys => "holds no key; give `id=key` entries separated by commas",
            K::EmptyId => "the id before `=` is empty",
            K::InvalidId => {
                "the id must be 1 to 128 bytes of visible ASCII without `,`, `=`, `[` or `]`"
            }
            K::InvalidScope => {
                "scopes go in brackets after the id, separated by spaces, each visible ASCII \
                 without `\"`, `\\`, `,`, `[` or `]`: `id[orders:read orders:write]=key`"
            }
            K::EmptyKey => "the key after `=` is empty",
            K::KeyTooLong => "the key is longer than 256 bytes, the longest a request may present",
            K::KeyTooShort if self.place.entry.is_some() => {
                "the key is shorter than 16 bytes, short enough to guess; use a generated key \
                 (`axum-api-key generate`), or, if the whole entry is one key holding `=`, write \
                 it `default=<key>`"
            }
            K::KeyTooShort => {
                "the key is shorter than 16 bytes, short enough to guess; use a generated key \
                 (`axum-api-key generate`)"
            }
            K::AmbiguousEntry => {
                "this entry could be one key ending in `=` or `id=key` with an empty key; if it \
                 is one key, write it `default=<key>` (or `<id>=<key>`)"
            }
            K::KeyNotPrintable => {
                "the key must be visible ASCII (no spaces or control characters), as requests send it"
            }
            K::BadDigest => "the digest after `sha256:` must be 64 hexadecimal digits",
            K::DuplicateId if self.place.id.as_deref() == Some(DEFAULT_ID) => {
                "another key already has this id; keys given alone all get the id `default`, so \
                 name each one: `id=key`"
            }
            K::DuplicateId => "another key already has this id",
            K::DuplicateKey => "the same key is already in the store under another id",
            K::UnknownId => "no key has this id",
            K::UnknownKey => "the store holds no such key",
            K::Superseded => {
                "the key was rotated already; only the id's current key can be rotated"
            }
            K::KeyNotLive => "the key is revoked, expired, not valid yet or disabled",
            K::TooManyInGrace => {
                "the id has as many keys rotated out and still in their grace period as it may \
                 (`MAX_KEYS_IN_GRACE`); rotate again once one of them has ended or is revoked"
            }
            K::NoFormat => {
                "rotation generates the new key, so the store needs a key format: \
                 `ApiKeys::with_format(KeyFormat::new(\"myapp\")?)`"
            }
            K::NotOfFormat => "the key is not of the store's key format (prefix and checksum)",
            K::InvalidPrefix => "a key prefix is 1 to 16 ASCII letters and digits, e.g. `myapp`",
            K::FileUnreadable => "cannot be read",
            K::FileUnwritable => "cannot be written; the change was not made",
            K::FileSyntax => "is not a valid records file",
            K::BadTime => "the time must be an offset date-time, e.g. 2027-01-01T00:00:00Z",
            K::BadRedisUrl => "the Redis URL must look like redis://127.0.0.1:6379/0",
            K::BadRateLimit => {
                "the rate limit must be written `<count>/<period>`, e.g. `100/min`, `10/s burst 20` \
                 or `100000/day`; a plan of several is a list, one limit per window, at most 4: \
                 `[\"10/s\", \"100000/day\"]`"
            }
            K::BadRefill => {
                "a refill is written `<amount>/<period>`, the period `hour`, `day` or `month`, \
                 e.g. `10000/month`"
            }
            K::BadNetwork => {
                "each allowed_ips entry must be an address or a block, e.g. `203.0.113.7`, \
                 `203.0.113.0/24` or `2001:db8::/32`, with no bits set past its prefix"
            }
            K::NoFile => {
                "the store was not read from a file: build it with `ApiKeys::from_file` to reload it"
            }
            K::FileEmpty => {
                "holds no key, so every request would be refused; the keys are left as they were \
                 (use `ApiKeys::from_file_allowing_empty` for a store that may be empty)"
            }
            K::FileIncomplete => {
                "does not end with a line break, or changed while it was read: it may be half \
                 written; the keys are left as they were (write the file to a temporary file and \
                 rename it into place, and end it with a line break)"
            }
        };
        let separator = match self.kind {
            K::NotSet
            | K::NotUnicode
            | K::NoKeys
            | K::FileUnreadable
            | K::FileUnwritable
            | K::FileSyntax
            | K::FileEmpty
            | K::FileIncomplete => " ",
            _ => ": ",
        };
        if place.is_empty() {
            f.write_str(what)?;
        } else {
            write!(f, "{}{separator}{what}", place.join(", "))?;
        }
        match &self.place.message {
            Some(message) => write!(f, ": {message}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for ConfigError {}
