//! [`VerifiedKey`]: what a handler learns about the key that let the request in.

use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::rejection::ApiKeyRejection;

/// The key that a request presented and the guard accepted: its id, never the key itself.
///
/// A handler under `#[api_key]` takes it as an argument, in any position, and reads it without a
/// second verification: the guard stores it in the request's extensions after checking the key.
///
/// ```
/// use axum_api_key::{api_key, VerifiedKey};
///
/// #[api_key]
/// async fn whoami(key: VerifiedKey) -> String {
///     format!("you are {}", key.id())
/// }
/// ```
///
/// Taken on a route with no guard in front of it, it refuses the request with a 500 and logs
/// the mistake: a handler that asks who the caller is must never run without knowing. Take
/// `Option<VerifiedKey>` where the guard is optional.
#[derive(Clone)]
pub struct VerifiedKey {
    record: Arc<KeyRecord>,
}

struct KeyRecord {
    id: Box<str>,
}

impl VerifiedKey {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            record: Arc::new(KeyRecord { id: id.into() }),
        }
    }

    /// The id the key was configured under, e.g. `partner-a`: safe to log and to show.
    pub fn id(&self) -> &str {
        &self.record.id
    }
}

impl fmt::Debug for VerifiedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedKey")
            .field("id", &self.id())
            .finish()
    }
}

impl PartialEq for VerifiedKey {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for VerifiedKey {}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedKey {
    type Rejection = ApiKeyRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<VerifiedKey>() {
            Some(key) => Ok(key.clone()),
            None => {
                tracing::error!(
                    target: "axum_api_key::audit",
                    method = %parts.method,
                    path = parts.uri.path(),
                    "a handler takes `VerifiedKey` but no API-key guard ran before it; put \
                     `#[api_key]` on the handler, or take `Option<VerifiedKey>`"
                );
                Err(ApiKeyRejection::not_protected())
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
