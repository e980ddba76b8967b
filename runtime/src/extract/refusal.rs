//! Why the guard refuses a request, and the audit events of its decisions: each refusal is
//! answered as an [`ApiKeyRejection`] and logged (target `axum_api_key::audit`), never with the
//! key.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::MatchedPath;
use http::request::Parts;

use crate::guard_config::{GuardConfig, Source};
use crate::key::VerifiedKey;
use crate::limit::{Count, LimitFields};
use crate::problem::Problem;
use crate::rejection::ApiKeyRejection;
use crate::store::KeyError;

/// Why a request is refused, before it is answered and audited.
pub(super) struct Refusal {
    pub(super) problem: Problem,
    pub(super) reason: &'static str,
    pub(super) source: Option<&'static Source>,
    /// For a `429`: when to retry (if it ever helps), and the budgets' fields.
    pub(super) retry: Option<(Option<Duration>, Option<LimitFields>)>,
    /// For a throttled request: the address it is counted against.
    pub(super) client: Option<IpAddr>,
    /// Logged at DEBUG rather than WARN: a repeat of a refusal already warned of.
    pub(super) quiet: bool,
}

impl Refusal {
    pub(super) fn new(
        problem: Problem,
        reason: &'static str,
        source: Option<&'static Source>,
    ) -> Self {
        Self {
            problem,
            reason,
            source,
            retry: None,
            client: None,
            quiet: false,
        }
    }

    pub(super) fn client(mut self, client: IpAddr) -> Self {
        self.client = Some(client);
        self
    }

    pub(super) fn retry(mut self, wait: Duration, fields: Option<LimitFields>) -> Self {
        self.retry = Some((Some(wait), fields));
        self
    }

    /// For credits used up: what is left, and when the next refill comes, if any.
    pub(super) fn credits(mut self, left: u64, refill_in: Option<Duration>) -> Self {
        self.retry = Some((refill_in, Count::credits_only(left).fields()));
        self
    }

    /// Whether the refusal counts against the client's throttle: a key that is not one, or no
    /// longer one. A missing key, a store that cannot answer or a key sent in clear guesses
    /// nothing.
    pub(super) fn is_failed_attempt(&self) -> bool {
        matches!(
            self.problem,
            Problem::InvalidKey
                | Problem::RevokedKey
                | Problem::ExpiredKey
                | Problem::KeyNotYetValid
        )
    }

    /// The refusal of a client out of attempts: `429`, with when it may try again.
    pub(super) fn throttled(source: &'static Source, client: IpAddr, wait: Duration) -> Self {
        Self::new(Problem::TooManyAttempts, "throttled", Some(source))
            .retry(wait, None)
            .client(client)
    }

    pub(super) fn from_key_error(error: KeyError, source: &'static Source) -> Self {
        let (problem, reason) = match error {
            KeyError::TooLong => (Problem::InvalidKey, "too_long"),
            KeyError::Malformed => (Problem::InvalidKey, "malformed"),
            KeyError::Unknown => (Problem::InvalidKey, "unknown"),
            KeyError::Revoked => (Problem::RevokedKey, "revoked"),
            KeyError::Expired => (Problem::ExpiredKey, "expired"),
            KeyError::NotYetValid => (Problem::KeyNotYetValid, "not_yet_valid"),
            KeyError::Disabled => (Problem::DisabledKey, "disabled"),
            KeyError::Unavailable => (Problem::StoreUnavailable, "store_unavailable"),
        };
        Self::new(problem, reason, Some(source))
    }

    pub(super) fn reject(
        self,
        parts: &Parts,
        config: &GuardConfig,
        key: Option<&VerifiedKey>,
    ) -> ApiKeyRejection {
        let missing_scopes = match key {
            Some(key) => config
                .scopes
                .iter()
                .copied()
                .filter(|s| !key.has_scope(s))
                .collect(),
            None => Vec::new(),
        };
        let mut rejection =
            ApiKeyRejection::new(self.problem, *config, self.source, missing_scopes)
                .for_request(parts);
        if let Some((wait, fields)) = self.retry {
            rejection = rejection.with_limits(wait, fields);
        }
        match self.problem {
            // A key over its limit is a client misbehaving, and a throttled address a likely
            // attack: both worth an operator's attention.
            // A repeat of a refusal warned of within its window: at DEBUG, so one key pressed
            // again and again cannot flood the log (the metrics count every one).
            _ if self.quiet => tracing::debug!(
                target: "axum_api_key::audit",
                outcome = "refused",
                reason = self.reason,
                status = rejection.status().as_u16(),
                key_id = key.map(VerifiedKey::id),
                client = self.client.map(tracing::field::display),
                method = %parts.method,
                route = route(parts),
            ),
            Problem::RateLimited => tracing::warn!(
                target: "axum_api_key::audit",
                outcome = "refused",
                reason = self.reason,
                status = rejection.status().as_u16(),
                key_id = key.map(VerifiedKey::id),
                method = %parts.method,
                route = route(parts),
            ),
            // Someone holds the key outside the networks it was given for: it may have
            // leaked. The address is the one the rules trust, not one the client chose.
            Problem::AddressNotAllowed => match self.client {
                Some(client) => tracing::warn!(
                    target: "axum_api_key::audit",
                    outcome = "refused",
                    reason = self.reason,
                    status = rejection.status().as_u16(),
                    key_id = key.map(VerifiedKey::id),
                    client = %client,
                    method = %parts.method,
                    route = route(parts),
                    "an API key restricted to some networks was used from another address"
                ),
                None => tracing::error!(
                    target: "axum_api_key::audit",
                    outcome = "refused",
                    reason = self.reason,
                    status = rejection.status().as_u16(),
                    key_id = key.map(VerifiedKey::id),
                    method = %parts.method,
                    route = route(parts),
                    "an API key restricted to some networks was refused: the server does not \
                     tell the client's address; serve the router with \
                     `into_make_service_with_connect_info::<SocketAddr>()`"
                ),
            },
            Problem::TooManyAttempts => tracing::warn!(
                target: "axum_api_key::audit",
                outcome = "refused",
                reason = self.reason,
                status = rejection.status().as_u16(),
                client = self.client.map(tracing::field::display),
                method = %parts.method,
                route = route(parts),
            ),
            _ => tracing::info!(
                target: "axum_api_key::audit",
                outcome = "refused",
                reason = self.reason,
                status = rejection.status().as_u16(),
                key_id = key.map(VerifiedKey::id),
                source = self.source.map(Source::kind),
                method = %parts.method,
                route = route(parts),
            ),
        }
        crate::usage::refused(self.reason, key);
        rejection
    }
}

/// A value came over plain HTTP to a store that requires HTTPS. It is refused either way; when
/// it is one of the store's live keys (looked up as any key is, in constant time, in a store
/// that answers from memory), a `key_exposed` warning names the key's id, so that the operator
/// rotates it. A value that is no key, or was not looked up, is logged without any trace of it:
/// a fingerprint of a password pasted by mistake could be checked against guesses offline.
pub(super) fn warn_in_clear(parts: &Parts, exposed: Option<&VerifiedKey>) {
    match exposed {
        Some(key) => {
            tracing::warn!(
                target: "axum_api_key::audit",
                outcome = "refused",
                reason = "key_exposed",
                key_id = key.id(),
                method = %parts.method,
                route = route(parts),
                "an API key travelled over plain HTTP: treat it as leaked and rotate it"
            );
            crate::usage::exposed(key);
        }
        None => tracing::warn!(
            target: "axum_api_key::audit",
            outcome = "refused",
            reason = "insecure_transport",
            method = %parts.method,
            route = route(parts),
            "a request sent a value in place of an API key over plain HTTP; it is no live key \
             of this store"
        ),
    }
}

pub(super) fn audit_anonymous(parts: &Parts) {
    tracing::debug!(
        target: "axum_api_key::audit",
        outcome = "anonymous",
        method = %parts.method,
        route = route(parts),
    );
}

/// The route for the audit event: the matched pattern when axum's router set one, so ids in
/// paths do not multiply log keys; otherwise the path without the query, which may hold a key.
pub(crate) fn route(parts: &Parts) -> &str {
    parts
        .extensions
        .get::<MatchedPath>()
        .map_or(parts.uri.path(), MatchedPath::as_str)
}
