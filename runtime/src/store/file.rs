//! The records file: keys as digests with their scopes, validity and metadata, in TOML.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use toml::Spanned;
use toml::value::{Datetime, Offset};

mod disk;
mod edit;
mod index;
mod write;

use disk::settled_text;
pub(crate) use index::FileIndex;
use index::Spans;
pub(crate) use write::change_file;

use super::set::FileStamp;
use super::{ApiKeys, Key, KeyDigest, KeySet, decode_digest};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::format::KeyFormat;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsFile {
    format: Option<Spanned<String>>,
    #[serde(default)]
    keys: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    id: Spanned<String>,
    digest: Spanned<String>,
    scopes: Option<Spanned<Vec<String>>>,
    not_before: Option<Spanned<Datetime>>,
    expires: Option<Spanned<Datetime>>,
    revoked: Option<Spanned<bool>>,
    superseded: Option<Spanned<bool>>,
    disabled: Option<Spanned<bool>>,
    rate_limit: Option<Spanned<Limits>>,
    allowed_ips: Option<Spanned<Vec<String>>>,
    credits: Option<Spanned<u64>>,
    refill: Option<Spanned<String>>,
    credits_at: Option<Spanned<Datetime>>,
    last_used: Option<Spanned<Datetime>>,
    identity: Option<Spanned<String>>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// `rate_limit = "100/min"`, or several: `rate_limit = ["10/s", "100000/day"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Limits {
    One(String),
    Several(Vec<String>),
}

impl ApiKeys {
    /// Reads key records from a TOML file, which holds digests and never keys:
    ///
    /// ```toml
    /// format = "myapp"            # optional: every key must be of this KeyFormat
    ///
    /// [[keys]]
    /// id = "partner-a"
    /// digest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    /// scopes = ["orders:read"]                 # optional
    /// not_before = 2026-01-01T00:00:00Z        # optional
    /// expires = 2027-01-01T00:00:00Z           # optional
    /// revoked = false                          # optional
    /// superseded = false                       # optional: rotated out, cannot rotate again
    /// disabled = false                         # optional: suspended until enabled again
    /// rate_limit = "100/min"                   # optional: see RateLimit; or a plan of several
    ///                                          # windows: ["10/s", "100000/day"]
    /// allowed_ips = ["203.0.113.0/24"]         # optional: see IpNetwork
    /// credits = 10000                          # optional: uses left
    /// refill = "10000/month"                   # optional: see Refill
    /// credits_at = 2026-12-01T00:00:00Z        # written back with credits: when counted
    /// last_used = 2026-12-06T10:00:00Z         # written back: the key's last use
    /// identity = "acme"                        # optional: shares limits and credits
    /// metadata = { owner = "Partner A Ltd" }   # optional, free text
    /// ```
    ///
    /// The command-line tool (`axum-api-key generate`) prints a ready record for each key it
    /// makes. Errors name the file, the line and the field. [`reload`](Self::reload) reads the
    /// file again.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("axum-api-key-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # let path = dir.join("keys.toml");
    /// std::fs::write(&path, r#"
    /// [[keys]]
    /// id = "partner-a"
    /// digest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    /// "#).unwrap();
    /// let keys = axum_api_key::ApiKeys::from_file(&path)?;
    /// assert_eq!(keys.verify(b"hello").unwrap().id(), "partner-a");
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::open_file(path.as_ref(), false)
    }

    /// [`from_file`](Self::from_file) for a store that may hold no key, and so refuse every
    /// request: one whose keys are all added at run time. `from_file` refuses such a file, and
    /// so does [`reload`](Self::reload) of a store built with it, as the sign of a file
    /// truncated or emptied by mistake.
    pub fn from_file_allowing_empty(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::open_file(path.as_ref(), true)
    }

    fn open_file(path: &Path, allow_empty: bool) -> Result<Self, ConfigError> {
        let path: Arc<Path> = path.into();
        let (mut set, index) = read(&path, allow_empty, None)?;
        set.file = Some(path);
        set.allow_empty = allow_empty;
        let keys = Self::from_parts(set, super::Settings::default());
        keys.one_at_a_time().file_index = index;
        Ok(keys)
    }

    /// Reads the records file again and swaps the new set in whole, without a restart and
    /// without making a request wait: requests in flight finish on the old set, the next ones
    /// see the new. On any error the store is left as it was. Returns how many keys it holds.
    ///
    /// A file that holds no key is refused (unless the store was built with
    /// [`from_file_allowing_empty`](Self::from_file_allowing_empty)), and so is one that does
    /// not end with a line break or changes while it is read: both are the marks of a file read
    /// while a tool rewrites it in place. Write the file to a temporary file and rename it over
    /// the old one, so that a reload sees either version whole.
    ///
    /// It blocks while it reads (and, for a file being rewritten in place, while it waits for
    /// the file to settle, about a second at most); from async code, call it through
    /// `tokio::task::spawn_blocking`.
    ///
    /// Every change made with [`add`](Self::add), [`revoke`](Self::revoke) or
    /// [`rotate`](Self::rotate) is in the file already (they write it through). The store's HTTPS requirement is kept, and so is its key format unless
    /// the file names one.
    pub fn reload(&self) -> Result<usize, ConfigError> {
        // No lock: every writer replaces the file whole, and a file on a read-only volume
        // (a mounted secret) must still reload.
        self.change_set_with(|set, changing| {
            let Some(path) = set.file.clone() else {
                return Err(ConfigError::new(ConfigErrorKind::NoFile));
            };
            let (mut fresh, index) = read(&path, set.allow_empty, set.file_id)?;
            fresh.file = Some(path);
            fresh.allow_empty = set.allow_empty;
            if fresh.format.is_none() {
                fresh.format = set.format.clone();
            }
            *set = fresh;
            changing.file_index = index;
            Ok(set.len())
        })
    }
}

/// Reads and parses the records file. `previous` is the file the set was last read from: when
/// this is the same file, it was rewritten in place, and it is read only once it has settled.
fn read(
    path: &Path,
    allow_empty: bool,
    previous: Option<FileStamp>,
) -> Result<(KeySet, Option<Arc<FileIndex>>), ConfigError> {
    let origin = path.display().to_string();
    let (text, id) = settled_text(path, previous)?;
    let (mut set, index) = parse_indexed(&text).map_err(|error| error.in_origin(&origin))?;
    set.file_id = id;
    if set.len() == 0 && !allow_empty {
        return Err(ConfigError::new(ConfigErrorKind::FileEmpty).in_origin(origin));
    }
    Ok((set, index))
}

/// Parses a records file's text.
#[cfg(test)]
fn parse(text: &str) -> Result<KeySet, ConfigError> {
    parse_indexed(text).map(|(set, _)| set)
}

/// Parses a records file's text, with where its records stand in it when a change can be
/// spliced in.
fn parse_indexed(text: &str) -> Result<(KeySet, Option<Arc<FileIndex>>), ConfigError> {
    // A byte-order mark is not TOML; offsets after it still count lines the same.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Where each line starts, found once: a record's line is a binary search, so a file of
    // many records reads in time linear in its size.
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(at, _)| at + 1))
        .collect();
    let line = |offset: usize| Some(starts.partition_point(|&start| start <= offset));
    let file: RecordsFile = toml::from_str(text).map_err(|error| {
        let at = error.span().and_then(|span| line(span.start));
        ConfigError::new(ConfigErrorKind::FileSyntax)
            .at(at, None)
            .with_message(safe_message(error.message().trim()))
    })?;
    let mut set = KeySet::default();
    let mut index = FileIndex {
        records: Vec::with_capacity(file.keys.len()),
        // An inline `keys = [...]` array cannot take a spliced line: such a file is edited
        // through a full parse.
        spliceable: !text.lines().any(|line| {
            line.trim_start()
                .strip_prefix("keys")
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        }),
    };
    // Ids with a key that has no end: not revoked, no expiry. An id names several records only
    // during a rotation, when all but one of them have an end.
    let mut open_ended = std::collections::HashSet::new();
    if let Some(format) = &file.format {
        let parsed = KeyFormat::new(format.get_ref())
            .map_err(|error| error.at(line(format.span().start), Some("format")))?;
        set.format = Some(parsed);
    }
    for record in file.keys {
        let id_line = line(record.id.span().start);
        let field_error = |kind, field: &str, spanned_at: usize| {
            ConfigError::new(kind).at(line(spanned_at), Some(field))
        };
        let digest = record
            .digest
            .get_ref()
            .strip_prefix("sha256:")
            .and_then(decode_digest)
            .ok_or_else(|| {
                field_error(
                    ConfigErrorKind::BadDigest,
                    "digest",
                    record.digest.span().start,
                )
            })?;
        let scopes = record
            .scopes
            .as_ref()
            .map_or(&[][..], |scopes| scopes.get_ref().as_slice());
        let revoked = record.revoked.as_ref().is_some_and(|r| *r.get_ref());
        let mut key = Key::from_digest(record.id.get_ref().as_str(), digest)
            .scopes(scopes.iter().cloned())
            .revoked(revoked);
        key.record.superseded = record.superseded.as_ref().is_some_and(|s| *s.get_ref());
        key.record.disabled = record.disabled.as_ref().is_some_and(|d| *d.get_ref());
        if let Some(networks) = &record.allowed_ips {
            let parsed = networks
                .get_ref()
                .iter()
                .map(|text| text.parse::<crate::IpNetwork>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    field_error(
                        ConfigErrorKind::BadNetwork,
                        "allowed_ips",
                        networks.span().start,
                    )
                })?;
            if parsed.is_empty() {
                // An empty list would read as "from anywhere": a restriction written wrong
                // must not open the key up.
                return Err(field_error(
                    ConfigErrorKind::BadNetwork,
                    "allowed_ips",
                    networks.span().start,
                ));
            }
            key = key.allowed_ips(parsed);
        }
        if let Some(refill) = &record.refill {
            let parsed: crate::Refill = refill.get_ref().parse().map_err(|_| {
                field_error(ConfigErrorKind::BadRefill, "refill", refill.span().start)
            })?;
            key = key.refill(parsed);
        }
        if let Some(credits) = &record.credits {
            key = key.credits(*credits.get_ref());
        }
        if let Some(identity) = &record.identity {
            let name = identity.get_ref();
            if name.is_empty() || name.len() > crate::MAX_ID_LEN {
                return Err(field_error(
                    ConfigErrorKind::InvalidId,
                    "identity",
                    identity.span().start,
                ));
            }
            key = key.identity(name.as_str());
        }
        if let Some(time) = &record.last_used {
            let at = system_time(time.get_ref()).ok_or_else(|| {
                field_error(ConfigErrorKind::BadTime, "last_used", time.span().start)
            })?;
            key.record.used_at(crate::last_used::seconds(at));
        }
        if let Some(time) = &record.credits_at {
            let at = system_time(time.get_ref()).ok_or_else(|| {
                field_error(ConfigErrorKind::BadTime, "credits_at", time.span().start)
            })?;
            if let Some(credits) = key.record.credits_mut() {
                credits.counted_at = Some(at);
            }
        }
        if index.spliceable {
            match spans(text, &record, digest) {
                Some(spans) => index.records.push(spans),
                None => index.spliceable = false,
            }
        }
        for (name, value) in record.metadata {
            key = key.metadata(name, value);
        }
        if let Some(limits) = &record.rate_limit {
            let bad = || {
                field_error(
                    ConfigErrorKind::BadRateLimit,
                    "rate_limit",
                    limits.span().start,
                )
            };
            let parsed = match limits.get_ref() {
                Limits::One(text) => vec![text.parse().map_err(|_| bad())?],
                Limits::Several(texts) => texts
                    .iter()
                    .map(|text| text.parse())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| bad())?,
            };
            key = key.rate_limits(parsed).map_err(|_| bad())?;
        }
        if let Some(time) = &record.not_before {
            let at = system_time(time.get_ref()).ok_or_else(|| {
                field_error(ConfigErrorKind::BadTime, "not_before", time.span().start)
            })?;
            key = key.not_before(at);
        }
        if let Some(time) = &record.expires {
            let at = system_time(time.get_ref()).ok_or_else(|| {
                field_error(ConfigErrorKind::BadTime, "expires", time.span().start)
            })?;
            key = key.expires_at(at);
        }
        let ends = revoked || record.expires.is_some();
        let shared_id = ends || open_ended.insert(record.id.get_ref().clone());
        set.insert(key, shared_id).map_err(|error| {
            // The line and field say where; the id read from the file may be a pasted key.
            let error = error.without_id();
            let (at, field) = match error.kind() {
                ConfigErrorKind::InvalidScope => (
                    record
                        .scopes
                        .as_ref()
                        .and_then(|scopes| line(scopes.span().start)),
                    "scopes",
                ),
                ConfigErrorKind::DuplicateKey => (line(record.digest.span().start), "digest"),
                _ => (id_line, "id"),
            };
            error.at(at, Some(field))
        })?;
    }
    Ok((set, index.spliceable.then(|| Arc::new(index))))
}

/// The spans of a record, if its id stands on a line of its own (`id = "…"`), where a field
/// line can follow it; `None` for any other layout.
fn spans(text: &str, record: &Record, digest: KeyDigest) -> Option<Spans> {
    let id = record.id.span();
    let line_start = text[..id.start].rfind('\n').map_or(0, |at| at + 1);
    let before = text[line_start..id.start].trim();
    if before.strip_prefix("id")?.trim() != "=" {
        return None;
    }
    let line_end = text[id.end..]
        .find('\n')
        .map_or(text.len(), |at| id.end + at + 1);
    Some(Spans {
        digest,
        id: record.id.get_ref().as_str().into(),
        line_end,
        revoked: record.revoked.as_ref().map(Spanned::span),
        superseded: record.superseded.as_ref().map(Spanned::span),
        expires: record.expires.as_ref().map(Spanned::span),
        disabled: record.disabled.as_ref().map(Spanned::span),
        credits: record.credits.as_ref().map(Spanned::span),
        credits_at: record.credits_at.as_ref().map(Spanned::span),
        last_used: record.last_used.as_ref().map(Spanned::span),
    })
}

/// The names the records file knows, which a parser's message may quote.
const FIELDS: &[&str] = &[
    "format",
    "keys",
    "id",
    "digest",
    "scopes",
    "not_before",
    "expires",
    "revoked",
    "superseded",
    "disabled",
    "rate_limit",
    "allowed_ips",
    "credits",
    "refill",
    "credits_at",
    "last_used",
    "identity",
    "metadata",
];

/// What the TOML parser said, without anything it quoted from the file: a secret pasted into
/// the wrong field would otherwise end up in the start-up log.
fn safe_message(message: &str) -> String {
    // "invalid type: string \"…\", expected a sequence": the value goes, the expectation stays.
    for prefix in ["invalid type", "invalid value", "invalid length"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return match rest.rsplit_once(", expected ") {
                Some((_, expected)) => format!("{prefix}, expected {expected}"),
                None => prefix.to_owned(),
            };
        }
    }
    // "unknown field `…`, expected one of `id`, …": the name goes, the valid names stay.
    if let Some(rest) = message.strip_prefix("unknown field") {
        return match rest.split_once(", expected ") {
            Some((_, expected)) => format!("unknown field, expected {expected}"),
            None => "unknown field".to_owned(),
        };
    }
    // Anything else is kept only if all it quotes, in backticks, is a field name or a
    // character or two of syntax, and it quotes nothing in double quotes.
    let mut parts = message.split('`');
    let outside: String = parts.clone().step_by(2).collect();
    let quotes_only_syntax = parts
        .by_ref()
        .skip(1)
        .step_by(2)
        .all(|quoted| FIELDS.contains(&quoted) || quoted.chars().count() <= 2);
    if quotes_only_syntax && !outside.contains('"') {
        message.to_owned()
    } else {
        "not valid TOML here".to_owned()
    }
}

/// An offset date-time as a `SystemTime`; `None` for local dates and times, which name no
/// instant.
fn system_time(datetime: &Datetime) -> Option<SystemTime> {
    let (Some(date), Some(time), Some(offset)) = (datetime.date, datetime.time, datetime.offset)
    else {
        return None;
    };
    let days = crate::time::days_from_civil(
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    let seconds = days * 86_400
        + i64::from(time.hour) * 3_600
        + i64::from(time.minute) * 60
        + i64::from(time.second.unwrap_or(0));
    let offset_minutes = match offset {
        Offset::Z => 0,
        Offset::Custom { minutes } => i64::from(minutes),
    };
    let utc = seconds - offset_minutes * 60;
    let nanos = Duration::from_nanos(u64::from(time.nanosecond.unwrap_or(0)));
    let since_epoch = Duration::from_secs(u64::try_from(utc).ok()?) + nanos;
    UNIX_EPOCH.checked_add(since_epoch)
}

#[cfg(test)]
mod tests;
