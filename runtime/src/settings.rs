//! Settings of the crate's answers: the process-wide defaults ([`set_problem_type_base`]), and
//! [`RouterSettings`], the settings of the routes under one router in their place, so that two
//! apps in one process (tests, tenants) can differ.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::task::futures::TaskLocalFuture;
use tower_layer::Layer;
use tower_service::Service;

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
    /// ([`Problem::slug`](crate::Problem::slug)(crate::Problem::slug)), as
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

impl<S: Service<R>, R> Service<R> for WithRouterSettings<S> {
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

/// The base of every problem `type` URI the crate writes, `None` for `about:blank`: fixed by
/// [`set_problem_type_base`] or, when it was not called, by the first refusal.
static TYPE_BASE: OnceLock<Option<Box<str>>> = OnceLock::new();

/// The process-wide problem `type` base, fixed from now on (at `None` if it was not set).
pub(crate) fn process_type_base() -> Option<&'static str> {
    TYPE_BASE.get_or_init(|| None).as_deref()
}

/// The base of the problem `type` URIs if it is fixed already, without fixing it: what a
/// document generated before the first refusal shows.
#[cfg(feature = "openapi")]
pub(crate) fn type_base_if_fixed() -> Option<&'static str> {
    TYPE_BASE.get().and_then(Option::as_deref)
}

/// Makes every problem's `type` URI `base` followed by its [`Problem::slug`](crate::Problem::slug), so that clients
/// can follow it to the app's own documentation of the problem:
/// `https://api.example.com/problems/missing-key`.
///
/// It reaches every refusal the crate writes: the guard's, the self-service routes'
/// (`keys-not-generated`, `key-already-rotated`, `too-many-rotations`, `rotation-budget-spent`,
/// `key-not-changeable`, `key-change-unavailable`) and, with feature `webhooks`, signed webhooks'
/// (`webhook-bad-signature` and the others of `WebhookProblem::slug`), the admin and
/// secret-scanning routes'.
///
/// Without it, `type` is `about:blank` and the problem is told by its `title` (RFC 9457,
/// section 4.2.1). A [`RouterSettings`](crate::RouterSettings) layer sets a base for the routes
/// under one router only, over this default: two apps in one process can differ.
///
/// Call it once at start-up, before the first request: the URIs are fixed by the first refusal, and a later call returns [`ProblemTypeBaseError::AlreadySet`].
///
/// ```
/// use axum_api_key::{set_problem_type_base, Problem};
///
/// set_problem_type_base("https://api.example.com/problems/")?;
/// assert_eq!(Problem::MissingKey.type_uri(), "https://api.example.com/problems/missing-key");
/// # Ok::<(), axum_api_key::ProblemTypeBaseError>(())
/// ```
pub fn set_problem_type_base(base: &str) -> Result<(), ProblemTypeBaseError> {
    check_type_base(base)?;
    TYPE_BASE
        .set(Some(Box::from(base)))
        .map_err(|_| ProblemTypeBaseError::AlreadySet)
}

/// Refuses a problem `type` base that is not an absolute URI, or holds a character a JSON
/// string would escape (the URI goes into the body as it is).
pub(crate) fn check_type_base(base: &str) -> Result<(), ProblemTypeBaseError> {
    let absolute = base.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    // The URI goes into a JSON string as it is: no character that would need escaping.
    if !absolute
        || !base
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(ProblemTypeBaseError::NotAbsolute);
    }
    Ok(())
}

/// Why [`set_problem_type_base`] refused a base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemTypeBaseError {
    /// The base is not an absolute URI of visible ASCII, such as `https://api.example.com/problems/`.
    NotAbsolute,
    /// The `type` URIs were already fixed, by an earlier call or by a refusal.
    AlreadySet,
}

impl fmt::Display for ProblemTypeBaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAbsolute => {
                "the problem type base must be an absolute URI of visible ASCII without `\"` or \
                 `\\`, such as `https://api.example.com/problems/`"
            }
            Self::AlreadySet => {
                "the problem type URIs are already fixed: set the base once, at start-up, before \
                 the first request"
            }
        })
    }
}

impl std::error::Error for ProblemTypeBaseError {}
