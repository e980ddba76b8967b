//! [`ApiKeyRejection`]: the answer to a request the guard refuses, as RFC 9457 problem details.

use std::fmt;

use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, StatusCode};

/// Why a request was refused. Each kind has its own problem `type` URI in the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Problem {
    /// No key was sent, or an empty one. Answered with the configured status.
    MissingKey,
    /// The key is unknown, malformed, oversized or not UTF-8. Answered with the configured
    /// status.
    InvalidKey,
    /// The key was sent more than once. Always `400 Bad Request`: which copy counts is never
    /// guessed.
    DuplicateKey,
    /// A handler takes [`VerifiedKey`](crate::VerifiedKey) but no guard ran before it: a mistake
    /// in the service, answered with `500 Internal Server Error`.
    NotProtected,
}

impl Problem {
    /// The problem `type` URI: the documentation of this variant.
    pub fn type_uri(self) -> &'static str {
        match self {
            Self::MissingKey => {
                "https://docs.rs/axum-api-key/latest/axum_api_key/enum.Problem.html#variant.MissingKey"
            }
            Self::InvalidKey => {
                "https://docs.rs/axum-api-key/latest/axum_api_key/enum.Problem.html#variant.InvalidKey"
            }
            Self::DuplicateKey => {
                "https://docs.rs/axum-api-key/latest/axum_api_key/enum.Problem.html#variant.DuplicateKey"
            }
            Self::NotProtected => {
                "https://docs.rs/axum-api-key/latest/axum_api_key/enum.Problem.html#variant.NotProtected"
            }
        }
    }

    /// A short, fixed summary of the problem.
    pub fn title(self) -> &'static str {
        match self {
            Self::MissingKey => "API key required",
            Self::InvalidKey => "Invalid API key",
            Self::DuplicateKey => "API key sent more than once",
            Self::NotProtected => "API key check not configured",
        }
    }
}

/// The answer to a refused request: a status, a `WWW-Authenticate` challenge on 401, and an
/// `application/problem+json` body (RFC 9457) with `type`, `title`, `status` and `detail`.
///
/// The body names where the key goes, never the key that was sent.
///
/// ```
/// use axum::response::IntoResponse;
/// use axum_api_key::{ApiKeyRejection, Problem};
/// use http::{HeaderName, StatusCode};
///
/// let rejection = ApiKeyRejection::new(
///     Problem::MissingKey,
///     StatusCode::UNAUTHORIZED,
///     HeaderName::from_static("x-api-key"),
/// );
/// let response = rejection.into_response();
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(response.headers()["www-authenticate"], r#"ApiKey header="x-api-key""#);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// ```
#[derive(Debug, Clone)]
pub struct ApiKeyRejection {
    problem: Problem,
    status: StatusCode,
    header: HeaderName,
}

impl ApiKeyRejection {
    /// A rejection of `problem`, answered with `status`, for a key expected in `header`.
    ///
    /// [`Problem::DuplicateKey`] is always answered with 400 and [`Problem::NotProtected`] with
    /// 500, whatever `status` says.
    pub fn new(problem: Problem, status: StatusCode, header: HeaderName) -> Self {
        let status = match problem {
            Problem::MissingKey | Problem::InvalidKey => status,
            Problem::DuplicateKey => StatusCode::BAD_REQUEST,
            Problem::NotProtected => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            problem,
            status,
            header,
        }
    }

    pub(crate) fn not_protected() -> Self {
        Self::new(
            Problem::NotProtected,
            StatusCode::INTERNAL_SERVER_ERROR,
            HeaderName::from_static("x-api-key"),
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

    /// The human-readable explanation in the body's `detail`.
    pub fn detail(&self) -> String {
        let header = self.header.as_str();
        match self.problem {
            Problem::MissingKey => {
                format!("This endpoint requires an API key in the `{header}` header.")
            }
            Problem::InvalidKey => format!("The API key in the `{header}` header is not valid."),
            Problem::DuplicateKey => {
                format!(
                    "The API key was sent more than once; send it once, in the `{header}` header."
                )
            }
            Problem::NotProtected => {
                "The server could not check this request's API key.".to_owned()
            }
        }
    }

    /// The `WWW-Authenticate` challenge, sent with 401 answers only.
    fn challenge(&self) -> Option<HeaderValue> {
        if self.status != StatusCode::UNAUTHORIZED {
            return None;
        }
        // A header name is a token (RFC 9110), so it needs no escaping inside the quotes.
        HeaderValue::try_from(format!("ApiKey header=\"{}\"", self.header.as_str())).ok()
    }

    fn body(&self) -> String {
        format!(
            "{{\"type\":{},\"title\":{},\"status\":{},\"detail\":{}}}",
            JsonStr(self.problem.type_uri()),
            JsonStr(self.problem.title()),
            self.status.as_u16(),
            JsonStr(&self.detail()),
        )
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
        let mut response = (self.status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(challenge) = self.challenge() {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
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

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(JsonStr("a\"b\\c\n").to_string(), r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn statuses_follow_the_problem() {
        let header = HeaderName::from_static("x-api-key");
        let status = |p| ApiKeyRejection::new(p, StatusCode::FORBIDDEN, header.clone()).status();
        assert_eq!(status(Problem::MissingKey), StatusCode::FORBIDDEN);
        assert_eq!(status(Problem::InvalidKey), StatusCode::FORBIDDEN);
        assert_eq!(status(Problem::DuplicateKey), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(Problem::NotProtected),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn challenge_only_on_401() {
        let header = HeaderName::from_static("x-key");
        let on_401 = ApiKeyRejection::new(
            Problem::InvalidKey,
            StatusCode::UNAUTHORIZED,
            header.clone(),
        );
        assert_eq!(on_401.challenge().unwrap(), r#"ApiKey header="x-key""#);
        let on_403 = ApiKeyRejection::new(Problem::InvalidKey, StatusCode::FORBIDDEN, header);
        assert!(on_403.challenge().is_none());
    }
}
