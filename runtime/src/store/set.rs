//! [`KeySet`]: one version of a store's keys, what a request reads, and the lookup.

use std::sync::Arc;
use std::time::SystemTime;

use subtle::ConstantTimeEq;

use super::radix::Radix;
use super::{Key, KeyDigest, KeyError, Shape};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::format::KeyFormat;
use crate::key::{KeyRecord, VerifiedKey};

/// One version of the store: what a request reads, all of it immutable.
///
/// Both tables are [`Radix`] maps, which share all but the changed path with the version they
/// were made from: copying a set and changing a key costs the same at any size.
#[derive(Clone, Default)]
pub(crate) struct KeySet {
    /// The keys, by their digest's first word, which is already a uniform hash.
    by_digest: Radix<Entry>,
    /// The first word of the digest of every key, by a hash of its id: the keys an id names
    /// (more than one during a rotation) without a scan.
    by_id: Radix<u64>,
    len: usize,
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

#[derive(Clone)]
pub(crate) struct Entry {
    digest: Words,
    pub(crate) key: VerifiedKey,
}

/// The hash an id is filed under in [`KeySet::by_id`]: SipHash with fixed keys (ids come from
/// the service's own configuration, not from requests).
fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

/// Whether the key may be used now: not revoked, not expired, not before its time, not
/// disabled. A key that is both disabled and revoked or expired is told so: enabling it would
/// not help.
pub(crate) fn valid_now(key: &VerifiedKey) -> Result<(), KeyError> {
    let record = key.record();
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
        if !shared_id && self.named(&record.id).next().is_some() {
            return fail(ConfigErrorKind::DuplicateId);
        }
        if self.find(&digest).is_some() {
            return fail(ConfigErrorKind::DuplicateKey);
        }
        let digest = Words::of(&digest);
        let word = digest.table_hash();
        self.by_id.change(id_hash(&record.id), |words| {
            if !words.contains(&word) {
                words.push(word);
            }
        });
        let entry = Entry {
            digest,
            key: VerifiedKey::from_record(record),
        };
        self.by_digest.change(word, |entries| entries.push(entry));
        self.len += 1;
        Ok(())
    }

    /// Puts `key` in the set as a full read of the store's source has it: a key whose record
    /// is unchanged is left as it is (and keeps what it has kept, its budgets among them), one
    /// whose record changed is replaced, a new one added. What is left alone is shared with the
    /// set this one was copied from, so a full read costs the changed paths, not a second set.
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
            .map(|entry| entry.digest.bytes())
            .filter(|digest| !keep.contains(digest))
            .collect();
        for digest in &gone {
            self.remove(digest);
        }
        gone.len()
    }

    /// The keys named `id`.
    pub(super) fn named<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.by_id.group(id_hash(id)).iter().flat_map(move |&word| {
            self.by_digest
                .group(word)
                .iter()
                .filter(move |entry| entry.digest.table_hash() == word && entry.key.id() == id)
        })
    }

    /// Applies `update` to the record of every key named `id`; returns how many there were.
    pub(super) fn update(&mut self, id: &str, update: impl Fn(&mut KeyRecord)) -> usize {
        // Each word is filed once (see `insert_record`); the group also holds other ids' words,
        // which match none of this id's keys.
        let words: Vec<u64> = self.by_id.group(id_hash(id)).to_vec();
        let mut updated = 0;
        for word in words {
            updated += self.by_digest.change(word, |entries| {
                let mut count = 0;
                for entry in entries
                    .iter_mut()
                    .filter(|entry| entry.digest.table_hash() == word && entry.key.id() == id)
                {
                    let mut record = entry.key.record().clone();
                    update(&mut record);
                    entry.key = VerifiedKey::from_record(record);
                    count += 1;
                }
                count
            });
        }
        updated
    }

    /// The id's current key: not revoked, and not rotated out if any is not, to model a
    /// rotated key on.
    pub(super) fn live_record(&self, id: &str) -> Option<KeyRecord> {
        self.named(id)
            .filter(|entry| !entry.key.record().revoked)
            .max_by_key(|entry| {
                let record = entry.key.record();
                (!record.superseded, record.expires().is_none())
            })
            .map(|entry| entry.key.record().clone())
    }

    /// Applies `update` to the record of the key with this digest; returns whether there was
    /// one.
    pub(super) fn update_key(
        &mut self,
        digest: &KeyDigest,
        update: impl FnOnce(&mut KeyRecord),
    ) -> bool {
        let digest = Words::of(digest);
        let word = digest.table_hash();
        self.by_digest.change(word, |entries| {
            let Some(entry) = entries.iter_mut().find(|entry| entry.digest.ct_eq(&digest)) else {
                return false;
            };
            let mut record = entry.key.record().clone();
            update(&mut record);
            entry.key = VerifiedKey::from_record(record);
            true
        })
    }

    /// Checks the format of a key already checked for length and shape, hashes it, looks it up
    /// and checks that it may be used now.
    pub(super) fn lookup(&self, key: &[u8]) -> Result<VerifiedKey, KeyError> {
        if let Some(format) = &self.format
            && !format.is_well_formed(key)
        {
            return Err(KeyError::Malformed);
        }
        let entry = self.find(&super::digest(key)).ok_or(KeyError::Unknown)?;
        valid_now(&entry.key)?;
        Ok(entry.key.clone())
    }

    pub(crate) fn find(&self, digest: &KeyDigest) -> Option<&Entry> {
        let digest = Words::of(digest);
        // The group is searched by the digest's first word, as any hash table probes by its
        // hash; the candidate that matches it is compared whole in constant time, so the lookup
        // reveals nothing about how close a wrong key's digest came to a stored one beyond
        // sharing 64 bits, which no one can aim for.
        let word = digest.table_hash();
        self.by_digest
            .group(word)
            .iter()
            .filter(|entry| entry.digest.table_hash() == word)
            .find(|entry| entry.digest.ct_eq(&digest))
    }

    /// Removes the key with this digest, if there is one; returns whether there was.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn remove(&mut self, digest: &KeyDigest) -> bool {
        let digest = Words::of(digest);
        let word = digest.table_hash();
        let removed = self.by_digest.change(word, |entries| {
            let at = entries
                .iter()
                .position(|entry| entry.digest.ct_eq(&digest))?;
            Some(entries.remove(at))
        });
        let Some(removed) = removed else {
            return false;
        };
        self.len -= 1;
        // The id keeps the word while another of its keys shares it.
        let id = removed.key.id();
        let still_named = self
            .by_digest
            .group(word)
            .iter()
            .any(|entry| entry.digest.table_hash() == word && entry.key.id() == id);
        if !still_named {
            self.by_id
                .change(id_hash(id), |words| words.retain(|&other| other != word));
        }
        true
    }

    /// Every key, in no particular order.
    /// The ids of the keys counted under `name`: the id itself when a key has it (and no
    /// other identity), and every id whose keys have the identity `name`. An id is found at
    /// once; an identity is looked for through every key, which only a write-back does.
    pub(super) fn ids_counted_as(&self, name: &str) -> Vec<Box<str>> {
        let direct = self
            .named(name)
            .any(|entry| entry.key.record().identity.is_none());
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

    pub(super) fn keys(&self) -> impl Iterator<Item = VerifiedKey> {
        self.by_digest.values().into_iter().map(|entry| entry.key)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
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
