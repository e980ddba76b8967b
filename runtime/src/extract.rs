//! [`RequireApiKey`]: the verifying extractor that `#[api_key]` puts first in a handler.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts, MatchedPath};
use http::request::Parts;
use http::{HeaderName, StatusCode};

use crate::rejection::{ApiKeyRejection, Problem};
use crate::store::{ApiKeys, KeyError};

/// Where a guard reads the key and how it answers a refusal.
///
/// `#[api_key]` generates one implementation per handler; implement it by hand to use
/// [`RequireApiKey`] without the attribute.
///
/// ```
/// use axum_api_key::{KeyConfig, RequireApiKey};
/// use http::HeaderName;
///
/// enum PartnerKey {}
///
/// impl KeyConfig for PartnerKey {
///     const HEADER: HeaderName = HeaderName::from_static("x-partner-key");
///     const STATUS: u16 = 403;
/// }
///
/// async fn handler(_: RequireApiKey<PartnerKey>) -> &'static str {
///     "hello, partner"
/// }
/// # let _: axum::Router<axum_api_key::ApiKeys> = axum::Router::new().route("/", axum::routing::get(handler));
/// ```
pub trait KeyConfig: 'static {
    /// The request header that carries the key, in lower case.
    const HEADER: HeaderName;
    /// The status for a missing or invalid key, from 400 to 499; anything else is answered
    /// with 401.
    const STATUS: u16;
}

/// Verifies the request's API key before the handler runs.
///
/// Extracting it reads the key from the header that `C` names, checks it against the
/// [`ApiKeys`] in the router state, records the decision as an audit event (target
/// `axum_api_key::audit`: outcome, key id, method, route; never the key), and stores the
/// [`VerifiedKey`](crate::VerifiedKey) in the request's extensions for the handler. A refused request gets an
/// [`ApiKeyRejection`] and never reaches the handler.
///
/// `#[api_key]` adds it as a handler's first argument, so it runs before every other
/// extractor. The state must provide the store: `ApiKeys` itself, or a state struct with
/// `#[derive(FromRef)]`.
pub struct RequireApiKey<C> {
    _config: PhantomData<fn() -> C>,
}

impl<C, S> FromRequestParts<S> for RequireApiKey<C>
where
    C: KeyConfig,
    ApiKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiKeyRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = ApiKeys::from_ref(state);
        let status = StatusCode::from_u16(C::STATUS)
            .ok()
            .filter(StatusCode::is_client_error)
            .unwrap_or(StatusCode::UNAUTHORIZED);
        guard(parts, &keys, C::HEADER, status)?;
        Ok(Self {
            _config: PhantomData,
        })
    }
}

/// The outcome of reading and checking a request's key, before it is answered and audited.
enum Refusal {
    Missing,
    Duplicate,
    Key(KeyError),
}

/// The work of [`RequireApiKey`], outside the generic code so it is compiled once.
fn guard(
    parts: &mut Parts,
    keys: &ApiKeys,
    header: HeaderName,
    status: StatusCode,
) -> Result<(), ApiKeyRejection> {
    let outcome = {
        let mut values = parts.headers.get_all(&header).into_iter();
        match (values.next(), values.next()) {
            (None, _) => Err(Refusal::Missing),
            (Some(_), Some(_)) => Err(Refusal::Duplicate),
            (Some(value), None) if value.is_empty() => Err(Refusal::Missing),
            (Some(value), None) => keys.verify(value.as_bytes()).map_err(Refusal::Key),
        }
    };
    match outcome {
        Ok(key) => {
            tracing::debug!(
                target: "axum_api_key::audit",
                outcome = "accepted",
                key_id = key.id(),
                method = %parts.method,
                route = route(parts),
            );
            parts.extensions.insert(key);
            Ok(())
        }
        Err(refusal) => {
            let (reason, problem) = match refusal {
                Refusal::Missing => ("missing", Problem::MissingKey),
                Refusal::Duplicate => ("duplicate", Problem::DuplicateKey),
                Refusal::Key(KeyError::TooLong) => ("too_long", Problem::InvalidKey),
                Refusal::Key(KeyError::Malformed) => ("malformed", Problem::InvalidKey),
                Refusal::Key(KeyError::Unknown) => ("unknown", Problem::InvalidKey),
            };
            let rejection = ApiKeyRejection::new(problem, status, header);
            tracing::info!(
                target: "axum_api_key::audit",
                outcome = "refused",
                reason,
                status = rejection.status().as_u16(),
                method = %parts.method,
                route = route(parts),
            );
            Err(rejection)
        }
    }
}

/// The route for the audit event: the matched pattern when axum's router set one, so ids in
/// paths do not multiply log keys; otherwise the path without the query.
fn route(parts: &Parts) -> &str {
    parts
        .extensions
        .get::<MatchedPath>()
        .map_or(parts.uri.path(), MatchedPath::as_str)
}
