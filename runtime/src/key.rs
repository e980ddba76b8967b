//! [`VerifiedKey`]: what a handler learns about the key that let the request in.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::extract::Anonymous;
use crate::rejection::ApiKeyRejection;

/// The key that a request presented and the guard accepted: its id and scopes, never the key
/// itself.
///
/// A handler under `#[api_key]` takes it as an argument, in any position, and reads it without a
/// second verification: the guard stores it in the request's extensions after checking the key.
///
/// ```
/// use axum_api_key::{api_key, VerifiedKey};
///
/// #[api_key]
/// async fn whoami(key: VerifiedKey) -> String {
///     format!("you are {} with scopes {:?}", key.id(), key.scopes().collect::<Vec<_>>())
/// }
/// ```
///
/// Taken on a route with no guard in front of it, it refuses the request with a 500 and logs
/// the mistake: a handler that asks who the caller is must never run without knowing. Where
/// the guard is `optional`, take `Option<VerifiedKey>`: `None` when the request had no key. (A
/// `VerifiedKey` behind an optional guard refuses a request without a key as the guard would
/// refuse it were the key required.)
///
/// A custom [`KeyStore`](crate::KeyStore) builds one for each key it accepts:
///
/// ```
/// let key = axum_api_key::VerifiedKey::new("partner-a").with_scopes(["orders:read"]);
/// assert!(key.has_scope("orders:read"));
/// assert_eq!(format!("{key:?}"), r#"VerifiedKey { id: "partner-a", scopes: ["orders:read"] }"#);
/// ```
#[derive(Clone)]
pub struct VerifiedKey {
    record: Arc<KeyRecord>,
}

/// Everything the store knows about a key but its digest.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyRecord {
    pub(crate) id: Box<str>,
    pub(crate) scopes: Box<[Box<str>]>,
    pub(crate) not_before: Option<SystemTime>,
    pub(crate) expires: Option<SystemTime>,
    pub(crate) revoked: bool,
    pub(crate) metadata: BTreeMap<String, String>,
}

impl VerifiedKey {
    /// A verified key with this id and no scopes.
    pub fn new(id: impl Into<Box<str>>) -> Self {
        Self::from_record(KeyRecord {
            id: id.into(),
            ..KeyRecord::default()
        })
    }

    pub(crate) fn from_record(record: KeyRecord) -> Self {
        Self {
            record: Arc::new(record),
        }
    }

    pub(crate) fn record(&self) -> &KeyRecord {
        &self.record
    }

    /// The same key, holding these scopes instead of its own.
    pub fn with_scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        Self::from_record(KeyRecord {
            scopes,
            ..KeyRecord::clone(&self.record)
        })
    }

    /// The id the key was configured under, e.g. `partner-a`: safe to log and to show.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The scopes the key holds, in the order they were configured.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.record.scopes.iter().map(AsRef::as_ref)
    }

    /// Whether the key holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.record.scopes.iter().any(|held| **held == *scope)
    }

    /// When the key stops being accepted, if it expires.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.record.expires
    }

    /// A free metadata field of the key's record, such as its owner.
    pub fn metadata(&self, name: &str) -> Option<&str> {
        self.record.metadata.get(name).map(String::as_str)
    }
}

impl fmt::Debug for VerifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedKey")
            .field("id", &self.id())
            .field("scopes", &self.record.scopes)
            .finish()
    }
}

impl PartialEq for VerifiedKey {
    fn eq(&self, other: &Self) -> bool {
        self.record == other.record
    }
}

impl Eq for VerifiedKey {}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedKey {
    type Rejection = ApiKeyRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(key) = parts.extensions.get::<VerifiedKey>() {
            return Ok(key.clone());
        }
        // An optional guard let the request in without a key, and the handler wants one under a
        // name the attribute could not check: the request had no key, so it is refused as the
        // guard refuses a missing key.
        match parts.extensions.get::<Anonymous>() {
            Some(anonymous) => Err(anonymous.refuse(parts)),
            None => {
                tracing::error!(
                    target: "axum_api_key::audit",
                    method = %parts.method,
                    path = parts.uri.path(),
                    "a handler takes `VerifiedKey` but no API-key guard accepted a key before \
                     it; put `#[api_key]` on the handler, or take `Option<VerifiedKey>` where \
                     the key is optional"
                );
                Err(ApiKeyRejection::not_protected().for_request(parts))
            }
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedKey {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<VerifiedKey>().cloned())
    }
}
