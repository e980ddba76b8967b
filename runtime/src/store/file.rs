//! The records file: keys as digests with their scopes, validity and metadata, in TOML.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use toml::Spanned;
use toml::value::{Datetime, Offset};

use super::live::FileEdit;
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
        let mut set = read(&path, allow_empty, None)?;
        set.file = Some(path);
        set.allow_empty = allow_empty;
        Ok(Self::from_parts(set, super::Settings::default()))
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
        self.change_set(|set| {
            let Some(path) = set.file.clone() else {
                return Err(ConfigError::new(ConfigErrorKind::NoFile));
            };
            let mut fresh = read(&path, set.allow_empty, set.file_id)?;
            fresh.file = Some(path);
            fresh.allow_empty = set.allow_empty;
            if fresh.format.is_none() {
                fresh.format = set.format.clone();
            }
            *set = fresh;
            Ok(set.len())
        })
    }
}

/// How long a records file rewritten in place must have been left alone before it is read: the
/// tool rewriting it touches it with every write, so a file changed more recently may be half
/// written. A file replaced by a rename (another inode) is read at once.
const SETTLE: Duration = Duration::from_millis(50);

/// How many times a file still being written is waited for before the read is given up.
const SETTLE_TRIES: u32 = 10;

/// A file's identity, where the platform has one: device and inode, time and length.
fn stamp(metadata: &std::fs::Metadata) -> Option<FileStamp> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(FileStamp {
            id: (metadata.dev(), metadata.ino()),
            modified: metadata.modified().ok(),
            len: metadata.len(),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        None
    }
}

/// The records file's text once it has settled, and the file's identity. `previous` is the file
/// last read or written: when this is the same file, it was rewritten in place, and is read
/// only once it has been left alone for a moment, whole, ending a line, and still the same a
/// moment after it was read.
fn settled_text(
    path: &Path,
    previous: Option<FileStamp>,
) -> Result<(String, Option<FileStamp>), ConfigError> {
    let origin = path.display().to_string();
    // A reader waits for a writer of this library (another process, the command-line tool)
    // to finish: it takes the change lock shared, where there is one to take. A file on a
    // read-only volume has none, and is read as it is.
    let _shared = std::fs::canonicalize(path)
        .ok()
        .and_then(|target| std::fs::File::open(lock_path(&target)).ok())
        .filter(|lock| lock.lock_shared().is_ok());
    settle(path, previous, &origin)
}

/// Reads the records file at `path` once it has settled; the caller holds the change lock, or
/// has found none.
fn settle(
    path: &Path,
    previous: Option<FileStamp>,
    origin: &str,
) -> Result<(String, Option<FileStamp>), ConfigError> {
    let unreadable = |error: std::io::Error| {
        ConfigError::new(ConfigErrorKind::FileUnreadable)
            .in_origin(origin)
            .with_message(error.to_string())
    };
    for _ in 0..SETTLE_TRIES {
        let before = std::fs::metadata(path).map_err(unreadable)?;
        let current = stamp(&before);
        let same_file = |stamp: Option<FileStamp>| matches!((stamp, previous), (Some(now), Some(then)) if now.id == then.id);
        // Untouched since it was last read or written here: whole, with nothing to wait for.
        let untouched = current.is_some() && current == previous;
        let in_place = same_file(current) && !untouched;
        let age = before
            .modified()
            .ok()
            .and_then(|modified| SystemTime::now().duration_since(modified).ok());
        let replaced = previous.is_some() && !same_file(current);
        if let Some(age) = age.filter(|age| !untouched && !replaced && *age < SETTLE) {
            std::thread::sleep(SETTLE - age);
            continue;
        }
        let read = std::fs::read_to_string(path).map_err(unreadable)?;
        let after = std::fs::metadata(path).map_err(unreadable)?;
        // A file being rewritten shows it: its size or time moves under the read.
        let still = current == stamp(&after)
            && after.len() == read.len() as u64
            && before.modified().ok() == after.modified().ok();
        // A file rewritten in place must also end a line: a tool that stalls mid-write leaves
        // it cut short. (A file read for the first time, or put in place by a rename, may end
        // without one.)
        let whole = !in_place || read.is_empty() || read.ends_with('\n');
        // A file rewritten in place is confirmed once more a moment later: a writer stalled
        // mid-save shows itself by moving on.
        let confirmed = || {
            std::thread::sleep(SETTLE);
            std::fs::metadata(path).is_ok_and(|now| stamp(&now) == current)
        };
        if still && whole && (!in_place || confirmed()) {
            return Ok((read, current));
        }
        std::thread::sleep(SETTLE);
    }
    Err(ConfigError::new(ConfigErrorKind::FileIncomplete).in_origin(origin))
}

/// The lock file of the records file at `path`: `<file>.lock` beside it.
fn lock_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    path.with_file_name(name)
}

/// Reads and parses the records file. `previous` is the file the set was last read from: when
/// this is the same file, it was rewritten in place, and it is read only once it has settled.
fn read(
    path: &Path,
    allow_empty: bool,
    previous: Option<FileStamp>,
) -> Result<KeySet, ConfigError> {
    let origin = path.display().to_string();
    let (text, id) = settled_text(path, previous)?;
    let mut set = parse(&text).map_err(|error| error.in_origin(&origin))?;
    set.file_id = id;
    if set.len() == 0 && !allow_empty {
        return Err(ConfigError::new(ConfigErrorKind::FileEmpty).in_origin(origin));
    }
    Ok(set)
}

/// Parses a records file's text.
fn parse(text: &str) -> Result<KeySet, ConfigError> {
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
            key.record.last_used = crate::last_used::seconds(at);
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
            match Spans::of(text, &record, digest) {
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
    if index.spliceable {
        set.file_index = Some(Arc::new(index));
    }
    Ok(set)
}

/// Where the records of a records file stand in its text (after any byte-order mark): enough
/// to splice a change into the text in time linear in its size, without parsing it again.
#[derive(Clone)]
pub(crate) struct FileIndex {
    records: Vec<Spans>,
    spliceable: bool,
}

/// One record's place in the text: its id line, and the values a change may set.
#[derive(Clone)]
struct Spans {
    digest: KeyDigest,
    id: Box<str>,
    /// Just past the end of the id's line, where a new field of the record can go.
    line_end: usize,
    revoked: Option<std::ops::Range<usize>>,
    superseded: Option<std::ops::Range<usize>>,
    expires: Option<std::ops::Range<usize>>,
    disabled: Option<std::ops::Range<usize>>,
    credits: Option<std::ops::Range<usize>>,
    credits_at: Option<std::ops::Range<usize>>,
    last_used: Option<std::ops::Range<usize>>,
}

impl Spans {
    /// The spans of a record, if its id stands on a line of its own (`id = "…"`), where a
    /// field line can follow it; `None` for any other layout.
    fn of(text: &str, record: &Record, digest: KeyDigest) -> Option<Self> {
        let id = record.id.span();
        let line_start = text[..id.start].rfind('\n').map_or(0, |at| at + 1);
        let before = text[line_start..id.start].trim();
        if before.strip_prefix("id")?.trim() != "=" {
            return None;
        }
        let line_end = text[id.end..]
            .find('\n')
            .map_or(text.len(), |at| id.end + at + 1);
        Some(Self {
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

    fn offsets(&mut self) -> impl Iterator<Item = &mut usize> {
        let ranges = [
            &mut self.revoked,
            &mut self.superseded,
            &mut self.expires,
            &mut self.disabled,
            &mut self.credits,
            &mut self.credits_at,
            &mut self.last_used,
        ];
        std::iter::once(&mut self.line_end).chain(
            ranges
                .into_iter()
                .flatten()
                .flat_map(|range| [&mut range.start, &mut range.end]),
        )
    }
}

impl FileIndex {
    /// Moves every offset at or past `at` by `delta` bytes.
    fn shift(&mut self, at: usize, delta: isize) {
        for record in &mut self.records {
            for offset in record.offsets() {
                if *offset >= at {
                    *offset = offset.saturating_add_signed(delta);
                }
            }
        }
    }

    /// Sets `field` of the `n`-th record to `value` (TOML text): replaces its value, or adds a
    /// line after the record's id line.
    fn set(&mut self, body: &mut String, n: usize, field: Field, value: &str, newline: &str) {
        let record = &self.records[n];
        let span = match field {
            Field::Revoked => record.revoked.clone(),
            Field::Superseded => record.superseded.clone(),
            Field::Expires => record.expires.clone(),
            Field::Disabled => record.disabled.clone(),
            Field::Credits => record.credits.clone(),
            Field::CreditsAt => record.credits_at.clone(),
            Field::LastUsed => record.last_used.clone(),
        };
        let (start, new_span) = match span {
            Some(span) => {
                body.replace_range(span.clone(), value);
                let delta = value.len() as isize - span.len() as isize;
                self.shift(span.end, delta);
                (span.start, span.start..span.start + value.len())
            }
            None => {
                let at = record.line_end;
                // The id line may end the file without a line break.
                let lead = if at > 0 && !body[..at].ends_with('\n') {
                    newline
                } else {
                    ""
                };
                let line = format!("{lead}{} = {value}{newline}", field.name());
                body.insert_str(at, &line);
                self.shift(at, line.len() as isize);
                let value_at = at + lead.len() + field.name().len() + 3;
                (value_at, value_at..value_at + value.len())
            }
        };
        let _ = start;
        let record = &mut self.records[n];
        match field {
            Field::Revoked => record.revoked = Some(new_span),
            Field::Superseded => record.superseded = Some(new_span),
            Field::Expires => record.expires = Some(new_span),
            Field::Disabled => record.disabled = Some(new_span),
            Field::Credits => record.credits = Some(new_span),
            Field::CreditsAt => record.credits_at = Some(new_span),
            Field::LastUsed => record.last_used = Some(new_span),
        }
    }

    /// Sets the record's expiry to `at` unless it already expires sooner.
    fn expire(
        &mut self,
        body: &mut String,
        n: usize,
        at: SystemTime,
        newline: &str,
    ) -> Result<(), ConfigError> {
        let sooner = self.records[n]
            .expires
            .clone()
            .and_then(|span| body[span].parse::<Datetime>().ok())
            .and_then(|written| system_time(&written))
            .is_some_and(|expires| expires <= at);
        if !sooner {
            let value = datetime(at)?.to_string();
            self.set(body, n, Field::Expires, &value, newline);
        }
        Ok(())
    }

    /// Applies `edits` to `body`, the text the index describes, keeping the index in step.
    fn splice(
        &mut self,
        body: &mut String,
        edits: &[FileEdit],
        newline: &str,
    ) -> Result<(), ConfigError> {
        for edit in edits {
            match edit {
                FileEdit::Append { digest, record } => {
                    if !body.is_empty() && !body.ends_with('\n') {
                        body.push_str(newline);
                    }
                    let mut document = toml_edit::DocumentMut::new();
                    apply(&mut document, edit)?;
                    let table = document.to_string().replace('\n', newline);
                    let base = body.len() + newline.len();
                    body.push_str(newline);
                    body.push_str(&table);
                    // The new record's place, from the few lines just written.
                    let file: RecordsFile = toml::from_str(&table).map_err(|_| {
                        ConfigError::new(ConfigErrorKind::FileSyntax)
                            .with_message("a new record could not be written")
                    })?;
                    let written = file.keys.first().ok_or_else(|| {
                        ConfigError::new(ConfigErrorKind::FileSyntax)
                            .with_message("a new record could not be written")
                    })?;
                    let mut spans = Spans::of(&table, written, *digest).ok_or_else(|| {
                        ConfigError::new(ConfigErrorKind::FileSyntax)
                            .with_message("a new record could not be written")
                    })?;
                    for offset in spans.offsets() {
                        *offset += base;
                    }
                    debug_assert_eq!(&*spans.id, &*record.id);
                    self.records.push(spans);
                }
                FileEdit::Revoke { id } => {
                    let of_id = self.of_id(id);
                    if of_id.is_empty() {
                        return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
                    }
                    for n in of_id {
                        self.set(body, n, Field::Revoked, "true", newline);
                    }
                }
                FileEdit::Supersede { id, at } => {
                    for n in self.of_id(id) {
                        self.set(body, n, Field::Superseded, "true", newline);
                        self.expire(body, n, *at, newline)?;
                    }
                }
                FileEdit::Disable { id, disabled } => {
                    let value = if *disabled { "true" } else { "false" };
                    for n in self.of_id(id) {
                        self.set(body, n, Field::Disabled, value, newline);
                    }
                }
                // Made through a full parse (it may remove a line): never spliced.
                FileEdit::RateLimits { .. }
                | FileEdit::Scopes { .. }
                | FileEdit::Metadata { .. } => {
                    return Err(ConfigError::new(ConfigErrorKind::FileSyntax)
                        .with_message("a change of rate limits is not spliced"));
                }
                FileEdit::LastUsed { id, at } => {
                    let at = datetime(*at)?.to_string();
                    for n in self.of_id(id) {
                        self.set(body, n, Field::LastUsed, &at, newline);
                    }
                }
                FileEdit::Credits {
                    id, remaining, at, ..
                } => {
                    let at = datetime(*at)?.to_string();
                    for n in self.of_id(id) {
                        self.set(body, n, Field::Credits, &remaining.to_string(), newline);
                        self.set(body, n, Field::CreditsAt, &at, newline);
                    }
                }
                FileEdit::RevokeKey { digest } | FileEdit::SupersedeKey { digest, .. } => {
                    let n = self
                        .records
                        .iter()
                        .position(|record| record.digest == *digest)
                        .ok_or_else(|| ConfigError::new(ConfigErrorKind::UnknownKey))?;
                    match edit {
                        FileEdit::SupersedeKey { at, .. } => {
                            self.set(body, n, Field::Superseded, "true", newline);
                            self.expire(body, n, *at, newline)?;
                        }
                        _ => self.set(body, n, Field::Revoked, "true", newline),
                    }
                }
            }
        }
        Ok(())
    }

    fn of_id(&self, id: &str) -> Vec<usize> {
        (0..self.records.len())
            .filter(|&n| &*self.records[n].id == id)
            .collect()
    }
}

/// A field a change sets.
#[derive(Clone, Copy)]
enum Field {
    Revoked,
    Superseded,
    Expires,
    Disabled,
    Credits,
    CreditsAt,
    LastUsed,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Superseded => "superseded",
            Self::Expires => "expires",
            Self::Disabled => "disabled",
            Self::Credits => "credits",
            Self::CreditsAt => "credits_at",
            Self::LastUsed => "last_used",
        }
    }
}

/// Runs `change` on the records file at `path` as it is now, writes its edits to the file, and
/// returns the set the written file holds (with `current`'s format unless the file names one,
/// its emptiness rule and path) and what the change returned.
///
/// Another process changing the same file waits on an advisory lock of `<file>.lock`, so no
/// change is lost, and every change's checks (is the key still live, has it a successor) see
/// the file as it is under the lock. A symlink is followed: the file changed, and the lock
/// and temporary file, are beside its target, so a mounted or linked file stays one file.
/// The file is edited in place (comments, layout, line endings and a byte-order mark kept),
/// written to a temporary file beside it, flushed to disk, renamed over the old one, and the
/// directory flushed: a crash at any point leaves the old file or the new one, whole. Any
/// error leaves the file as it was.
pub(crate) fn change_file<T>(
    path: &Path,
    current: &KeySet,
    change: impl FnOnce(&mut KeySet, &mut Vec<FileEdit>) -> Result<T, ConfigError>,
) -> Result<(KeySet, T), ConfigError> {
    let origin = path.display().to_string();
    let io_error = |error: std::io::Error| {
        ConfigError::new(ConfigErrorKind::FileUnwritable)
            .in_origin(&origin)
            .with_message(error.to_string())
    };
    let target = std::fs::canonicalize(path).map_err(io_error)?;
    let _lock = lock(&target).map_err(io_error)?;
    // A person or a tool rewriting the file in place takes no lock, so the file is read as a
    // reload reads it: settled and whole, or not at all, so that a half-written file is never
    // written back.
    let (text, stamp) = settle(&target, current.file_id, &origin)?;
    let mut next = if stamp.is_some() && stamp == current.file_id {
        KeySet::clone(current)
    } else {
        // Changed by someone else since it was last read here: the change works on the file.
        let mut fresh = parse(&text).map_err(|error| error.in_origin(&origin))?;
        if fresh.format.is_none() {
            fresh.format = current.format.clone();
        }
        fresh.file = current.file.clone();
        fresh.allow_empty = current.allow_empty;
        fresh.file_id = stamp;
        fresh
    };
    let mut edits = Vec::new();
    let out = change(&mut next, &mut edits)?;
    if !edits.is_empty() {
        let spliceable = edits.iter().all(FileEdit::spliceable);
        let written = match next.file_index.clone() {
            // Spliced into the text at the places the index knows: no parse.
            Some(index) if spliceable => {
                let mut index = FileIndex::clone(&index);
                let (bom, body) = match text.strip_prefix('\u{feff}') {
                    Some(body) => ("\u{feff}", body),
                    None => ("", text.as_str()),
                };
                let newline = if body.contains("\r\n") { "\r\n" } else { "\n" };
                let mut body = body.to_owned();
                index
                    .splice(&mut body, &edits, newline)
                    .map_err(|error| error.in_origin(&origin))?;
                next.file_index = Some(Arc::new(index));
                body.insert_str(0, bom);
                body
            }
            index => {
                let written = edited(&text, &edits).map_err(|error| error.in_origin(&origin))?;
                if index.is_some() {
                    // The places changed: read them again from the text written.
                    next.file_index = parse(&written)
                        .map_err(|error| error.in_origin(&origin))?
                        .file_index;
                }
                written
            }
        };
        next.file_id = replace(&target, written.as_bytes()).map_err(io_error)?;
    }
    Ok((next, out))
}

/// The records file's text with `edits` applied, in the file's own line endings and with its
/// byte-order mark, if it has one.
fn edited(text: &str, edits: &[FileEdit]) -> Result<String, ConfigError> {
    let (bom, body) = match text.strip_prefix('\u{feff}') {
        Some(body) => ("\u{feff}", body),
        None => ("", text),
    };
    let crlf = body.contains("\r\n");
    let body = if crlf {
        std::borrow::Cow::Owned(body.replace("\r\n", "\n"))
    } else {
        std::borrow::Cow::Borrowed(body)
    };
    let mut document = body.parse::<toml_edit::DocumentMut>().map_err(|error| {
        let line = error
            .span()
            .map(|span| body[..span.start.min(body.len())].matches('\n').count() + 1);
        ConfigError::new(ConfigErrorKind::FileSyntax)
            .at(line, None)
            .with_message(safe_message(error.message()))
    })?;
    for edit in edits {
        apply(&mut document, edit)?;
    }
    let mut written = document.to_string();
    if crlf {
        written = written.replace('\n', "\r\n");
    }
    written.insert_str(0, bom);
    Ok(written)
}

/// Takes the advisory lock that serialises the processes changing the file at `path`.
fn lock(path: &Path) -> std::io::Result<std::fs::File> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(path))?;
    lock.lock()?;
    Ok(lock)
}

/// Replaces the file at `path` with `contents`, atomically and durably; returns the new file's
/// identity.
fn replace(path: &Path, contents: &[u8]) -> std::io::Result<Option<FileStamp>> {
    use std::io::Write;
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(name);
    let written = (|| -> std::io::Result<Option<FileStamp>> {
        let mut file = std::fs::File::create(&temporary)?;
        // Keep the old file's permissions: a records file may be readable by its owner only.
        if let Ok(metadata) = std::fs::metadata(path) {
            file.set_permissions(metadata.permissions())?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        // Stamped from the file written, not the path: once renamed, the path may already be
        // someone else's write, which must not pass for ours. (A rename keeps the time.)
        let written = stamp(&file.metadata()?);
        std::fs::rename(&temporary, path)?;
        Ok(written)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    let id = written?;
    // The rename itself is durable once the directory is.
    #[cfg(unix)]
    if let Some(directory) = path.parent() {
        let directory = if directory.as_os_str().is_empty() {
            Path::new(".")
        } else {
            directory
        };
        std::fs::File::open(directory)?.sync_all()?;
    }
    Ok(id)
}

/// Applies one edit to the records file's document.
fn apply(document: &mut toml_edit::DocumentMut, edit: &FileEdit) -> Result<(), ConfigError> {
    use toml_edit::{Item, Value, value};
    let keys = document
        .entry("keys")
        .or_insert_with(|| Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    let Some(keys) = keys.as_array_of_tables_mut() else {
        return Err(ConfigError::new(ConfigErrorKind::FileSyntax)
            .at(None, Some("keys"))
            .with_message("`keys` must be an array of tables, `[[keys]]`"));
    };
    let of_id =
        |table: &toml_edit::Table, id: &str| table.get("id").and_then(Item::as_str) == Some(id);
    let of_digest = |table: &toml_edit::Table, digest: &KeyDigest| {
        table
            .get("digest")
            .and_then(Item::as_str)
            .and_then(|text| text.strip_prefix("sha256:"))
            .and_then(decode_digest)
            .is_some_and(|found| found == *digest)
    };
    // Sets `expires` to `at` unless the table already expires sooner.
    let expire = |table: &mut toml_edit::Table, at: SystemTime| -> Result<(), ConfigError> {
        let sooner = table
            .get("expires")
            .and_then(Item::as_datetime)
            .and_then(system_time)
            .is_some_and(|expires| expires <= at);
        if !sooner {
            table.insert("expires", value(datetime(at)?));
        }
        Ok(())
    };
    match edit {
        FileEdit::Append { digest, record } => {
            let mut table = toml_edit::Table::new();
            table.insert("id", value(&*record.id));
            let hex = crate::hex::encode(digest);
            table.insert("digest", value(format!("sha256:{hex}")));
            if !record.scopes.is_empty() {
                let scopes: toml_edit::Array = record.scopes.iter().map(|s| &**s).collect();
                table.insert("scopes", value(scopes));
            }
            if let Some(at) = record.not_before() {
                table.insert("not_before", value(datetime(at)?));
            }
            if let Some(at) = record.expires() {
                table.insert("expires", value(datetime(at)?));
            }
            if record.revoked {
                table.insert("revoked", value(true));
            }
            if record.superseded {
                table.insert("superseded", value(true));
            }
            if record.disabled {
                table.insert("disabled", value(true));
            }
            match record.key_limits() {
                [] => {}
                [one] => {
                    table.insert("rate_limit", value(one.limit.to_string()));
                }
                several => {
                    let limits: toml_edit::Array =
                        several.iter().map(|one| one.limit.to_string()).collect();
                    table.insert("rate_limit", value(limits));
                }
            }
            if let Some(credits) = record.credits() {
                table.insert("credits", value(credits_value(credits.remaining)));
                if let Some(refill) = credits.refill {
                    table.insert("refill", value(refill.to_string()));
                }
                if let Some(at) = credits.counted_at {
                    table.insert("credits_at", value(datetime(at)?));
                }
            }
            if let Some(identity) = &record.identity {
                table.insert("identity", value(&**identity));
            }
            if record.last_used > 0 {
                let at = std::time::UNIX_EPOCH + Duration::from_secs(record.last_used);
                table.insert("last_used", value(datetime(at)?));
            }
            if let Some(networks) = record.allowed_ips() {
                let networks: toml_edit::Array = networks.iter().map(ToString::to_string).collect();
                table.insert("allowed_ips", value(networks));
            }
            let mut metadata = toml_edit::InlineTable::new();
            for (name, text) in record.metadata() {
                metadata.insert(name, Value::from(text));
            }
            if !metadata.is_empty() {
                table.insert("metadata", value(metadata));
            }
            keys.push(table);
        }
        FileEdit::Revoke { id } => {
            let mut found = false;
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                table.insert("revoked", value(true));
                found = true;
            }
            if !found {
                return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
            }
        }
        FileEdit::Supersede { id, at } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                table.insert("superseded", value(true));
                expire(table, *at)?;
            }
        }
        FileEdit::Disable { id, disabled } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                table.insert("disabled", value(*disabled));
            }
        }
        FileEdit::LastUsed { id, at } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                table.insert("last_used", value(datetime(*at)?));
            }
        }
        FileEdit::Metadata { id, metadata } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                if metadata.is_empty() {
                    table.remove("metadata");
                } else {
                    let mut inline = toml_edit::InlineTable::new();
                    for (name, text) in metadata {
                        inline.insert(name, text.as_str().into());
                    }
                    table.insert("metadata", value(inline));
                }
            }
        }
        FileEdit::Scopes { id, scopes } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                if scopes.is_empty() {
                    table.remove("scopes");
                } else {
                    let list: toml_edit::Array = scopes.iter().map(|scope| &**scope).collect();
                    table.insert("scopes", value(list));
                }
            }
        }
        FileEdit::RateLimits { id, limits } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                match limits.as_slice() {
                    [] => {
                        table.remove("rate_limit");
                    }
                    [one] => {
                        table.insert("rate_limit", value(one.to_string()));
                    }
                    several => {
                        let list: toml_edit::Array =
                            several.iter().map(ToString::to_string).collect();
                        table.insert("rate_limit", value(list));
                    }
                }
            }
        }
        FileEdit::Credits {
            id,
            remaining,
            refill,
            at,
        } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                table.insert("credits", value(credits_value(*remaining)));
                table.insert("credits_at", value(datetime(*at)?));
                match refill {
                    Some(Some(refill)) => {
                        table.insert("refill", value(refill.to_string()));
                    }
                    Some(None) => {
                        table.remove("refill");
                    }
                    None => {}
                }
            }
        }
        FileEdit::RevokeKey { digest } | FileEdit::SupersedeKey { digest, .. } => {
            let Some(table) = keys.iter_mut().find(|table| of_digest(table, digest)) else {
                return Err(ConfigError::new(ConfigErrorKind::UnknownKey));
            };
            match edit {
                FileEdit::SupersedeKey { at, .. } => {
                    table.insert("superseded", value(true));
                    expire(table, *at)?;
                }
                _ => {
                    table.insert("revoked", value(true));
                }
            }
        }
    }
    Ok(())
}

/// A count of credits as TOML writes integers (at most `MAX_CREDITS`, far below `i64::MAX`).
fn credits_value(credits: u64) -> i64 {
    i64::try_from(credits.min(crate::MAX_CREDITS)).unwrap_or(i64::MAX)
}

/// A time as a TOML offset date-time in UTC, to the nanosecond.
fn datetime(at: SystemTime) -> Result<Datetime, ConfigError> {
    let too_far = || ConfigError::new(ConfigErrorKind::BadTime);
    crate::time::rfc3339(at)
        .ok_or_else(too_far)?
        .parse()
        .map_err(|_| too_far())
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
mod tests {
    use super::*;
    use crate::KeyError;
    use crate::time::days_from_civil;

    const HELLO: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn error(text: &str) -> ConfigError {
        match parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(error) => error,
        }
    }

    #[test]
    fn reads_every_field() {
        let text = format!(
            "[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nscopes = [\"x\", \"y\"]\n\
             not_before = 2020-01-01T00:00:00Z\nexpires = 2999-01-01T00:00:00+02:00\n\
             rate_limit = \"10/s burst 20\"\nmetadata = {{ owner = \"Team A\" }}\n"
        );
        let keys = ApiKeys::from_parts(parse(&text).unwrap(), crate::store::Settings::default());
        let key = keys.verify(b"hello").unwrap();
        assert_eq!(key.scopes().collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(
            key.rate_limit().map(|l| l.to_string()).as_deref(),
            Some("10/s burst 20")
        );
        let e = error(&format!(
            "[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nrate_limit = \"lots\"\n"
        ));
        assert_eq!(
            (e.kind(), e.line()),
            (ConfigErrorKind::BadRateLimit, Some(4))
        );
        assert_eq!(key.metadata("owner"), Some("Team A"));
        let expires = key
            .expires_at()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(expires, 32_472_144_000 - 7_200);
    }

    #[test]
    fn enforces_what_it_reads() {
        let text =
            format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nexpires = 2001-01-01T00:00:00Z\n");
        let keys = ApiKeys::from_parts(parse(&text).unwrap(), crate::store::Settings::default());
        assert_eq!(keys.verify(b"hello").unwrap_err(), KeyError::Expired);
        let text = format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nrevoked = true\n");
        let keys = ApiKeys::from_parts(parse(&text).unwrap(), crate::store::Settings::default());
        assert_eq!(keys.verify(b"hello").unwrap_err(), KeyError::Revoked);
    }

    #[test]
    fn errors_never_quote_the_file() {
        let secret = "pa_7Qm2xY9wLkV3rT8s";
        let cases = [
            format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nscopes = \"{secret}\"\n"),
            format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n{secret} = 1\n"),
            format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nrevoked = \"{secret}\"\n"),
            format!("[[keys]]\nid = \"a\"\ndigest = {secret}\n"),
            format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n[{secret}\n"),
            format!("{secret} = 1\n"),
            format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nmetadata = \"{secret}\"\n"),
            format!("keys = \"{secret}\"\n"),
            format!(
                "[[keys]]\nid = \"{secret}\"\ndigest = \"{HELLO}\"\n[[keys]]\nid = \"{secret}\"\ndigest = \"sha256:{}\"\n",
                "0".repeat(64)
            ),
            format!("[[keys]]\nid = \"{secret}\"\ndigest = \"{HELLO}\"\nscopes = [\"a b\"]\n"),
            format!("[[keys]]\nid = \"a\"\ndigest = \"{secret}\"\n"),
        ];
        for text in cases {
            let error = error(&text);
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(secret), "{shown}");
            assert!(error.line().is_some(), "{shown}");
        }
        // What the parser says of the file's shape stays.
        let e = error("[[keys]]\nid = \"a\"\n");
        assert!(e.to_string().contains("missing field `digest`"), "{e}");
        let e = error(&format!(
            "[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nscopes = \"x\"\n"
        ));
        assert!(
            e.to_string().ends_with("invalid type, expected a sequence"),
            "{e}"
        );
    }

    #[test]
    fn times_written_read_back_exactly() {
        for seconds in [
            0u64,
            951_782_400,
            1_709_164_800,
            32_472_144_000,
            253_402_300_799,
        ] {
            for nanos in [0u32, 1, 999_999_999] {
                let at = UNIX_EPOCH + Duration::new(seconds, nanos);
                let written = datetime(at).unwrap();
                assert_eq!(system_time(&written), Some(at), "{written}");
            }
        }
        assert!(datetime(UNIX_EPOCH + Duration::from_secs(253_402_300_800)).is_err());
        for days in [-719_468, -1, 0, 11_017, 19_782, 2_932_896] {
            let (y, m, d) = crate::time::civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn edits_keep_comments_and_layout() {
        let text = format!(
            "# header\nformat = \"app\"\n\n[[keys]]\nid = \"a\"  # partner A\ndigest = \"{HELLO}\"\n"
        );
        let mut document = text.parse::<toml_edit::DocumentMut>().unwrap();
        apply(&mut document, &FileEdit::Revoke { id: "a".into() }).unwrap();
        let mut record = crate::key::KeyRecord::default();
        record.id = "b".into();
        record.scopes = vec!["x".into()].into_boxed_slice();
        apply(
            &mut document,
            &FileEdit::Append {
                digest: crate::digest(b"b"),
                record,
            },
        )
        .unwrap();
        let edited = document.to_string();
        assert!(
            edited.starts_with("# header\nformat = \"app\"\n\n[[keys]]\nid = \"a\"  # partner A\n"),
            "{edited}"
        );
        assert!(edited.contains("revoked = true"), "{edited}");
        assert!(edited.contains("id = \"b\""), "{edited}");
        let set = parse(&edited).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(
            apply(
                &mut document,
                &FileEdit::Revoke {
                    id: "nobody".into()
                }
            )
            .unwrap_err()
            .kind(),
            ConfigErrorKind::UnknownId
        );
    }

    /// A change spliced into the text reads back as the same change made through a full
    /// parse, whatever the layout: line endings, a byte-order mark, a last line without a
    /// break, fields already present, comments.
    #[test]
    fn spliced_changes_read_back_as_made() {
        let a = crate::hex::encode(&crate::digest(b"key-a"));
        let b = crate::hex::encode(&crate::digest(b"key-b"));
        let c = crate::hex::encode(&crate::digest(b"key-c"));
        for (bom, newline, last_break) in [
            ("", "\n", true),
            ("", "\r\n", true),
            ("\u{feff}", "\r\n", false),
            ("\u{feff}", "\n", false),
        ] {
            let mut text = format!(
                "{bom}# keys\nformat = \"app\"\n\n[[keys]]\nid = \"a\"  # partner A\n\
                 digest = \"sha256:{a}\"\nrevoked = false\n\n[[keys]]\nid = \"b\"\n\
                 digest = \"sha256:{b}\"\nexpires = 2030-01-01T00:00:00Z\n\
                 metadata = {{ owner = \"B\" }}\n\n[[keys]]\ndigest = \"sha256:{c}\"\nid = \"c\""
            )
            .replace('\n', newline);
            if last_break {
                text.push_str(newline);
            }
            let set = parse(&text).unwrap();
            let mut index = FileIndex::clone(set.file_index.as_ref().expect("an index"));
            let body_start = bom.len();
            let mut body = text[body_start..].to_owned();
            let soon = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            let mut record = crate::key::KeyRecord::default();
            record.id = "d".into();
            record.scopes = vec!["x".into()].into_boxed_slice();
            index
                .splice(
                    &mut body,
                    &[
                        FileEdit::Revoke { id: "a".into() },
                        FileEdit::Supersede {
                            id: "b".into(),
                            at: soon,
                        },
                        FileEdit::SupersedeKey {
                            digest: crate::digest(b"key-c"),
                            at: soon,
                        },
                        FileEdit::Append {
                            digest: crate::digest(b"key-d"),
                            record,
                        },
                        FileEdit::RevokeKey {
                            digest: crate::digest(b"key-d"),
                        },
                    ],
                    newline,
                )
                .unwrap();
            assert!(
                body.starts_with(&format!("# keys{newline}format")),
                "{body}"
            );
            assert!(body.contains("# partner A"), "{body}");
            if newline == "\r\n" {
                assert!(!body.replace("\r\n", "").contains('\n'), "{body:?}");
            }
            let keys =
                ApiKeys::from_parts(parse(&body).unwrap(), crate::store::Settings::default());
            let listed = keys.list();
            let state: Vec<(String, bool, bool, Option<SystemTime>)> = listed
                .iter()
                .map(|listed| {
                    let record = listed.key().record();
                    (
                        listed.key().id().to_owned(),
                        record.revoked,
                        record.superseded,
                        record.expires(),
                    )
                })
                .collect();
            assert_eq!(
                state,
                [
                    ("a".to_owned(), true, false, None),
                    ("b".to_owned(), false, true, Some(soon)),
                    ("c".to_owned(), false, true, Some(soon)),
                    ("d".to_owned(), true, false, None),
                ],
                "{body}"
            );
            assert_eq!(listed[1].key().metadata("owner"), Some("B"));
            // The index kept in step: a second round of changes lands where it should.
            index
                .splice(&mut body, &[FileEdit::Revoke { id: "c".into() }], newline)
                .unwrap();
            let keys =
                ApiKeys::from_parts(parse(&body).unwrap(), crate::store::Settings::default());
            assert!(keys.list()[2].key().record().revoked, "{body}");
        }
        // An inline array of keys is edited through a full parse instead.
        let inline = format!("keys = [{{ id = \"a\", digest = \"sha256:{a}\" }}]\n");
        assert!(parse(&inline).unwrap().file_index.is_none());
    }

    #[test]
    fn disabling_and_networks_are_read_written_and_kept() {
        let dir = std::env::temp_dir().join(format!(
            "axum-api-key-plans-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        // One file edited by splicing, one (its id written as a quoted key) through a full
        // parse.
        let layouts = [
            format!(
                "# partners\n[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n\
                 allowed_ips = [\"203.0.113.0/24\", \"2001:db8::/32\"] # office\n"
            ),
            format!(
                "[[keys]]\n\"id\" = \"a\"\ndigest = \"{HELLO}\"\n\
                 allowed_ips = [\"203.0.113.0/24\", \"2001:db8::/32\"]\n"
            ),
        ];
        for (n, text) in layouts.iter().enumerate() {
            let path = dir.join(format!("keys-{n}.toml"));
            std::fs::write(&path, text).unwrap();
            let keys = ApiKeys::from_file(&path).unwrap();
            let key = keys.verify(b"hello").unwrap();
            assert_eq!(
                key.allowed_ips()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                ["203.0.113.0/24", "2001:db8::/32"]
            );
            assert_eq!(keys.disable("a").unwrap(), 1);
            assert_eq!(keys.verify(b"hello").unwrap_err(), KeyError::Disabled);
            let written = std::fs::read_to_string(&path).unwrap();
            assert!(written.contains("disabled = true"), "{written}");
            assert!(written.contains("# office") || n == 1, "{written}");
            assert_eq!(parse(&written).unwrap().file_index.is_some(), n == 0);
            // Another process reading the file sees the suspension; enabling is written too.
            let other = ApiKeys::from_file(&path).unwrap();
            assert_eq!(other.verify(b"hello").unwrap_err(), KeyError::Disabled);
            keys.enable("a").unwrap();
            let written = std::fs::read_to_string(&path).unwrap();
            assert!(written.contains("disabled = false"), "{written}");
            other.reload().unwrap();
            let key = other.verify(b"hello").unwrap();
            assert_eq!(key.allowed_ips().len(), 2, "the networks are kept");
            // A key added with networks and disabled is written with both.
            keys.add(
                crate::Key::new("b", "key-b-0123456789abcdef")
                    .allowed_ips(["198.51.100.7".parse().unwrap()])
                    .disabled(true),
            )
            .unwrap();
            let reread = ApiKeys::from_file(&path).unwrap();
            assert_eq!(
                reread.verify(b"key-b-0123456789abcdef").unwrap_err(),
                KeyError::Disabled
            );
            reread.enable("b").unwrap();
            let b = reread.verify(b"key-b-0123456789abcdef").unwrap();
            assert_eq!(b.allowed_ips()[0].to_string(), "198.51.100.7");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_network_written_wrong_is_an_error_at_its_line_never_an_open_key() {
        for bad in [
            "[\"203.0.113.5/24\"]",
            "[\"office\"]",
            "[]",
            "[\"10.0.0.0/33\"]",
        ] {
            let text =
                format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n\nallowed_ips = {bad}\n");
            let e = error(&text);
            assert_eq!(
                (e.kind(), e.line(), e.field()),
                (ConfigErrorKind::BadNetwork, Some(5), Some("allowed_ips")),
                "{bad}"
            );
        }
        let e = error(&format!(
            "[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\ndisabled = \"yes\"\n"
        ));
        assert_eq!((e.kind(), e.line()), (ConfigErrorKind::FileSyntax, Some(4)));
    }

    #[test]
    fn converts_civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let text = "\n[[keys]]\nid = \"a\"\ndigest = \"sha256:12\"\n";
        let e = error(text);
        assert_eq!(
            (e.kind(), e.line(), e.field()),
            (ConfigErrorKind::BadDigest, Some(4), Some("digest"))
        );
        assert_eq!(
            e.to_string(),
            "line 4, field `digest`: the digest after `sha256:` must be 64 hexadecimal digits"
        );

        let text = format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nexpires = 2027-01-01\n");
        let e = error(&text);
        assert_eq!(
            (e.kind(), e.line(), e.field()),
            (ConfigErrorKind::BadTime, Some(4), Some("expires"))
        );

        let text = format!(
            "[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n\n[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\n"
        );
        let e = error(&text);
        assert_eq!(
            (e.kind(), e.line(), e.field()),
            (ConfigErrorKind::DuplicateId, Some(6), Some("id"))
        );

        let e = error("[[keys]]\nid = \"a\"\ndigset = \"x\"\n");
        assert_eq!((e.kind(), e.line()), (ConfigErrorKind::FileSyntax, Some(3)));
        assert!(
            e.to_string().contains("unknown field, expected one of"),
            "{e}"
        );
        assert!(!e.to_string().contains("digset"), "{e}");

        let e = error("[[keys]]\nid = \"a\"\n");
        assert_eq!(e.kind(), ConfigErrorKind::FileSyntax);
        assert!(e.to_string().contains("digest"), "{e}");

        let e = error(&format!(
            "[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nscopes = [\"a b\"]\n"
        ));
        assert_eq!(
            (e.kind(), e.line(), e.field()),
            (ConfigErrorKind::InvalidScope, Some(4), Some("scopes"))
        );
    }
}
