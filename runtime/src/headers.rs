//! [`rate_limit_headers`]: `RateLimit` fields on accepted responses.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::response::Response;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::limit::Count;

/// Adds `RateLimit-Policy` and `RateLimit` to every accepted response of a rate-limited key, so
/// that clients see their budget before they run out of it.
///
/// A refused request (`429`) carries the fields with or without this layer; a guard is an
/// extractor and cannot reach the response of a request it let through, so the layer carries
/// them there. Put it once over the router; a response that sets the fields itself keeps its
/// own.
///
/// ```
/// use axum::{routing::get, Router};
/// use axum_api_key::{api_key, rate_limit_headers, ApiKeys, Key};
///
/// #[api_key]
/// async fn data() -> &'static str {
///     "secret information"
/// }
///
/// let keys = ApiKeys::new()
///     .with(Key::new("partner-a", "pa_7Qm2xY9wLkV3rT8s").rate_limit("60/min".parse()?));
/// let app: Router = Router::new()
///     .route("/data", get(data))
///     .with_state(keys)
///     .layer(rate_limit_headers());
/// // A response to partner-a carries `ratelimit-policy: "key";q=60;w=60` and
/// // `ratelimit: "key";r=59;t=1`.
/// # Ok::<(), axum_api_key::RateLimitError>(())
/// ```
pub fn rate_limit_headers() -> RateLimitHeadersLayer {
    RateLimitHeadersLayer { _private: () }
}

/// The layer made by [`rate_limit_headers`].
#[derive(Debug, Clone)]
pub struct RateLimitHeadersLayer {
    _private: (),
}

impl<S> Layer<S> for RateLimitHeadersLayer {
    type Service = RateLimitHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitHeaders { inner }
    }
}

/// The service made by [`RateLimitHeadersLayer`].
#[derive(Debug, Clone)]
pub struct RateLimitHeaders<S> {
    inner: S,
}

/// Left in a request's extensions by the layer; the guard fills it with the budgets it counted
/// the request in, and the layer writes their fields on the response.
#[derive(Clone, Default)]
pub(crate) struct LimitSlot(Arc<OnceLock<Count>>);

impl LimitSlot {
    pub(crate) fn fill(&self, count: Count) {
        // A second guard on the same request (a layer and a handler's own) keeps the first's.
        let _ = self.0.set(count);
    }
}

impl<S, B> Service<http::Request<B>> for RateLimitHeaders<S>
where
    S: Service<http::Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RateLimitHeadersFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let slot = LimitSlot::default();
        request.extensions_mut().insert(slot.clone());
        RateLimitHeadersFuture {
            inner: self.inner.call(request),
            slot,
        }
    }
}

pin_project! {
    /// The future of [`RateLimitHeaders`].
    pub struct RateLimitHeadersFuture<F> {
        #[pin]
        inner: F,
        slot: LimitSlot,
    }
}

impl<F, E> Future for RateLimitHeadersFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            other => return other,
        };
        if let Some(fields) = this.slot.0.get().and_then(Count::fields)
            && !response.headers().contains_key("ratelimit")
            && !response.headers().contains_key("credits-remaining")
        {
            fields.apply(response.headers_mut());
        }
        Poll::Ready(Ok(response))
    }
}
