//! What requests spend, kept: a key's credits and last use counted in memory on the request
//! path, and written back to the records file at most once a second and once a minute.

use std::time::{Duration, SystemTime};

use super::ApiKeys;
use super::change::FileEdit;
use crate::error::{ConfigError, ConfigErrorKind};

impl ApiKeys {
    /// The credits `id` has left now: its record's count (or the refill's amount, when a
    /// refill came since it was written) less what this process spent since. `None` for an
    /// unknown id or a key without credits.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, Key};
    ///
    /// let keys = ApiKeys::new().with(Key::new("trial", "tr_7Qm2xY9wLkV3rT8s").credits(5));
    /// assert_eq!(keys.credits_left("trial"), Some(5));
    /// assert_eq!(keys.credits_left("nobody"), None);
    /// ```
    pub fn credits_left(&self, id: &str) -> Option<u64> {
        let record = self.shared.snapshot.read(|set| set.live_record(id))?;
        let credits = record.credits()?;
        let now = SystemTime::now();
        let spent = self
            .rate_limits()
            .credit_table()
            .spent(record.counted_as(), credits, now);
        Some(credits.base(now).saturating_sub(spent))
    }

    /// Sets the credits of every key of `id`, and of every key sharing its identity, to
    /// `credits` (a top-up, or a new plan), written to the records file of a store read from
    /// one; what was spent before no longer counts. Returns how many keys changed.
    pub fn set_credits(
        &self,
        id: &str,
        credits: u64,
        refill: Option<crate::Refill>,
    ) -> Result<usize, ConfigError> {
        let credits = credits.min(crate::MAX_CREDITS);
        let now = SystemTime::now();
        let table = self.rate_limits().credit_table();
        let mut counted_as: Box<str> = id.into();
        let changed = self.change(|set, edits| {
            if let Some(record) = set.live_record(id) {
                counted_as = record.counted_as().into();
            }
            // Every key counted under the same name: an identity's keys share one count.
            let mut ids = set.ids_counted_as(&counted_as);
            if !ids.iter().any(|named| **named == *id) {
                ids.push(id.into());
            }
            let mut changed = 0;
            for named in ids {
                let updated = set.update(&named, |record| {
                    record.set_credits(Some(crate::credits::KeyCredits {
                        remaining: credits,
                        refill,
                        counted_at: Some(now),
                        cell: Default::default(),
                    }));
                });
                if updated > 0 {
                    edits.push(FileEdit::Credits {
                        id: named,
                        remaining: credits,
                        refill: Some(refill),
                        at: now,
                    });
                }
                changed += updated;
            }
            if changed == 0 {
                return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
            }
            Ok(changed)
        })?;
        table.forget(&counted_as);
        Ok(changed)
    }

    /// Writes the credits this process spent to the keys' records, and to the records file of
    /// a store read from one: each key's count becomes what it has left, and what was spent is
    /// no longer held in memory. Returns how many key ids were written.
    ///
    /// The guard calls it on its own, in the background, at most
    /// [`CREDITS_WRITE_DELAY`](crate::CREDITS_WRITE_DELAY) after a request spends credits, so
    /// a crash loses at most the credits spent in that last moment: the key gets them back
    /// after a restart. Call it at shutdown to lose none. It blocks while it writes the file;
    /// from async code, call it through `tokio::task::spawn_blocking`.
    ///
    /// With limits counted in Redis ([`RateLimits::with_redis`](crate::RateLimits::with_redis)),
    /// credits are counted there, exactly across instances, and nothing is written back: the
    /// count lives in Redis (persist it as you persist Redis) until the key's credits are set
    /// anew ([`set_credits`](Self::set_credits), or a changed `credits` in the file).
    pub fn write_credits(&self) -> Result<usize, ConfigError> {
        if self.rate_limits().counts_in_redis() {
            // Redis holds the count, shared by every instance; a record written here would
            // start it again from this process's view.
            return Ok(0);
        }
        let table = self.rate_limits().credit_table();
        let unwritten = table.unwritten();
        if unwritten.is_empty() {
            return Ok(0);
        }
        let now = SystemTime::now();
        let written = self.change(|set, edits| {
            let mut written = Vec::new();
            // Each name is a key id or an identity: its keys are written with what it has left.
            for (name, _) in &unwritten {
                let ids = set.ids_counted_as(name);
                let Some(record) = ids.iter().find_map(|id| set.live_record(id)) else {
                    continue;
                };
                let Some(credits) = record.credits() else {
                    continue;
                };
                let spent = table.spent(name, credits, now);
                let period = credits.refill.map_or(0, |refill| refill.period_of(now));
                let remaining = credits.base(now).saturating_sub(spent);
                for id in ids {
                    set.update(&id, |record| {
                        if let Some(credits) = record.credits_mut() {
                            credits.remaining = remaining;
                            credits.counted_at = Some(now);
                        }
                    });
                    edits.push(FileEdit::Credits {
                        id,
                        remaining,
                        refill: None,
                        at: now,
                    });
                }
                written.push((name.clone(), period, spent));
            }
            Ok(written)
        })?;
        // Until this point a request may count the written credits twice (in the record and
        // as spent here), and so refuse one it could have let in: never the reverse.
        for (id, period, spent) in &written {
            table.written(id, *period, *spent);
        }
        Ok(written.len())
    }

    /// Schedules a [`write_credits`](Self::write_credits) in the background, at most
    /// [`CREDITS_WRITE_DELAY`](crate::CREDITS_WRITE_DELAY) from now, unless one is scheduled.
    /// Outside a Tokio runtime nothing is scheduled: call `write_credits` yourself.
    pub(crate) fn schedule_credits_write(&self) {
        use std::sync::atomic::Ordering;
        // Once a write is scheduled, a request pays one load.
        if self.shared.credits_scheduled.load(Ordering::Relaxed)
            || self.rate_limits().counts_in_redis()
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.shared.credits_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let keys = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(crate::CREDITS_WRITE_DELAY).await;
            keys.shared
                .credits_scheduled
                .store(false, Ordering::Release);
            let writer = keys.clone();
            let outcome = tokio::task::spawn_blocking(move || writer.write_credits()).await;
            match outcome {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::error!(
                    target: "axum_api_key::audit",
                    error = %error,
                    "spent credits could not be written back; they are kept in memory and \
                     written with the next change"
                ),
                Err(_) => tracing::error!(
                    target: "axum_api_key::audit",
                    "writing spent credits back did not finish; they are kept in memory"
                ),
            }
        });
    }

    /// Writes each key's last use since the last write to its records (`last_used` in the
    /// records file of a store read from one). Returns how many key ids were written.
    ///
    /// The guard calls it on its own, in the background, at most once every
    /// [`LAST_USED_WRITE_DELAY`](crate::LAST_USED_WRITE_DELAY): a busy key costs the file one
    /// write a minute, not one per request. It blocks while it writes the file.
    pub fn write_last_used(&self) -> Result<usize, ConfigError> {
        let uses = self.rate_limits().uses();
        let unwritten = uses.unwritten();
        if unwritten.is_empty() {
            return Ok(0);
        }
        let written = self.change(|set, edits| {
            let mut written = Vec::new();
            for (id, last) in &unwritten {
                let last = *last;
                let named = set.update(id, |record| {
                    record.used_at(last);
                });
                if named == 0 {
                    continue;
                }
                let at = std::time::UNIX_EPOCH + Duration::from_secs(last);
                edits.push(FileEdit::LastUsed { id: id.clone(), at });
                written.push((id.clone(), last));
            }
            Ok(written)
        })?;
        for (id, last) in &written {
            uses.written(id, *last);
        }
        Ok(written.len())
    }

    /// Schedules a [`write_last_used`](Self::write_last_used) in the background,
    /// [`LAST_USED_WRITE_DELAY`](crate::LAST_USED_WRITE_DELAY) from now, unless one is
    /// scheduled. Only for a store read from a records file: in memory there is nothing to
    /// write.
    pub(crate) fn schedule_uses_write(&self) {
        use std::sync::atomic::Ordering;
        if self.shared.uses_scheduled.load(Ordering::Relaxed) {
            return;
        }
        #[cfg(feature = "file")]
        if self.shared.snapshot.read(|set| set.file.is_none()) {
            return;
        }
        #[cfg(not(feature = "file"))]
        return;
        #[cfg(feature = "file")]
        {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            if self.shared.uses_scheduled.swap(true, Ordering::AcqRel) {
                return;
            }
            let keys = self.clone();
            runtime.spawn(async move {
                tokio::time::sleep(crate::LAST_USED_WRITE_DELAY).await;
                keys.shared.uses_scheduled.store(false, Ordering::Release);
                let writer = keys.clone();
                match tokio::task::spawn_blocking(move || writer.write_last_used()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => tracing::warn!(
                        target: "axum_api_key::audit",
                        error = %error,
                        "keys' last uses could not be written back; they are kept in memory"
                    ),
                    Err(_) => {}
                }
            });
        }
    }
}
