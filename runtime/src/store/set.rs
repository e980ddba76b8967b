//! [`KeySet`]: one version of a store's keys, what a request reads, and the lookup.

use std::sync::Arc;
use std::time::SystemTime;

use subtle::ConstantTimeEq;

use super::table::Table;
use super::{Key, KeyDigest, KeyError, Shape};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::format::KeyFormat;
use crate::key::{KeyRecord, StoredDigest, VerifiedKey};

/// A version of the store: what a request reads.
///
/// Both maps are [`Table`]s: a copy shares their slots and keeps its changes aside until it is
/// published, when they are written into the slots in place, so a change costs the same at
/// any size and a failed one changes nothing.
#[derive(Clone, Default)]
pub(crate) struct KeySet {
    /// The keys' records, by their digest's first word, which is already a uniform hash; each
    /// record holds its whole digest, compared in constant time.
    by_digest: Table<KeyRecord>,
    /// The same records, by a hash of their id: the keys an id names (more than one during a
    /// rotation) without a scan. A record is in both tables, and changed in both. Each slot's
    /// tag holds the top of its record's digest as its hint ([`id_tag`]): a change by id reads
    /// the record's slot by digest while it waits on the record.
    by_id: Table<KeyRecord, true>,
    pub(crate) format: Option<KeyFormat>,
    /// The records file the set was read from, for [`ApiKeys::reload`].
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) file: Option<Arc<std::path::Path>>,
    /// Whether the records file may hold no key (`from_file_allowing_empty`).
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) allow_empty: bool,
    /// Which file (device and inode) the set was last read from, to tell a file replaced by a
    /// rename from one rewritten in place.
    #[cfg_attr(not(feature = "file"), allow(dead_code))]
    pub(crate) file_id: Option<FileStamp>,
}

/// A file as it was last read or written: which file (device and inode), when it was last
/// modified, and its length.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    pub(crate) id: (u64, u64),
    pub(crate) modified: Option<SystemTime>,
    pub(crate) len: u64,
}

/// A key the set holds, as a lookup finds it.
pub(crate) struct Entry {
    pub(crate) key: VerifiedKey,
}

/// The hash an id is filed under in [`KeySet::by_id`]: SipHash keyed at random once per
/// process. Ids can come from requests (the admin API's `POST /keys` takes one), and with a
/// hash anyone can compute a caller could choose ids that crowd one run of slots, which every
/// change of the store would then walk.
fn id_hash(id: &str) -> u64 {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEYS.get_or_init(std::hash::RandomState::new).hash_one(id)
}

/// The tag of a record in [`KeySet::by_id`]: its id's hash on top, where the table files it,
/// and its digest's first word's top half below, for a change to find the record's slot by
/// digest without waiting on the record first.
fn id_tag(id: &str, digest: &[u64; 4]) -> u64 {
    (id_hash(id) & !0 << 32) | digest[0] >> 32
}

/// Whether the key may be used now: not revoked, not expired, not before its time, not
/// disabled. A key that is both disabled and revoked or expired is told so: enabling it would
/// not help.
pub(crate) fn valid_now(key: &VerifiedKey) -> Result<(), KeyError> {
    valid_record(key.record())
}

/// [`valid_now`], of a record.
fn valid_record(record: &KeyRecord) -> Result<(), KeyError> {
    if record.revoked {
        return Err(KeyError::Revoked);
    }
    if record.has_validity() {
        let now = SystemTime::now();
        if record.expires().is_some_and(|expires| now >= expires) {
            return Err(KeyError::Expired);
        }
        if record
            .not_before()
            .is_some_and(|not_before| now < not_before)
        {
            return Err(KeyError::NotYetValid);
        }
    }
    if record.disabled {
        return Err(KeyError::Disabled);
    }
    Ok(())
}

impl KeySet {
    /// Adds a key; `shared_id` allows an id that already names keys (a rotation).
    pub(crate) fn insert(&mut self, key: Key, shared_id: bool) -> Result<(), ConfigError> {
        let Key {
            id,
            digest,
            short: _,
            shape,
            record,
        } = key;
        let fail = |kind| Err(ConfigError::new(kind).with_id(&id));
        let digest = match digest {
            Ok(digest) => digest,
            Err(kind) => return fail(kind),
        };
        if let Some(format) = &self.format {
            let fits = match &shape {
                Shape::Unknown => true,
                Shape::Plain => false,
                Shape::Generated(prefix) => format.prefix() == &**prefix,
            };
            if !fits {
                return fail(ConfigErrorKind::NotOfFormat);
            }
        }
        let mut record = record;
        record.id = id.as_str().into();
        self.insert_record(digest, record, shared_id)
    }

    pub(super) fn insert_record(
        &mut self,
        digest: KeyDigest,
        record: KeyRecord,
        shared_id: bool,
    ) -> Result<(), ConfigError> {
        let fail = |kind| Err(ConfigError::new(kind).with_id(&record.id));
        if let Some(kind) = invalid_id(&record.id) {
            return fail(kind);
        }
        if record.scopes.iter().any(|scope| !is_scope_token(scope)) {
            return fail(ConfigErrorKind::InvalidScope);
        }
        if !shared_id && !self.named(&record.id).is_empty() {
            return fail(ConfigErrorKind::DuplicateId);
        }
        if self.find(&digest).is_some() {
            return fail(ConfigErrorKind::DuplicateKey);
        }
        let words = Words::of(&digest);
        let mut record = record;
        record.digest = StoredDigest(words.0);
        let record = Arc::new(record);
        self.by_id
            .insert(id_tag(&record.id, &record.digest.0), record.clone());
        self.by_digest.insert(words.table_hash(), record);
        Ok(())
    }

    /// Replaces the record of the key with `digest` and `id` in both tables (removes it, with
    /// `None`).
    fn replace(&mut self, id: &str, digest: [u64; 4], record: Option<Arc<KeyRecord>>) {
        // The slot by id is read ahead, to wait on memory with the one by digest.
        self.by_id.warm(id_hash(id));
        self.replace_by_digest(digest, record.clone());
        let same = |stored: &KeyRecord| stored.digest.0 == digest;
        if let Some(&(at, _)) = self.by_id.matching(id_hash(id), same).first() {
            self.by_id.replace(at, record);
        }
    }

    /// Replaces the record of the key with `digest` in the table by digest only.
    fn replace_by_digest(&mut self, digest: [u64; 4], record: Option<Arc<KeyRecord>>) {
        let same = |stored: &KeyRecord| stored.digest.0 == digest;
        if let Some(&(at, _)) = self.by_digest.matching(digest[0], same).first() {
            self.by_digest.replace(at, record);
        }
    }

    /// Puts `key` in the set as a full read of the store's source has it: a key whose record
    /// is unchanged is left as it is (and keeps what it has kept, its budgets among them), one
    /// whose record changed is replaced, a new one added. What is left alone is shared with the
    /// set this one was copied from, so a full read costs the changed slots, not a second set.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn put(&mut self, key: Key) -> Result<(), ConfigError> {
        if let Ok(digest) = &key.digest
            && let Some(entry) = self.find(digest)
        {
            let mut record = key.record.clone();
            record.id = key.id.as_str().into();
            if *entry.key.record() == record {
                return Ok(());
            }
            self.remove(digest);
        }
        self.insert(key, true)
    }

    /// Removes every key whose digest `keep` does not hold: the end of a full read, for the
    /// keys whose rows are gone. Returns how many were removed.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn retain_digests(&mut self, keep: &std::collections::HashSet<KeyDigest>) -> usize {
        let gone: Vec<KeyDigest> = self
            .by_digest
            .values()
            .iter()
            .map(|record| Words(record.digest.0).bytes())
            .filter(|digest| !keep.contains(digest))
            .collect();
        for digest in &gone {
            self.remove(digest);
        }
        gone.len()
    }

    /// The records of the keys named `id`.
    fn named_records(&self, id: &str) -> Vec<Arc<KeyRecord>> {
        self.by_id
            .matching(id_hash(id), |record| &*record.id == id)
            .into_iter()
            .map(|(_, record)| record)
            .collect()
    }

    /// The keys named `id`.
    pub(super) fn named(&self, id: &str) -> Vec<Entry> {
        self.named_records(id)
            .into_iter()
            .map(|record| Entry {
                key: VerifiedKey::from_shared(record),
            })
            .collect()
    }

    /// Applies `update` to the record of every key named `id`; returns how many there were.
    pub(super) fn update(&mut self, id: &str, update: impl Fn(&mut KeyRecord)) -> usize {
        // The slots of the id are found once: an id of many keys (a chain of rotations) costs
        // one pass over them, not one per key.
        // Each key's slot by digest is read as its slot by id is found, from the hint in the
        // tag, before the record: the two can wait on memory at once, not one after the other.
        let named = self.by_id.matching_ahead(
            id_hash(id),
            |tag| self.by_digest.warm(tag << 32),
            |record| &*record.id == id,
        );
        for (at, record) in &named {
            let mut next = KeyRecord::clone(record);
            update(&mut next);
            let next = Arc::new(next);
            self.replace_by_digest(record.digest.0, Some(next.clone()));
            self.by_id.replace(*at, Some(next));
        }
        named.len()
    }

    /// The id's current key: not revoked, and not rotated out if any is not, to model a
    /// rotated key on.
    pub(super) fn live_record(&self, id: &str) -> Option<KeyRecord> {
        self.named_records(id)
            .into_iter()
            .filter(|record| !record.revoked)
            .max_by_key(|record| (!record.superseded, record.expires().is_none()))
            .map(|record| KeyRecord::clone(&record))
    }

    /// The record of the key with this digest, shared with the set.
    fn record_of(&self, digest: &KeyDigest) -> Option<Arc<KeyRecord>> {
        let words = Words::of(digest);
        self.by_digest.find(words.table_hash(), |record| {
            Words(record.digest.0).ct_eq(&words).then(|| record.clone())
        })
    }

    /// Applies `update` to the record of the key with this digest; returns whether there was
    /// one.
    pub(super) fn update_key(
        &mut self,
        digest: &KeyDigest,
        update: impl FnOnce(&mut KeyRecord),
    ) -> bool {
        let Some(record) = self.record_of(digest) else {
            return false;
        };
        let mut next = KeyRecord::clone(&record);
        update(&mut next);
        self.replace(&record.id, record.digest.0, Some(Arc::new(next)));
        true
    }

    /// Checks the format of a key already checked for length and shape, hashes it, looks it up
    /// and checks that it may be used now.
    pub(super) fn lookup(&self, key: &[u8]) -> Result<VerifiedKey, KeyError> {
        if let Some(format) = &self.format
            && !format.is_well_formed(key)
        {
            return Err(KeyError::Malformed);
        }
        let digest = Words::of(&super::digest(key));
        // The slot is found by the digest's first word, as any hash table probes by its hash;
        // the candidate whose tag matches it is compared whole in constant time, so the lookup
        // reveals nothing about how close a wrong key's digest came to a stored one beyond
        // sharing 64 bits, which no one can aim for. The record is read, and its reference
        // count touched, only for the key that matched.
        self.by_digest
            .find(digest.table_hash(), |record| {
                if !Words(record.digest.0).ct_eq(&digest) {
                    return None;
                }
                Some(valid_record(record).map(|()| VerifiedKey::from_shared(record.clone())))
            })
            .unwrap_or(Err(KeyError::Unknown))
    }

    /// The key with this digest, whatever its state.
    pub(crate) fn find(&self, digest: &KeyDigest) -> Option<Entry> {
        let digest = Words::of(digest);
        self.by_digest.find(digest.table_hash(), |record| {
            Words(record.digest.0).ct_eq(&digest).then(|| Entry {
                key: VerifiedKey::from_shared(record.clone()),
            })
        })
    }

    /// Removes the key with this digest, if there is one; returns whether there was.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn remove(&mut self, digest: &KeyDigest) -> bool {
        let Some(removed) = self.record_of(digest) else {
            return false;
        };
        self.replace(&removed.id, removed.digest.0, None);
        true
    }

    /// Removes the records of the finished keys of `id` (revoked, or expired at `now`) but the
    /// `keep` newest, newest by expiry (a key revoked without one counts as oldest); returns the
    /// digests of those removed.
    pub(super) fn forget_finished(
        &mut self,
        id: &str,
        keep: usize,
        now: SystemTime,
    ) -> Vec<KeyDigest> {
        let mut finished: Vec<_> = self
            .named_records(id)
            .into_iter()
            .filter(|record| record.revoked || record.expires().is_some_and(|at| at <= now))
            .collect();
        finished.sort_by_key(|record| std::cmp::Reverse(record.expires()));
        let gone: Vec<KeyDigest> = finished
            .iter()
            .skip(keep)
            .map(|record| Words(record.digest.0).bytes())
            .collect();
        for digest in &gone {
            self.remove(digest);
        }
        gone
    }

    /// The ids of the keys counted under `name`: the id itself when a key has it (and no
    /// other identity), and every id whose keys have the identity `name`. An id is found at
    /// once; an identity is looked for through every key, which only a write-back does.
    pub(super) fn ids_counted_as(&self, name: &str) -> Vec<Box<str>> {
        let direct = self
            .named(name)
            .iter()
            .any(|entry| entry.key.record().identity().is_none());
        let mut ids: Vec<Box<str>> = if direct {
            vec![name.into()]
        } else {
            Vec::new()
        };
        for key in self.keys() {
            if key.identity() == Some(name) && !ids.iter().any(|id| **id == *key.id()) {
                ids.push(key.id().into());
            }
        }
        ids
    }

    /// The credits of a key counted under `name` (an id, or an identity), if it has any.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(super) fn credits_counted_as(&self, name: &str) -> Option<crate::credits::KeyCredits> {
        self.ids_counted_as(name)
            .iter()
            .find_map(|id| self.live_record(id))
            .and_then(|record| record.credits().cloned())
    }

    /// Every key, in no particular order.
    pub(super) fn keys(&self) -> impl Iterator<Item = VerifiedKey> {
        self.by_digest
            .values()
            .into_iter()
            .map(VerifiedKey::from_shared)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Writes this set's changes into the slots it shares with the versions before it: what
    /// publishing it does, after which every reader sees them.
    pub(super) fn apply(&mut self) {
        self.by_digest.apply();
        self.by_id.apply();
    }

    /// A set of its own with the same keys, sharing no slot with this one: for a store built as
    /// a copy of another.
    pub(super) fn detached(&self) -> Self {
        Self {
            by_digest: self.by_digest.detached(),
            by_id: self.by_id.detached(),
            ..self.clone()
        }
    }
}

/// A digest as four words, the form the table keeps: compared with four XORs, and hashed by
/// its first word, which is already uniformly distributed.
#[derive(Clone, Copy)]
struct Words([u64; 4]);

impl Words {
    fn of(digest: &KeyDigest) -> Self {
        let mut words = [0u64; 4];
        for (word, bytes) in words.iter_mut().zip(digest.chunks_exact(8)) {
            *word = u64::from_ne_bytes(bytes.try_into().unwrap_or_default());
        }
        Self(words)
    }

    /// The digest the words were made of.
    fn bytes(&self) -> KeyDigest {
        let mut digest = [0u8; 32];
        for (bytes, word) in digest.chunks_exact_mut(8).zip(self.0) {
            bytes.copy_from_slice(&word.to_ne_bytes());
        }
        digest
    }

    fn table_hash(&self) -> u64 {
        self.0[0]
    }

    /// Equality in constant time: the differences of all words are folded into one without
    /// branching, and only that word goes through `subtle`'s comparison.
    fn ct_eq(&self, other: &Self) -> bool {
        let [a0, a1, a2, a3] = self.0;
        let [b0, b1, b2, b3] = other.0;
        let difference = (a0 ^ b0) | (a1 ^ b1) | (a2 ^ b2) | (a3 ^ b3);
        bool::from(difference.ct_eq(&0))
    }
}

/// Why `id` cannot name a key, if it cannot. The rules are the same in every store: an id
/// is logged and shown, so it is short and plain.
pub(crate) fn invalid_id(id: &str) -> Option<ConfigErrorKind> {
    if id.is_empty() {
        Some(ConfigErrorKind::EmptyId)
    } else if id.len() > crate::MAX_ID_LEN
        || !id.bytes().all(|b| b.is_ascii_graphic())
        || id.contains([',', '=', '[', ']'])
    {
        Some(ConfigErrorKind::InvalidId)
    } else {
        None
    }
}

/// A scope the store accepts: an RFC 6750 scope token (visible ASCII without `"` or `\`) that
/// also fits in the `API_KEYS` format (no `,`, `[` or `]`).
pub(crate) fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b',' | b'[' | b']'))
}

#[cfg(test)]
mod id_hash_tests {
    use std::hash::{Hash, Hasher};

    /// Ids can come from requests (the admin API's `POST /keys` takes one): with a hash anyone
    /// can compute, a caller could choose ids that crowd one run of slots and make every
    /// change of the store walk it. The process's hash is keyed at random.
    #[test]
    fn an_id_is_filed_under_a_hash_no_caller_can_compute() {
        let public = |id: &str| {
            let mut hasher = std::hash::DefaultHasher::new();
            id.hash(&mut hasher);
            hasher.finish()
        };
        let ids = ["partner-a", "partner-b", "admin"];
        assert!(ids.iter().all(|id| super::id_hash(id) != public(id)));
        // The same id, the same hash, within the process.
        assert_eq!(super::id_hash("partner-a"), super::id_hash("partner-a"));
    }
}
