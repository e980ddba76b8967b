//! The records file: keys as digests with their scopes, validity and metadata, in TOML.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use toml::Spanned;
use toml::value::{Datetime, Offset};

use crate::config::{ConfigError, ConfigErrorKind, decode_digest};
use crate::format::KeyFormat;
use crate::store::{ApiKeys, Key, KeySet};

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
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
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
        let path: Arc<Path> = path.as_ref().into();
        let mut set = read(&path)?;
        set.file = Some(path);
        Ok(Self::from_parts(set, None))
    }

    /// Reads the records file again and swaps the new set in whole, without a restart and
    /// without making a request wait: requests in flight finish on the old set, the next ones
    /// see the new. On any error the store is left as it was. Returns how many keys it holds.
    ///
    /// Keys added with [`add`](Self::add) or [`rotate`](Self::rotate) and not written to the
    /// file are dropped. The store's HTTPS requirement is kept, and so is its key format unless
    /// the file names one.
    pub fn reload(&self) -> Result<usize, ConfigError> {
        self.change(|set| {
            let Some(path) = set.file.clone() else {
                return Err(ConfigError::new(ConfigErrorKind::NoFile));
            };
            let mut fresh = read(&path)?;
            fresh.file = Some(path);
            if fresh.format.is_none() {
                fresh.format = set.format.clone();
            }
            *set = fresh;
            Ok(set.len())
        })
    }
}

fn read(path: &Path) -> Result<KeySet, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigError::new(ConfigErrorKind::FileUnreadable)
            .in_origin(&origin)
            .with_message(error.to_string())
    })?;
    parse(&text).map_err(|error| error.in_origin(origin))
}

/// Parses a records file's text.
fn parse(text: &str) -> Result<KeySet, ConfigError> {
    let line = |offset: usize| Some(text[..offset.min(text.len())].matches('\n').count() + 1);
    let file: RecordsFile = toml::from_str(text).map_err(|error| {
        let at = error.span().and_then(|span| line(span.start));
        ConfigError::new(ConfigErrorKind::FileSyntax)
            .at(at, None)
            .with_message(error.message().trim())
    })?;
    let mut set = KeySet::default();
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
        let mut key = Key::from_digest(record.id.get_ref().as_str(), digest)
            .scopes(scopes.iter().cloned())
            .revoked(record.revoked);
        for (name, value) in record.metadata {
            key = key.metadata(name, value);
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
        set.insert(key, false).map_err(|error| {
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
    Ok(set)
}

/// An offset date-time as a `SystemTime`; `None` for local dates and times, which name no
/// instant.
fn system_time(datetime: &Datetime) -> Option<SystemTime> {
    let (Some(date), Some(time), Some(offset)) = (datetime.date, datetime.time, datetime.offset)
    else {
        return None;
    };
    let days = days_from_civil(
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

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyError;

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
             metadata = {{ owner = \"Team A\" }}\n"
        );
        let keys = ApiKeys::from_parts(parse(&text).unwrap(), None);
        let key = keys.verify(b"hello").unwrap();
        assert_eq!(key.scopes().collect::<Vec<_>>(), ["x", "y"]);
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
        let keys = ApiKeys::from_parts(parse(&text).unwrap(), None);
        assert_eq!(keys.verify(b"hello").unwrap_err(), KeyError::Expired);
        let text = format!("[[keys]]\nid = \"a\"\ndigest = \"{HELLO}\"\nrevoked = true\n");
        let keys = ApiKeys::from_parts(parse(&text).unwrap(), None);
        assert_eq!(keys.verify(b"hello").unwrap_err(), KeyError::Revoked);
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
        assert!(e.to_string().contains("digset"), "{e}");

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
