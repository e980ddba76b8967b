//! [`RequireApiKey`]: the verifying extractor that `#[api_key]` puts first in a handler, and the
//! configuration it reads.

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts, MatchedPath, OptionalFromRequestParts};
use axum::middleware::{FromExtractorLayer, from_extractor_with_state};
use http::HeaderValue;
use http::header::{AUTHORIZATION, COOKIE};
use http::request::Parts;

use crate::guard_config::{GuardConfig, KeyConfig, Source};
use crate::headers::LimitSlot;
use crate::key::VerifiedKey;
use crate::limit::{Budgets, Count, CreditAsk, LimitFields};
use crate::rejection::{ApiKeyRejection, Problem};
use crate::store::{ApiKeys, KeyDigest, KeyError, KeyStore, checked};

/// Verifies the request's API key before the handler runs.
///
/// Extracting it reads the key from the sources that `C` names, checks its shape and length,
/// looks it up in the store `S` taken from the router state (an [`ApiKeys`] unless the
/// attribute says `store = …`), checks its scopes, records the decision as an audit event
/// (target `axum_api_key::audit`; never the key), and stores the [`VerifiedKey`] in the
/// request's extensions for the handler. A refused request gets an [`ApiKeyRejection`] and
/// never reaches the handler.
///
/// `#[api_key]` adds it as a handler's first argument, so it runs before every other
/// extractor. The state must provide the store: the store itself, or a state struct with
/// `#[derive(FromRef)]`.
pub struct RequireApiKey<C, S = ApiKeys> {
    _config: PhantomData<fn() -> (C, S)>,
}

impl<C: KeyConfig, S: KeyStore + Clone> RequireApiKey<C, S> {
    /// The same guard as a layer over a whole `Router`: every route under it needs a key, and
    /// handlers may still take [`VerifiedKey`].
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use axum_api_key::{api_key, ApiKeys, RequireApiKey, VerifiedKey};
    ///
    /// #[api_key(header = "x-api-key", scopes = ["api"])]
    /// struct ApiAccess;
    ///
    /// async fn orders(key: VerifiedKey) -> String {
    ///     format!("orders of {}", key.id())
    /// }
    ///
    /// let keys = ApiKeys::new();
    /// let api = Router::new()
    ///     .route("/orders", get(orders))
    ///     .layer(RequireApiKey::<ApiAccess>::layer(keys.clone()));
    /// let app: Router = Router::new().nest("/api", api).route("/health", get(|| async { "ok" }));
    /// ```
    pub fn layer(store: S) -> FromExtractorLayer<Self, S> {
        from_extractor_with_state(store)
    }
}

impl<C, S, St> FromRequestParts<St> for RequireApiKey<C, S>
where
    C: KeyConfig,
    S: KeyStore + FromRef<St>,
    St: Send + Sync,
{
    type Rejection = ApiKeyRejection;

    // Not an `async fn`: the state machine of the check depends on the store alone, so a
    // program with a hundred guarded handlers compiles it once per store, not once per handler;
    // only the small `Guarded` wrapper is made per configuration.
    fn from_request_parts(
        parts: &mut Parts,
        state: &St,
    ) -> impl Future<Output = Result<Self, Self::Rejection>> + Send {
        extract::<Self, C, S, St>(parts, state)
    }
}

pin_project_lite::pin_project! {
    /// The future of a guard's extraction: the check, made the guard.
    struct Guarded<F, G> {
        #[pin]
        check: F,
        _guard: PhantomData<fn() -> G>,
    }
}

/// Where the guard leaves the key it accepted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// In the request's extensions, for `VerifiedKey` arguments and handlers behind a layer.
    InExtensions,
    /// Nowhere: the handler takes nothing that could read it.
    Nowhere,
}

/// The guard `#[api_key]` adds to a handler, made without a request: for calling a protected
/// handler directly in a unit test.
///
/// `#[api_key]` pairs the guard with a handler's first argument (axum extracts a pair left to
/// right, so the guard runs first without costing an argument), or makes it the only argument
/// of a handler that has none. A test that calls the handler as a function passes
/// `(UnitTestGuard::in_unit_test(), first)` for its first argument and the others as written,
/// or `UnitTestGuard::in_unit_test()` alone; the guard's type, configuration included, is
/// inferred from the handler. Nothing is verified: a request through a router always extracts
/// the guard, which checks the key, and never meets this value.
///
/// ```
/// use axum_api_key::{api_key, UnitTestGuard, VerifiedKey};
///
/// #[api_key(scopes = ["orders:read"])]
/// async fn orders(key: VerifiedKey) -> String {
///     format!("orders of {}", key.id())
/// }
///
/// #[api_key]
/// async fn ping() -> &'static str {
///     "pong"
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let key = VerifiedKey::new("partner-a").with_scopes(["orders:read"]);
/// let answer = orders((UnitTestGuard::in_unit_test(), key)).await;
/// assert_eq!(answer, "orders of partner-a");
/// assert_eq!(ping(UnitTestGuard::in_unit_test()).await, "pong");
/// # });
/// ```
pub trait UnitTestGuard: sealed::Sealed {
    /// The guard, as the handler's argument.
    fn in_unit_test() -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl<C, S> Sealed for super::RequireApiKey<C, S> {}
    impl<C, S> Sealed for super::GuardAlone<C, S> {}
}

impl<C, S> UnitTestGuard for RequireApiKey<C, S> {
    fn in_unit_test() -> Self {
        Self {
            _config: PhantomData,
        }
    }
}

impl<C, S> UnitTestGuard for GuardAlone<C, S> {
    fn in_unit_test() -> Self {
        Self {
            _config: PhantomData,
        }
    }
}

/// The guard of a handler without arguments of its own: nothing after it reads the request, so
/// the accepted key is not stored for anyone. Not public API: `#[api_key]` uses it.
#[doc(hidden)]
pub struct GuardAlone<C, S = ApiKeys> {
    _config: PhantomData<fn() -> (C, S)>,
}

impl<C, S, St> FromRequestParts<St> for GuardAlone<C, S>
where
    C: KeyConfig,
    S: KeyStore + FromRef<St>,
    St: Send + Sync,
{
    type Rejection = ApiKeyRejection;

    fn from_request_parts(
        parts: &mut Parts,
        state: &St,
    ) -> impl Future<Output = Result<Self, Self::Rejection>> + Send {
        extract::<Self, C, S, St>(parts, state)
    }
}

/// A guard type: where it leaves the key, and itself once its check passed.
trait Checked {
    const KEEP: Keep;

    fn checked() -> Self;
}

impl<C, S> Checked for RequireApiKey<C, S> {
    const KEEP: Keep = Keep::InExtensions;

    fn checked() -> Self {
        Self {
            _config: PhantomData,
        }
    }
}

impl<C, S> Checked for GuardAlone<C, S> {
    const KEEP: Keep = Keep::Nowhere;

    fn checked() -> Self {
        Self {
            _config: PhantomData,
        }
    }
}

/// The extraction of either guard type: the check, compiled once per store, in the small
/// per-guard `Guarded` wrapper.
fn extract<G, C, S, St>(
    parts: &mut Parts,
    state: &St,
) -> Guarded<impl Future<Output = Result<(), ApiKeyRejection>> + Send, G>
where
    G: Checked,
    C: KeyConfig,
    S: KeyStore + FromRef<St>,
{
    Guarded {
        check: guard_owned(parts, C::CONFIG, S::from_ref(state), G::KEEP),
        _guard: PhantomData,
    }
}

impl<F, G> Future for Guarded<F, G>
where
    F: Future<Output = Result<(), ApiKeyRejection>>,
    G: Checked,
{
    type Output = Result<G, ApiKeyRejection>;

    // Written out rather than with `map`s, whose closures would each be compiled once per
    // configuration.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().check.poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(G::checked())),
            Poll::Ready(Err(rejection)) => Poll::Ready(Err(rejection)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The check with everything it needs owned or borrowed from the request.
async fn guard_owned<S: KeyStore>(
    parts: &mut Parts,
    config: GuardConfig,
    store: S,
    keep: Keep,
) -> Result<(), ApiKeyRejection> {
    guard(parts, &config, &store, keep).await
}

/// Left in the extensions of a request that an optional guard let in without a key.
#[derive(Clone, Copy)]
pub(crate) struct Anonymous(GuardConfig);

impl Anonymous {
    /// The refusal the guard would have given the request had the key been required.
    pub(crate) fn refuse(self, parts: &Parts) -> ApiKeyRejection {
        Refusal::new(Problem::MissingKey, "missing", None).reject(parts, &self.0, None)
    }
}

/// `VerifiedKey` as an argument reads the key the guard accepted; see [`VerifiedKey`].
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

/// What the sources of a request hold.
enum Found<'a> {
    Nothing,
    One {
        key: Cow<'a, [u8]>,
        source: &'static Source,
    },
    /// A key in more than one place, or twice in one.
    Duplicate,
}

/// The work of [`RequireApiKey`]; only the store lookup is generic.
async fn guard<S: KeyStore>(
    parts: &mut Parts,
    config: &GuardConfig,
    store: &S,
    keep: Keep,
) -> Result<(), ApiKeyRejection> {
    let _timer = crate::usage::Timer::start();
    // The client's attempt reserved before a store that waits was asked, if one was.
    let mut reserved = None;
    let outcome = match find_key(parts, config.sources) {
        // A request without a key holds no scope: a scoped route never lets it in.
        Found::Nothing if config.optional && config.scopes.is_empty() => {
            // A route's budget counts requests without a key too, per client address: a key
            // holder over its budget cannot drop the key to be served anonymously.
            if config.rate_limit.is_some() {
                let anonymous = VerifiedKey::new(store.rate_limits().anonymous_id(parts));
                let budgets = Budgets::new(None, config.rate_limit);
                count_budgets(
                    parts, config, store, &anonymous, &budgets, None, false, None,
                )
                .await?;
            }
            audit_anonymous(parts);
            crate::usage::accepted("anonymous", None);
            // Read by `VerifiedKey`, in case the handler takes it under a name the attribute
            // could not check: the request is then refused as one without a key.
            if keep == Keep::InExtensions {
                parts.extensions.insert(Anonymous(*config));
            }
            return Ok(());
        }
        Found::Nothing => Err(Refusal::new(Problem::MissingKey, "missing", None)),
        Found::Duplicate => Err(Refusal::new(Problem::DuplicateKey, "duplicate", None)),
        Found::One { key, source } => match store.rate_limits().throttled(parts) {
            // Throttled before any check: a throttled client's guesses cost no hashing and no
            // lookup.
            Some((client, wait)) => {
                Err(
                    Refusal::new(Problem::TooManyAttempts, "throttled", Some(source))
                        .retry(wait, None)
                        .client(client),
                )
            }
            None => match checked(&key) {
                Err(error) => Err(Refusal::from_key_error(error, source)),
                Ok(key) if store.https().is_some_and(|policy| !policy.allows(parts)) => {
                    // Looked up only to tell the operator which key to rotate, and only in a store
                    // that answers from memory: a store that waits is not made to work for requests
                    // that are refused either way, and that no throttle counts.
                    let exposed = if store.answers_from_memory() {
                        store.verify(key).await.ok()
                    } else {
                        None
                    };
                    warn_in_clear(parts, exposed.as_ref());
                    if exposed.is_some() {
                        store.key_exposed(key, route(parts).to_owned()).await;
                    }
                    Err(Refusal::new(
                        Problem::HttpsRequired,
                        "insecure_transport",
                        Some(source),
                    ))
                }
                Ok(key) => {
                    let reservation = if store.answers_from_memory() {
                        Ok(None)
                    } else {
                        store.rate_limits().reserve(parts)
                    };
                    match reservation {
                        Err((client, wait)) => {
                            Err(
                                Refusal::new(Problem::TooManyAttempts, "throttled", Some(source))
                                    .retry(wait, None)
                                    .client(client),
                            )
                        }
                        Ok(held) => {
                            reserved = held;
                            match store.verify(key).await {
                                Err(error) => Err(Refusal::from_key_error(error, source)),
                                Ok(verified) => Ok((verified, source)),
                            }
                        }
                    }
                }
            },
        },
    };
    let failed_attempt = matches!(&outcome, Err(refusal) if refusal.is_failed_attempt());
    match reserved {
        // Reserved and not a failed attempt: given back.
        Some(client) if !failed_attempt => store.rate_limits().release(client),
        Some(_) => {}
        None if failed_attempt => store.rate_limits().failed(parts),
        None => {}
    }
    let (key, source) = match outcome {
        Ok(accepted) => accepted,
        Err(refusal) => return Err(refusal.reject(parts, config, None)),
    };
    // A key restricted to some networks is refused from anywhere else before it may spend
    // anything: a key copied out of a partner's office buys its holder nothing, not even the
    // partner's budget.
    if key.record().allowed_ips().is_some() {
        let client = store.rate_limits().client(parts);
        if !client.is_some_and(|address| key.allows(address)) {
            let mut refusal = Refusal::new(
                Problem::AddressNotAllowed,
                "address_not_allowed",
                Some(source),
            );
            refusal.client = client;
            // One event per key and address a minute: a leaked key hammered from one place
            // writes one line a minute, and each new address its own.
            refusal.quiet = !crate::limit::first_in_window(
                &("address", key.id(), client),
                Duration::from_secs(60),
            );
            return Err(refusal.reject(parts, config, Some(&key)));
        }
    }
    if config.scopes.iter().any(|scope| !key.has_scope(scope)) {
        let refusal = Refusal::new(
            Problem::InsufficientScope,
            "insufficient_scope",
            Some(source),
        );
        return Err(refusal.reject(parts, config, Some(&key)));
    }
    // Credits and budgets are spent together, all or nothing: a request refused by a rate
    // limit spends no credit, and one refused for credits no budget.
    let ask = key.record().credits().map(|credits| CreditAsk {
        credits,
        cost: u64::from(config.cost),
        now: store.rate_limits().now(),
    });
    let budgets = Budgets::new(key.record().rate_limits(), config.rate_limit);
    if !budgets.is_empty() || ask.is_some() {
        let spends_credits = ask.is_some();
        count_budgets(
            parts,
            config,
            store,
            &key,
            &budgets,
            Some(source),
            true,
            ask,
        )
        .await?;
        if spends_credits {
            crate::usage::credits_spent(&key, config.cost);
            store.credits_spent();
        }
    }
    tracing::debug!(
        target: "axum_api_key::audit",
        outcome = "accepted",
        key_id = key.id(),
        source = source.kind(),
        method = %parts.method,
        route = route(parts),
    );
    crate::usage::accepted("accepted", Some(&key));
    let limits = store.rate_limits();
    key.record()
        .use_counters(|| limits.uses().of(key.id()))
        .used(crate::last_used::seconds(limits.now()));
    store.key_used();
    if keep == Keep::InExtensions {
        parts.extensions.insert(key);
    }
    Ok(())
}

/// Spends one request of each of `budgets` for `key` (for a request without a key, a stand-in
/// named by the client's address), or refuses the request: 429 over a budget, 503 when the
/// shared limiter cannot answer and is configured to refuse. `keyed` says whether `key` is a
/// key the request presented, to name in the refusal; `credits`, the key's credits and what
/// the request costs, spent with the budgets or not at all.
#[allow(clippy::too_many_arguments)]
async fn count_budgets<S: KeyStore>(
    parts: &Parts,
    config: &GuardConfig,
    store: &S,
    key: &VerifiedKey,
    budgets: &Budgets,
    source: Option<&'static Source>,
    keyed: bool,
    credits: Option<CreditAsk<'_>>,
) -> Result<(), ApiKeyRejection> {
    let limits = store.rate_limits();
    let named = keyed.then_some(key);
    // Counted in process without an await; only what is kept in Redis waits on it.
    let count = match limits.spend_here(key, budgets, credits) {
        Some(count) => count,
        #[cfg(feature = "redis")]
        None => limits.spend_shared(key, budgets, credits).await,
        #[cfg(not(feature = "redis"))]
        None => unreachable!("without Redis, budgets are counted in process"),
    };
    if count.unavailable {
        let refusal = Refusal::new(Problem::LimiterUnavailable, "limiter_unavailable", source);
        return Err(refusal.reject(parts, config, named));
    }
    if count.credits_exhausted {
        let mut refusal = Refusal::new(Problem::CreditsExhausted, "credits_exhausted", source)
            .credits(count.credits.unwrap_or(0), count.retry_after);
        // One warning per key a minute; the rest at DEBUG (and all counted).
        refusal.quiet = !crate::limit::first_in_window(
            &("credits", key.record().counted_as()),
            Duration::from_secs(60),
        );
        return Err(refusal.reject(parts, config, named));
    }
    if let Some(wait) = count.retry_after {
        let mut refusal =
            Refusal::new(Problem::RateLimited, "rate_limited", source).retry(wait, count.fields());
        // One warning per key and budget per window; the rest at DEBUG (and all counted).
        refusal.quiet = !crate::limit::first_refusal_in_window(key.record().counted_as(), &count);
        return Err(refusal.reject(parts, config, named));
    }
    // The fields are written only where a `rate_limit_headers` layer will send them.
    if let Some(slot) = parts.extensions.get::<LimitSlot>() {
        slot.fill(count);
    }
    Ok(())
}

/// Why a request is refused, before it is answered and audited.
struct Refusal {
    problem: Problem,
    reason: &'static str,
    source: Option<&'static Source>,
    /// For a `429`: when to retry (if it ever helps), and the budgets' fields.
    retry: Option<(Option<Duration>, Option<LimitFields>)>,
    /// For a throttled request: the address it is counted against.
    client: Option<IpAddr>,
    /// Logged at DEBUG rather than WARN: a repeat of a refusal already warned of.
    quiet: bool,
}

impl Refusal {
    fn new(problem: Problem, reason: &'static str, source: Option<&'static Source>) -> Self {
        Self {
            problem,
            reason,
            source,
            retry: None,
            client: None,
            quiet: false,
        }
    }

    fn client(mut self, client: IpAddr) -> Self {
        self.client = Some(client);
        self
    }

    fn retry(mut self, wait: Duration, fields: Option<LimitFields>) -> Self {
        self.retry = Some((Some(wait), fields));
        self
    }

    /// For credits used up: what is left, and when the next refill comes, if any.
    fn credits(mut self, left: u64, refill_in: Option<Duration>) -> Self {
        self.retry = Some((refill_in, Count::credits_only(left).fields()));
        self
    }

    /// Whether the refusal counts against the client's throttle: a key that is not one, or no
    /// longer one. A missing key, a store that cannot answer or a key sent in clear guesses
    /// nothing.
    fn is_failed_attempt(&self) -> bool {
        matches!(
            self.problem,
            Problem::InvalidKey
                | Problem::RevokedKey
                | Problem::ExpiredKey
                | Problem::KeyNotYetValid
        )
    }

    fn from_key_error(error: KeyError, source: &'static Source) -> Self {
        let (problem, reason) = match error {
            KeyError::TooLong => (Problem::InvalidKey, "too_long"),
            KeyError::Malformed => (Problem::InvalidKey, "malformed"),
            KeyError::Unknown => (Problem::InvalidKey, "unknown"),
            KeyError::Revoked => (Problem::RevokedKey, "revoked"),
            KeyError::Expired => (Problem::ExpiredKey, "expired"),
            KeyError::NotYetValid => (Problem::KeyNotYetValid, "not_yet_valid"),
            KeyError::Disabled => (Problem::DisabledKey, "disabled"),
            KeyError::Unavailable => (Problem::StoreUnavailable, "store_unavailable"),
        };
        Self::new(problem, reason, Some(source))
    }

    fn reject(
        self,
        parts: &Parts,
        config: &GuardConfig,
        key: Option<&VerifiedKey>,
    ) -> ApiKeyRejection {
        let missing_scopes = match key {
            Some(key) => config
                .scopes
                .iter()
                .copied()
                .filter(|s| !key.has_scope(s))
                .collect(),
            None => Vec::new(),
        };
        let mut rejection =
            ApiKeyRejection::new(self.problem, *config, self.source, missing_scopes)
                .for_request(parts);
        if let Some((wait, fields)) = self.retry {
            rejection = rejection.with_limits(wait, fields);
        }
        match self.problem {
            // A key over its limit is a client misbehaving, and a throttled address a likely
            // attack: both worth an operator's attention.
            // A repeat of a refusal warned of within its window: at DEBUG, so one key pressed
            // again and again cannot flood the log (the metrics count every one).
            _ if self.quiet => tracing::debug!(
                target: "axum_api_key::audit",
                outcome = "refused",
                reason = self.reason,
                status = rejection.status().as_u16(),
                key_id = key.map(VerifiedKey::id),
                client = self.client.map(tracing::field::display),
                method = %parts.method,
                route = route(parts),
            ),
            Problem::RateLimited => tracing::warn!(
                target: "axum_api_key::audit",
                outcome = "refused",
                reason = self.reason,
                status = rejection.status().as_u16(),
                key_id = key.map(VerifiedKey::id),
                method = %parts.method,
                route = route(parts),
            ),
            // Someone holds the key outside the networks it was given for: it may have
            // leaked. The address is the one the rules trust, not one the client chose.
            Problem::AddressNotAllowed => match self.client {
                Some(client) => tracing::warn!(
                    target: "axum_api_key::audit",
                    outcome = "refused",
                    reason = self.reason,
                    status = rejection.status().as_u16(),
                    key_id = key.map(VerifiedKey::id),
                    client = %client,
                    method = %parts.method,
                    route = route(parts),
                    "an API key restricted to some networks was used from another address"
                ),
                None => tracing::error!(
                    target: "axum_api_key::audit",
                    outcome = "refused",
                    reason = self.reason,
                    status = rejection.status().as_u16(),
                    key_id = key.map(VerifiedKey::id),
                    method = %parts.method,
                    route = route(parts),
                    "an API key restricted to some networks was refused: the server does not \
                     tell the client's address; serve the router with \
                     `into_make_service_with_connect_info::<SocketAddr>()`"
                ),
            },
            Problem::TooManyAttempts => tracing::warn!(
                target: "axum_api_key::audit",
                outcome = "refused",
                reason = self.reason,
                status = rejection.status().as_u16(),
                client = self.client.map(tracing::field::display),
                method = %parts.method,
                route = route(parts),
            ),
            _ => tracing::info!(
                target: "axum_api_key::audit",
                outcome = "refused",
                reason = self.reason,
                status = rejection.status().as_u16(),
                key_id = key.map(VerifiedKey::id),
                source = self.source.map(Source::kind),
                method = %parts.method,
                route = route(parts),
            ),
        }
        crate::usage::refused(self.reason, key);
        rejection
    }
}

/// A value came over plain HTTP to a store that requires HTTPS. It is refused either way; when
/// it is one of the store's live keys (looked up as any key is, in constant time, in a store
/// that answers from memory), a `key_exposed` warning names the key's id, so that the operator
/// rotates it. A value that is no key, or was not looked up, is logged without any trace of it:
/// a fingerprint of a password pasted by mistake could be checked against guesses offline.
fn warn_in_clear(parts: &Parts, exposed: Option<&VerifiedKey>) {
    match exposed {
        Some(key) => {
            tracing::warn!(
                target: "axum_api_key::audit",
                outcome = "refused",
                reason = "key_exposed",
                key_id = key.id(),
                method = %parts.method,
                route = route(parts),
                "an API key travelled over plain HTTP: treat it as leaked and rotate it"
            );
            crate::usage::exposed(key);
        }
        None => tracing::warn!(
            target: "axum_api_key::audit",
            outcome = "refused",
            reason = "insecure_transport",
            method = %parts.method,
            route = route(parts),
            "a request sent a value in place of an API key over plain HTTP; it is no live key \
             of this store"
        ),
    }
}

fn audit_anonymous(parts: &Parts) {
    tracing::debug!(
        target: "axum_api_key::audit",
        outcome = "anonymous",
        method = %parts.method,
        route = route(parts),
    );
}

/// The route for the audit event: the matched pattern when axum's router set one, so ids in
/// paths do not multiply log keys; otherwise the path without the query, which may hold a key.
pub(crate) fn route(parts: &Parts) -> &str {
    parts
        .extensions
        .get::<MatchedPath>()
        .map_or(parts.uri.path(), MatchedPath::as_str)
}

/// The digest of the one key the request presents through `sources`, if it presents exactly
/// one: what a change made at the key holder's request acts on.
pub(crate) fn presented_digest(parts: &Parts, sources: &'static [Source]) -> Option<KeyDigest> {
    match find_key(parts, sources) {
        Found::One { key, .. } => Some(crate::digest(&key)),
        Found::Nothing | Found::Duplicate => None,
    }
}

/// Reads every source; a key found in two places, or twice in one, is a duplicate.
fn find_key<'a>(parts: &'a Parts, sources: &'static [Source]) -> Found<'a> {
    let mut found = Found::Nothing;
    for source in sources {
        let values = match source {
            Source::Header(name) => one_of(
                parts
                    .headers
                    .get_all(*name)
                    .iter()
                    .map(HeaderValue::as_bytes)
                    .map(Cow::Borrowed),
            ),
            Source::Query(name) => one_of(query_values(parts, name)),
            Source::Cookie(name) => one_of(cookie_values(parts, name).map(Cow::Borrowed)),
            // A bearer token beside a second `Authorization` field is a credential sent twice,
            // whatever the other field's scheme: never "the bearer one wins".
            Source::Bearer if parts.headers.get_all(AUTHORIZATION).iter().nth(1).is_some() => {
                match bearer_tokens(parts).next() {
                    Some(_) => Values::Many,
                    None => Values::None,
                }
            }
            Source::Bearer => one_of(bearer_tokens(parts).map(Cow::Borrowed)),
        };
        found = match (found, values) {
            (found, Values::None) => found,
            (_, Values::Many) | (Found::One { .. } | Found::Duplicate, _) => {
                return Found::Duplicate;
            }
            (Found::Nothing, Values::One(key)) => Found::One { key, source },
        };
    }
    found
}

/// What one source holds: empty values count as none.
enum Values<'a> {
    None,
    One(Cow<'a, [u8]>),
    Many,
}

fn one_of<'a>(values: impl Iterator<Item = Cow<'a, [u8]>>) -> Values<'a> {
    let mut values = values.filter(|value| !value.is_empty());
    match (values.next(), values.next()) {
        (None, _) => Values::None,
        (Some(value), None) => Values::One(value),
        (Some(_), Some(_)) => Values::Many,
    }
}

fn query_values<'a>(parts: &'a Parts, name: &'static str) -> impl Iterator<Item = Cow<'a, [u8]>> {
    let query = parts.uri.query().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .filter(move |(key, _)| key == name)
        .map(|(_, value)| match value {
            Cow::Borrowed(value) => Cow::Borrowed(value.as_bytes()),
            Cow::Owned(value) => Cow::Owned(value.into_bytes()),
        })
}

/// The values of the cookie `name` across every `Cookie` header, unquoted (RFC 6265).
fn cookie_values<'a>(parts: &'a Parts, name: &'static str) -> impl Iterator<Item = &'a [u8]> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|header| header.as_bytes().split(|&b| b == b';'))
        .filter_map(move |pair| {
            let pair = pair.trim_ascii();
            let at = pair.iter().position(|&b| b == b'=')?;
            let (cookie, value) = (pair[..at].trim_ascii(), pair[at + 1..].trim_ascii());
            (cookie == name.as_bytes()).then(|| {
                value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value)
            })
        })
}

/// The tokens of every `Authorization: Bearer <token>` header; other schemes are not ours.
fn bearer_tokens(parts: &Parts) -> impl Iterator<Item = &[u8]> {
    parts
        .headers
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(|header| {
            let value = header.as_bytes().trim_ascii();
            let at = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
            value[..at]
                .eq_ignore_ascii_case(b"bearer")
                .then(|| value[at..].trim_ascii())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::get(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn key(found: Found<'_>) -> Option<String> {
        match found {
            Found::One { key, .. } => Some(String::from_utf8(key.into_owned()).unwrap()),
            Found::Nothing => None,
            Found::Duplicate => Some("<duplicate>".to_owned()),
        }
    }

    const ALL: &[Source] = &[
        Source::Header("x-api-key"),
        Source::Query("api_key"),
        Source::Cookie("session"),
        Source::Bearer,
    ];

    #[test]
    fn reads_each_source() {
        let find = |uri, headers| key(find_key(&parts(uri, headers), ALL));
        assert_eq!(find("/", &[("x-api-key", "k1")]), Some("k1".into()));
        assert_eq!(find("/?a=1&api_key=k%2B2+x", &[]), Some("k+2 x".into()));
        assert_eq!(
            find("/", &[("cookie", "a=1; session=\"k3\"; b=2")]),
            Some("k3".into())
        );
        assert_eq!(
            find("/", &[("authorization", "bEaReR   k4 ")]),
            Some("k4".into())
        );
        assert_eq!(
            find("/?apikey=x&api_key=", &[("authorization", "Basic abc")]),
            None
        );
        assert_eq!(find("/", &[("cookie", "sessions=x; xsession=y")]), None);
    }

    #[test]
    fn a_key_in_two_places_is_a_duplicate() {
        let find = |uri, headers| key(find_key(&parts(uri, headers), ALL));
        let duplicate = Some("<duplicate>".to_owned());
        assert_eq!(find("/?api_key=a", &[("x-api-key", "a")]), duplicate);
        assert_eq!(find("/?api_key=a&api_key=b", &[]), duplicate);
        assert_eq!(
            find("/", &[("cookie", "session=a"), ("cookie", "session=b")]),
            duplicate
        );
        assert_eq!(
            find(
                "/",
                &[("authorization", "Bearer a"), ("authorization", "bearer b")]
            ),
            duplicate
        );
        assert_eq!(
            find(
                "/",
                &[("authorization", "Bearer a"), ("cookie", "session=a")]
            ),
            duplicate
        );
        // An empty value is no key at all.
        assert_eq!(find("/?api_key=", &[("x-api-key", "a")]), Some("a".into()));
    }

    #[test]
    fn a_bearer_token_beside_another_authorization_field_is_a_duplicate() {
        const BEARER: &[Source] = &[Source::Bearer];
        for other in ["Basic dXNlcjpwYXNz", "Bearer other-key", "Digest x"] {
            let request = parts(
                "/",
                &[("authorization", "Bearer k1"), ("authorization", other)],
            );
            assert!(
                matches!(find_key(&request, BEARER), Found::Duplicate),
                "{other}"
            );
        }
        // Two fields of other schemes hold no bearer token: nothing of ours.
        let request = parts(
            "/",
            &[("authorization", "Basic a"), ("authorization", "Digest b")],
        );
        assert!(matches!(find_key(&request, BEARER), Found::Nothing));
    }

    #[test]
    fn sources_not_configured_are_ignored() {
        const HEADER_ONLY: &[Source] = &[Source::Header("x-api-key")];
        let request = parts(
            "/?api_key=q",
            &[("authorization", "Bearer b"), ("x-api-key", "h")],
        );
        assert_eq!(key(find_key(&request, HEADER_ONLY)), Some("h".into()));
    }
}
