//! Keys changed at their holder's request: [`ManagedKeys`], what [`self_service`] and leak
//! handling ask of a store, and [`ManageError`], how a change is refused.
//!
//! [`self_service`]: crate::self_service()

use std::fmt;
use std::future::Future;
use std::time::Duration;

use super::{ApiKeys, KeyDigest, KeyStore, Rotation};
use crate::error::{ConfigError, ConfigErrorKind};

/// A store whose keys can be rotated and revoked through [`self_service`](crate::self_service()): [`ApiKeys`] (its
/// records file, if it has one, written through) and `PgKeys` (feature `postgres`).
///
/// Both calls act on the key the request presented, named by its digest, never on its id:
/// a key holder changes its own key and no other.
pub trait ManagedKeys: KeyStore + Clone {
    /// Issues a successor to the key whose digest is `presented`: same scopes, metadata,
    /// limit and not-before time, an expiry no later than the presented key's, which keeps
    /// working for `min(grace, its remaining life)`. Refused when the presented key is not
    /// live ([`ManageError::NotLive`]) or was rotated already ([`ManageError::Superseded`]),
    /// or when its id has [`MAX_KEYS_IN_GRACE`](crate::MAX_KEYS_IN_GRACE) keys in their grace
    /// period ([`ManageError::TooManyInGrace`]); of two concurrent rotations by one key, exactly
    /// one succeeds. A store of its own should, as these two do, hold the id's finished keys to
    /// the newest [`MAX_FINISHED_KEYS`](crate::MAX_FINISHED_KEYS), so that rotating and
    /// revoking over and over cannot grow it without end.
    fn rotate_presented(
        &self,
        presented: &KeyDigest,
        grace: Duration,
    ) -> impl Future<Output = Result<Rotation, ManageError>> + Send;

    /// Revokes the key whose digest is `presented`, and no other key of its id.
    fn revoke_presented(
        &self,
        presented: &KeyDigest,
    ) -> impl Future<Output = Result<(), ManageError>> + Send;
}

/// Why a key could not be rotated or revoked.
#[derive(Debug)]
#[non_exhaustive]
pub enum ManageError {
    /// The store has no key format, so it cannot generate a key: answered with 409.
    NoFormat,
    /// The key was rotated already (by its holder or by an operator): answered with 409. Only
    /// its successor can rotate.
    Superseded,
    /// The key is revoked, expired, not valid yet, or gone from the store: answered with 403.
    NotLive,
    /// The key's id has [`MAX_KEYS_IN_GRACE`](crate::MAX_KEYS_IN_GRACE) keys rotated out and
    /// still working: answered with 429. The key can rotate again once one of them ends or is
    /// revoked.
    TooManyInGrace,
    /// The store failed (its file, its database): answered with 503; the cause is logged, never
    /// sent.
    Failed(Box<dyn std::error::Error + Send + Sync>),
    /// No key has the id (admin API): answered with 404.
    UnknownId,
    /// The store refused the change as described (admin API: an id taken, a plan it cannot
    /// hold): answered with 422 and the reason, which names no key.
    Invalid(String),
}

impl fmt::Display for ManageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFormat => f.write_str("the key store has no key format to generate keys in"),
            Self::Superseded => f.write_str("the key was rotated already"),
            Self::NotLive => f.write_str("the key is revoked, expired, not valid yet or gone"),
            Self::TooManyInGrace => {
                f.write_str("the id has as many rotated keys in their grace period as it may")
            }
            Self::Failed(error) => write!(f, "the key store failed: {error}"),
            Self::UnknownId => f.write_str("no key has this id"),
            Self::Invalid(why) => write!(f, "the change was refused: {why}"),
        }
    }
}

impl std::error::Error for ManageError {}

impl From<ConfigError> for ManageError {
    fn from(error: ConfigError) -> Self {
        match error.kind() {
            ConfigErrorKind::NoFormat => Self::NoFormat,
            ConfigErrorKind::Superseded => Self::Superseded,
            ConfigErrorKind::KeyNotLive | ConfigErrorKind::UnknownKey => Self::NotLive,
            ConfigErrorKind::UnknownId => Self::UnknownId,
            ConfigErrorKind::TooManyInGrace => Self::TooManyInGrace,
            ConfigErrorKind::DuplicateId
            | ConfigErrorKind::DuplicateKey
            | ConfigErrorKind::InvalidId
            | ConfigErrorKind::EmptyId
            | ConfigErrorKind::InvalidScope
            | ConfigErrorKind::NotOfFormat
            | ConfigErrorKind::BadRateLimit
            | ConfigErrorKind::BadRefill
            | ConfigErrorKind::BadNetwork
            | ConfigErrorKind::BadTime => Self::Invalid(error.to_string()),
            _ => Self::Failed(error.into()),
        }
    }
}

impl ManagedKeys for ApiKeys {
    // A change blocks while it writes the records file: it runs off the async workers.
    async fn rotate_presented(
        &self,
        presented: &KeyDigest,
        grace: Duration,
    ) -> Result<Rotation, ManageError> {
        let (keys, presented) = (self.clone(), *presented);
        let rotated = tokio::task::spawn_blocking(move || keys.rotate_presented(&presented, grace))
            .await
            .map_err(|error| ManageError::Failed(error.into()))?;
        Ok(rotated?)
    }

    async fn revoke_presented(&self, presented: &KeyDigest) -> Result<(), ManageError> {
        let (keys, presented) = (self.clone(), *presented);
        let revoked = tokio::task::spawn_blocking(move || keys.revoke_presented(&presented))
            .await
            .map_err(|error| ManageError::Failed(error.into()))?;
        Ok(revoked?)
    }
}
