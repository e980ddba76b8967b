//! [`render_rejections`]: one layer that renders every refusal in the app's own format.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::rejection::{ApiKeyRejection, RenderingRejections};

/// Renders every [`ApiKeyRejection`] under this layer with `render`, for apps with their own
/// error format.
///
/// Put it once over the whole router. `render` chooses the body and its headers; the status and
/// the `WWW-Authenticate` challenge stay those of the rejection, whatever `render` returns, so
/// clients and proxies still see a correct refusal.
///
/// ```
/// use axum::{http::StatusCode, routing::get, Json, Router};
/// use axum_api_key::{api_key, render_rejections, ApiKeyRejection, ApiKeys};
///
/// #[api_key]
/// async fn data() -> &'static str {
///     "secret information"
/// }
///
/// let app: Router = Router::new()
///     .route("/data", get(data))
///     .with_state(ApiKeys::new())
///     .layer(render_rejections(|rejection: &ApiKeyRejection| {
///         Json(serde_json::json!({ "error": { "code": rejection.status().as_u16(), "message": rejection.detail() } }))
///     }));
/// ```
pub fn render_rejections<F, R>(render: F) -> RenderRejectionsLayer<F>
where
    F: Fn(&ApiKeyRejection) -> R + Clone + Send + Sync + 'static,
    R: IntoResponse,
{
    RenderRejectionsLayer { render }
}

/// The layer made by [`render_rejections`].
#[derive(Debug, Clone)]
pub struct RenderRejectionsLayer<F> {
    render: F,
}

impl<S, F: Clone> Layer<S> for RenderRejectionsLayer<F> {
    type Service = RenderRejections<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        RenderRejections {
            inner,
            render: self.render.clone(),
        }
    }
}

/// The service made by [`RenderRejectionsLayer`].
#[derive(Debug, Clone)]
pub struct RenderRejections<S, F> {
    inner: S,
    render: F,
}

impl<S, F, R, B> Service<http::Request<B>> for RenderRejections<S, F>
where
    S: Service<http::Request<B>, Response = Response>,
    F: Fn(&ApiKeyRejection) -> R + Clone,
    R: IntoResponse,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RenderFuture<S::Future, F>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(RenderingRejections);
        RenderFuture {
            inner: self.inner.call(request),
            render: self.render.clone(),
        }
    }
}

pin_project! {
    /// The future of [`RenderRejections`].
    pub struct RenderFuture<Fut, F> {
        #[pin]
        inner: Fut,
        render: F,
    }
}

impl<Fut, F, R, E> Future for RenderFuture<Fut, F>
where
    Fut: Future<Output = Result<Response, E>>,
    F: Fn(&ApiKeyRejection) -> R,
    R: IntoResponse,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.inner.poll(cx) {
            Poll::Ready(Ok(response)) => response,
            other => return other,
        };
        let Some(rejection) = response.extensions_mut().remove::<ApiKeyRejection>() else {
            return Poll::Ready(Ok(response));
        };
        let mut rendered = (this.render)(&rejection).into_response();
        rejection.apply(&mut rendered);
        Poll::Ready(Ok(rendered))
    }
}
