//! Signed webhooks (feature `webhooks`): [`#[webhook]`](macro@crate::webhook) verifies Standard
//! Webhooks, GitHub and Stripe signatures before the handler runs, and [`sign`] makes them.
//!
//! - `mod.rs`: schemes, configuration, secrets, the signer;
//! - `verify.rs`: reading the signature headers and checking a body against them;
//! - `replay.rs`: [`ReplayGuard`], ids already seen, in process or shared;
//! - `extract.rs`: the two extractors `#[webhook]` puts in a handler, and the refusals.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{ConfigError, ConfigErrorKind};

mod extract;
mod replay;
mod verify;

#[doc(hidden)]
pub use extract::GuardedSigned;
pub use extract::{Delivery, Signed, WebhookGuard, WebhookProblem, WebhookRejection};
pub use replay::{GuardFuture, ReplayGuard, SeenIds, Sighting};

/// Which signature a sender puts on its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// The Standard Webhooks specification: `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature` (`v1,<base64>`, several separated by spaces), HMAC-SHA256 of
    /// `id.timestamp.body` keyed with the base64 after `whsec_`.
    Standard,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body keyed with the
    /// secret's text. GitHub signs no time: a captured request can be replayed.
    GitHub,
    /// Stripe: `Stripe-Signature: t=<timestamp>,v1=<hex>`, HMAC-SHA256 of `timestamp.body` keyed
    /// with the secret's text (`whsec_…` as it is).
    Stripe,
}

impl Scheme {
    /// The scheme's name in audit events: `standard`, `github` or `stripe`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::GitHub => "github",
            Self::Stripe => "stripe",
        }
    }
}

/// How a webhook route checks its requests: the scheme, how old a timestamp may be, and how
/// large a body may be before any MAC is computed. `#[webhook(...)]` builds one per handler.
#[derive(Debug, Clone, Copy)]
pub struct WebhookConfig {
    scheme: Scheme,
    tolerance: Duration,
    max_body: usize,
}

impl WebhookConfig {
    /// Five minutes of tolerance either way, bodies of 1 MiB at most.
    pub const fn new(scheme: Scheme) -> Self {
        Self {
            scheme,
            tolerance: Duration::from_secs(300),
            max_body: 1 << 20,
        }
    }

    /// Refuses a timestamp further than `tolerance` from now, either way.
    pub const fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Refuses a body over `bytes` with 413, before any MAC.
    pub const fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The timestamp tolerance.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// The largest body accepted.
    pub fn max_body(&self) -> usize {
        self.max_body
    }
}

/// A type naming a [`WebhookConfig`]: `#[webhook(...)]` generates one per handler.
pub trait WebhookConfigType: 'static {
    /// The route's configuration.
    const CONFIG: WebhookConfig;
}

/// Where a webhook route takes its secrets from: the router state, through `FromRef`, like key
/// stores. [`WebhookSecrets`] is one; name another with `#[webhook(secrets = MySecrets)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a source of webhook secrets",
    label = "named as the secrets here",
    note = "`secrets = T` names a type in the router state that implements \
            `axum_api_key::webhook::SecretSource` (`fn webhook_secrets(&self) -> &WebhookSecrets`), \
            such as `WebhookSecrets` (the default); secrets themselves are never written in code"
)]
pub trait SecretSource: Send + Sync + 'static {
    /// The secrets a signature may be made with.
    fn webhook_secrets(&self) -> &WebhookSecrets;
}

/// The secrets webhook senders sign with, several at once so that a secret can be rotated
/// without refusing traffic: a signature made with any of them is accepted. Never in code:
/// [`from_env`](Self::from_env). Cheap to clone; `Debug` shows only how many there are.
///
/// ```
/// use axum_api_key::webhook::WebhookSecrets;
///
/// # unsafe { std::env::set_var("WEBHOOK_SECRETS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") };
/// let secrets = WebhookSecrets::from_env("WEBHOOK_SECRETS")?; // comma-separated
/// assert_eq!(format!("{secrets:?}"), "WebhookSecrets { len: 1, .. }");
/// # Ok::<(), axum_api_key::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct WebhookSecrets {
    inner: Arc<Secrets>,
}

struct Secrets {
    secrets: Vec<Secret>,
    replay: Arc<dyn ReplayGuard>,
    /// How long the body of a request may take to arrive.
    read_timeout: std::time::Duration,
}

/// How long a webhook's body may take to arrive by default: a sender that stalls (or a body
/// shorter than its `Content-Length`) is answered 408 rather than held open.
pub const DEFAULT_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One secret, as each scheme keys its MAC with it: the HMAC state after the key, computed
/// once, so that a request pays for its body alone.
#[derive(Clone)]
pub(crate) struct Secret {
    /// Keyed with the secret's text: GitHub and Stripe key with it as it is.
    pub(crate) text: Hmac<Sha256>,
    /// Keyed with the bytes after `whsec_`, base64-decoded: Standard Webhooks keys with them.
    pub(crate) standard: Option<Hmac<Sha256>>,
}

impl Secret {
    fn new(text: &str) -> Self {
        let keyed = |key: &[u8]| {
            <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"))
        };
        Self {
            text: keyed(text.as_bytes()),
            // As the reference libraries read it: the base64 after `whsec_`, or the whole text
            // when it has no prefix.
            standard: BASE64
                .decode(text.strip_prefix("whsec_").unwrap_or(text))
                .ok()
                .filter(|key| !key.is_empty())
                .map(|key| keyed(&key)),
        }
    }
}

impl Default for WebhookSecrets {
    fn default() -> Self {
        Self {
            inner: Arc::new(Secrets {
                secrets: Vec::new(),
                replay: Arc::new(SeenIds::default()),
                read_timeout: DEFAULT_READ_TIMEOUT,
            }),
        }
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("len", &self.inner.secrets.len())
            .finish_non_exhaustive()
    }
}

impl WebhookSecrets {
    /// No secret: every signature is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Secrets from the environment variable `var`, separated by commas (spaces around them
    /// are ignored): `whsec_…` for Standard Webhooks, the text GitHub or Stripe shows.
    pub fn from_env(var: &str) -> Result<Self, ConfigError> {
        let text = match std::env::var(var) {
            Ok(text) => text,
            Err(std::env::VarError::NotPresent) => {
                return Err(ConfigError::new(ConfigErrorKind::NotSet).in_origin(var));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ConfigError::new(ConfigErrorKind::NotUnicode).in_origin(var));
            }
        };
        let mut secrets = Self::new();
        for (at, secret) in text.split(',').map(str::trim).enumerate() {
            secrets = secrets.try_with_secret(secret).map_err(|mut error| {
                error.place.entry = Some(at + 1);
                error.in_origin(var)
            })?;
        }
        if secrets.inner.secrets.is_empty() {
            return Err(ConfigError::new(ConfigErrorKind::NoKeys).in_origin(var));
        }
        Ok(secrets)
    }

    /// Adds a secret.
    ///
    /// # Panics
    ///
    /// When [`try_with_secret`](Self::try_with_secret) would return an error.
    #[track_caller]
    pub fn with_secret(self, secret: impl AsRef<str>) -> Self {
        match self.try_with_secret(secret) {
            Ok(secrets) => secrets,
            Err(error) => panic!("{error}"),
        }
    }

    /// Adds a secret, or says why it cannot: it is empty. A secret whose base64 (after `whsec_`,
    /// or the whole text without that prefix, as the Standard Webhooks and Svix libraries take
    /// it) decodes keys Standard Webhooks signatures; any secret keys GitHub and Stripe
    /// signatures with its text (Stripe's `whsec_…` secrets are not always base64).
    pub fn try_with_secret(self, secret: impl AsRef<str>) -> Result<Self, ConfigError> {
        let text = secret.as_ref();
        if text.is_empty() {
            return Err(ConfigError::new(ConfigErrorKind::EmptyKey));
        }
        let mut secrets = self.inner.secrets.clone();
        secrets.push(Secret::new(text));
        Ok(Self {
            inner: Arc::new(Secrets {
                secrets,
                replay: Arc::clone(&self.inner.replay),
                read_timeout: self.inner.read_timeout,
            }),
        })
    }

    /// How long a request's body may take to arrive before it is answered 408
    /// (`body_timeout`); default [`DEFAULT_READ_TIMEOUT`], 10 seconds. The timeout is a Tokio
    /// timer: serve webhook routes on a runtime with time enabled, as `#[tokio::main]` and
    /// `Runtime::new()` build it (a runtime built without `enable_time` panics there).
    pub fn with_read_timeout(self, timeout: std::time::Duration) -> Self {
        Self {
            inner: Arc::new(Secrets {
                secrets: self.inner.secrets.clone(),
                replay: Arc::clone(&self.inner.replay),
                read_timeout: timeout,
            }),
        }
    }

    pub(crate) fn read_timeout(&self) -> std::time::Duration {
        self.inner.read_timeout
    }

    /// Records message ids in `guard` rather than in this process alone: a Redis-backed guard
    /// lets every instance refuse a message another one accepted.
    pub fn with_replay_guard(self, guard: impl ReplayGuard) -> Self {
        Self {
            inner: Arc::new(Secrets {
                secrets: self.inner.secrets.clone(),
                replay: Arc::new(guard),
                read_timeout: self.inner.read_timeout,
            }),
        }
    }

    /// How many secrets there are.
    pub fn len(&self) -> usize {
        self.inner.secrets.len()
    }

    /// Whether there is none, and every signature is refused.
    pub fn is_empty(&self) -> bool {
        self.inner.secrets.is_empty()
    }

    pub(crate) fn secrets(&self) -> &[Secret] {
        &self.inner.secrets
    }

    pub(crate) fn replay(&self) -> &Arc<dyn ReplayGuard> {
        &self.inner.replay
    }
}

impl SecretSource for WebhookSecrets {
    fn webhook_secrets(&self) -> &WebhookSecrets {
        self
    }
}

/// Why [`sign`] could not sign.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// A Standard Webhooks secret must be `whsec_` and base64.
    NotAStandardSecret,
    /// A Standard Webhooks message id is visible ASCII, without `.` or `,`.
    BadId,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAStandardSecret => "a Standard Webhooks secret is `whsec_` followed by base64",
            Self::BadId => "a message id is visible ASCII without `.` or `,`",
        })
    }
}

impl std::error::Error for SignError {}

/// The headers that sign `body` as `scheme` does, for apps that send webhooks (and tests that
/// play the sender). `id` is the message id (Standard Webhooks only) and `timestamp` the Unix
/// time in seconds (not used by GitHub).
///
/// ```
/// use axum_api_key::webhook::{sign, Scheme};
///
/// let headers = sign(Scheme::GitHub, "It's a Secret to Everybody", "", 0, b"Hello, World!")?;
/// assert_eq!(headers, [("x-hub-signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".to_owned())]);
/// # Ok::<(), axum_api_key::webhook::SignError>(())
/// ```
pub fn sign(
    scheme: Scheme,
    secret: &str,
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, SignError> {
    Ok(match scheme {
        Scheme::Standard => {
            let key = secret
                .strip_prefix("whsec_")
                .and_then(|encoded| BASE64.decode(encoded).ok())
                .ok_or(SignError::NotAStandardSecret)?;
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'.' && b != b',')
            {
                return Err(SignError::BadId);
            }
            let mac = mac(
                &key,
                &[
                    id.as_bytes(),
                    b".",
                    timestamp.to_string().as_bytes(),
                    b".",
                    body,
                ],
            );
            vec![
                ("webhook-id", id.to_owned()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", format!("v1,{}", BASE64.encode(mac))),
            ]
        }
        Scheme::GitHub => {
            let mac = mac(secret.as_bytes(), &[body]);
            vec![(
                "x-hub-signature-256",
                format!("sha256={}", crate::hex::encode(&mac)),
            )]
        }
        Scheme::Stripe => {
            let mac = mac(
                secret.as_bytes(),
                &[timestamp.to_string().as_bytes(), b".", body],
            );
            vec![(
                "stripe-signature",
                format!("t={timestamp},v1={}", crate::hex::encode(&mac)),
            )]
        }
    })
}

/// A new random Standard Webhooks secret, `whsec_` and 24 random bytes in base64: for
/// apps that send webhooks, or to try one. The OS's random source makes it.
///
/// ```
/// let secret = axum_api_key::webhook::generate_secret();
/// assert!(secret.starts_with("whsec_") && secret.len() == 38);
/// ```
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .unwrap_or_else(|error| panic!("the OS random source failed: {error}"));
    format!("whsec_{}", BASE64.encode(bytes))
}

/// The check of a request's headers and body as a route configured so makes it, without the
/// replay check: for benchmarks. Not public API.
#[doc(hidden)]
pub fn __verify(
    config: &WebhookConfig,
    headers: &http::HeaderMap,
    secrets: &WebhookSecrets,
    body: &[u8],
) -> bool {
    verify::claimed(config, headers)
        .is_ok_and(|claimed| verify::matching(config, &claimed, secrets, body).is_some())
}

/// HMAC-SHA256 of the parts, in order, keyed with `key`.
pub(crate) fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac_with(&keyed, parts)
}

/// HMAC-SHA256 of the parts, in order, from a keyed state.
pub(crate) fn mac_with(keyed: &Hmac<Sha256>, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = keyed.clone();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_the_standard_webhooks_vector() {
        let headers = sign(
            Scheme::Standard,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(
            headers[2],
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_owned()
            )
        );
    }

    /// GitHub's documented example.
    #[test]
    fn signs_the_github_example() {
        let headers = sign(
            Scheme::GitHub,
            "It's a Secret to Everybody",
            "",
            0,
            b"Hello, World!",
        )
        .unwrap();
        assert_eq!(
            headers[0].1,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn refuses_what_cannot_be_signed() {
        assert_eq!(
            sign(Scheme::Standard, "not-whsec", "id", 1, b"").unwrap_err(),
            SignError::NotAStandardSecret
        );
        assert_eq!(
            sign(Scheme::Standard, "whsec_AAAA", "a.b", 1, b"").unwrap_err(),
            SignError::BadId
        );
        let stripe = WebhookSecrets::new().with_secret("whsec_not*base64");
        assert!(stripe.secrets()[0].standard.is_none());
        let standard = WebhookSecrets::new().with_secret("whsec_AAAA");
        assert!(standard.secrets()[0].standard.is_some());
        assert!(WebhookSecrets::new().try_with_secret("").is_err());
        let secrets = WebhookSecrets::new()
            .with_secret("plain")
            .with_secret("whsec_AAAA");
        assert_eq!(secrets.len(), 2);
        assert!(!format!("{secrets:?}").contains("plain"));
    }
}
