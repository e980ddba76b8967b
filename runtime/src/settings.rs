//! [`RouterSettings`]: settings of the routes under one router, in place of the process-wide
//! defaults, so that two apps in one process (tests, tenants) can differ.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::futures::TaskLocalFuture;
use tower_layer::Layer;
use tower_service::Service;

use crate::problem::{ProblemTypeBaseError, check_type_base};

tokio::task_local! {
    /// The settings of the router the request being served went through.
    static CURRENT: RouterSettings;
}

/// Settings of the refusals (and, with feature `metrics`, of the metrics) of every route under
/// one router: put [`layer`](Self::layer) over the router.
///
/// Each setting has a process-wide default, used where no layer says otherwise:
/// [`set_problem_type_base`](crate::set_problem_type_base) (`about:blank` when it was never
/// called) and `metrics::label_key_ids` (off). A layer overrides them for the requests it serves
/// only, so two routers in one process, two tenants or two tests, can differ.
///
/// They reach everything the crate answers under the layer: the guard's refusals, the
/// self-service, admin and secret-scanning routes', and signed webhooks'. The settings are
/// read by the request's own task, so that work a handler spawns elsewhere sees the defaults.
///
/// ```
/// use axum::{routing::get, Router};
/// use axum_api_key::{api_key, ApiKeys, RouterSettings};
///
/// #[api_key]
/// async fn data() -> &'static str {
///     "secret information"
/// }
///
/// let settings = RouterSettings::new().problem_type_base("https://api.example.com/problems/")?;
/// let app: Router = Router::new()
///     .route("/data", get(data))
///     .with_state(ApiKeys::new())
///     .layer(settings.layer());
/// // A request without a key: `"type":"https://api.example.com/problems/missing-key"`.
/// # Ok::<(), axum_api_key::ProblemTypeBaseError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct RouterSettings {
    problem_type_base: Option<Arc<str>>,
    #[cfg(feature = "metrics")]
    label_key_ids: Option<bool>,
}

impl RouterSettings {
    /// Settings that change nothing: every default applies.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every problem `type` URI under the layer `base` followed by the problem's slug
    /// ([`Problem::slug`](crate::Problem::slug)), as
    /// [`set_problem_type_base`](crate::set_problem_type_base) does for the whole process.
    /// `base` must be an absolute URI with no character a JSON string would escape.
    pub fn problem_type_base(mut self, base: &str) -> Result<Self, ProblemTypeBaseError> {
        check_type_base(base)?;
        self.problem_type_base = Some(Arc::from(base));
        Ok(self)
    }

    /// Whether the metrics of requests under the layer carry a `key_id` label, as
    /// `metrics::label_key_ids` sets for the whole process (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub fn label_key_ids(mut self, on: bool) -> Self {
        self.label_key_ids = Some(on);
        self
    }

    /// The layer that applies these settings to every request under it.
    pub fn layer(self) -> RouterSettingsLayer {
        RouterSettingsLayer { settings: self }
    }
}

/// The layer made by [`RouterSettings::layer`].
#[derive(Debug, Clone)]
pub struct RouterSettingsLayer {
    settings: RouterSettings,
}

impl<S> Layer<S> for RouterSettingsLayer {
    type Service = WithRouterSettings<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithRouterSettings {
            inner,
            settings: self.settings.clone(),
        }
    }
}

/// A service under a [`RouterSettingsLayer`].
#[derive(Debug, Clone)]
pub struct WithRouterSettings<S> {
    inner: S,
    settings: RouterSettings,
}

impl<S, R> Service<R> for WithRouterSettings<S>
where
    S: Service<R>,
    S::Future: Future,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<RouterSettings, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        CURRENT.scope(self.settings.clone(), self.inner.call(request))
    }
}

/// The problem `type` base of the router serving the current request, if its layer sets one.
pub(crate) fn problem_type_base() -> Option<Arc<str>> {
    CURRENT
        .try_with(|settings| settings.problem_type_base.clone())
        .ok()
        .flatten()
}

/// Whether the router serving the current request labels metrics with key ids, if its layer
/// says.
#[cfg(feature = "metrics")]
pub(crate) fn label_key_ids() -> Option<bool> {
    CURRENT
        .try_with(|settings| settings.label_key_ids)
        .ok()
        .flatten()
}
