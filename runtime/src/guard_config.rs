//! How a guard is configured: where a request may carry its key ([`Source`]), and what the
//! guard asks of it ([`GuardConfig`]), named by a type ([`KeyConfig`]) that `#[api_key]`
//! generates and [`RequireApiKey`](crate::RequireApiKey) is parameterised by.

use http::StatusCode;

use crate::limit::RateLimit;

/// Where a request may carry its key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A request header, such as `x-api-key`, compared case-insensitively.
    Header(&'static str),
    /// A query parameter, such as `?api_key=…`. Percent-encoding is decoded.
    Query(&'static str),
    /// A cookie, such as `session=…`.
    Cookie(&'static str),
    /// `Authorization: Bearer <key>`, the scheme matched case-insensitively.
    Bearer,
}

impl Source {
    /// The key's place in words, for the problem's `detail`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Header(name) => format!("in the `{name}` header"),
            Self::Query(name) => format!("in the `{name}` query parameter"),
            Self::Cookie(name) => format!("in the `{name}` cookie"),
            Self::Bearer => "as a Bearer token in the `Authorization` header".to_owned(),
        }
    }

    /// The source's kind, for the audit event.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Header(_) => "header",
            Self::Query(_) => "query",
            Self::Cookie(_) => "cookie",
            Self::Bearer => "bearer",
        }
    }
}

/// The sources used when a configuration names none: the `x-api-key` header.
const DEFAULT_SOURCES: &[Source] = &[Source::Header("x-api-key")];

/// How a guard reads and judges a key: its sources, the status of a refusal, the scopes the
/// key must hold, and whether a request may come without a key.
///
/// `#[api_key(...)]` builds one per handler, at compile time; build one by hand with the `const`
/// methods to configure [`RequireApiKey`](crate::RequireApiKey) without the attribute.
///
/// ```
/// use axum_api_key::{GuardConfig, KeyConfig, Source};
///
/// enum Admin {}
///
/// impl KeyConfig for Admin {
///     const CONFIG: GuardConfig = GuardConfig::new(&[
///         Source::Header("x-admin-key"),
///         Source::Bearer,
///     ])
///     .with_status(403)
///     .with_scopes(&["admin"]);
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct GuardConfig {
    pub(crate) sources: &'static [Source],
    pub(crate) status: u16,
    pub(crate) scopes: &'static [&'static str],
    pub(crate) optional: bool,
    pub(crate) rate_limit: Option<(RateLimit, &'static str)>,
    pub(crate) cost: u32,
}

impl GuardConfig {
    /// A guard reading the key from `sources` (the `x-api-key` header when empty), answering a
    /// missing or invalid key with 401, requiring no scope.
    pub const fn new(sources: &'static [Source]) -> Self {
        let sources = if sources.is_empty() {
            DEFAULT_SOURCES
        } else {
            sources
        };
        Self {
            sources,
            status: 401,
            scopes: &[],
            optional: false,
            rate_limit: None,
            cost: 1,
        }
    }

    /// Answers a missing or invalid key with `status`, from 400 to 499 (anything else is
    /// answered with 401).
    pub const fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Requires the key to hold every one of `scopes`; a key lacking one gets 403.
    pub const fn with_scopes(mut self, scopes: &'static [&'static str]) -> Self {
        self.scopes = scopes;
        self
    }

    /// Lets a request without any key through, with no [`VerifiedKey`](crate::VerifiedKey); a wrong key is still
    /// refused.
    ///
    /// A configuration that also requires scopes refuses a request without a key all the same:
    /// a request without a key holds no scope. (`#[api_key]` refuses the combination at compile
    /// time.) A handler that takes `VerifiedKey` rather than `Option<VerifiedKey>` behind an
    /// optional guard refuses a request without a key as the guard would, never with a 500.
    pub const fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Limits each key to `limit` on this route, a budget of its own beside the key's limit,
    /// named `route` (unique per route: `#[api_key(rate_limit = "...")]` uses a hash of the
    /// handler's module, name and place). A request must fit in both.
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum_api_key::{GuardConfig, KeyConfig, RateLimit};
    ///
    /// enum Search {}
    ///
    /// impl KeyConfig for Search {
    ///     const CONFIG: GuardConfig = GuardConfig::new(&[])
    ///         .with_rate_limit(RateLimit::new(10, Duration::from_secs(1)), "search");
    /// }
    /// ```
    pub const fn with_rate_limit(mut self, limit: RateLimit, route: &'static str) -> Self {
        self.rate_limit = Some((limit, route));
        self
    }

    /// Each request on this route spends `cost` credits of a key that has credits
    /// ([`Key::credits`](crate::Key::credits)); the default is 1. A key with fewer left is
    /// refused with `429` and nothing is spent. `#[api_key(cost = 5)]` sets it.
    pub const fn with_cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    /// What a request on this route spends from a key's credits.
    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// The route's own rate limit and the name of its budget, if it has one.
    pub fn rate_limit(&self) -> Option<(RateLimit, &'static str)> {
        self.rate_limit
    }

    /// Where the key may be.
    pub fn sources(&self) -> &'static [Source] {
        self.sources
    }

    /// The scopes the key must hold.
    pub fn scopes(&self) -> &'static [&'static str] {
        self.scopes
    }

    /// Whether a request without a key is let through.
    pub fn is_optional(&self) -> bool {
        self.optional
    }

    /// The status of a refused missing or invalid key.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status)
            .ok()
            .filter(StatusCode::is_client_error)
            .unwrap_or(StatusCode::UNAUTHORIZED)
    }
}

/// A type naming a [`GuardConfig`]: what [`RequireApiKey`](crate::RequireApiKey) is parameterised by.
///
/// `#[api_key(...)]` on a handler generates one; on a unit struct it makes that struct one, to
/// use with [`RequireApiKey::layer`](crate::RequireApiKey::layer) or as an extractor.
///
/// ```
/// use axum_api_key::{api_key, RequireApiKey};
///
/// #[api_key(header = "x-partner-key", status = 403)]
/// struct PartnerKey;
///
/// async fn handler(_: RequireApiKey<PartnerKey>) -> &'static str {
///     "hello, partner"
/// }
/// # let _: axum::Router<axum_api_key::ApiKeys> = axum::Router::new().route("/", axum::routing::get(handler));
/// ```
pub trait KeyConfig: 'static {
    /// The guard's configuration.
    const CONFIG: GuardConfig;
}

/// A configuration by reference: what a request's check holds, a word rather than the whole
/// configuration. Implemented for every [`KeyConfig`] and for nothing else, so that what the
/// guard enforces is always `CONFIG`, the configuration the documents describe.
pub(crate) trait ConfigRef {
    const STATIC: &'static GuardConfig;
}

impl<C: KeyConfig> ConfigRef for C {
    const STATIC: &'static GuardConfig = &C::CONFIG;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_sources_reads_x_api_key() {
        assert_eq!(GuardConfig::new(&[]).sources(), DEFAULT_SOURCES);
        assert_eq!(
            GuardConfig::new(&[]).with_status(200).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            GuardConfig::new(&[]).with_status(404).status(),
            StatusCode::NOT_FOUND
        );
    }
}
