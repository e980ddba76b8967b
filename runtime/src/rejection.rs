//! [`ApiKeyRejection`]: the answer to a request the guard refuses, as RFC 9457 problem details.

use std::fmt;

use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

use crate::extract::{GuardConfig, Source};

/// Why a request was refused. Each kind has its own problem `type` URI in the response body.
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
}

impl Problem {
    /// The problem `type` URI: the documentation of this variant.
    pub fn type_uri(self) -> &'static str {
        macro_rules! uri {
            ($variant:literal) => {
                concat!(
                    "https://docs.rs/axum-api-key/latest/axum_api_key/enum.Problem.html#variant.",
                    $variant
                )
            };
        }
        match self {
            Self::MissingKey => uri!("MissingKey"),
            Self::InvalidKey => uri!("InvalidKey"),
            Self::DuplicateKey => uri!("DuplicateKey"),
            Self::RevokedKey => uri!("RevokedKey"),
            Self::ExpiredKey => uri!("ExpiredKey"),
            Self::KeyNotYetValid => uri!("KeyNotYetValid"),
            Self::InsufficientScope => uri!("InsufficientScope"),
            Self::HttpsRequired => uri!("HttpsRequired"),
            Self::StoreUnavailable => uri!("StoreUnavailable"),
            Self::NotProtected => uri!("NotProtected"),
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
        }
    }
}

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
    config: GuardConfig,
    source: Option<&'static Source>,
    missing_scopes: Vec<&'static str>,
}

impl ApiKeyRejection {
    pub(crate) fn new(
        problem: Problem,
        config: GuardConfig,
        source: Option<&'static Source>,
        missing_scopes: Vec<&'static str>,
    ) -> Self {
        let status = match problem {
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
        };
        Self {
            problem,
            status,
            config,
            source,
            missing_scopes,
        }
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
    pub fn detail(&self) -> String {
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
        }
    }

    /// The `WWW-Authenticate` challenges: on a 401, one naming where the key goes (`ApiKey
    /// header="x-api-key", query="api_key"`) and `Bearer` for a bearer source, with
    /// `error="invalid_token"` when a bearer token was refused; on a scope refusal of a bearer
    /// token, RFC 6750's `insufficient_scope` with the required scopes.
    pub fn challenge(&self) -> Option<HeaderValue> {
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
            if self.config.sources().contains(&Source::Bearer) {
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
        }
        if challenges.is_empty() {
            return None;
        }
        HeaderValue::try_from(challenges.join(", ")).ok()
    }

    /// The default body: RFC 9457 problem details.
    fn body(&self) -> String {
        format!(
            "{{\"type\":{},\"title\":{},\"status\":{},\"detail\":{}}}",
            JsonStr(self.problem.type_uri()),
            JsonStr(self.problem.title()),
            self.status.as_u16(),
            JsonStr(&self.detail()),
        )
    }

    /// Makes `response` carry this rejection's status and challenge, and the rejection itself
    /// in its extensions, whatever its body.
    pub(crate) fn apply(&self, response: &mut Response) {
        *response.status_mut() = self.status;
        if let Some(challenge) = self.challenge() {
            response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
        response.extensions_mut().insert(self.clone());
    }
}

impl fmt::Display for ApiKeyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.problem.title(), self.detail())
    }
}

impl std::error::Error for ApiKeyRejection {}

impl IntoResponse for ApiKeyRejection {
    fn into_response(self) -> Response {
        let mut response = self.body().into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        self.apply(&mut response);
        response
    }
}

/// A string written as a JSON string literal.
struct JsonStr<'a>(&'a str);

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
