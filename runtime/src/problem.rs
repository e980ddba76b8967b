//! Problem details (RFC 9457): why a request was refused ([`Problem`]), the `type` URI of each
//! reason under an optional base ([`set_problem_type_base`](crate::set_problem_type_base)), and the one writer of
//! `application/problem+json` bodies that every refusal of the crate goes through.

use std::fmt;
use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};

/// Why a request was refused. Each kind has its own problem `type` in the response body: see
/// [`set_problem_type_base`](crate::set_problem_type_base).
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
    /// base set with [`set_problem_type_base`](crate::set_problem_type_base) followed by [`slug`](Self::slug).
    pub fn type_uri(self) -> &'static str {
        let uris = TYPE_URIS.get_or_init(|| {
            PROBLEMS.map(|problem| match crate::settings::process_type_base() {
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

/// The `type` URI of each problem, made from the process-wide base at the first refusal.
static TYPE_URIS: OnceLock<[Box<str>; 16]> = OnceLock::new();

/// The `type` URI of `problem` in an answer to the current request: under a
/// [`RouterSettings`](crate::RouterSettings) layer that sets a base, that base and the slug;
/// otherwise the process-wide [`Problem::type_uri`].
pub(crate) fn current_type_uri(problem: Problem) -> std::borrow::Cow<'static, str> {
    match crate::settings::problem_type_base() {
        Some(base) => format!("{base}{}", problem.slug()).into(),
        None => problem.type_uri().into(),
    }
}

/// The one `application/problem+json` renderer of every refusal that is not the guard's own
/// (cached) one: self-service, admin, secret-scanning and webhook refusals. `type` is the base
/// of the request's [`RouterSettings`](crate::RouterSettings), or else the one set with
/// [`set_problem_type_base`](crate::set_problem_type_base), followed by `slug`, or `about:blank`; `reason` is an extension
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
    let _ = match (
        crate::settings::problem_type_base(),
        crate::settings::process_type_base(),
    ) {
        (Some(base), _) => write!(body, "{{\"type\":\"{base}{slug}\""),
        (None, Some(base)) => write!(body, "{{\"type\":\"{base}{slug}\""),
        (None, None) => write!(body, "{{\"type\":\"about:blank\""),
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
