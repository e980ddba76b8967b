//! [`ApiKeyRejection`]: the answer to a request the guard refuses, as RFC 9457 problem details.
//!
//! The answers of one guard are a handful of fixed shapes (a problem, a place, a status), so each
//! is rendered once and shared: refusing a request costs no more than accepting one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

use crate::guard_config::{GuardConfig, Source};
use crate::limit::{LimitFields, seconds_up};
use crate::problem::{JsonStr, Problem};

/// Left in a request's extensions by a [`render_rejections`](crate::render_rejections) layer,
/// so that the guard hands its rejection over in the response's extensions (and spares the
/// work where nothing reads it).
#[derive(Clone, Copy)]
pub(crate) struct RenderingRejections;

/// The answer to a refused request: a status, a `WWW-Authenticate` challenge where one is due,
/// and an `application/problem+json` body (RFC 9457) with `type`, `title`, `status` and
/// `detail`.
///
/// The body says where the key goes, never the key that was sent. To render rejections in an
/// app's own format, see [`render_rejections`](crate::render_rejections).
#[derive(Debug, Clone)]
pub struct ApiKeyRejection {
    problem: Problem,
    status: StatusCode,
    missing_scopes: Vec<&'static str>,
    rendered: Arc<Rendered>,
    /// Whether a [`render_rejections`](crate::render_rejections) layer will look for the
    /// rejection in the response's extensions: only then is it put there.
    rendered_by_layer: bool,
    /// For a `429`: when to retry, and the budgets' fields.
    limits: Option<Box<Limits>>,
}

/// What a `429` tells the client besides its body.
#[derive(Debug, Clone)]
struct Limits {
    retry_after: Option<Duration>,
    fields: Option<LimitFields>,
}

/// What a rejection sends, rendered once per shape.
#[derive(Debug)]
struct Rendered {
    detail: Box<str>,
    challenge: Option<HeaderValue>,
    body: Bytes,
}

/// The status a guard configured so answers a problem with.
fn status_of(problem: Problem, config: GuardConfig) -> StatusCode {
    match problem {
        Problem::MissingKey
        | Problem::InvalidKey
        | Problem::RevokedKey
        | Problem::ExpiredKey
        | Problem::KeyNotYetValid => config.status(),
        Problem::HttpsRequired => StatusCode::FORBIDDEN,
        Problem::DuplicateKey => StatusCode::BAD_REQUEST,
        Problem::InsufficientScope => StatusCode::FORBIDDEN,
        Problem::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        Problem::NotProtected => StatusCode::INTERNAL_SERVER_ERROR,
        Problem::RateLimited | Problem::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
        Problem::LimiterUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        Problem::DisabledKey | Problem::AddressNotAllowed => StatusCode::FORBIDDEN,
        Problem::CreditsExhausted => StatusCode::TOO_MANY_REQUESTS,
    }
}

/// The body a guard configured so sends for `problem`, as a documentation example: the same
/// detail a request would get (naming the first place the key is read from, and every scope for
/// a scope refusal), with `type` as it stands now. It fixes nothing: a document built before
/// [`set_problem_type_base`] leaves the base free to be set.
#[cfg(feature = "openapi")]
pub(crate) fn example_body(problem: Problem, config: GuardConfig) -> String {
    let status = status_of(problem, config);
    let shape = Shape {
        problem,
        status,
        config,
        source: config.sources().first(),
        missing_scopes: config.scopes(),
    };
    let type_uri = match crate::settings::type_base_if_fixed() {
        Some(base) => format!("{base}{}", problem.slug()),
        None => "about:blank".to_owned(),
    };
    format!(
        "{{\"type\":{},\"title\":{},\"status\":{},\"detail\":{}}}",
        JsonStr(&type_uri),
        JsonStr(problem.title()),
        status.as_u16(),
        JsonStr(&shape.detail()),
    )
}

impl ApiKeyRejection {
    pub(crate) fn new(
        problem: Problem,
        config: GuardConfig,
        source: Option<&'static Source>,
        missing_scopes: Vec<&'static str>,
    ) -> Self {
        let status = status_of(problem, config);
        let shape = Shape {
            problem,
            status,
            config,
            source,
            missing_scopes: &missing_scopes,
        };
        // A scope refusal names the scopes a key lacked, which vary; every other shape is fixed.
        let rendered = if problem == Problem::InsufficientScope {
            Arc::new(shape.render())
        } else {
            cached(&shape)
        };
        Self {
            problem,
            status,
            missing_scopes,
            rendered,
            rendered_by_layer: false,
            limits: None,
        }
    }

    /// Makes a refusal say when to retry, if waiting helps, and how the key's budgets and
    /// credits stand.
    pub(crate) fn with_limits(
        mut self,
        retry_after: Option<Duration>,
        fields: Option<LimitFields>,
    ) -> Self {
        self.limits = Some(Box::new(Limits {
            retry_after,
            fields,
        }));
        self
    }

    /// For a `429`, how long the client should wait before it tries again.
    pub fn retry_after(&self) -> Option<Duration> {
        self.limits.as_ref().and_then(|limits| limits.retry_after)
    }

    /// Puts the rejection in the response's extensions when the request passed through a
    /// [`render_rejections`](crate::render_rejections) layer.
    pub(crate) fn for_request(mut self, parts: &http::request::Parts) -> Self {
        self.rendered_by_layer = parts.extensions.get::<RenderingRejections>().is_some();
        self
    }

    pub(crate) fn not_protected() -> Self {
        Self::new(
            Problem::NotProtected,
            GuardConfig::new(&[]),
            None,
            Vec::new(),
        )
    }

    /// Why the request was refused.
    pub fn problem(&self) -> Problem {
        self.problem
    }

    /// The status the response carries.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The scopes the key lacked, for [`Problem::InsufficientScope`]; empty otherwise.
    pub fn missing_scopes(&self) -> &[&'static str] {
        &self.missing_scopes
    }

    /// The human-readable explanation in the body's `detail`.
    pub fn detail(&self) -> &str {
        &self.rendered.detail
    }

    /// The `WWW-Authenticate` challenges: on a 401, one naming where the key goes (`ApiKey
    /// header="x-api-key", query="api_key"`) and `Bearer` for a bearer source, with
    /// `error="invalid_token"` when a bearer token was refused; on a scope refusal of a bearer
    /// token, RFC 6750's `insufficient_scope` with the required scopes; on a key sent twice to a
    /// route that reads bearer tokens, `Bearer error="invalid_request"`.
    pub fn challenge(&self) -> Option<HeaderValue> {
        self.rendered.challenge.clone()
    }

    /// Makes `response` carry this rejection's status and challenge, and, for a
    /// `render_rejections` layer, the rejection itself in its extensions, whatever its body.
    pub(crate) fn apply(self, response: &mut Response) {
        *response.status_mut() = self.status;
        if let Some(challenge) = &self.rendered.challenge {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, challenge.clone());
        }
        if let Some(limits) = &self.limits {
            let headers = response.headers_mut();
            if let Some(wait) = limits.retry_after {
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds_up(wait)));
            }
            if let Some(fields) = &limits.fields {
                fields.apply(headers);
            }
        }
        if self.rendered_by_layer {
            response.extensions_mut().insert(self);
        }
    }
}

/// Everything an answer depends on.
struct Shape<'a> {
    problem: Problem,
    status: StatusCode,
    config: GuardConfig,
    source: Option<&'static Source>,
    missing_scopes: &'a [&'static str],
}

impl Shape<'_> {
    fn render(&self) -> Rendered {
        let detail = self.detail();
        let body = format!(
            "{{\"type\":{},\"title\":{},\"status\":{},\"detail\":{}}}",
            JsonStr(&crate::problem::current_type_uri(self.problem)),
            JsonStr(self.problem.title()),
            self.status.as_u16(),
            JsonStr(&detail),
        );
        Rendered {
            detail: detail.into_boxed_str(),
            challenge: self.challenge(),
            body: Bytes::from(body),
        }
    }

    fn detail(&self) -> String {
        let places = || {
            let places: Vec<String> = self.config.sources().iter().map(Source::describe).collect();
            match places.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            }
        };
        match self.problem {
            Problem::MissingKey => format!("This endpoint requires an API key {}.", places()),
            Problem::InvalidKey => match self.source {
                Some(source) => format!("The API key {} is not valid.", source.describe()),
                None => "The API key is not valid.".to_owned(),
            },
            Problem::RevokedKey => "API key revoked: ask for a new key.".to_owned(),
            Problem::ExpiredKey => "API key expired: ask for a new key.".to_owned(),
            Problem::KeyNotYetValid => "API key not valid yet.".to_owned(),
            Problem::HttpsRequired => "API keys must be sent over HTTPS. This key travelled in \
                                       clear: treat it as leaked and have it rotated."
                .to_owned(),
            Problem::DuplicateKey => {
                format!(
                    "The API key was sent more than once; send it once, {}.",
                    places()
                )
            }
            Problem::InsufficientScope => {
                let scopes: Vec<String> = self
                    .missing_scopes
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect();
                let noun = if scopes.len() == 1 { "scope" } else { "scopes" };
                format!(
                    "The API key lacks the {noun} {}, which this endpoint requires.",
                    scopes.join(", ")
                )
            }
            Problem::StoreUnavailable => {
                "The API key could not be checked right now; try again later.".to_owned()
            }
            Problem::NotProtected => {
                "The server could not check this request's API key.".to_owned()
            }
            Problem::RateLimited => "This API key made more requests than its rate limit \
                                     allows; retry after the number of seconds in `Retry-After`."
                .to_owned(),
            Problem::TooManyAttempts => "Too many requests with invalid API keys came from this \
                                         address; retry after the number of seconds in \
                                         `Retry-After`."
                .to_owned(),
            Problem::LimiterUnavailable => "The request could not be counted against its rate \
                                            limit right now; try again later."
                .to_owned(),
            Problem::DisabledKey => "This API key is disabled; ask the API's operator to \
                                     enable it."
                .to_owned(),
            Problem::AddressNotAllowed => "This API key may not be used from this network \
                                           address."
                .to_owned(),
            Problem::CreditsExhausted => "This API key has too few credits left for this \
                                          request (`Credits-Remaining`); they are refilled \
                                          after the seconds in `Retry-After`, if it is sent, or \
                                          when the API's operator adds more."
                .to_owned(),
        }
    }

    fn challenge(&self) -> Option<HeaderValue> {
        let bearer_configured = self.config.sources().contains(&Source::Bearer);
        let bearer_sent = self.source == Some(&Source::Bearer);
        let mut challenges = Vec::new();
        if self.status == StatusCode::UNAUTHORIZED {
            let params: Vec<String> = self
                .config
                .sources()
                .iter()
                .filter_map(|source| match source {
                    // Names are tokens (checked when configured), so they need no escaping.
                    Source::Header(name) => Some(format!("header=\"{name}\"")),
                    Source::Query(name) => Some(format!("query=\"{name}\"")),
                    Source::Cookie(name) => Some(format!("cookie=\"{name}\"")),
                    Source::Bearer => None,
                })
                .collect();
            if !params.is_empty() {
                challenges.push(format!("ApiKey {}", params.join(", ")));
            }
            if bearer_configured {
                let invalid = bearer_sent
                    && matches!(
                        self.problem,
                        Problem::InvalidKey
                            | Problem::RevokedKey
                            | Problem::ExpiredKey
                            | Problem::KeyNotYetValid
                    );
                challenges.push(if invalid {
                    "Bearer error=\"invalid_token\"".to_owned()
                } else {
                    "Bearer".to_owned()
                });
            }
        } else if self.problem == Problem::InsufficientScope && bearer_sent {
            let scope = self.config.scopes().join(" ");
            challenges.push(format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
            ));
        } else if self.problem == Problem::DuplicateKey && bearer_configured {
            // RFC 6750, section 3.1: a malformed request, answered with 400.
            challenges.push("Bearer error=\"invalid_request\"".to_owned());
        }
        if challenges.is_empty() {
            return None;
        }
        HeaderValue::try_from(challenges.join(", ")).ok()
    }
}

/// What identifies a cached answer: the router's problem `type` base, the configuration's sources
/// (static data, by address), its status, the problem and which source held the key.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ShapeKey {
    /// The problem `type` base of the request's router settings, if they set one.
    type_base: Option<Arc<str>>,
    sources: usize,
    sources_len: usize,
    status: u16,
    problem: Problem,
    source: Option<usize>,
}

/// At most this many answers are kept, per thread: far more than the shapes of any app's guards,
/// and a bound whatever configurations are built at run time.
const CACHE_LIMIT: usize = 4096;

type Cache = hashbrown::HashMap<ShapeKey, Arc<Rendered>>;

thread_local! {
    /// The rendered answers, one map per thread: read without a lock or an atomic operation,
    /// and filled the first time each thread meets a shape (a handful of times in its life).
    static CACHE: std::cell::RefCell<Cache> = std::cell::RefCell::new(Cache::default());
}

fn cached(shape: &Shape<'_>) -> Arc<Rendered> {
    let sources = shape.config.sources();
    let key = ShapeKey {
        type_base: crate::settings::problem_type_base(),
        sources: sources.as_ptr() as usize,
        sources_len: sources.len(),
        status: shape.status.as_u16(),
        problem: shape.problem,
        // The source is one of the configuration's own, found by address; by value otherwise.
        source: shape.source.and_then(|source| {
            sources
                .iter()
                .position(|s| std::ptr::eq(s, source))
                .or_else(|| sources.iter().position(|s| s == source))
        }),
    };
    CACHE.with(|cache| {
        if let Some(rendered) = cache.borrow().get(&key) {
            return Arc::clone(rendered);
        }
        let rendered = Arc::new(shape.render());
        let mut cache = cache.borrow_mut();
        if cache.len() < CACHE_LIMIT {
            cache.insert(key, Arc::clone(&rendered));
        }
        rendered
    })
}

impl fmt::Display for ApiKeyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.problem.title(), self.detail())
    }
}

impl std::error::Error for ApiKeyRejection {}

impl IntoResponse for ApiKeyRejection {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.rendered.body.clone()));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        self.apply(&mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[Source] = &[Source::Header("x-key")];
    const MIXED: &[Source] = &[
        Source::Header("x-key"),
        Source::Query("api_key"),
        Source::Bearer,
    ];

    fn rejection(
        problem: Problem,
        config: GuardConfig,
        source: Option<&'static Source>,
    ) -> ApiKeyRejection {
        ApiKeyRejection::new(problem, config, source, vec!["orders:write"])
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(JsonStr("a\"b\\c\n").to_string(), r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn statuses_follow_the_problem() {
        let config = GuardConfig::new(HEADER).with_status(403);
        let status = |p| rejection(p, config, None).status();
        assert_eq!(status(Problem::MissingKey), StatusCode::FORBIDDEN);
        assert_eq!(status(Problem::InvalidKey), StatusCode::FORBIDDEN);
        assert_eq!(status(Problem::DuplicateKey), StatusCode::BAD_REQUEST);
        assert_eq!(status(Problem::InsufficientScope), StatusCode::FORBIDDEN);
        assert_eq!(
            status(Problem::StoreUnavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(Problem::NotProtected),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn challenges_name_every_place() {
        let header = GuardConfig::new(HEADER);
        assert_eq!(
            rejection(Problem::MissingKey, header, None)
                .challenge()
                .unwrap(),
            r#"ApiKey header="x-key""#
        );
        assert!(
            rejection(Problem::MissingKey, header.with_status(403), None)
                .challenge()
                .is_none()
        );

        let mixed = GuardConfig::new(MIXED).with_scopes(&["orders:read", "orders:write"]);
        assert_eq!(
            rejection(Problem::MissingKey, mixed, None)
                .challenge()
                .unwrap(),
            r#"ApiKey header="x-key", query="api_key", Bearer"#
        );
        assert_eq!(
            rejection(Problem::InvalidKey, mixed, Some(&Source::Bearer))
                .challenge()
                .unwrap(),
            r#"ApiKey header="x-key", query="api_key", Bearer error="invalid_token""#
        );
        assert_eq!(
            rejection(Problem::InsufficientScope, mixed, Some(&Source::Bearer))
                .challenge()
                .unwrap(),
            r#"Bearer error="insufficient_scope", scope="orders:read orders:write""#
        );
        assert!(
            rejection(Problem::InsufficientScope, mixed, Some(&MIXED[0]))
                .challenge()
                .is_none()
        );
    }

    #[test]
    fn details_say_where_the_key_goes() {
        let mixed = GuardConfig::new(MIXED);
        assert_eq!(
            rejection(Problem::MissingKey, mixed, None).detail(),
            "This endpoint requires an API key in the `x-key` header, in the `api_key` query \
             parameter or as a Bearer token in the `Authorization` header."
        );
        assert_eq!(
            rejection(Problem::InsufficientScope, mixed, None).detail(),
            "The API key lacks the scope `orders:write`, which this endpoint requires."
        );
    }
}
