//! Changing a live store: add, revoke, rotate, each seen by every clone from the next request
//! on, and written through to the records file of a store read from one.

use std::sync::PoisonError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Changing;
use super::change::FileEdit;
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
    /// keys.add(Key::new("late", "lt_Qw8Er2Ty6Ui1Op"))?;
    /// assert_eq!(served.verify(b"lt_Qw8Er2Ty6Ui1Op").unwrap().id(), "late");
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

    /// Disables every key of `id`: a suspension, refused with `403` and the problem
    /// `key-disabled` from the moment it returns, until [`enable`](Self::enable). Unlike
    /// [`revoke`](Self::revoke), it is undone whole: the keys keep their scopes, limits and
    /// validity meanwhile. A disabled key cannot rotate itself, and a key made by rotating a
    /// disabled id is disabled too. Returns how many keys were disabled.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, KeyError};
    ///
    /// let keys = ApiKeys::new().with_key("partner-a", "pa_7Qm2xY9wLkV3rT8s");
    /// keys.disable("partner-a")?;
    /// assert_eq!(keys.verify(b"pa_7Qm2xY9wLkV3rT8s").unwrap_err(), KeyError::Disabled);
    /// keys.enable("partner-a")?;
    /// assert!(keys.verify(b"pa_7Qm2xY9wLkV3rT8s").is_ok());
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn disable(&self, id: &str) -> Result<usize, ConfigError> {
        self.set_disabled(id, true)
    }

    /// Enables every key of `id` again after [`disable`](Self::disable); a key that is also
    /// revoked or expired stays refused for that. Returns how many keys were enabled.
    pub fn enable(&self, id: &str) -> Result<usize, ConfigError> {
        self.set_disabled(id, false)
    }

    /// Holds every key of `id` to `limits`, a plan of windows as
    /// [`Key::rate_limits`](crate::Key::rate_limits) takes it (none: no limit), counted from
    /// the next request; written to the records file, if the store has one. Returns how many
    /// keys were changed, or an error for an unknown id or a list that breaks the rules, with
    /// nothing changed.
    ///
    /// ```
    /// use axum_api_key::{ApiKeys, RateLimit};
    ///
    /// let keys = ApiKeys::new().with_key("partner-a", "pa_7Qm2xY9wLkV3rT8s");
    /// keys.set_rate_limits("partner-a", &["10/s".parse()?, RateLimit::per_day(100_000)])?;
    /// assert_eq!(keys.verify(b"pa_7Qm2xY9wLkV3rT8s").unwrap().rate_limits().count(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_rate_limits(
        &self,
        id: &str,
        limits: &[crate::RateLimit],
    ) -> Result<usize, ConfigError> {
        crate::limit::check_limits(limits).map_err(|error| {
            ConfigError::new(ConfigErrorKind::BadRateLimit)
                .with_message(error.to_string())
                .with_id(id)
        })?;
        self.change(|set, edits| {
            let named = set.update(id, |record| record.set_rate_limits(limits.to_vec()));
            if named == 0 {
                return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
            }
            edits.push(FileEdit::RateLimits {
                id: id.into(),
                limits: limits.to_vec(),
            });
            Ok(named)
        })
    }

    /// Gives every key of `id` exactly `scopes` (each a scope token, as
    /// [`Key::scopes`](crate::Key::scopes) takes them), from the next request; written to the
    /// records file, if the store has one. Returns how many keys were changed, or an error for
    /// an unknown id or a scope that is not a token, with nothing changed.
    ///
    /// ```
    /// use axum_api_key::ApiKeys;
    ///
    /// let keys = ApiKeys::new().with_key("partner-a", "pa_7Qm2xY9wLkV3rT8s");
    /// keys.set_scopes("partner-a", ["orders:read"])?;
    /// assert!(keys.verify(b"pa_7Qm2xY9wLkV3rT8s").unwrap().has_scope("orders:read"));
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn set_scopes<I, S>(&self, id: &str, scopes: I) -> Result<usize, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        let scopes: Vec<Box<str>> = scopes.into_iter().map(Into::into).collect();
        if let Some(bad) = scopes
            .iter()
            .find(|scope| !super::set::is_scope_token(scope))
        {
            let shown: String = bad.chars().take(64).collect();
            return Err(ConfigError::new(ConfigErrorKind::InvalidScope)
                .with_message(format!("`{shown}` is not a scope token"))
                .with_id(id));
        }
        self.change(|set, edits| {
            let named = set.update(id, |record| record.scopes = scopes.clone().into());
            if named == 0 {
                return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
            }
            edits.push(FileEdit::Scopes {
                id: id.into(),
                scopes: scopes.clone(),
            });
            Ok(named)
        })
    }

    /// Replaces the free metadata fields of every key of `id` (the owner, a ticket: what
    /// handlers read with [`VerifiedKey::metadata`](crate::VerifiedKey::metadata)); written to
    /// the records file, if the store has one. Returns how many keys were changed.
    ///
    /// ```
    /// use axum_api_key::ApiKeys;
    ///
    /// let keys = ApiKeys::new().with_key("partner-a", "pa_7Qm2xY9wLkV3rT8s");
    /// keys.set_metadata("partner-a", [("owner".to_owned(), "Partner A Ltd".to_owned())].into())?;
    /// assert_eq!(keys.verify(b"pa_7Qm2xY9wLkV3rT8s").unwrap().metadata("owner"), Some("Partner A Ltd"));
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn set_metadata(
        &self,
        id: &str,
        metadata: std::collections::BTreeMap<String, String>,
    ) -> Result<usize, ConfigError> {
        self.change(|set, edits| {
            let named = set.update(id, |record| record.set_metadata(metadata.clone()));
            if named == 0 {
                return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
            }
            edits.push(FileEdit::Metadata {
                id: id.into(),
                metadata: metadata.clone(),
            });
            Ok(named)
        })
    }

    fn set_disabled(&self, id: &str, disabled: bool) -> Result<usize, ConfigError> {
        self.change(|set, edits| {
            let changed = std::cell::Cell::new(0);
            let named = set.update(id, |record| {
                if record.disabled != disabled {
                    record.disabled = disabled;
                    changed.set(changed.get() + 1);
                }
            });
            let changed = changed.get();
            if named == 0 {
                return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
            }
            if changed > 0 {
                edits.push(FileEdit::Disable {
                    id: id.into(),
                    disabled,
                });
            }
            Ok(changed)
        })
    }

    /// Issues a new key for `id`, in the store's [`KeyFormat`](crate::KeyFormat), and lets the id's current key
    /// keep working until `grace` has passed (or its own expiry, if sooner). The new key has
    /// the current key's scopes, metadata, rate limit, not-before time and expiry: a rotation
    /// replaces the key, it never extends it. Returns the new key, which is not kept anywhere:
    /// hand it to its owner now.
    ///
    /// The id's current key is the one that is neither revoked nor rotated out already; the
    /// keys it replaces are marked rotated out, and can no longer rotate themselves through
    /// [`rotate_presented`](Self::rotate_presented).
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
        let deadline = grace_deadline(grace);
        self.change(|set, edits| {
            let Some(format) = set.format.clone() else {
                return Err(ConfigError::new(ConfigErrorKind::NoFormat).with_id(id));
            };
            let Some(template) = set.live_record(id) else {
                return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
            };
            set.update(id, |record| {
                record.superseded = true;
                record.set_expires(Some(record.expires().map_or(deadline, |e| e.min(deadline))));
            });
            edits.push(FileEdit::Supersede {
                id: id.into(),
                at: deadline,
            });
            let new = format.generate();
            let mut record = template;
            record.revoked = false;
            record.superseded = false;
            let digest = digest(new.as_bytes());
            set.insert_record(digest, record.clone(), true)?;
            edits.push(FileEdit::Append { digest, record });
            Ok(new)
        })
    }

    /// Rotates the key whose digest is `presented`, at its holder's request (the
    /// [`self_service`](crate::self_service) router calls it with the key the request
    /// presented): a new key with the same scopes, metadata, rate limit, not-before time and
    /// an expiry no later than the presented key's, which keeps working for
    /// `min(grace, its remaining life)`.
    ///
    /// Refused, with nothing changed, when the presented key is unknown
    /// ([`UnknownKey`](ConfigErrorKind::UnknownKey)), revoked, expired, not valid yet or disabled
    /// ([`KeyNotLive`](ConfigErrorKind::KeyNotLive)), or rotated already
    /// ([`Superseded`](ConfigErrorKind::Superseded)): a key in its grace period, a leaked one
    /// the operator rotated out say, can never buy itself a successor. Refused too when its id
    /// has [`MAX_KEYS_IN_GRACE`](crate::MAX_KEYS_IN_GRACE) keys in their grace period already
    /// ([`TooManyInGrace`](ConfigErrorKind::TooManyInGrace)): a chain of rotations cannot
    /// make one key into many that work at once. Of two rotations by one key, exactly one
    /// succeeds. For a store read from a records file, the checks are made on
    /// the file as read under its lock, so a key revoked by another process cannot rotate.
    /// A rotation forgets the id's finished keys but the newest
    /// [`MAX_FINISHED_KEYS`](crate::MAX_FINISHED_KEYS), in the file too.
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum_api_key::{digest, ApiKeys, ConfigErrorKind, Key, KeyFormat};
    ///
    /// let format = KeyFormat::new("myapp")?;
    /// let old = format.generate();
    /// let keys = ApiKeys::new().with_format(format).try_with(Key::new("partner-a", &old))?;
    ///
    /// let rotation = keys.rotate_presented(&digest(old.as_bytes()), Duration::from_secs(60))?;
    /// assert!(keys.verify(rotation.key().as_bytes()).is_ok());
    /// // The old key is rotated out: it cannot rotate again.
    /// let again = keys.rotate_presented(&digest(old.as_bytes()), Duration::from_secs(60));
    /// assert_eq!(again.unwrap_err().kind(), ConfigErrorKind::Superseded);
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn rotate_presented(
        &self,
        presented: &KeyDigest,
        grace: Duration,
    ) -> Result<Rotation, ConfigError> {
        let deadline = grace_deadline(grace);
        self.change(|set, edits| {
            let Some(format) = set.format.clone() else {
                return Err(ConfigError::new(ConfigErrorKind::NoFormat));
            };
            let current = presented_record(set, presented)?;
            if current.superseded {
                return Err(ConfigError::new(ConfigErrorKind::Superseded).with_id(&current.id));
            }
            // Every rotation leaves a key working for the grace: a chain of them is held to a
            // few such keys at once, or one leaked key could make itself any number.
            // Counted as the table's statement counts them: rotated out, not revoked, not
            // expired.
            let now = SystemTime::now();
            let in_grace = set
                .named(&current.id)
                .iter()
                .map(|entry| entry.key.record())
                .filter(|record| {
                    record.superseded
                        && !record.revoked
                        && record.expires().is_some_and(|expires| expires > now)
                })
                .count();
            if in_grace >= MAX_KEYS_IN_GRACE {
                return Err(ConfigError::new(ConfigErrorKind::TooManyInGrace).with_id(&current.id));
            }
            let ends = current.expires().map_or(deadline, |e| e.min(deadline));
            set.update_key(presented, |record| {
                record.superseded = true;
                record.set_expires(Some(ends));
            });
            edits.push(FileEdit::SupersedeKey {
                digest: *presented,
                at: ends,
            });
            let new = format.generate();
            let id = current.id.clone();
            // Everything the key may do, and when, is the presented key's: never more.
            let mut successor = current;
            successor.superseded = false;
            let digest = digest(new.as_bytes());
            let expires = successor.expires();
            set.insert_record(digest, successor.clone(), true)?;
            edits.push(FileEdit::Append {
                digest,
                record: successor,
            });
            // A rotation and a revocation finish one key each turn: the id's finished keys are
            // held to the newest few, or one leaked key could grow the store without end.
            for digest in set.forget_finished(&id, MAX_FINISHED_KEYS, now) {
                edits.push(FileEdit::Forget { digest });
            }
            Ok(Rotation {
                key: new,
                presented_expires: ends,
                expires,
            })
        })
    }

    /// Revokes the key whose digest is `presented`, and no other key of its id: what a key
    /// holder may do to its own key. Revoking a key that is revoked already changes nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum_api_key::{digest, ApiKeys, Key, KeyFormat};
    ///
    /// let format = KeyFormat::new("myapp")?;
    /// let old = format.generate();
    /// let keys = ApiKeys::new().with_format(format).try_with(Key::new("svc", &old))?;
    /// let new = keys.rotate("svc", Duration::from_secs(3600))?;
    /// keys.revoke_presented(&digest(old.as_bytes()))?;
    /// assert!(keys.verify(old.as_bytes()).is_err());
    /// assert!(keys.verify(new.as_bytes()).is_ok()); // the id's other key is untouched
    /// # Ok::<(), axum_api_key::ConfigError>(())
    /// ```
    pub fn revoke_presented(&self, presented: &KeyDigest) -> Result<(), ConfigError> {
        self.change(|set, edits| {
            let Some(entry) = set.find(presented) else {
                return Err(ConfigError::new(ConfigErrorKind::UnknownKey));
            };
            if entry.key.record().revoked {
                return Ok(());
            }
            set.update_key(presented, |record| record.revoked = true);
            edits.push(FileEdit::RevokeKey { digest: *presented });
            Ok(())
        })
    }

    /// Runs one change on a copy of the live set and swaps it in, or leaves the set as it was.
    ///
    /// For a store read from a records file, the change is made under the file's lock, on the
    /// file as it is then (changes another process wrote meanwhile are taken along, and the
    /// change's checks see them), and its edits are written to the file before the set is
    /// swapped in: a change that cannot be written is not made.
    pub(crate) fn change<T>(
        &self,
        change: impl FnOnce(&mut KeySet, &mut Vec<FileEdit>) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        #[cfg(feature = "file")]
        if let Some(path) = self.shared.snapshot.load().file.clone() {
            let mut changing = self.one_at_a_time();
            let current = self.shared.snapshot.load();
            let (next, out) =
                super::file::change_file(&path, &current, &mut changing.file_index, change)?;
            self.shared.snapshot.publish(next);
            return Ok(out);
        }
        self.change_set(|set| change(set, &mut Vec::new()))
    }

    /// Runs one change on a copy of the live set in memory and swaps it in, or leaves the set
    /// as it was.
    pub(crate) fn change_set<T>(
        &self,
        change: impl FnOnce(&mut KeySet) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        self.change_set_with(|set, _| change(set))
    }

    /// [`change_set`](Self::change_set), given also what changes keep from one to the next.
    pub(crate) fn change_set_with<T>(
        &self,
        change: impl FnOnce(&mut KeySet, &mut Changing) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        let mut changing = self.one_at_a_time();
        let mut next = KeySet::clone(&self.shared.snapshot.load());
        let out = change(&mut next, &mut changing)?;
        self.shared.snapshot.publish(next);
        Ok(out)
    }

    /// The lock that serialises the store's changes (a store's file, if it has one, is fixed
    /// for its life, so whether a change goes through it is known before the lock).
    pub(crate) fn one_at_a_time(&self) -> std::sync::MutexGuard<'_, Changing> {
        self.shared
            .changing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many finished keys of one id (revoked, or past their expiry or their grace) a store
/// keeps once their holder rotates a key of the id: the newest by expiry. The others are
/// forgotten at that rotation, and from then on are refused as unknown keys rather than as
/// revoked or expired ones. Each turn of a rotation followed by a revocation (or by waiting out
/// the grace) finishes one key: without this, one leaked key could grow the store, and its
/// records file or table, without end. Finished keys of an id no holder rotates are kept.
///
/// ```
/// use std::time::Duration;
/// use axum_api_key::{digest, ApiKeys, Key, KeyFormat, MAX_FINISHED_KEYS};
///
/// let format = KeyFormat::new("myapp")?;
/// let mut key = format.generate();
/// let keys = ApiKeys::new().with_format(format).try_with(Key::new("partner-a", &key))?;
/// for _ in 0..3 * MAX_FINISHED_KEYS {
///     let rotated = keys.rotate_presented(&digest(key.as_bytes()), Duration::from_secs(3600))?;
///     keys.revoke_presented(&digest(key.as_bytes()))?;
///     key = rotated.key().to_owned();
/// }
/// // The current key, the newest finished ones, and the one revoked after the last rotation.
/// assert_eq!(keys.len(), 1 + MAX_FINISHED_KEYS + 1);
/// assert!(keys.verify(key.as_bytes()).is_ok());
/// # Ok::<(), axum_api_key::ConfigError>(())
/// ```
pub const MAX_FINISHED_KEYS: usize = 8;

/// How many keys of one id may be rotated out by their holder and still working (in their
/// grace period) at once: a rotation that would make more is refused with
/// [`ManageError::TooManyInGrace`](crate::ManageError::TooManyInGrace) (429 from
/// [`self_service`](crate::self_service())), so that a leaked key cannot multiply itself into
/// keys that each work for the grace. A key in grace counts until its grace ends or it is
/// revoked (a disabled one too: enabled, it would work again). The keys of one id share the
/// allowance: a leaked key of an id that several holders' keys share can hold the others'
/// rotations back for one grace period, until the operator revokes it. An operator's rotation
/// of an id is not held to it.
///
/// ```
/// use std::time::Duration;
/// use axum_api_key::{digest, ApiKeys, ConfigErrorKind, Key, KeyFormat, MAX_KEYS_IN_GRACE};
///
/// let format = KeyFormat::new("myapp")?;
/// let mut key = format.generate();
/// let keys = ApiKeys::new().with_format(format).try_with(Key::new("partner-a", &key))?;
/// for _ in 0..MAX_KEYS_IN_GRACE {
///     let rotation = keys.rotate_presented(&digest(key.as_bytes()), Duration::from_secs(3600))?;
///     key = rotation.key().to_owned();
/// }
/// let refused = keys.rotate_presented(&digest(key.as_bytes()), Duration::from_secs(3600));
/// assert_eq!(refused.unwrap_err().kind(), ConfigErrorKind::TooManyInGrace);
/// # Ok::<(), axum_api_key::ConfigError>(())
/// ```
pub const MAX_KEYS_IN_GRACE: usize = 8;

/// The end of a grace period starting now. A period past the last time a records file can
/// hold (the end of year 9999, or what a clock can hold) ends there: never a panic, and the
/// deadline is written like any other.
fn grace_deadline(grace: Duration) -> SystemTime {
    let latest = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    SystemTime::now()
        .checked_add(grace)
        .map_or(latest, |deadline| deadline.min(latest))
}

/// The record of the presented key, if it may still change anything.
fn presented_record(set: &KeySet, presented: &KeyDigest) -> Result<KeyRecord, ConfigError> {
    let Some(entry) = set.find(presented) else {
        return Err(ConfigError::new(ConfigErrorKind::UnknownKey));
    };
    if super::set::valid_now(&entry.key).is_err() {
        return Err(ConfigError::new(ConfigErrorKind::KeyNotLive).with_id(entry.key.id()));
    }
    Ok(entry.key.record().clone())
}

/// What [`ApiKeys::rotate_presented`] made: the new key, shown once, and when each key ends.
pub struct Rotation {
    key: String,
    presented_expires: SystemTime,
    expires: Option<SystemTime>,
}

impl Rotation {
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn new(
        key: String,
        presented_expires: SystemTime,
        expires: Option<SystemTime>,
    ) -> Self {
        Self {
            key,
            presented_expires,
            expires,
        }
    }

    /// The new key: hand it to its holder now; the store keeps only its digest.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The new key, by value.
    pub fn into_key(self) -> String {
        self.key
    }

    /// When the presented key stops working: the end of the grace period, or its own expiry
    /// if sooner.
    pub fn presented_expires_at(&self) -> SystemTime {
        self.presented_expires
    }

    /// When the new key expires: the presented key's original expiry, if it had one.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires
    }
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("presented_expires_at", &self.presented_expires)
            .field("expires_at", &self.expires)
            .finish_non_exhaustive()
    }
}
