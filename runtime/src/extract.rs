//! [`RequireApiKey`]: the verifying extractor that `#[api_key]` puts first in a handler, and the
//! configuration it reads.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

mod find;
mod layer;
mod mode;
mod refusal;

pub(crate) use find::presented_digest;
use find::{Found, find_key};
pub use layer::{RequireApiKeyFuture, RequireApiKeyLayer, RequireApiKeyService};
use mode::{Awaiting, Mode, Stop, verify};
pub(crate) use refusal::route;
use refusal::{Refusal, audit_anonymous, warn_in_clear};

use crate::guard_config::{GuardConfig, KeyConfig, Source};
use crate::headers::LimitSlot;
use crate::key::VerifiedKey;
use crate::limit::{Budgets, CreditAsk};
use crate::problem::Problem;
use crate::rejection::ApiKeyRejection;
use crate::store::{ApiKeys, KeyStore, checked};

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
    /// The check is the extractor's, refusals included. Over a store that answers from memory
    /// ([`ApiKeys`], `PgKeys`) with budgets counted in process, it runs when the request
    /// reaches the layer, and the route is called at once; any other store is awaited as the
    /// extractor awaits it.
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
    pub fn layer(store: S) -> RequireApiKeyLayer<C, S> {
        RequireApiKeyLayer::new(store)
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
) -> Guarded<impl Future<Output = Result<(), Stop<std::convert::Infallible>>> + Send, G>
where
    G: Checked,
    C: KeyConfig,
    S: KeyStore + FromRef<St>,
{
    Guarded {
        check: guard_owned(
            parts,
            <C as crate::guard_config::ConfigRef>::STATIC,
            S::from_ref(state),
            G::KEEP,
        ),
        _guard: PhantomData,
    }
}

impl<F, G> Future for Guarded<F, G>
where
    F: Future<Output = Result<(), Stop<std::convert::Infallible>>>,
    G: Checked,
{
    type Output = Result<G, ApiKeyRejection>;

    // Written out rather than with `map`s, whose closures would each be compiled once per
    // configuration.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().check.poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(G::checked())),
            Poll::Ready(Err(Stop::Refused(rejection))) => Poll::Ready(Err(rejection)),
            Poll::Ready(Err(Stop::Wait(never))) => match never {},
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The check with everything it needs owned or borrowed from the request.
async fn guard_owned<S: KeyStore>(
    parts: &mut Parts,
    config: &'static GuardConfig,
    store: S,
    keep: Keep,
) -> Result<(), Stop<std::convert::Infallible>> {
    guard::<S, Awaiting>(parts, config, &store, keep).await
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

/// The work of [`RequireApiKey`], timed; only the store lookup is generic. A check in the
/// [`Now`](mode::Now) mode that stops to wait is not timed: the check that waits is.
async fn guard<S: KeyStore, M: Mode>(
    parts: &mut Parts,
    config: &GuardConfig,
    store: &S,
    keep: Keep,
) -> Result<(), Stop<M::Wait>> {
    let timer = crate::usage::Timer::start();
    let checked = check::<S, M>(parts, config, store, keep).await;
    if let Err(Stop::Wait(_)) = &checked {
        timer.discard();
    }
    checked
}

/// The work of [`RequireApiKey`]: in the [`Now`](mode::Now) mode, stopped before anything
/// that would wait, with nothing done that a second check would do again.
async fn check<S: KeyStore, M: Mode>(
    parts: &mut Parts,
    config: &GuardConfig,
    store: &S,
    keep: Keep,
) -> Result<(), Stop<M::Wait>> {
    // The client's attempt reserved before a store that waits was asked, if one was.
    let mut reserved = None;
    let outcome = match find_key(parts, config.sources) {
        // A request without a key holds no scope: a scoped route never lets it in.
        Found::Nothing if config.optional && config.scopes.is_empty() => {
            // A route's budget counts requests without a key too, per client address: a key
            // holder over its budget cannot drop the key to be served anonymously.
            if config.rate_limit.is_some() {
                let anonymous = VerifiedKey::new(store.rate_limits().anonymous_id(parts));
                count_budgets::<S, M>(parts, config, store, &anonymous, None, false).await?;
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
            Some((client, wait)) => Err(Refusal::throttled(source, client, wait)),
            None => match checked(&key) {
                Err(error) => Err(Refusal::from_key_error(error, source)),
                Ok(key) if store.https().is_some_and(|policy| !policy.allows(parts)) => {
                    // The report waits; the check that may wait makes it. Nothing was counted
                    // yet.
                    if let Some(wait) = M::wait() {
                        return Err(Stop::Wait(wait));
                    }
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
                        // Boxed: only a key sent in the clear gets here, and the report's
                        // state would otherwise make every request's check larger.
                        Box::pin(store.key_exposed(key, route(parts).to_owned())).await;
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
                    } else if let Some(wait) = M::wait() {
                        // Stopped before the reservation: the check that may wait makes it.
                        return Err(Stop::Wait(wait));
                    } else {
                        store.rate_limits().reserve(parts)
                    };
                    match reservation {
                        Err((client, wait)) => Err(Refusal::throttled(source, client, wait)),
                        Ok(held) => {
                            reserved = held;
                            match verify::<S, M>(store, key).await {
                                // Only a store that answers from memory gets here without
                                // waiting, and it reserved nothing.
                                Err(wait) => return Err(Stop::Wait(wait)),
                                Ok(Err(error)) => Err(Refusal::from_key_error(error, source)),
                                Ok(Ok(verified)) => Ok((verified, source)),
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
        Err(refusal) => return Err(refusal.reject(parts, config, None).into()),
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
            return Err(refusal.reject(parts, config, Some(&key)).into());
        }
    }
    if config.scopes.iter().any(|scope| !key.has_scope(scope)) {
        let refusal = Refusal::new(
            Problem::InsufficientScope,
            "insufficient_scope",
            Some(source),
        );
        return Err(refusal.reject(parts, config, Some(&key)).into());
    }
    // Credits and budgets are spent together, all or nothing: a request refused by a rate
    // limit spends no credit, and one refused for credits no budget.
    let spends_credits = key.record().credits().is_some();
    if spends_credits || config.rate_limit.is_some() || key.record().rate_limits().next().is_some()
    {
        count_budgets::<S, M>(parts, config, store, &key, Some(source), true).await?;
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

/// Spends one request of each budget of the route and of `key` for `key` (for a request
/// without a key, a stand-in named by the client's address, with the route's budget only), or
/// refuses the request: 429 over a budget, 503 when the shared limiter cannot answer and is
/// configured to refuse. `keyed` says whether `key` is a key the request presented, to name in
/// the refusal, and to spend its credits (what the route costs) with the budgets or not at
/// all. The budgets are made here, so that the guard's own state does not hold them.
async fn count_budgets<S: KeyStore, M: Mode>(
    parts: &Parts,
    config: &GuardConfig,
    store: &S,
    key: &VerifiedKey,
    source: Option<&'static Source>,
    keyed: bool,
) -> Result<(), Stop<M::Wait>> {
    let limits = store.rate_limits();
    let named = keyed.then_some(key);
    let budgets = &if keyed {
        Budgets::new(key.record().rate_limits(), config.rate_limit)
    } else {
        Budgets::new(None, config.rate_limit)
    };
    let credits = keyed
        .then(|| key.record().credits())
        .flatten()
        .map(|credits| CreditAsk {
            credits,
            cost: u64::from(config.cost),
            now: limits.now(),
        });
    // Counted in process without an await; only what is kept in Redis waits on it.
    let count = match (limits.spend_here(key, budgets, credits), M::wait()) {
        (Some(count), _) => count,
        // Nothing was spent: the check that may wait counts the request in Redis.
        (None, Some(wait)) => return Err(Stop::Wait(wait)),
        #[cfg(feature = "redis")]
        (None, None) => limits.spend_shared(key, budgets, credits).await,
        #[cfg(not(feature = "redis"))]
        (None, None) => unreachable!("without Redis, budgets are counted in process"),
    };
    if count.unavailable {
        let refusal = Refusal::new(Problem::LimiterUnavailable, "limiter_unavailable", source);
        return Err(refusal.reject(parts, config, named).into());
    }
    if count.credits_exhausted {
        let mut refusal = Refusal::new(Problem::CreditsExhausted, "credits_exhausted", source)
            .credits(count.credits.unwrap_or(0), count.retry_after);
        // One warning per key a minute; the rest at DEBUG (and all counted).
        refusal.quiet = !crate::limit::first_in_window(
            &("credits", key.record().counted_as()),
            Duration::from_secs(60),
        );
        return Err(refusal.reject(parts, config, named).into());
    }
    if let Some(wait) = count.retry_after {
        let mut refusal =
            Refusal::new(Problem::RateLimited, "rate_limited", source).retry(wait, count.fields());
        // One warning per key and budget per window; the rest at DEBUG (and all counted).
        refusal.quiet = !crate::limit::first_refusal_in_window(key.record().counted_as(), &count);
        return Err(refusal.reject(parts, config, named).into());
    }
    // The fields are written only where a `rate_limit_headers` layer will send them.
    if let Some(slot) = parts.extensions.get::<LimitSlot>() {
        slot.fill(count);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
