//! Changing a live store: add, revoke, rotate, each seen by every clone from the next request
//! on, and written through to the records file of a store read from one.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::set::KeySet;
use super::{ApiKeys, Key, KeyDigest, digest};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::key::KeyRecord;

impl ApiKeys {
    /// Adds a key to the live store; every clone sees it from the next request on.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, Key};
    ///
    /// let keys = ApiKeys::new();
    /// let served = keys.clone(); // as the router holds it
    /// keys.add(Key::new("late", "lt_Qw8Er2Ty6Ui1"))?;
    /// assert_eq!(served.verify(b"lt_Qw8Er2Ty6Ui1").unwrap().id(), "late");
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn add(&self, key: Key) -> Result<(), ConfigError> {
        self.change(|set, edits| {
            let digest = key.digest;
            set.insert(key, false)?;
            if let Ok(digest) = digest
                && let Some(entry) = set.find(&digest)
            {
                edits.push(FileEdit::Append {
                    digest,
                    record: entry.key.record().clone(),
                });
            }
            Ok(())
        })
    }

    /// Revokes every key with this id: from the moment it returns, no request is let in with
    /// them. Returns how many keys were revoked.
    ///
    /// Like [`add`](Self::add) and [`rotate`](Self::rotate), it blocks while it writes a store's
    /// records file; from async code, call it through `tokio::task::spawn_blocking`.
    pub fn revoke(&self, id: &str) -> Result<usize, ConfigError> {
        self.change(|set, edits| {
            let revoked = set.update(id, |record| record.revoked = true);
            if revoked == 0 {
                return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
            }
            edits.push(FileEdit::Revoke { id: id.into() });
            Ok(revoked)
        })
    }

    /// Issues a new key for `id`, in the store's [`KeyFormat`], and lets the old ones keep
    /// working until `grace` has passed. The new key has the old one's scopes and metadata and
    /// no expiry. Returns the new key, which is not kept anywhere: hand it to its owner now.
    ///
    /// The store needs a key format to generate the key in ([`with_format`](Self::with_format),
    /// or `format = "…"` in the records file); without one, `rotate` returns an error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum_api_key::{ApiKeys, Key, KeyFormat};
    ///
    /// let format = KeyFormat::new("myapp")?;
    /// let old = format.generate();
    /// let keys = ApiKeys::new().with_format(format).try_with(Key::new("partner-a", &old).scopes(["orders:read"]))?;
    ///
    /// let new = keys.rotate("partner-a", Duration::from_secs(24 * 3600))?;
    /// assert_eq!(keys.verify(new.as_bytes()).unwrap().scopes().collect::<Vec<_>>(), ["orders:read"]);
    /// assert!(keys.verify(old.as_bytes()).is_ok()); // until the grace period ends
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn rotate(&self, id: &str, grace: Duration) -> Result<String, ConfigError> {
        // A grace period past the last time a records file can hold (the end of year 9999,
        // or what a clock can hold) ends there: never a panic, and the deadline is written
        // like any other.
        let latest = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
        let deadline = SystemTime::now()
            .checked_add(grace)
            .map_or(latest, |deadline| deadline.min(latest));
        self.change(|set, edits| {
            let Some(format) = set.format.clone() else {
                return Err(ConfigError::new(ConfigErrorKind::NoFormat).with_id(id));
            };
            let Some(template) = set.live_record(id) else {
                return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
            };
            set.update(id, |record| {
                record.set_expires(Some(record.expires().map_or(deadline, |e| e.min(deadline))));
            });
            edits.push(FileEdit::Expire {
                id: id.into(),
                at: deadline,
            });
            let new = format.generate();
            // The new key keeps what the key may do, not when: its own validity starts now.
            let mut record = template;
            record.revoked = false;
            record.set_not_before(None);
            record.set_expires(None);
            let digest = digest(new.as_bytes());
            set.insert_record(digest, record.clone(), true)?;
            edits.push(FileEdit::Append { digest, record });
            Ok(new)
        })
    }

    /// Runs one change on a copy of the live set and swaps it in, or leaves the set as it was.
    ///
    /// For a store read from a records file, the change's edits are written to the file first,
    /// and the set swapped in is the file as written: a change that cannot be written is not
    /// made, and changes another process wrote to the file meanwhile are taken along.
    pub(crate) fn change<T>(
        &self,
        change: impl FnOnce(&mut KeySet, &mut Vec<FileEdit>) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        let _one_at_a_time = self
            .shared
            .changing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = KeySet::clone(&self.shared.snapshot.load());
        let mut edits = Vec::new();
        let out = change(&mut next, &mut edits)?;
        #[cfg(feature = "file")]
        if let Some(path) = next.file.clone()
            && !edits.is_empty()
        {
            next = super::file::write_through(&path, &edits, &next)?;
        }
        self.shared.snapshot.publish(Arc::new(next));
        Ok(out)
    }
}

/// One change of a live store, as the records file of a store read from one records it.
#[cfg_attr(not(feature = "file"), allow(dead_code))]
pub(crate) enum FileEdit {
    /// A new key.
    Append {
        digest: KeyDigest,
        record: KeyRecord,
    },
    /// Every key of this id revoked.
    Revoke { id: Box<str> },
    /// Every key of this id expiring at this time at the latest.
    Expire { id: Box<str>, at: SystemTime },
}
