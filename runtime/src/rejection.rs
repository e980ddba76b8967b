//! [`ApiKeyRejection`]: the answer to a request the guard refuses, as RFC 9457 problem details.
//!
//! The answers of one guard are a handful of fixed shapes (a problem, a place, a status), so each
//! is rendered once and shared: refusing a request costs no more than accepting one.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

use crate::guard_config::{GuardConfig, Source};
use crate::limit::{LimitFields, seconds_up};

/// Why a request was refused. Each kind has its own problem `type` in the response body: see
/// [`set_problem_type_base`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Problem {
    /// No key was sent, or an empty one. Answered with the configured status.
    MissingKey,
    /// The key is unknown, malformed, oversized or not UTF-8. Answered with the configured
    /// status.
    InvalidKey,
    /// The key was sent more than once, or in two places. Always `400 Bad Request`: which copy
    /// counts is never guessed.
    DuplicateKey,
    /// The key was revoked. Answered with the configured status.
    RevokedKey,
    /// The key's expiry has passed. Answered with the configured status.
    ExpiredKey,
    /// The key's not-before time has not come yet. Answered with the configured status.
    KeyNotYetValid,
    /// The key is valid but lacks a scope the route requires. Always `403 Forbidden`.
    InsufficientScope,
    /// The key came over plain HTTP to a store that requires HTTPS. It was not verified, and
    /// should be treated as leaked. Always `403 Forbidden`.
    HttpsRequired,
    /// The key store could not answer. Always `503 Service Unavailable`.
    StoreUnavailable,
    /// A handler takes [`VerifiedKey`](crate::VerifiedKey) but no guard ran before it: a mistake
    /// in the service, answered with `500 Internal Server Error`.
    NotProtected,
    /// The key (or the key on this route) used up its rate limit. Always `429 Too Many
    /// Requests`, with `Retry-After`, `RateLimit-Policy` and `RateLimit`.
    RateLimited,
    /// The client's address made too many failed attempts, and is throttled. Always `429 Too
    /// Many Requests`, with `Retry-After`; the key was not checked.
    TooManyAttempts,
    /// The shared rate limiter could not be asked, and it is configured to refuse rather than
    /// count in the process. Always `503 Service Unavailable`.
    LimiterUnavailable,
    /// The key is disabled: suspended by the operator until it is enabled again. Always `403
    /// Forbidden`: the key is genuine, so asking the client to authenticate (`401`) would
    /// mislead, and sending it again will not help until the operator acts.
    DisabledKey,
    /// The key may be used only from some networks, and the request came from elsewhere (or
    /// from an address the server cannot tell). Always `403 Forbidden`; nothing is spent from
    /// the key's budgets.
    AddressNotAllowed,
    /// The key has fewer credits left than the route costs. Always `429 Too Many Requests`,
    /// with `Credits-Remaining` and, when the key is refilled, `Retry-After` until the refill.
    /// Not `402 Payment Required`, which HTTP keeps for future use and clients do not know, nor
    /// `403`, which says waiting will not help when a refill will: `429` is what clients
    /// already back off on, and `Retry-After` tells them for how long.
    CreditsExhausted,
}

const PROBLEMS: [Problem; 16] = [
    Problem::MissingKey,
    Problem::InvalidKey,
    Problem::DuplicateKey,
    Problem::RevokedKey,
    Problem::ExpiredKey,
    Problem::KeyNotYetValid,
    Problem::InsufficientScope,
    Problem::HttpsRequired,
    Problem::StoreUnavailable,
    Problem::NotProtected,
    Problem::RateLimited,
    Problem::TooManyAttempts,
    Problem::LimiterUnavailable,
    Problem::DisabledKey,
    Problem::AddressNotAllowed,
    Problem::CreditsExhausted,
];

impl Problem {
    /// The problem `type` URI: `about:blank` (the problem is then told by its `title`), or the
    /// base set with [`set_problem_type_base`] followed by [`slug`](Self::slug).
    pub fn type_uri(self) -> &'static str {
        let uris = TYPE_URIS.get_or_init(|| {
            PROBLEMS.map(|problem| match type_base() {
                Some(base) => format!("{base}{}", problem.slug()).into_boxed_str(),
                None => Box::from("about:blank"),
            })
        });
        &uris[self as usize]
    }

    /// The problem's name in a `type` URI: `missing-key`, `invalid-key`, `duplicate-key`,
    /// `revoked-key`, `expired-key`, `key-not-yet-valid`, `insufficient-scope`,
    /// `https-required`, `store-unavailable`, `not-protected`, `rate-limited`,
    /// `too-many-attempts`, `limiter-unavailable`, `key-disabled`, `address-not-allowed` or
    /// `credits-exhausted`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::MissingKey => "missing-key",
            Self::InvalidKey => "invalid-key",
            Self::DuplicateKey => "duplicate-key",
            Self::RevokedKey => "revoked-key",
            Self::ExpiredKey => "expired-key",
            Self::KeyNotYetValid => "key-not-yet-valid",
            Self::InsufficientScope => "insufficient-scope",
            Self::HttpsRequired => "https-required",
            Self::StoreUnavailable => "store-unavailable",
            Self::NotProtected => "not-protected",
            Self::RateLimited => "rate-limited",
            Self::TooManyAttempts => "too-many-attempts",
            Self::LimiterUnavailable => "limiter-unavailable",
            Self::DisabledKey => "key-disabled",
            Self::AddressNotAllowed => "address-not-allowed",
            Self::CreditsExhausted => "credits-exhausted",
        }
    }

    /// A short, fixed summary of the problem.
    pub fn title(self) -> &'static str {
        match self {
            Self::MissingKey => "API key required",
            Self::InvalidKey => "Invalid API key",
            Self::DuplicateKey => "API key sent more than once",
            Self::RevokedKey => "API key revoked",
            Self::ExpiredKey => "API key expired",
            Self::KeyNotYetValid => "API key not valid yet",
            Self::InsufficientScope => "Insufficient scope",
            Self::HttpsRequired => "HTTPS required",
            Self::StoreUnavailable => "API key check unavailable",
            Self::NotProtected => "API key check not configured",
            Self::RateLimited => "Rate limit exceeded",
            Self::TooManyAttempts => "Too many failed attempts",
            Self::LimiterUnavailable => "Rate limiter unavailable",
            Self::DisabledKey => "API key disabled",
            Self::AddressNotAllowed => "Address not allowed for this API key",
            Self::CreditsExhausted => "API key credits used up",
        }
    }
}

/// The `type` URI of each problem, made from [`TYPE_BASE`] at the first refusal.
static TYPE_URIS: OnceLock<[Box<str>; 16]> = OnceLock::new();

/// The base of every problem `type` URI the crate writes, `None` for `about:blank`: fixed by
/// [`set_problem_type_base`] or, when it was not called, by the first refusal.
static TYPE_BASE: OnceLock<Option<Box<str>>> = OnceLock::new();

fn type_base() -> Option<&'static str> {
    TYPE_BASE.get_or_init(|| None).as_deref()
}

/// The one `application/problem+json` renderer of every refusal that is not the guard's own
/// (cached) one: self-service and webhook refusals. `type` is the base set with
/// [`set_problem_type_base`] followed by `slug`, or `about:blank`; `reason` is an extension
/// member for machines.
pub(crate) fn problem_response(
    status: StatusCode,
    slug: &str,
    title: &str,
    detail: &str,
    reason: Option<&str>,
) -> Response {
    use fmt::Write as _;
    let mut body = String::with_capacity(192);
    let _ = match type_base() {
        Some(base) => write!(body, "{{\"type\":\"{base}{slug}\""),
        None => write!(body, "{{\"type\":\"about:blank\""),
    };
    let _ = write!(
        body,
        ",\"title\":{},\"status\":{},\"detail\":{}",
        JsonStr(title),
        status.as_u16(),
        JsonStr(detail)
    );
    if let Some(reason) = reason {
        let _ = write!(body, ",\"reason\":{}", JsonStr(reason));
    }
    body.push('}');
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// Makes every problem's `type` URI `base` followed by its [`Problem::slug`], so that clients
/// can follow it to the app's own documentation of the problem:
/// `https://api.example.com/problems/missing-key`.
///
/// It reaches every refusal the crate writes: the guard's, the self-service routes'
/// (`keys-not-generated`, `key-already-rotated`, `key-not-changeable`,
/// `key-change-unavailable`) and, with feature `webhooks`, signed webhooks'
/// (`webhook-bad-signature` and the others of `WebhookProblem::slug`).
///
/// Without it, `type` is `about:blank` and the problem is told by its `title` (RFC 9457,
/// section 4.2.1). Call it once at start-up, before the first request: the URIs are fixed by the
/// first refusal, and a later call returns [`ProblemTypeBaseError::AlreadySet`].
///
/// ```
/// use axum_api_key::{set_problem_type_base, Problem};
///
/// set_problem_type_base("https://api.example.com/problems/")?;
/// assert_eq!(Problem::MissingKey.type_uri(), "https://api.example.com/problems/missing-key");
/// # Ok::<(), axum_api_key::ProblemTypeBaseError>(())
/// ```
pub fn set_problem_type_base(base: &str) -> Result<(), ProblemTypeBaseError> {
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
    TYPE_BASE
        .set(Some(Box::from(base)))
        .map_err(|_| ProblemTypeBaseError::AlreadySet)
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
    let type_uri = match TYPE_BASE.get() {
        Some(Some(base)) => format!("{base}{}", problem.slug()),
        _ => "about:blank".to_owned(),
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
            JsonStr(self.problem.type_uri()),
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

/// What identifies a cached answer: the configuration's sources (static data, by address), its
/// status, the problem and which source held the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ShapeKey {
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

/// A string written as a JSON string literal.
pub(crate) struct JsonStr<'a>(pub(crate) &'a str);

impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
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
