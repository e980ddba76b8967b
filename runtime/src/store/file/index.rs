//! Where the records of a records file stand in its text, so that a change is spliced into the
//! text rather than the whole file parsed again.

use std::time::SystemTime;

use toml::value::Datetime;

use super::super::KeyDigest;
use super::super::change::FileEdit;
use super::edit::{apply, datetime};
use super::{RecordsFile, system_time};
use crate::error::{ConfigError, ConfigErrorKind};

/// Where the records of a records file stand in its text (after any byte-order mark): enough
/// to splice a change into the text in time linear in its size, without parsing it again.
#[derive(Clone)]
pub(crate) struct FileIndex {
    pub(super) records: Vec<Spans>,
    pub(super) spliceable: bool,
}

/// One record's place in the text: its id line, and the values a change may set.
#[derive(Clone)]
pub(super) struct Spans {
    pub(super) digest: KeyDigest,
    pub(super) id: Box<str>,
    /// Just past the end of the id's line, where a new field of the record can go.
    pub(super) line_end: usize,
    pub(super) revoked: Option<std::ops::Range<usize>>,
    pub(super) superseded: Option<std::ops::Range<usize>>,
    pub(super) expires: Option<std::ops::Range<usize>>,
    pub(super) disabled: Option<std::ops::Range<usize>>,
    pub(super) credits: Option<std::ops::Range<usize>>,
    pub(super) credits_at: Option<std::ops::Range<usize>>,
    pub(super) last_used: Option<std::ops::Range<usize>>,
}

impl Spans {
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
    pub(super) fn splice(
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
                    let mut spans = super::spans(&table, written, *digest).ok_or_else(|| {
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
                // Made through a full parse (each may remove lines): never spliced.
                FileEdit::RateLimits { .. }
                | FileEdit::Scopes { .. }
                | FileEdit::Metadata { .. }
                | FileEdit::Forget { .. } => {
                    return Err(ConfigError::new(ConfigErrorKind::FileSyntax)
                        .with_message("a change that may remove lines is not spliced"));
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
