//! The stores an admin manages: what [`AdminKeys`] asks of them, for `ApiKeys` and `PgKeys`.

use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::store::ManageError;
use crate::store::{ApiKeys, Key, ListedKey};
use crate::{IpNetwork, RateLimit, Refill};

/// What an admin creates: everything a key's record holds but its digest, which the store
/// makes from the key it generates.
///
/// ```
/// use axum_api_key::admin::{AdminKeys, NewKey};
/// use axum_api_key::{ApiKeys, KeyFormat};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = ApiKeys::new().with_format(KeyFormat::new("cust")?);
/// let mut new = NewKey::default();
/// new.id = Some("acme".to_owned());
/// new.scopes = vec!["orders:read".to_owned()];
/// let key = keys.create_key(new).await?; // what `POST /keys` does
/// assert_eq!(keys.verify(key.as_bytes())?.id(), "acme");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct NewKey {
    /// The id; a new `key-…` id when `None`.
    pub id: Option<String>,
    /// The scopes the key holds.
    pub scopes: Vec<String>,
    /// When the key stops working.
    pub expires_at: Option<SystemTime>,
    /// Its rate limits, one per window.
    pub rate_limits: Vec<RateLimit>,
    /// Its credits and their refill.
    pub credits: Option<(u64, Option<Refill>)>,
    /// The identity it shares limits and credits under.
    pub identity: Option<String>,
    /// The networks it may be used from; anywhere when empty.
    pub allowed_ips: Vec<IpNetwork>,
}

/// A store whose keys an admin manages through [`router`](super::router): [`ApiKeys`] (its records file, if
/// it has one, written through) and `PgKeys` (feature `postgres`). Every call names keys by id
/// and acts on every key of it, as the command-line tool does.
pub trait AdminKeys: crate::ManagedKeys {
    /// Every key, sorted by id: never a key or a digest.
    fn list_keys(&self) -> impl Future<Output = Result<Vec<ListedKey>, ManageError>> + Send;

    /// Makes a key as `new` describes and returns it: the only time it is seen.
    fn create_key(&self, new: NewKey) -> impl Future<Output = Result<String, ManageError>> + Send;

    /// Issues a successor to `id`'s current key, which keeps working for `grace`.
    fn rotate_key(
        &self,
        id: &str,
        grace: Duration,
    ) -> impl Future<Output = Result<String, ManageError>> + Send;

    /// Revokes every key of `id`; how many were live.
    fn revoke_key(&self, id: &str) -> impl Future<Output = Result<u64, ManageError>> + Send;

    /// Disables (or enables again) every key of `id`.
    fn set_disabled(
        &self,
        id: &str,
        disabled: bool,
    ) -> impl Future<Output = Result<u64, ManageError>> + Send;

    /// Replaces the free metadata fields of every key of `id`.
    fn set_key_metadata(
        &self,
        id: &str,
        metadata: std::collections::BTreeMap<String, String>,
    ) -> impl Future<Output = Result<u64, ManageError>> + Send;

    /// Gives every key of `id` exactly `scopes`.
    fn set_key_scopes(
        &self,
        id: &str,
        scopes: Vec<String>,
    ) -> impl Future<Output = Result<u64, ManageError>> + Send;

    /// Holds every key of `id` to `limits` (none: no limit).
    fn set_key_rate_limits(
        &self,
        id: &str,
        limits: Vec<RateLimit>,
    ) -> impl Future<Output = Result<u64, ManageError>> + Send;

    /// Sets the credits of every key of `id` (a top-up), and their refill.
    fn set_key_credits(
        &self,
        id: &str,
        credits: u64,
        refill: Option<Refill>,
    ) -> impl Future<Output = Result<u64, ManageError>> + Send;
}

/// A change to the records file blocks while it writes: it runs off the async workers.
async fn blocking<T: Send + 'static>(
    keys: &ApiKeys,
    change: impl FnOnce(ApiKeys) -> Result<T, crate::ConfigError> + Send + 'static,
) -> Result<T, ManageError> {
    let keys = keys.clone();
    let done = tokio::task::spawn_blocking(move || change(keys))
        .await
        .map_err(|error| ManageError::Failed(error.into()))?;
    done.map_err(ManageError::from)
}

impl AdminKeys for ApiKeys {
    async fn list_keys(&self) -> Result<Vec<ListedKey>, ManageError> {
        Ok(self.list())
    }

    async fn create_key(&self, new: NewKey) -> Result<String, ManageError> {
        let format = self.format().ok_or(ManageError::NoFormat)?;
        let key = format.generate();
        let id = new.id.clone().unwrap_or_else(new_id);
        let mut record = Key::new(id.as_str(), &key).scopes(new.scopes.iter().cloned());
        if let Some(at) = new.expires_at {
            record = record.expires_at(at);
        }
        if !new.rate_limits.is_empty() {
            record = record
                .rate_limits(new.rate_limits.iter().copied())
                .map_err(|error| ManageError::Invalid(error.to_string()))?;
        }
        if let Some((credits, refill)) = new.credits {
            if let Some(refill) = refill {
                record = record.refill(refill);
            }
            record = record.credits(credits);
        }
        if let Some(identity) = &new.identity {
            record = record.identity(identity.as_str());
        }
        if !new.allowed_ips.is_empty() {
            record = record.allowed_ips(new.allowed_ips.iter().copied());
        }
        blocking(self, move |keys| keys.add(record)).await?;
        Ok(key)
    }

    async fn rotate_key(&self, id: &str, grace: Duration) -> Result<String, ManageError> {
        let id = id.to_owned();
        blocking(self, move |keys| keys.rotate(&id, grace)).await
    }

    async fn revoke_key(&self, id: &str) -> Result<u64, ManageError> {
        let id = id.to_owned();
        blocking(self, move |keys| keys.revoke(&id).map(|n| n as u64)).await
    }

    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<u64, ManageError> {
        let id = id.to_owned();
        blocking(self, move |keys| {
            let changed = if disabled {
                keys.disable(&id)
            } else {
                keys.enable(&id)
            };
            changed.map(|n| n as u64)
        })
        .await
    }

    async fn set_key_metadata(
        &self,
        id: &str,
        metadata: std::collections::BTreeMap<String, String>,
    ) -> Result<u64, ManageError> {
        let id = id.to_owned();
        blocking(self, move |keys| {
            keys.set_metadata(&id, metadata).map(|n| n as u64)
        })
        .await
    }

    async fn set_key_scopes(&self, id: &str, scopes: Vec<String>) -> Result<u64, ManageError> {
        let id = id.to_owned();
        blocking(self, move |keys| {
            keys.set_scopes(&id, scopes).map(|n| n as u64)
        })
        .await
    }

    async fn set_key_rate_limits(
        &self,
        id: &str,
        limits: Vec<RateLimit>,
    ) -> Result<u64, ManageError> {
        let id = id.to_owned();
        blocking(self, move |keys| {
            keys.set_rate_limits(&id, &limits).map(|n| n as u64)
        })
        .await
    }

    async fn set_key_credits(
        &self,
        id: &str,
        credits: u64,
        refill: Option<Refill>,
    ) -> Result<u64, ManageError> {
        let id = id.to_owned();
        blocking(self, move |keys| {
            keys.set_credits(&id, credits, refill).map(|n| n as u64)
        })
        .await
    }
}

#[cfg(feature = "postgres")]
impl AdminKeys for crate::PgKeys {
    async fn list_keys(&self) -> Result<Vec<ListedKey>, ManageError> {
        self.list().await.map_err(Into::into)
    }

    async fn create_key(&self, new: NewKey) -> Result<String, ManageError> {
        crate::limit::check_limits(&new.rate_limits)
            .map_err(|error| ManageError::Invalid(error.to_string()))?;
        let id = new.id.clone().unwrap_or_else(new_id);
        let key = self.create(&id, new.scopes.clone(), new.expires_at).await?;
        // The key is not out yet: if its plan or its restrictions cannot be written, it is
        // revoked rather than handed out open.
        let plan = async {
            if !new.allowed_ips.is_empty() {
                self.set_allowed_ips(&id, &new.allowed_ips).await?;
            }
            if !new.rate_limits.is_empty() {
                self.set_rate_limits(&id, &new.rate_limits).await?;
            }
            if let Some((credits, refill)) = new.credits {
                self.set_credits(&id, credits, refill).await?;
            }
            if let Some(identity) = &new.identity {
                self.set_identity(&id, Some(identity)).await?;
            }
            Ok::<_, crate::PgKeysError>(())
        };
        if let Err(error) = plan.await {
            let _ = self.revoke(&id).await;
            return Err(error.into());
        }
        Ok(key)
    }

    async fn rotate_key(&self, id: &str, grace: Duration) -> Result<String, ManageError> {
        self.rotate(id, grace).await.map_err(Into::into)
    }

    async fn revoke_key(&self, id: &str) -> Result<u64, ManageError> {
        self.revoke(id).await.map_err(Into::into)
    }

    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<u64, ManageError> {
        let changed = if disabled {
            self.disable(id).await
        } else {
            self.enable(id).await
        };
        changed.map_err(Into::into)
    }

    async fn set_key_metadata(
        &self,
        id: &str,
        metadata: std::collections::BTreeMap<String, String>,
    ) -> Result<u64, ManageError> {
        self.set_metadata(id, &metadata).await.map_err(Into::into)
    }

    async fn set_key_scopes(&self, id: &str, scopes: Vec<String>) -> Result<u64, ManageError> {
        self.set_scopes(id, scopes).await.map_err(Into::into)
    }

    async fn set_key_rate_limits(
        &self,
        id: &str,
        limits: Vec<RateLimit>,
    ) -> Result<u64, ManageError> {
        self.set_rate_limits(id, &limits).await.map_err(Into::into)
    }

    async fn set_key_credits(
        &self,
        id: &str,
        credits: u64,
        refill: Option<Refill>,
    ) -> Result<u64, ManageError> {
        self.set_credits(id, credits, refill)
            .await
            .map_err(Into::into)
    }
}

/// A new id, `key-` and 16 random hex digits.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 8];
    // A failing system random source leaves zeros: the store refuses the id if it is taken.
    let _ = getrandom::fill(&mut bytes);
    let mut id = String::from("key-");
    for byte in bytes {
        let _ = write!(id, "{byte:02x}");
    }
    id
}
