//! The extractors `#[webhook]` puts in a handler: [`WebhookGuard`] first, which reads the
//! signature headers, and [`Signed`] last, which reads the body once, checks its MAC and hands
//! the handler the very bytes that were verified.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::CONTENT_LENGTH;
use http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::verify::{Claimed, HeaderError, claimed, matching};
use super::{Scheme, SecretSource, WebhookConfigType};
use crate::extract::route;

/// Why a webhook request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WebhookProblem {
    /// The signature headers are missing or not of the scheme's form: `401`.
    MissingSignature,
    /// No signature matches the body with any secret: `401`.
    BadSignature,
    /// The timestamp is further from now than the tolerance: `401`.
    StaleTimestamp,
    /// This message was handled already: `409`.
    Replayed,
    /// Another delivery of this message is being handled right now: `409`. If that one fails,
    /// the next retry is accepted.
    InFlight,
    /// The receiver holds as many message ids as it can inside their window, and refuses new
    /// ones rather than forget one that could come again: `503`; the sender retries later.
    ReceiverFull,
    /// The body is larger than the route accepts; no MAC was computed: `413`.
    BodyTooLarge,
    /// The body did not arrive within the read timeout: `408`.
    BodyTimeout,
    /// The handler takes [`Signed`] but no [`WebhookGuard`] ran before it: `500`.
    NotProtected,
}

impl WebhookProblem {
    /// The reason in audit events: `missing_signature`, `bad_signature`, `stale_timestamp`,
    /// `replayed`, `in_flight`, `receiver_full`, `body_too_large`, `body_timeout` or
    /// `not_protected`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::BadSignature => "bad_signature",
            Self::StaleTimestamp => "stale_timestamp",
            Self::Replayed => "replayed",
            Self::InFlight => "in_flight",
            Self::ReceiverFull => "receiver_full",
            Self::BodyTooLarge => "body_too_large",
            Self::BodyTimeout => "body_timeout",
            Self::NotProtected => "not_protected",
        }
    }

    /// The problem's name in a `type` URI (see [`set_problem_type_base`](crate::set_problem_type_base)):
    /// `webhook-` followed by the [`reason`](Self::reason) with hyphens, e.g.
    /// `webhook-bad-signature`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::MissingSignature => "webhook-missing-signature",
            Self::BadSignature => "webhook-bad-signature",
            Self::StaleTimestamp => "webhook-stale-timestamp",
            Self::Replayed => "webhook-replayed",
            Self::InFlight => "webhook-in-flight",
            Self::ReceiverFull => "webhook-receiver-full",
            Self::BodyTooLarge => "webhook-body-too-large",
            Self::BodyTimeout => "webhook-body-timeout",
            Self::NotProtected => "webhook-not-protected",
        }
    }

    /// The status of the answer.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingSignature | Self::BadSignature | Self::StaleTimestamp => {
                StatusCode::UNAUTHORIZED
            }
            Self::Replayed | Self::InFlight => StatusCode::CONFLICT,
            Self::ReceiverFull => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NotProtected => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::MissingSignature => "Webhook signature required",
            Self::BadSignature => "Invalid webhook signature",
            Self::StaleTimestamp => "Webhook timestamp out of range",
            Self::Replayed => "Webhook already received",
            Self::InFlight => "Webhook being handled",
            Self::ReceiverFull => "Webhook receiver full",
            Self::BodyTooLarge => "Webhook body too large",
            Self::BodyTimeout => "Webhook body too slow",
            Self::NotProtected => "Webhook check not configured",
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Self::MissingSignature => {
                "This endpoint accepts signed webhooks only; the signature headers are missing or malformed."
            }
            Self::BadSignature => "No signature of this request matches its body.",
            Self::StaleTimestamp => "The webhook's timestamp is too far from the current time.",
            Self::Replayed => "This webhook message was received already.",
            Self::InFlight => {
                "Another delivery of this webhook message is being handled; retry if it fails."
            }
            Self::ReceiverFull => {
                "This endpoint cannot take new webhook messages now; retry later."
            }
            Self::BodyTooLarge => "The webhook's body is larger than this endpoint accepts.",
            Self::BodyTimeout => "The webhook's body did not arrive in time.",
            Self::NotProtected => "The server could not check this webhook's signature.",
        }
    }
}

/// The answer to a refused webhook: the problem's status and an `application/problem+json`
/// body (RFC 9457) naming the reason; never a secret or a signature.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRejection {
    problem: WebhookProblem,
}

impl WebhookRejection {
    /// Why the request was refused.
    pub fn problem(&self) -> WebhookProblem {
        self.problem
    }
}

impl fmt::Display for WebhookRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.problem.title(), self.problem.detail())
    }
}

impl std::error::Error for WebhookRejection {}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        let problem = self.problem;
        crate::problem::problem_response(
            problem.status(),
            problem.slug(),
            problem.title(),
            problem.detail(),
            Some(problem.reason()),
        )
    }
}

/// Reads a webhook's signature headers before any other extractor: a request without a
/// well-formed signature, or with a timestamp out of the tolerance, or announcing a body over
/// the route's size, is refused here. `#[webhook]` puts it first in the handler.
pub struct WebhookGuard<C, K = super::WebhookSecrets> {
    _config: PhantomData<fn() -> (C, K)>,
}

/// What the guard read, for [`Signed`].
#[derive(Clone)]
struct Claim(Claimed);

impl<C, K, St> FromRequestParts<St> for WebhookGuard<C, K>
where
    C: WebhookConfigType,
    K: SecretSource + FromRef<St>,
    St: Send + Sync,
{
    type Rejection = WebhookRejection;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        let config = C::CONFIG;
        let announced = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if announced.is_some_and(|length| length > config.max_body() as u64) {
            return Err(refuse(parts, config.scheme(), WebhookProblem::BodyTooLarge));
        }
        match claimed(&config, &parts.headers) {
            Ok(claimed) => {
                parts.extensions.insert(Claim(claimed));
                Ok(Self {
                    _config: PhantomData,
                })
            }
            Err(HeaderError::Missing) => Err(refuse(
                parts,
                config.scheme(),
                WebhookProblem::MissingSignature,
            )),
            Err(HeaderError::Stale) => Err(refuse(
                parts,
                config.scheme(),
                WebhookProblem::StaleTimestamp,
            )),
        }
    }
}

/// The body of a webhook whose signature was verified, as `T` (`Bytes`, `String`, `Json<U>`,
/// or any body extractor) made from the very bytes the MAC covered. `#[webhook]` puts it in
/// place of the handler's body argument, which keeps its type.
///
/// The body is read once, up to the route's size (413 past it, before any MAC), and every
/// secret's MAC is compared with every signature in constant time. A message accepted before
/// (the same Standard Webhooks id, or the same Stripe signature) is refused as replayed; the
/// [`Delivery`] settles the message by the handler's answer, which `#[webhook]` does.
pub struct Signed<T, C, K = super::WebhookSecrets>(
    pub T,
    pub PhantomData<fn() -> (C, K)>,
    pub Delivery,
);

/// A message's claim while its handler runs: [`settle`](Self::settle)d by the handler's answer,
/// as `#[webhook]` does: a 2xx answer marks the message handled, so that a replay is refused;
/// any other answer releases it, so that the sender's retry is accepted. Dropped unsettled (the
/// request was cancelled, the handler panicked), it is released.
#[must_use = "a delivery is settled by the handler's answer"]
pub struct Delivery {
    claim: Option<(std::sync::Arc<dyn super::ReplayGuard>, String, Duration)>,
}

impl Delivery {
    /// A delivery of a message with nothing to settle (GitHub signs no id).
    fn untracked() -> Self {
        Self { claim: None }
    }

    /// Marks the message handled when `status` is a success, releases it otherwise.
    pub async fn settle(mut self, status: StatusCode) {
        if let Some((guard, id, ttl)) = self.claim.take() {
            if status.is_success() {
                guard.confirm(&id, ttl).await;
            } else {
                guard.release(&id).await;
            }
        }
    }

    /// Settles by a response's status, and hands the response back.
    pub async fn settle_response(self, response: Response) -> Response {
        self.settle(response.status()).await;
        response
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("tracked", &self.claim.is_some())
            .finish()
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some((guard, id, _)) = self.claim.take() {
            // Without a runtime to wait on, the claim expires with its window instead.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { guard.release(&id).await });
            }
        }
    }
}

// Any extractor, of the body or of the request's parts (`M` tells which, as axum's own
// extractors do; wrapped in a tuple, which no extractor of parts is): `#[webhook]` wraps the
// handler's last argument, whatever it is.
impl<T, C, K, St, M> FromRequest<St, (M,)> for Signed<T, C, K>
where
    T: FromRequest<St, M>,
    C: WebhookConfigType,
    K: SecretSource + FromRef<St>,
    St: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &St) -> Result<Self, Self::Rejection> {
        let config = C::CONFIG;
        let (mut parts, body) = request.into_parts();
        let Some(Claim(claimed)) = parts.extensions.remove::<Claim>() else {
            tracing::error!(
                target: "axum_api_key::audit",
                method = %parts.method,
                path = parts.uri.path(),
                "a handler takes a signed webhook body but no webhook guard ran before it; put \
                 `#[webhook]` on the handler"
            );
            return Err(
                refuse(&parts, config.scheme(), WebhookProblem::NotProtected).into_response(),
            );
        };
        let secrets = K::from_ref(state);
        let secrets = secrets.webhook_secrets();
        let read = Limited::new(body, config.max_body()).collect();
        let Ok(read) = tokio::time::timeout(secrets.read_timeout(), read).await else {
            return Err(
                refuse(&parts, config.scheme(), WebhookProblem::BodyTimeout).into_response()
            );
        };
        let bytes: Bytes = match read {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(
                    refuse(&parts, config.scheme(), WebhookProblem::BodyTooLarge).into_response(),
                );
            }
            // The client went away mid-body: nothing was verified.
            Err(_) => {
                return Err(
                    refuse(&parts, config.scheme(), WebhookProblem::BadSignature).into_response(),
                );
            }
        };
        let Some(matched) = matching(&config, &claimed, secrets, &bytes) else {
            return Err(
                refuse(&parts, config.scheme(), WebhookProblem::BadSignature).into_response(),
            );
        };
        let message = match config.scheme() {
            Scheme::Standard => claimed.id().map(|id| format!("standard:{id}")),
            Scheme::Stripe => Some(format!("stripe:{}", crate::hex::encode(&matched))),
            // GitHub signs no time and no id: there is nothing to tell a replay by.
            Scheme::GitHub => None,
        };
        let delivery = match message {
            Some(message) => {
                let window = config.tolerance().saturating_mul(2) + Duration::from_secs(1);
                let guard = std::sync::Arc::clone(secrets.replay());
                let refused = match guard.claim(&message, window).await {
                    super::Sighting::First => None,
                    super::Sighting::InFlight => Some(WebhookProblem::InFlight),
                    super::Sighting::Seen => Some(WebhookProblem::Replayed),
                    super::Sighting::Full => Some(WebhookProblem::ReceiverFull),
                };
                if let Some(problem) = refused {
                    return Err(refuse(&parts, config.scheme(), problem).into_response());
                }
                Delivery {
                    claim: Some((guard, message, window)),
                }
            }
            None => Delivery::untracked(),
        };
        tracing::debug!(
            target: "axum_api_key::audit",
            outcome = "accepted",
            scheme = config.scheme().name(),
            webhook_id = claimed.id(),
            method = %parts.method,
            route = route(&parts),
        );
        let request = Request::from_parts(parts, Body::from(bytes));
        let refused = match T::from_request(request, state).await {
            Ok(value) => return Ok(Self(value, PhantomData, delivery)),
            Err(rejection) => rejection.into_response(),
        };
        // A body the handler's extractor refuses was not handled: the claim is released, so
        // that a corrected retry is accepted.
        Err(delivery.settle_response(refused).await)
    }
}

fn refuse(parts: &Parts, scheme: Scheme, problem: WebhookProblem) -> WebhookRejection {
    tracing::info!(
        target: "axum_api_key::audit",
        outcome = "refused",
        reason = problem.reason(),
        status = problem.status().as_u16(),
        scheme = scheme.name(),
        method = %parts.method,
        route = route(parts),
    );
    WebhookRejection { problem }
}

/// The guard's checks, then [`Signed`]'s, in one extractor: what `#[webhook]` gives a handler
/// of one argument (or none), so that it keeps its arity. Not public API.
#[doc(hidden)]
pub struct GuardedSigned<T, C, K = super::WebhookSecrets>(
    pub T,
    pub PhantomData<fn() -> (C, K)>,
    pub Delivery,
);

impl<T, C, K, St, M> FromRequest<St, (M,)> for GuardedSigned<T, C, K>
where
    T: FromRequest<St, M>,
    C: WebhookConfigType,
    K: SecretSource + FromRef<St>,
    St: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &St) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        if let Err(rejection) = WebhookGuard::<C, K>::from_request_parts(&mut parts, state).await {
            return Err(rejection.into_response());
        }
        let request = Request::from_parts(parts, body);
        let Signed(value, _, delivery) =
            <Signed<T, C, K> as FromRequest<St, (M,)>>::from_request(request, state).await?;
        Ok(Self(value, PhantomData, delivery))
    }
}
