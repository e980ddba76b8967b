//! API-key authentication for [axum] handlers, in one attribute.
//!
//! ```
//! use axum::{routing::get, Router};
//! use axum_api_key::{api_key, ApiKeys, VerifiedKey};
//!
//! #[api_key] // header `x-api-key`, 401 when missing or wrong
//! async fn data() -> &'static str {
//!     "secret information"
//! }
//!
//! #[api_key(header = "x-api-key", status = 403)]
//! async fn protected(key: VerifiedKey) -> String {
//!     format!("access granted to {}", key.id())
//! }
//!
//! # fn main() -> Result<(), axum_api_key::ConfigError> {
//! # unsafe { std::env::set_var("API_KEYS", "partner-a=pa_7Qm2xY9wLkV3rT8s") };
//! let keys = ApiKeys::from_env("API_KEYS")?; // e.g. API_KEYS="partner-a=pa_7Qm2xY9wLkV3rT8s"
//! let app: Router = Router::new()
//!     .route("/data", get(data))
//!     .route("/protected", get(protected))
//!     .with_state(keys);
//! # Ok(()) }
//! ```
//!
//! - [`#[api_key]`](macro@api_key) puts a [`RequireApiKey`] guard first in the handler, so a
//!   request without a valid key is refused before any other extractor runs.
//! - [`ApiKeys`] holds SHA-256 digests of the keys, never the keys; a lookup costs the same
//!   whatever the number of keys, and digests are compared in constant time.
//! - A refused request gets an [`ApiKeyRejection`]: the configured status (401 by default, with
//!   a `WWW-Authenticate` challenge), or 400 for a key sent twice, and an
//!   `application/problem+json` body that never contains the key. Its `type` is `about:blank`
//!   until [`set_problem_type_base`] (for the process) or a [`RouterSettings`] layer (for one
//!   router) points it at the app's own documentation. Each refusal's
//!   answer is rendered once and shared, so refusing a request costs about what accepting one
//!   does.
//! - Keys come from configuration: [`ApiKeys::from_env`] (`id=key`, `id=sha256:<hex>`, scopes in
//!   brackets) or a TOML records file (`ApiKeys::from_file`, feature `file`, on by default)
//!   with scopes, validity times, revocation and metadata.
//! - A live store changes without a restart and without blocking a request:
//!   [`ApiKeys::add`], [`revoke`](ApiKeys::revoke), [`rotate`](ApiKeys::rotate) with a grace
//!   period, `reload` (feature `file`).
//! - [`KeyFormat`] generates keys like `myapp_…` with a checksum, so a store refuses typos and
//!   garbage before hashing; the `axum-api-key` command-line tool (feature `cli`) prints a new
//!   key once and the configuration that holds only its digest.
//! - [`HttpsPolicy`] refuses keys that travelled in clear, directly or behind trusted proxies.
//! - [`RateLimit`]s per key (records files, [`Key::rate_limit`], `PgKeys`) and per route
//!   (`#[api_key(rate_limit = "10/s")]`), counted in process or, with feature `redis`, shared
//!   through Redis ([`RateLimits`]); a [`Throttle`] per client address against guessing;
//!   `RateLimit` fields on accepted responses with [`rate_limit_headers`]; usage metrics with
//!   feature `metrics`.
//! - [`self_service`]: a ready router with which a key holder reads, rotates and revokes its own
//!   key.
//! - Signed webhooks (feature `webhooks`): `#[webhook(scheme = "standard" | "github" |
//!   "stripe")]` verifies a sender's HMAC signature, its timestamp and that the message is new
//!   before the handler runs; `webhook::sign` makes them.
//! - OpenAPI: with feature `openapi`, `#[api_key]` above `#[utoipa::path]` documents the
//!   operation's security requirement and refusals itself (see `openapi`); with feature `aide`,
//!   protected handlers go in aide's `api_route` with the same documentation (see `aide`).
//! - Sources beyond a header (query, cookie, bearer), scopes, optional keys, custom
//!   [`KeyStore`]s, a router-wide [`RequireApiKey::layer`] and app-wide
//!   [`render_rejections`] are described at [`api_key`](macro@api_key).
//! - Every decision is a `tracing` event with target `axum_api_key::audit`: refusals at `INFO`
//!   (outcome, reason, status, source, method, route; `WARN` for a key sent in clear),
//!   acceptances at `DEBUG` (with the key id). The key itself is never logged.
//!
//! ## Features
//!
//! | feature | what it adds | default |
//! | --- | --- | --- |
//! | `file` | `ApiKeys::from_file` and `ApiKeys::reload`: key records in a TOML file | on |
//! | `postgres` | `PgKeys`: keys in PostgreSQL, answered from an in-process snapshot kept in step by `LISTEN`/`NOTIFY` | off |
//! | `redis` | `RedisLimits`: rate limits counted in Redis, shared between instances | off |
//! | `metrics` | usage metrics through the `metrics` facade | off |
//! | `webhooks` | `#[webhook]` and the `webhook` module: Standard Webhooks, GitHub and Stripe signatures | off |
//! | `openapi` | security requirements and refusals in utoipa operations | off |
//! | `aide` | protected handlers in aide's `api_route` | off |
//! | `admin` | [`admin::router`]: an admin API to create, list, rotate, disable, top up and revoke keys | off |
//! | `secret-scanning` | [`secret_scanning::router`]: GitHub's secret scanning reports, verified (ECDSA P-256) and acted on | off |
//! | `cli` | the `axum-api-key` command-line tool (with `file`) | off |
//!
//! [axum]: https://docs.rs/axum

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[cfg(feature = "aide")]
pub mod aide;
mod config;
mod credits;
mod error;
mod extract;
mod format;
mod guard_config;
mod headers;
mod hex;
mod https;
mod key;
mod last_used;
mod limit;
mod network;
#[cfg(feature = "openapi")]
pub mod openapi;
mod problem;
mod rejection;
mod render;
#[cfg(any(feature = "openapi", feature = "aide"))]
mod scheme;
mod self_service;
mod settings;
mod store;
mod time;
mod usage;
#[cfg(feature = "webhooks")]
pub mod webhook;

#[cfg(feature = "admin")]
pub mod admin;
pub use store::exposure;
#[cfg(feature = "secret-scanning")]
pub mod secret_scanning;
pub use config::DEFAULT_ID;
pub use credits::{CREDITS_WRITE_DELAY, MAX_CREDITS, Refill, RefillError, RefillPeriod};
pub use error::{ConfigError, ConfigErrorKind};
pub use extract::{
    RequireApiKey, RequireApiKeyFuture, RequireApiKeyLayer, RequireApiKeyService, UnitTestGuard,
};
pub use format::KeyFormat;
pub use guard_config::{GuardConfig, KeyConfig, Source};
pub use headers::{
    RateLimitHeaders, RateLimitHeadersFuture, RateLimitHeadersLayer, rate_limit_headers,
};
pub use https::{Https, HttpsPolicy};
pub use key::VerifiedKey;
pub use last_used::LAST_USED_WRITE_DELAY;
#[cfg(all(feature = "redis", feature = "webhooks"))]
pub use limit::RedisReplayGuard;
pub use limit::{ForwardedHeader, MAX_KEY_LIMITS, RateLimit, RateLimitError, RateLimits, Throttle};
#[cfg(feature = "redis")]
pub use limit::{RedisFailure, RedisLimits};
pub use network::{IpNetwork, IpNetworkError};
pub use problem::Problem;
pub use rejection::ApiKeyRejection;
pub use render::{RenderFuture, RenderRejections, RenderRejectionsLayer, render_rejections};
pub use self_service::{MAX_SELF_SERVICE_ROTATIONS, self_service};
pub use settings::{
    ProblemTypeBaseError, RouterSettings, RouterSettingsLayer, WithRouterSettings,
    set_problem_type_base,
};
pub use store::{
    ApiKeys, Key, KeyDigest, KeyError, KeyStore, ListedKey, MAX_ID_LEN, MAX_KEY_LEN, MIN_KEY_LEN,
    Rotation, digest,
};
pub use store::{MAX_FINISHED_KEYS, MAX_KEYS_IN_GRACE, ManageError, ManagedKeys};
#[cfg(feature = "postgres")]
pub use store::{PgKeys, PgKeysError, PgKeysOptions};

/// Usage metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
///
/// Install any recorder (`metrics-exporter-prometheus` for Prometheus) and the guard reports:
///
/// | metric | kind | labels |
/// | --- | --- | --- |
/// | `api_key_decisions_total` | counter | `outcome` (`accepted`, `anonymous`, `refused`), `reason` (the audit event's, empty when accepted) |
/// | `api_key_rate_limited_total` | counter | – |
/// | `api_key_credits_spent_total` | counter | – (the credits accepted requests spent) |
/// | `api_key_limiter_fallbacks_total` | counter | `reason` (`timeout`, `error`, `unreachable`: a request counted without Redis) |
/// | `api_key_guard_seconds` | histogram | – |
///
/// Refusals by plan are decisions with their own `reason`: `credits_exhausted`,
/// `disabled`, `address_not_allowed`.
///
/// Key ids are a label (`key_id`) only after [`label_key_ids(true)`](metrics::label_key_ids), or
/// under a [`RouterSettings`] layer that asks for them: every key is then a time series of its
/// own.
#[cfg(feature = "metrics")]
pub mod metrics {
    /// Labels decisions, rate-limit refusals and spent credits with the key's id, or stops
    /// doing so: the process's default, which a [`RouterSettings`](crate::RouterSettings) layer
    /// overrides for the routes under it.
    pub fn label_key_ids(on: bool) {
        crate::usage::set_label_key_ids(on);
    }
}

/// Protects an async axum handler with an API key.
///
/// The handler gets an extra first argument, a [`RequireApiKey`] guard configured by the
/// attribute, so every other extractor runs only after the key is verified. The function keeps
/// its name, visibility, attributes, doc comments, generics and where clause. To know which key
/// was presented, take a [`VerifiedKey`] argument anywhere in the list.
///
/// # Arguments
///
/// | argument | meaning | default |
/// | --- | --- | --- |
/// | `header = "x-api-key"` | read the key from this request header; any case | `"x-api-key"` when no source is named |
/// | `query = "api_key"` | read it from this query parameter, percent-decoded | – |
/// | `cookie = "session"` | read it from this cookie | – |
/// | `bearer` | read it from `Authorization: Bearer <key>`, the scheme in any case | – |
/// | `status = 401` | the answer to a missing or invalid key, an integer literal from 400 to 499 | `401` |
/// | `scopes = ["orders:read", …]` | the key must hold every one of these | none |
/// | `optional` | a request without a key reaches the handler, which takes `Option<VerifiedKey>` | off |
/// | `rate_limit = "10/s"` | each key may call this handler at this [`RateLimit`], a budget beside the key's own; over it, `429` | none |
/// | `cost = 5` | each request spends this many credits of a key that has credits ([`Key::credits`]), 0 to 1,000,000; too few left, `429` | 1 |
/// | `store = PartnerKeys` | the [`KeyStore`] to take from the router state | [`ApiKeys`] |
/// | `state = AppState` | the router state, checked at compile time to provide the store, with the error at this type | – |
/// | `crate = path` | where this crate is, for crates that re-export it | `::axum_api_key` |
///
/// With feature `openapi`, a `#[utoipa::path(...)]` below `#[api_key]` gets the route's security
/// requirement and refusals added to its own arguments (see the `openapi` module). Put
/// `#[api_key]` above it: an attribute above `#[api_key]` has expanded before it and cannot be
/// changed, so that order is a compile error (`__path_handler` is ambiguous, its notes at
/// `#[api_key]`), rather than an operation documented without its key.
///
/// A missing, empty, unknown, malformed, oversized (over [`MAX_KEY_LEN`] bytes) or non-UTF-8
/// key gets `status`; a 401 also carries a `WWW-Authenticate` challenge naming where the key
/// goes (`ApiKey header="x-api-key"`, and `Bearer` for a bearer source). A key sent twice, or in
/// two places, gets 400; a valid key lacking a scope gets 403 naming it; a store that cannot
/// answer gets 503; a key over its own rate limit or the route's gets 429 with `Retry-After`
/// and the `RateLimit` fields (see [`RateLimits`]), and an address that made too many failed
/// attempts gets 429 before its key is looked at (see [`Throttle`]). See [`ApiKeyRejection`]
/// for the body.
///
/// The router state must provide the store: `Router::with_state(keys)`, or a state struct with
/// `#[derive(FromRef)]` holding one.
///
/// The guard joins the handler's first argument in a tuple (or becomes the only argument of a
/// handler without one), so the handler keeps its arity and composes with other attributes:
/// `#[axum::debug_handler]` below `#[api_key]` (give it `state = …` as for any handler using
/// state) or above it (the handler then needs an argument), and `#[tracing::instrument]` above or
/// below. Documentation shows the handler as written.
///
/// Every configuration is a type of this crate that every handler configured alike shares (its
/// names and scopes packed into the type, up to 64 scopes and 1,024 bytes; a `rate_limit`'s
/// budget named by a hash of the handler's module, name and place): nothing is defined beside the
/// handler but, where there is something to check, one hidden function that is never called. A
/// plain `#[api_key]` costs the compiler about what a hand-written extractor does, and the
/// handler may be an associated function in an `impl` block, of a generic type too, with every
/// argument. The handler's documentation gains one line saying what a request needs: where the
/// key goes, the scopes, the rate limit and the status of a refusal.
///
/// `optional` and the key arguments must agree: with `optional`, take `Option<VerifiedKey>`
/// (a bare `VerifiedKey`, also inside a tuple, is an error); without it, take `VerifiedKey` (an
/// `Option<VerifiedKey>` would always be `Some`, and is an error). Spellings the attribute cannot
/// see (a type alias, a struct extractor holding the key) are safe at run time: behind an
/// optional guard, a request without a key is refused as a missing key, never with a 500.
/// `optional` with `scopes` is an error: a request without a key holds no scope.
///
/// On a unit struct, the attribute defines a guard configuration instead, a [`KeyConfig`] for
/// [`RequireApiKey::layer`] or [`RequireApiKey`] as an extractor.
///
/// # Examples
///
/// ```
/// use axum::{extract::FromRef, routing::post, Json, Router};
/// use axum_api_key::{api_key, ApiKeys, VerifiedKey};
///
/// #[derive(Clone, FromRef)]
/// struct AppState {
///     keys: ApiKeys,
///     greeting: String,
/// }
///
/// /// Creates an order; the key is checked before the body is read.
/// #[api_key(header = "X-Partner-Key", status = 403)]
/// pub async fn create_order(key: VerifiedKey, Json(order): Json<serde_json::Value>) -> String {
///     format!("order {order} accepted from {}", key.id())
/// }
///
/// let state = AppState { keys: ApiKeys::new().with_key("partner-a", "pa_7Qm2xY9wLkV3rT8s"), greeting: "hi".into() };
/// let app: Router = Router::new().route("/orders", post(create_order)).with_state(state);
/// ```
///
/// # Compile errors
///
/// Every mistake in the attribute is reported at the token at fault, all at once, with the
/// function left as it was so that the route using it raises no further error:
///
/// | mistake | message |
/// | --- | --- |
/// | `#[api_key(stauts = 403)]` | unknown argument `stauts`; did you mean `status`? and the list of valid arguments |
/// | `#[api_key(name = "x")]`, `status_code`, `auto_error` | unknown argument, with the argument to use instead |
/// | `#[api_key(status = 403, status = 401)]` | `status` is set more than once; keep one |
/// | `#[api_key(header = "x api key")]` | not a valid HTTP header name, naming the character at fault |
/// | `#[api_key(header = "")]` | the header name is empty |
/// | `#[api_key(status = "403")]` | the status is an integer, not a string |
/// | `#[api_key(status = 401u8)]`, `status = 403f32` | the status is a plain integer, without the suffix |
/// | `#[api_key(status = 200)]`, `status = 500` | not a client-error status; use an integer from 400 to 499 |
/// | `#[api_key(status)]`, `#[api_key(header)]` | this argument needs a value |
/// | `#[api_key(header = "Authorization")]`, `"cookie"` | that header holds more than a key: use `bearer`, or `cookie = "name"` |
/// | `#[api_key(query = "")]`, `query = "api key"` | the query parameter's name is empty, or not URL-safe (naming the character) |
/// | `#[api_key(cookie = "")]`, `cookie = "a;b"` | the cookie's name is empty, or not a valid cookie name (naming the character) |
/// | `#[api_key(bearer = 1)]`, `optional = true` | takes no value: write `#[api_key(bearer)]` |
/// | `#[api_key(scopes = [])]` | the scope list is empty |
/// | `#[api_key(scopes = "orders:read")]` | expected a list of scopes in brackets |
/// | `#[api_key(scopes = ["", "a b", "a", "a"])]` | a scope cannot be empty; not a valid scope; listed twice |
/// | `#[api_key(optional)]` with a `VerifiedKey` argument, also inside a tuple | with `optional`, take `Option<VerifiedKey>` |
/// | `#[api_key]` with an `Option<VerifiedKey>` argument | without `optional`, it is always `Some`: take `VerifiedKey`, or add `optional` |
/// | `#[api_key(rate_limit = "10 per second")]`, `"0/s"`, `"10/fortnight"` | not a rate limit, saying which part is wrong, at the literal |
/// | `#[utoipa::path]` above `#[api_key]` (feature `openapi`) | `__path_handler` is ambiguous, at the handler, with notes at `#[api_key]`: put `#[api_key]` above `#[utoipa::path]` |
/// | `#[api_key(optional, scopes = [...])]` | `optional` cannot go with `scopes`: a scoped route must refuse a request without a key |
/// | `#[api_key]` twice on one item | applied twice; keep one, at the second attribute |
/// | `#[api_key(stauts = 403, store = 5)]` | every malformed argument, each at its token |
/// | `#[api_key(crate = axum)]` | `crate` says where `axum_api_key` is, and `axum` is not it, at the path |
/// | `#[api_key(store = PartnerKeys)]` with no such type | cannot find type `PartnerKeys`, once, at the type |
/// | `#[api_key(store = 5)]`, `store = &str` | expected a type |
/// | `#[api_key(state = AppState)]` where `AppState` lacks the store | the router state `AppState` does not provide the API key store `ApiKeys`, at `AppState`, with the two fixes |
/// | the same without `state = …` | axum's unsatisfied `Handler` bound at the route: add `state = AppState` to get the message above |
/// | `#[api_key(store = Arc<ApiKeys>)]`, `Option<ApiKeys>`, `Vec<u8>`, `String`, `VerifiedKey` | name the store itself / is not an API key store, at the type, with what to write (the route raises nothing more) |
/// | `#[api_key(store = Settings)]`, a type of yours that is no store | `Settings` is not an API key store, at the type, with the method to implement (axum's `Handler` error at the route follows) |
/// | more than 16 arguments | axum handlers take at most 16 arguments |
/// | `store = …` on a unit struct | a guard type does not choose its store |
/// | `fn handler()` without `async` | needs an async handler: write `async fn handler(...)` (the route using it raises nothing more) |
/// | a syntax error in the handler's body | the compiler's own error, at its place, and nothing else |
/// | `async fn h(Json(b): Json<T>, key: VerifiedKey)` | `Json` reads the request body, so it must be the last argument, at `Json<T>` |
/// | a return type that is no response | `T` is not a response, so the handler cannot serve a route, at the type (axum's `Handler` error at the route follows) |
/// | `#[axum::debug_handler]` below `#[api_key]` without a state | tell it the state, or put it above; with `state = AppState` in `#[api_key]`, that state is passed on to it |
/// | `-> impl Display` (bounds that are no response) | `impl Display` is not a response: return `impl IntoResponse` |
/// | an argument of type `impl Into<String>` | a handler's arguments are extractors: take the type itself |
/// | more than 64 scopes, or a scope over 255 bytes | at most 64 scopes / a scope can be at most 255 bytes |
/// | `#[utoipa::path]` above `#[api_key]` (feature `openapi`) | its operation was made before the guard and documents no API key, at the handler's name: put `#[api_key]` above |
/// | on a method declared in a trait (no body) | a method declared in a trait has none: put it on an `async fn` with a body |
/// | on a method of a trait's `impl` | the compiler's "method has 1 parameter but the declaration in trait has 0": the guard is an argument, which the trait does not declare; route an inherent or free function |
/// | `#[axum::debug_handler]` above a handler without arguments | axum's check calls it without the guard's argument: put `#[axum::debug_handler]` below `#[api_key]` |
/// | `async fn handler(&self)` | a handler cannot take `self` |
/// | `const`, `unsafe` or `extern` fn | cannot be an axum handler, with what to remove |
/// | on a struct with fields, an enum, impl block, module, ... | protects an async handler function, or a unit struct |
///
/// ```compile_fail
/// #[axum_api_key::api_key(stauts = 403)] // unknown argument `stauts`; did you mean `status`?
/// async fn handler() {}
/// ```
#[doc(inline)]
pub use axum_api_key_macros::api_key;

/// Verifies a signed webhook before an async axum handler runs (feature `webhooks`).
///
/// ```
/// use axum::{routing::post, Json, Router};
/// use axum_api_key::webhook::WebhookSecrets;
///
/// #[axum_api_key::webhook(scheme = "standard")]
/// async fn payment_event(Json(event): Json<serde_json::Value>) -> &'static str {
///     // `event` is the very body whose signature was verified.
///     "ok"
/// }
///
/// let secrets = WebhookSecrets::new().with_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
/// let app: Router = Router::new().route("/hooks/payments", post(payment_event)).with_state(secrets);
/// ```
///
/// | argument | meaning | default |
/// | --- | --- | --- |
/// | `scheme = "standard"` | `"standard"` (Standard Webhooks), `"github"` or `"stripe"` | required |
/// | `tolerance = 300` | seconds a timestamp may be from now, either way | `300` |
/// | `max_body = 1048576` | the largest body, in bytes; 413 past it, before any MAC | `1048576` |
/// | `secrets = PartnerSecrets` | the [`SecretSource`](webhook::SecretSource) to take from the router state | [`WebhookSecrets`](webhook::WebhookSecrets) |
/// | `crate = path` | where this crate is, for crates that re-export it | `::axum_api_key` |
///
/// The handler gets a [`WebhookGuard`](webhook::WebhookGuard) first, which refuses a request
/// without well-formed signature headers (`missing_signature`), with a timestamp out of the
/// tolerance (`stale_timestamp`) or announcing a body over `max_body` (`body_too_large`) before
/// any other extractor runs (it joins the first argument, so the handler keeps its arity and
/// `#[axum::debug_handler]` composes above or below, given the state). Its last argument,
/// whatever extractor it is (`Bytes`, `String`, `Json<T>`, one of your own, or one of the
/// request's parts), is made from the verified request by a [`Signed`](webhook::Signed), which
/// reads the body once,
/// compares every secret's MAC with every signature in constant time (`bad_signature`), refuses
/// a message handled before (`replayed`) or being handled (`in_flight`) and hands the handler
/// the verified bytes. Delivery is at least once: the message counts as handled only once the
/// handler answered 2xx; any other answer (or a body its extractor refuses) releases it, so
/// that the sender's retry is accepted. Refusals are
/// `application/problem+json` with the reason, and audit events like the key guard's; no
/// secret or signature is ever in an answer or a log.
#[cfg(feature = "webhooks")]
#[doc(inline)]
pub use axum_api_key_macros::webhook;

/// What generated code uses. Not public API.
#[doc(hidden)]
pub mod __private;

/// What `#[api_key]` checks at compile time, named in the notes of its errors. Not public API.
#[doc(hidden)]
pub mod checks;
