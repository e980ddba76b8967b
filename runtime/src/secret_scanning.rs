//! [`router`]: the endpoint of GitHub's secret scanning partner program (feature
//! `secret-scanning`). GitHub finds keys of this service committed to public repositories and
//! reports them here within seconds; each one of the store's keys is revoked (or rotated, or
//! only reported) within the request.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;

use crate::exposure::Found;
pub use crate::exposure::{Exposure, Leak, LeakPolicy};
use crate::store::{ApiKeys, KeyDigest};
use crate::store::{ManageError, ManagedKeys};

/// The largest report read: GitHub batches reports, far below this.
pub const MAX_REPORT: usize = 1 << 20;

/// The most tokens one report may hold.
pub const MAX_TOKENS: usize = 1_000;

/// Why a public key could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanningKeyError(String);

impl fmt::Display for ScanningKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScanningKeyError {}

/// The endpoint's settings: the public keys reports are signed with (by their identifier),
/// the [`LeakPolicy`], and a hook told of each leaked key.
///
/// GitHub publishes its keys at `https://api.github.com/meta/public_keys/secret_scanning`
/// (JSON: `public_keys[].key_identifier` and `.key`, PEM);
/// [`with_github_keys`](Self::with_github_keys) reads that document, so a deployment can fetch
/// it with the HTTP client it has and pass it here.
#[derive(Clone)]
pub struct SecretScanning {
    keys: Vec<(String, VerifyingKey)>,
    fetched: Option<Arc<Fetched>>,
    exposure: Exposure,
}

impl Default for SecretScanning {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            fetched: None,
            exposure: Exposure::new(LeakPolicy::Revoke),
        }
    }
}

/// Fetches GitHub's document of public keys: the service's own HTTP client.
type Fetch = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send>>
        + Send
        + Sync,
>;

/// Keys fetched from GitHub's document, kept for a while.
struct Fetched {
    fetch: Fetch,
    ttl: Duration,
    timeout: Duration,
    state: std::sync::Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    keys: Arc<Vec<(String, VerifyingKey)>>,
    fetched_at: Option<Instant>,
    tried_at: Option<Instant>,
}

/// The least time between two fetches: a report naming an identifier no document holds cannot
/// make the service fetch more often than this.
pub const MIN_REFETCH: Duration = Duration::from_secs(60);

impl fmt::Debug for SecretScanning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretScanning")
            .field(
                "keys",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .field("fetched", &self.fetched.is_some())
            .field("exposure", &self.exposure)
            .finish()
    }
}

/// GitHub's document of its public keys.
#[derive(Deserialize)]
struct GithubKeys {
    public_keys: Vec<GithubKey>,
}

#[derive(Deserialize)]
struct GithubKey {
    key_identifier: String,
    key: String,
}

impl SecretScanning {
    /// No key yet, the policy [`LeakPolicy::Revoke`], no hook.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts reports signed with the P-256 public key `pem` (`-----BEGIN PUBLIC KEY-----`)
    /// under `identifier`, the `Github-Public-Key-Identifier` they name.
    pub fn with_key(
        mut self,
        identifier: impl Into<String>,
        pem: &str,
    ) -> Result<Self, ScanningKeyError> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|_| {
            ScanningKeyError(
                "not a P-256 public key in PEM (`-----BEGIN PUBLIC KEY-----`)".to_owned(),
            )
        })?;
        self.keys.push((identifier.into(), key));
        Ok(self)
    }

    /// Trusts every key of GitHub's published document
    /// (`https://api.github.com/meta/public_keys/secret_scanning`), as fetched by the caller.
    pub fn with_github_keys(mut self, document: &str) -> Result<Self, ScanningKeyError> {
        self.keys.extend(github_keys(document)?);
        Ok(self)
    }

    /// Trusts the keys of GitHub's document as `fetch` gets it (a `GET` of
    /// `https://api.github.com/meta/public_keys/secret_scanning` with the service's own HTTP
    /// client), kept for `ttl`, each fetch given at most `timeout`. A report naming a key the
    /// document kept does not hold fetches it again (GitHub rotates its keys), at most once a
    /// [`MIN_REFETCH`]; a fetch that fails or times out keeps the keys fetched before, with a
    /// `WARN`. Nothing is fetched before the first report.
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum_api_key::secret_scanning::SecretScanning;
    ///
    /// let scanning = SecretScanning::new().fetch_github_keys(
    ///     || async {
    ///         // e.g. reqwest::get(URL).await?.text().await
    ///         Ok::<_, std::io::Error>(r#"{"public_keys": []}"#.to_owned())
    ///     },
    ///     Duration::from_secs(3600),
    ///     Duration::from_secs(5),
    /// );
    /// ```
    pub fn fetch_github_keys<F, Fut, E>(
        mut self,
        fetch: F,
        ttl: Duration,
        timeout: Duration,
    ) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String, E>> + Send + 'static,
        E: fmt::Display,
    {
        let fetch: Fetch = Arc::new(move || {
            let fetched = fetch();
            Box::pin(async move { fetched.await.map_err(|error| error.to_string()) })
        });
        self.fetched = Some(Arc::new(Fetched {
            fetch,
            ttl,
            timeout,
            state: std::sync::Mutex::default(),
        }));
        self
    }

    /// What is done with a leaked key of the store ([`LeakPolicy::Revoke`] by default).
    pub fn policy(mut self, policy: LeakPolicy) -> Self {
        self.exposure.set_policy(policy);
        self
    }

    /// Calls `hook` for each leaked key of the store, after the policy acted: tell the owner
    /// here (an e-mail, a ticket). It runs within the request: hand long work to a task.
    pub fn on_leak(mut self, hook: impl Fn(&Leak) + Send + Sync + 'static) -> Self {
        self.exposure = self.exposure.on_leak(hook);
        self
    }

    /// Answers leaks as `exposure` says, policy and hook: give the store the same one
    /// ([`ApiKeys::with_exposure`]), so that a key seen over plain HTTP is answered alike.
    pub fn exposure(mut self, exposure: Exposure) -> Self {
        self.exposure = exposure;
        self
    }
}

/// The keys of GitHub's document.
fn github_keys(document: &str) -> Result<Vec<(String, VerifyingKey)>, ScanningKeyError> {
    let keys: GithubKeys = serde_json::from_str(document).map_err(|_| {
        ScanningKeyError("not GitHub's document of public keys (`public_keys`)".to_owned())
    })?;
    keys.public_keys
        .into_iter()
        .map(|key| {
            let parsed = VerifyingKey::from_public_key_pem(key.key.trim()).map_err(|_| {
                ScanningKeyError(format!(
                    "key `{}` is not a P-256 public key in PEM",
                    key.key_identifier.chars().take(64).collect::<String>()
                ))
            })?;
            Ok((key.key_identifier, parsed))
        })
        .collect()
}

impl Fetched {
    /// The key of `identifier` among the fetched ones, fetching them first when they are stale
    /// or lack it (at most once a [`MIN_REFETCH`]).
    async fn key(&self, identifier: &str) -> Option<VerifyingKey> {
        let find = |keys: &[(String, VerifyingKey)]| {
            keys.iter()
                .find(|(id, _)| id == identifier)
                .map(|(_, key)| *key)
        };
        let (keys, may_fetch) = {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let fresh = state.fetched_at.is_some_and(|at| at.elapsed() < self.ttl);
            let found = find(&state.keys);
            let may_fetch = (!fresh || found.is_none())
                && state.tried_at.is_none_or(|at| at.elapsed() >= MIN_REFETCH);
            if may_fetch {
                // Taken now: the requests meanwhile use what is kept.
                state.tried_at = Some(Instant::now());
            }
            (Arc::clone(&state.keys), may_fetch)
        };
        if !may_fetch {
            return find(&keys);
        }
        match tokio::time::timeout(self.timeout, (self.fetch)()).await {
            Ok(Ok(document)) => match github_keys(&document) {
                Ok(fetched) => {
                    let fetched = Arc::new(fetched);
                    let mut state = self
                        .state
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    state.keys = Arc::clone(&fetched);
                    state.fetched_at = Some(Instant::now());
                    return find(&fetched);
                }
                Err(error) => tracing::warn!(
                    target: "axum_api_key::audit",
                    error = %error,
                    "GitHub's public keys could not be read; the keys fetched before are kept"
                ),
            },
            Ok(Err(error)) => tracing::warn!(
                target: "axum_api_key::audit",
                error = %error,
                "GitHub's public keys could not be fetched; the keys fetched before are kept"
            ),
            Err(_) => tracing::warn!(
                target: "axum_api_key::audit",
                "GitHub's public keys were not fetched within the timeout; the keys fetched \
                 before are kept"
            ),
        }
        find(&keys)
    }
}

/// A store whose leaked keys [`router`] can find and act on: [`ApiKeys`] and `PgKeys`.
pub trait LeakedKeys: ManagedKeys {
    /// The id of the key with this digest, whatever its state, and whether it is revoked
    /// already (`None` for no key of the store).
    fn id_of(&self, digest: &KeyDigest) -> Option<(String, bool)>;

    /// Whether `token` is shaped as the store's keys are (its format's prefix and checksum):
    /// a token that is not is never looked up.
    fn is_ours(&self, token: &str) -> bool;
}

impl LeakedKeys for ApiKeys {
    fn id_of(&self, digest: &KeyDigest) -> Option<(String, bool)> {
        let key = self.find_digest(digest)?;
        Some((key.id().to_owned(), key.record().revoked))
    }

    fn is_ours(&self, token: &str) -> bool {
        self.format()
            .is_some_and(|format| format.is_well_formed(token.as_bytes()))
    }
}

#[cfg(feature = "postgres")]
impl LeakedKeys for crate::PgKeys {
    fn id_of(&self, digest: &KeyDigest) -> Option<(String, bool)> {
        let key = self.find_digest(digest)?;
        Some((key.id().to_owned(), key.record().revoked))
    }

    fn is_ours(&self, token: &str) -> bool {
        self.key_format()
            .is_some_and(|format| format.is_well_formed(token.as_bytes()))
    }
}

/// The endpoint, at `/` of wherever it is nested (GitHub is given the full URL): `POST` a
/// report, signed by GitHub.
///
/// The `Github-Public-Key-Identifier` names one of the trusted keys and
/// `Github-Public-Key-Signature` (base64 of an ASN.1 DER ECDSA signature) must verify over the
/// raw body with it, or the answer is `401` and nothing is read. The body,
/// `[{"token", "type", "url", "source"}]` (at most [`MAX_REPORT`] bytes and [`MAX_TOKENS`]
/// tokens), is answered with one `{"token_hash", "token_type", "label"}` per token:
/// `true_positive` for a key of the store (whatever its state: a report repeated is answered
/// the same, and changes nothing more), `false_positive` for anything else. For each key of the
/// store the policy acts (revoke by default), a `key_exposed` audit event (`WARN`) names the
/// key's id, the URL and the source, and the hook is called. `token_hash` is the SHA-256 of the
/// token in hex; no token is ever logged or echoed.
///
/// ```
/// use axum::Router;
/// use axum_api_key::{ApiKeys, KeyFormat, secret_scanning::{self, LeakPolicy, SecretScanning}};
///
/// let pem = "-----BEGIN PUBLIC KEY-----
/// MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAElJT7PcP49HTysy6RTG7CKGA5Q5cA
/// ymmv00gR1rS7HAL8jxRw7DCHlN4Hd/VtFDimWPPvyIhuxe2sVjSGYxh1Qg==
/// -----END PUBLIC KEY-----";
/// let scanning = SecretScanning::new()
///     .with_key("a1b2c3", pem)? // GitHub's key identifier and key, from its published document
///     .policy(LeakPolicy::Revoke)
///     .on_leak(|leak| eprintln!("tell the owner of {} about {:?}", leak.key_id, leak.url));
/// let keys = ApiKeys::new().with_format(KeyFormat::new("myapp")?);
/// let app: Router = Router::new()
///     .nest("/github/secret-scanning", secret_scanning::router::<ApiKeys, _>(scanning))
///     .with_state(keys);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn router<S, St>(scanning: SecretScanning) -> Router<St>
where
    S: LeakedKeys + FromRef<St>,
    St: Clone + Send + Sync + 'static,
{
    let scanning = Arc::new(scanning);
    Router::new()
        .route(
            "/",
            post(
                move |State(store): State<S>, headers: HeaderMap, body: Bytes| {
                    let scanning = Arc::clone(&scanning);
                    async move { report(&scanning, &store, &headers, &body).await }
                },
            ),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REPORT))
}

/// One token of a report.
#[derive(Deserialize)]
struct Reported {
    token: String,
    #[serde(rename = "type", default)]
    token_type: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

async fn report<S: LeakedKeys>(
    scanning: &SecretScanning,
    store: &S,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if let Err(why) = verify(scanning, headers, body).await {
        tracing::warn!(
            target: "axum_api_key::audit",
            outcome = "refused",
            reason = "bad_report_signature",
            "a secret scanning report was refused: {why}"
        );
        return problem(
            StatusCode::UNAUTHORIZED,
            "report-signature-invalid",
            "Report signature invalid",
            why,
        );
    }
    let reported: Vec<Reported> = match serde_json::from_slice(body) {
        Ok(reported) => reported,
        Err(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "report-unreadable",
                "Report unreadable",
                "A report is a JSON array of {\"token\", \"type\", \"url\", \"source\"}.",
            );
        }
    };
    if reported.len() > MAX_TOKENS {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "report-too-large",
            "Report too large",
            "A report holds at most 1000 tokens.",
        );
    }
    let mut answer = Vec::with_capacity(reported.len());
    for token in &reported {
        let label = match act(scanning, store, token).await {
            Ok(true) => "true_positive",
            Ok(false) => "false_positive",
            Err(error) => {
                // The store could not act: GitHub retries a failed delivery, and no label is
                // given for a key that may still be live.
                tracing::error!(
                    target: "axum_api_key::audit",
                    outcome = "failed",
                    reason = "key_exposed",
                    error = %error,
                    "a leaked key could not be acted on; the report is answered 503 for a retry"
                );
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "report-not-acted-on",
                    "Report not acted on",
                    "The key store could not act on the report right now; send it again.",
                );
            }
        };
        answer.push(Label {
            token_hash: crate::hex::encode(&crate::digest(token.token.as_bytes())),
            token_type: &token.token_type,
            label,
        });
    }
    let Ok(answer) = serde_json::to_vec(&answer) else {
        // Strings only: never refused, and never a panic if it were.
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut response = (StatusCode::OK, answer).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// One reported token's label, as GitHub reads the answer: the token's SHA-256 (never the
/// token), its type as reported, and `true_positive` or `false_positive`.
#[derive(serde::Serialize)]
struct Label<'a> {
    token_hash: String,
    token_type: &'a str,
    label: &'static str,
}

/// The signature check: the identifier names a trusted key, and the signature verifies over
/// the raw body.
async fn verify(
    scanning: &SecretScanning,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), &'static str> {
    let one = |name: &str| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok(),
            _ => None,
        }
    };
    let identifier = one("github-public-key-identifier")
        .ok_or("one Github-Public-Key-Identifier header is required")?;
    let signature = one("github-public-key-signature")
        .ok_or("one Github-Public-Key-Signature header is required")?;
    let known = scanning
        .keys
        .iter()
        .find(|(id, _)| id == identifier)
        .map(|(_, key)| *key);
    let key = match (known, &scanning.fetched) {
        (Some(key), _) => Some(key),
        (None, Some(fetched)) => fetched.key(identifier).await,
        (None, None) => None,
    }
    .ok_or("the report is signed with a key this service does not trust")?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| "the signature is not base64")?;
    let signature =
        DerSignature::try_from(der.as_slice()).map_err(|_| "the signature is not ASN.1 DER")?;
    key.verify(body, &signature)
        .map_err(|_| "the signature does not match the report")
}

/// Acts on one token: `true` for a key of the store.
async fn act<S: LeakedKeys>(
    scanning: &SecretScanning,
    store: &S,
    reported: &Reported,
) -> Result<bool, ManageError> {
    let token = &reported.token;
    if crate::store::checked(token.as_bytes()).is_err() || !store.is_ours(token) {
        return Ok(false);
    }
    let digest = crate::digest(token.as_bytes());
    let Some((key_id, revoked)) = store.id_of(&digest) else {
        return Ok(false);
    };
    crate::exposure::act(
        &scanning.exposure,
        store,
        &digest,
        key_id,
        revoked,
        Found {
            how: "secret_scanning",
            url: reported.url.as_deref(),
            source: reported.source.as_deref(),
        },
    )
    .await?;
    Ok(true)
}

fn problem(status: StatusCode, slug: &str, title: &str, detail: &str) -> Response {
    crate::problem::problem_response(status, slug, title, detail, None)
}
