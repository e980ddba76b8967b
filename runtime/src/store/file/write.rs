//! Changes written to the records file: under its lock, on the file as it is then, spliced into
//! its text where the index allows, edited as TOML otherwise, and replaced whole.

use std::path::Path;
use std::sync::Arc;

use super::super::KeySet;
use super::super::change::FileEdit;
use super::disk::{lock, replace, settle};
use super::edit::apply;
use super::index::FileIndex;
use super::{parse_indexed, safe_message};
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
    file_index: &mut Option<Arc<FileIndex>>,
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
    let (mut next, mut next_index) = if stamp.is_some() && stamp == current.file_id {
        (KeySet::clone(current), file_index.clone())
    } else {
        // Changed by someone else since it was last read here: the change works on the file.
        let (mut fresh, index) = parse_indexed(&text).map_err(|error| error.in_origin(&origin))?;
        if fresh.format.is_none() {
            fresh.format = current.format.clone();
        }
        fresh.file = current.file.clone();
        fresh.allow_empty = current.allow_empty;
        fresh.file_id = stamp;
        (fresh, index)
    };
    let mut edits = Vec::new();
    let out = change(&mut next, &mut edits)?;
    if !edits.is_empty() {
        let spliceable = edits.iter().all(FileEdit::spliceable);
        let written = match next_index.take() {
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
                next_index = Some(Arc::new(index));
                body.insert_str(0, bom);
                body
            }
            index => {
                let written = edited(&text, &edits).map_err(|error| error.in_origin(&origin))?;
                if index.is_some() {
                    // The places changed: read them again from the text written.
                    next_index = parse_indexed(&written)
                        .map_err(|error| error.in_origin(&origin))?
                        .1;
                }
                written
            }
        };
        next.file_id = replace(&target, written.as_bytes()).map_err(io_error)?;
    }
    *file_index = next_index;
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
