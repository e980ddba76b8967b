//! The records file on disk: read once it has settled, changed under an advisory lock, and
//! replaced whole (a temporary file, flushed and renamed over it, the directory flushed).

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::super::set::FileStamp;
use crate::error::{ConfigError, ConfigErrorKind};

/// How long a records file rewritten in place must have been left alone before it is read: the
/// tool rewriting it touches it with every write, so a file changed more recently may be half
/// written. A file replaced by a rename (another inode) is read at once.
const SETTLE: Duration = Duration::from_millis(50);

/// How many times a file still being written is waited for before the read is given up.
const SETTLE_TRIES: u32 = 10;

/// A file's identity, where the platform has one: device and inode, time and length.
pub(super) fn stamp(metadata: &std::fs::Metadata) -> Option<FileStamp> {
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
pub(super) fn settled_text(
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
pub(super) fn settle(
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
pub(super) fn lock_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    path.with_file_name(name)
}

/// Takes the advisory lock that serialises the processes changing the file at `path`.
pub(super) fn lock(path: &Path) -> std::io::Result<std::fs::File> {
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
pub(super) fn replace(path: &Path, contents: &[u8]) -> std::io::Result<Option<FileStamp>> {
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
