//! [`RequireApiKey::layer`](super::RequireApiKey::layer): the guard over a whole router, as a
//! service of its own.
//!
//! A store that answers from memory, with budgets counted in process, is checked within
//! `call`: the request goes on to the route at once, or is answered with the refusal, and
//! nothing is allocated for the check. Any other store (one that waits, budgets kept in Redis,
//! the report of a key sent over plain HTTP) takes the same check in a boxed future that waits
//! as it needs.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::Request;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::mode::{Awaiting, Now, Stop, WouldWait, answers_now, at_once};
use super::{Keep, guard};
use crate::guard_config::{ConfigRef, KeyConfig};
use crate::store::KeyStore;

/// The layer made by [`RequireApiKey::layer`](super::RequireApiKey::layer): every route under
/// it needs a key that the configuration `C` accepts, from the store `S`.
pub struct RequireApiKeyLayer<C, S> {
    store: S,
    _config: PhantomData<fn() -> C>,
}

impl<C, S> RequireApiKeyLayer<C, S> {
    pub(super) fn new(store: S) -> Self {
        Self {
            store,
            _config: PhantomData,
        }
    }
}

impl<C, S: Clone> Clone for RequireApiKeyLayer<C, S> {
    fn clone(&self) -> Self {
        Self::new(self.store.clone())
    }
}

impl<C, S: fmt::Debug> fmt::Debug for RequireApiKeyLayer<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireApiKeyLayer")
            .field("config", &std::any::type_name::<C>())
            .field("store", &self.store)
            .finish()
    }
}

impl<C, S: Clone, I> Layer<I> for RequireApiKeyLayer<C, S> {
    type Service = RequireApiKeyService<C, S, I>;

    fn layer(&self, inner: I) -> Self::Service {
        RequireApiKeyService {
            inner,
            store: self.store.clone(),
            _config: PhantomData,
        }
    }
}

/// The service made by [`RequireApiKeyLayer`]: checks the request's key, then calls the
/// service under it, or answers with the refusal.
pub struct RequireApiKeyService<C, S, I> {
    inner: I,
    store: S,
    _config: PhantomData<fn() -> C>,
}

impl<C, S: Clone, I: Clone> Clone for RequireApiKeyService<C, S, I> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            store: self.store.clone(),
            _config: PhantomData,
        }
    }
}

impl<C, S: fmt::Debug, I: fmt::Debug> fmt::Debug for RequireApiKeyService<C, S, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireApiKeyService")
            .field("config", &std::any::type_name::<C>())
            .field("store", &self.store)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<C, S, I, B> Service<Request<B>> for RequireApiKeyService<C, S, I>
where
    C: KeyConfig,
    S: KeyStore + Clone,
    I: Service<Request<B>> + Clone + Send + 'static,
    I::Response: IntoResponse,
    I::Future: Send,
    I::Error: 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = I::Error;
    type Future = RequireApiKeyFuture<I::Future, I::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let config = <C as ConfigRef>::STATIC;
        let (mut parts, body) = request.into_parts();
        // A store that answers at once, with budgets counted here, is checked here.
        if answers_now(&self.store) {
            let checked = at_once(guard::<S, Now>(
                &mut parts,
                config,
                &self.store,
                Keep::InExtensions,
            ));
            match checked {
                Ok(()) => {
                    return RequireApiKeyFuture::Inner {
                        future: self.inner.call(Request::from_parts(parts, body)),
                    };
                }
                Err(Stop::Refused(rejection)) => {
                    return RequireApiKeyFuture::Refused {
                        response: Some(rejection.into_response()),
                    };
                }
                Err(Stop::Wait(WouldWait)) => {}
            }
        }
        // The service that was made ready goes with the request; this one keeps a clone.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let store = self.store.clone();
        RequireApiKeyFuture::Waiting {
            future: Box::pin(async move {
                match guard::<S, Awaiting>(&mut parts, config, &store, Keep::InExtensions).await {
                    Ok(()) => inner
                        .call(Request::from_parts(parts, body))
                        .await
                        .map(IntoResponse::into_response),
                    Err(Stop::Refused(rejection)) => Ok(rejection.into_response()),
                    Err(Stop::Wait(never)) => match never {},
                }
            }),
        }
    }
}

pin_project! {
    /// The future of [`RequireApiKeyService`].
    #[project = RequireApiKeyFutureProjection]
    pub enum RequireApiKeyFuture<F, E> {
        /// Checked: the route's answer.
        Inner { #[pin] future: F },
        /// Refused: the refusal, until it is taken.
        Refused { response: Option<Response> },
        /// The check that waits, then the route.
        Waiting { future: Pin<Box<dyn Future<Output = Result<Response, E>> + Send>> },
    }
}

impl<F, E> fmt::Debug for RequireApiKeyFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self {
            Self::Inner { .. } => "Inner",
            Self::Refused { .. } => "Refused",
            Self::Waiting { .. } => "Waiting",
        };
        f.debug_tuple("RequireApiKeyFuture").field(&state).finish()
    }
}

impl<F, R, E> Future for RequireApiKeyFuture<F, E>
where
    F: Future<Output = Result<R, E>>,
    R: IntoResponse,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RequireApiKeyFutureProjection::Inner { future } => future
                .poll(cx)
                .map(|answer| answer.map(IntoResponse::into_response)),
            RequireApiKeyFutureProjection::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after it gave its answer: there is nothing left to give.
                None => Poll::Pending,
            },
            RequireApiKeyFutureProjection::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}
