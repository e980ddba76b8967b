//! Changes written to the records file: under its lock, on the file as it is then, spliced into
//! its text where the index allows, edited as TOML otherwise, and replaced whole.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::super::change::FileEdit;
use super::super::{KeyDigest, KeySet};
use super::disk::{lock, replace, settle};
use super::index::{FileIndex, credits_value, datetime};
use super::{decode_digest, parse, safe_message, system_time};
use crate::error::{ConfigError, ConfigErrorKind};

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

/// Applies one edit to the records file's document.
pub(super) fn apply(
    document: &mut toml_edit::DocumentMut,
    edit: &FileEdit,
) -> Result<(), ConfigError> {
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
