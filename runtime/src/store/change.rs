//! One change of a live store, as a records file is edited to hold it: the live store makes
//! them, the records file writes them.

use std::time::SystemTime;

use super::KeyDigest;
use crate::key::KeyRecord;

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
    /// The key with this digest revoked.
    RevokeKey { digest: KeyDigest },
    /// The record of the key with this digest removed: a finished key forgotten.
    Forget { digest: KeyDigest },
    /// Every key of this id rotated out, expiring at this time at the latest.
    Supersede { id: Box<str>, at: SystemTime },
    /// The key with this digest rotated out, expiring at this time at the latest.
    SupersedeKey { digest: KeyDigest, at: SystemTime },
    /// Every key of this id disabled, or enabled again.
    Disable { id: Box<str>, disabled: bool },
    /// Every key of this id last used at `at`, unless its record says later.
    LastUsed { id: Box<str>, at: SystemTime },
    /// Every key of this id holding these metadata fields, and no others.
    Metadata {
        id: Box<str>,
        metadata: std::collections::BTreeMap<String, String>,
    },
    /// Every key of this id holding these scopes.
    Scopes { id: Box<str>, scopes: Vec<Box<str>> },
    /// Every key of this id held to these rate limits (none: no limit).
    RateLimits {
        id: Box<str>,
        limits: Vec<crate::RateLimit>,
    },
    /// Every key of this id holding `remaining` credits as of `at` (and, when `refill` is
    /// `Some`, refilled as it says).
    Credits {
        id: Box<str>,
        remaining: u64,
        refill: Option<Option<crate::Refill>>,
        at: SystemTime,
    },
}

#[cfg_attr(not(feature = "file"), allow(dead_code))]
impl FileEdit {
    /// Whether the edit can be spliced into the file's text: one that removes a line (a
    /// refill taken away) is made through a full parse.
    pub(crate) fn spliceable(&self) -> bool {
        !matches!(
            self,
            Self::Credits {
                refill: Some(_),
                ..
            } | Self::RateLimits { .. }
                | Self::Scopes { .. }
                | Self::Metadata { .. }
                | Self::Forget { .. }
        )
    }
}
