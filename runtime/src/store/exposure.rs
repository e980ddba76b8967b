//! One answer to a key seen in public, however it was found: seen over plain HTTP by the guard
//! (a store with an [`HttpsPolicy`](crate::HttpsPolicy)), or reported by GitHub's secret
//! scanning ([`secret_scanning`](crate#features), feature `secret-scanning`). Both feed the
//! same `key_exposed` audit event and the same [`Exposure`]: give one to the store and to the
//! scanning endpoint.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::KeyDigest;
use super::{ManageError, ManagedKeys};

/// What is done with an exposed key of the store.
///
/// ```
/// use std::time::Duration;
/// use axum_api_key::exposure::{Exposure, LeakPolicy};
///
/// // The owner's service keeps working an hour while the successor is put in place.
/// let exposure = Exposure::new(LeakPolicy::Rotate { grace: Duration::from_secs(3600) });
/// assert_eq!(exposure.policy(), LeakPolicy::Rotate { grace: Duration::from_secs(3600) });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LeakPolicy {
    /// The leaked key is revoked at once, disabled or expired ones too; the other keys of its
    /// id are untouched.
    #[default]
    Revoke,
    /// The leaked key is rotated: a successor is made (handed to the hook, which tells the
    /// owner), and the leaked key keeps working for `grace`, so that the owner's service does
    /// not stop before the new key is in place.
    Rotate {
        /// How long the leaked key keeps working.
        grace: Duration,
    },
    /// Nothing is changed: the hook and the audit log tell the owner.
    Notify,
}

/// An exposed key, as the hook is told of it.
#[derive(Clone)]
#[non_exhaustive]
pub struct Leak {
    /// The id of the leaked key.
    pub key_id: String,
    /// How it was found: `secret_scanning` or `plain_http`.
    pub found: &'static str,
    /// Where it was found (the URL GitHub gives, or the route it was sent to), if known.
    pub url: Option<String>,
    /// Where it was found (`content`, `commit`, `issue_description`, …), if given.
    pub source: Option<String>,
    /// What was done with it: `revoked`, `rotated`, `notified`, or `already_refused` when it
    /// was revoked before (a report repeated).
    pub action: &'static str,
    /// The successor made by [`LeakPolicy::Rotate`]: the only place it is given, so the hook
    /// can hand it to the owner.
    pub new_key: Option<String>,
}

impl fmt::Debug for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leak")
            .field("key_id", &self.key_id)
            .field("found", &self.found)
            .field("url", &self.url)
            .field("source", &self.source)
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

/// The hook told of each exposed key.
type Hook = Arc<dyn Fn(&Leak) + Send + Sync>;

/// What a store does with a key seen in public: a [`LeakPolicy`] and a hook told of each
/// (the owner to tell). Cheap to clone; give the same one to the store
/// ([`ApiKeys::with_exposure`](crate::ApiKeys::with_exposure)) and to the scanning endpoint,
/// so that a key sent over plain HTTP and a key GitHub found are answered alike. (`PgKeys`
/// requires no HTTPS, so only reports reach its keys.)
///
/// ```
/// use std::time::Duration;
/// use axum_api_key::exposure::{Exposure, LeakPolicy};
///
/// let exposure = Exposure::new(LeakPolicy::Rotate { grace: Duration::from_secs(3600) })
///     .on_leak(|leak| eprintln!("tell the owner of {} (found by {})", leak.key_id, leak.found));
/// ```
#[derive(Clone, Default)]
pub struct Exposure {
    policy: LeakPolicy,
    hook: Option<Hook>,
}

impl fmt::Debug for Exposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exposure")
            .field("policy", &self.policy)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Exposure {
    /// `policy`, and no hook.
    pub fn new(policy: LeakPolicy) -> Self {
        Self { policy, hook: None }
    }

    /// Calls `hook` for each exposed key, after the policy acted. It runs within the request:
    /// hand long work to a task.
    pub fn on_leak(mut self, hook: impl Fn(&Leak) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// The policy.
    pub fn policy(&self) -> LeakPolicy {
        self.policy
    }

    #[cfg(feature = "secret-scanning")]
    pub(crate) fn set_policy(&mut self, policy: LeakPolicy) {
        self.policy = policy;
    }
}

/// Where an exposed key was found, for the event and the hook.
pub(crate) struct Found<'a> {
    pub(crate) how: &'static str,
    pub(crate) url: Option<&'a str>,
    pub(crate) source: Option<&'a str>,
}

/// Acts on the exposed key with `digest` (of id `key_id`; `revoked` when it is revoked
/// already): the policy, a `key_exposed` audit event (`WARN`), the metric, the hook.
pub(crate) async fn act<S: ManagedKeys>(
    exposure: &Exposure,
    store: &S,
    digest: &KeyDigest,
    key_id: String,
    revoked: bool,
    found: Found<'_>,
) -> Result<(), ManageError> {
    let (action, new_key) = match exposure.policy {
        // Revoked before: a report repeated changes nothing more. (A disabled or expired key
        // is revoked still: a suspension can be lifted, a revocation cannot.)
        _ if revoked => ("already_refused", None),
        LeakPolicy::Revoke => {
            store.revoke_presented(digest).await?;
            ("revoked", None)
        }
        LeakPolicy::Rotate { grace } => match store.rotate_presented(digest, grace).await {
            Ok(rotation) => ("rotated", Some(rotation.into_key())),
            // A key that cannot rotate (disabled, expired, rotated out already) is revoked:
            // no one relies on it working through a grace.
            Err(ManageError::NotLive | ManageError::Superseded) => {
                store.revoke_presented(digest).await?;
                ("revoked", None)
            }
            Err(error) => return Err(error),
        },
        LeakPolicy::Notify => ("notified", None),
    };
    crate::usage::exposed_id(&key_id);
    tracing::warn!(
        target: "axum_api_key::audit",
        outcome = action,
        reason = "key_exposed",
        found = found.how,
        key_id = key_id.as_str(),
        url = found.url,
        source = found.source,
        "an API key was exposed in public"
    );
    if let Some(hook) = &exposure.hook {
        hook(&Leak {
            key_id,
            found: found.how,
            url: found.url.map(str::to_owned),
            source: found.source.map(str::to_owned),
            action,
            new_key,
        });
    }
    Ok(())
}
