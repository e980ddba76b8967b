//! OpenAPI documents that know every protected route (feature `openapi`, on `utoipa`).
//!
//! Put `#[api_key]` **above** `#[utoipa::path(...)]` (the other order is a compile error, since
//! `#[utoipa::path]` would have expanded first, without the key): the attribute adds to the operation the
//! security requirement of every place the key may be (one alternative per source, with the
//! route's scopes; the empty requirement too for an `optional` route) and the refusals its
//! guard may answer (the configured status, 400, 403 for scopes, 429 and 503, each an
//! `application/problem+json` [`ApiKeyProblem`]), beside what the handler documents itself.
//! Then [`ApiKeySecurity`] describes the schemes those requirements name under
//! `components.securitySchemes`:
//!
//! | source | scheme name | scheme |
//! | --- | --- | --- |
//! | `header = "x-api-key"` | `apiKeyHeader_x-api-key` | `apiKey`, `in: header` |
//! | `query = "api_key"` | `apiKeyQuery_api_key` | `apiKey`, `in: query` |
//! | `cookie = "session"` | `apiKeyCookie_session` | `apiKey`, `in: cookie` |
//! | `bearer` | `bearer` | `http`, `scheme: bearer` |
//!
//! (A character other than letters, digits, `_` and `-` is written `.` and its two hex digits.)
//!
//! ```
//! use axum_api_key::{api_key, openapi::ApiKeySecurity, ApiKeys};
//! use utoipa::{Modify, OpenApi};
//! use utoipa_axum::{router::OpenApiRouter, routes};
//!
//! /// Data for callers with a key.
//! #[api_key]
//! #[utoipa::path(get, path = "/data", responses((status = 200, body = String)))]
//! async fn data() -> &'static str {
//!     "secret information"
//! }
//!
//! let (router, mut api) = OpenApiRouter::<ApiKeys>::new()
//!     .routes(routes!(data))
//!     .split_for_parts();
//! ApiKeySecurity.modify(&mut api);
//! let json = api.to_json().unwrap();
//! assert!(json.contains(r#""security":[{"apiKeyHeader_x-api-key":[]}]"#));
//! assert!(json.contains(r#""apiKeyHeader_x-api-key":{"type":"apiKey","in":"header","name":"x-api-key""#));
//! let app: axum::Router = router.with_state(ApiKeys::new());
//! ```
//!
//! With `#[derive(OpenApi)]`, name it among the modifiers:
//! `#[openapi(paths(data), modifiers(&ApiKeySecurity))]`.

use utoipa::openapi::OpenApi;

use crate::scheme::Place;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The body of every refusal, RFC 9457 problem details.
#[derive(utoipa::ToSchema)]
#[schema(
    title = "Problem details",
    description = "Why a request was refused (RFC 9457); never the key that was sent."
)]
#[allow(dead_code)] // documentation only: refusals are rendered without it
pub struct ApiKeyProblem {
    /// `about:blank`, or the app's own URI for the problem.
    #[schema(example = "about:blank")]
    r#type: String,
    /// A short, fixed summary of the problem.
    #[schema(example = "API key required")]
    title: String,
    /// The response's status.
    #[schema(example = 401)]
    status: u16,
    /// What went wrong and what to do.
    #[schema(example = "This endpoint requires an API key in the `x-api-key` header.")]
    detail: String,
}

/// Describes, under `components.securitySchemes`, every scheme that the operations of a
/// document name with the names `#[api_key]` gives them. Run it once the document holds every
/// path (after `OpenApiRouter::split_for_parts`, or as a modifier of `#[derive(OpenApi)]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiKeySecurity;

impl utoipa::Modify for ApiKeySecurity {
    fn modify(&self, openapi: &mut OpenApi) {
        let mut names = std::collections::BTreeSet::new();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                let mut ours = false;
                for requirement in operation.security.iter().flatten() {
                    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(requirement) {
                        ours |= map.keys().any(|name| scheme(name).is_some());
                        names.extend(map.keys().cloned());
                    }
                }
                if ours {
                    add_limit_headers(operation);
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in names {
            if let Some(scheme) = scheme(&name) {
                components.add_security_scheme(name, scheme);
            }
        }
    }
}

/// The fields that tell a client how its budgets and credits stand, on every answer of a
/// guarded operation: the 429 always, a success under the `rate_limit_headers()` layer when the
/// request was counted in a budget or its key has credits.
fn limit_headers(
    remaining: &'static str,
) -> [(
    &'static str,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    &'static str,
); 3] {
    use utoipa::PartialSchema;
    [
        (
            "RateLimit-Policy",
            String::schema(),
            "The budgets the request was counted in (draft-ietf-httpapi-ratelimit-headers): \
             `\"key\";q=60;w=60`, one entry per budget",
        ),
        ("RateLimit", String::schema(), remaining),
        (
            "Credits-Remaining",
            u64::schema(),
            "The credits the key has left, when it has credits",
        ),
    ]
}

/// Adds the [`limit_headers`] to the successful answers of a guarded operation, where the
/// handler's documentation does not name them already.
fn add_limit_headers(operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::{HeaderBuilder, RefOr};
    for (status, response) in &mut operation.responses.responses {
        let RefOr::T(response) = response else {
            continue;
        };
        if !status.starts_with('2') {
            continue;
        }
        let remaining = "What each budget has left and when it is whole again: `\"key\";r=59;t=1`";
        for (name, schema, description) in limit_headers(remaining) {
            let absent = !response
                .headers
                .keys()
                .any(|written| written.eq_ignore_ascii_case(name));
            if absent {
                let header = HeaderBuilder::new()
                    .schema(schema)
                    .description(Some(format!(
                        "{description} (sent under the `rate_limit_headers()` layer)"
                    )))
                    .build();
                response.headers.insert(name.to_owned(), header);
            }
        }
    }
}

/// The scheme a name of ours stands for.
fn scheme(name: &str) -> Option<SecurityScheme> {
    let value = |key: String| ApiKeyValue::with_description(key, "An API key".to_owned());
    Some(match crate::scheme::place(name)? {
        Place::Bearer => SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The API key as a Bearer token"))
                .build(),
        ),
        Place::Header(key) => SecurityScheme::ApiKey(ApiKey::Header(value(key))),
        Place::Query(key) => SecurityScheme::ApiKey(ApiKey::Query(value(key))),
        Place::Cookie(key) => SecurityScheme::ApiKey(ApiKey::Cookie(value(key))),
    })
}

/// The key's record as `GET /keys/me` of [`self_service`](crate::self_service) answers it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only: the answer is written by the route
pub struct OwnKey {
    /// The key's id.
    id: String,
    /// The scopes the key holds.
    scopes: Vec<String>,
    /// When the key stops working (RFC 3339), if it expires.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// The key's rate limits, such as `100/min`, or `10/s, 100000/day` for several.
    rate_limit: Option<String>,
    /// When a key of the caller's id was last used (RFC 3339), if it was.
    #[schema(format = DateTime)]
    last_used: Option<String>,
    /// The credits the key has left, if it has credits.
    credits_left: Option<u64>,
}

/// The answer of `POST /keys/me/rotate`: the key's record and the new key, given once.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only: the answer is written by the route
pub struct RotatedKey {
    /// The key's id.
    id: String,
    /// The scopes the new key holds.
    scopes: Vec<String>,
    /// When the presented key stops working: the end of the grace period (RFC 3339).
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// The rate limits (`10/s, 100000/day` for several), shared by the new key.
    rate_limit: Option<String>,
    /// The new key. It is shown this once: store it now.
    key: String,
}

/// The OpenAPI document of the [`self_service`](crate::self_service) routes nested at
/// `prefix` (`""` when not nested), guarded by `C`: merge it into the app's document before
/// [`ApiKeySecurity`] runs.
///
/// ```
/// use axum_api_key::{api_key, openapi::{self_service_document, ApiKeySecurity}};
/// use utoipa::Modify;
///
/// #[api_key]
/// struct ApiAccess;
///
/// let mut api = self_service_document::<ApiAccess>("/account");
/// ApiKeySecurity.modify(&mut api);
/// assert!(api.paths.paths.contains_key("/account/keys/me/rotate"));
/// ```
pub fn self_service_document<C: crate::KeyConfig>(prefix: &str) -> OpenApi {
    use utoipa::openapi::path::{HttpMethod, PathItem};
    use utoipa::openapi::{ComponentsBuilder, OpenApiBuilder, PathsBuilder, ResponseBuilder};

    let config = C::CONFIG;
    let operation = |id: &str, summary: &str| guarded(&config, id, summary, "keys");
    let json = json_response;
    // The guard's own `429` (its headers, `Retry-After` among them), told to be a change
    // refused too.
    let too_many = |also: &str| {
        refusals(&config)
            .into_iter()
            .find(|(status, _)| status == "429")
            .map(|(_, mut response)| {
                response.description = format!("{}; or {also}", response.description);
                response
            })
            .unwrap_or_else(|| problem(also))
    };
    let read = operation(
        "read_own_key",
        "The caller's key: id, scopes, expiry, rate limit",
    )
    .response("200", json("OwnKey", "The key's record; never the key"));
    let rotate = operation(
        "rotate_own_key",
        "A new key for the caller, the old one kept for a grace period",
    )
    .response(
        "200",
        json(
            "RotatedKey",
            "The new key, given once (Cache-Control: no-store)",
        ),
    )
    .response(
        "409",
        problem(
            "The key was rotated already, or this service has no key format to generate keys in",
        ),
    )
    .response(
        "429",
        too_many(
            "the key's id has as many rotated keys still working as it may, or has made as many \
             rotations this hour as it may",
        ),
    );
    let revoke = operation(
        "revoke_own_key",
        "Revokes the caller's key, and no other key of its id",
    )
    .response("204", ResponseBuilder::new().description("Revoked").build());
    let mut me = PathItem::new(HttpMethod::Get, read);
    me.merge_operations(PathItem::new(HttpMethod::Delete, revoke));
    OpenApiBuilder::new()
        .paths(
            PathsBuilder::new()
                .path(format!("{prefix}/keys/me"), me)
                .path(
                    format!("{prefix}/keys/me/rotate"),
                    PathItem::new(HttpMethod::Post, rotate),
                ),
        )
        .components(Some(
            ComponentsBuilder::new()
                .schema_from::<ApiKeyProblem>()
                .schema_from::<OwnKey>()
                .schema_from::<RotatedKey>()
                .build(),
        ))
        .build()
}

/// A `200`-style answer: JSON of the schema `schema`.
pub(crate) fn json_response(schema: &str, description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build(),
        )
        .build()
}

/// An operation guarded by `config`: its security requirement (each place the key may be in,
/// with the guard's scopes; the empty one too when the key is optional) and the guard's
/// refusals.
pub(crate) fn guarded(
    config: &crate::GuardConfig,
    id: &str,
    summary: &str,
    tag: &str,
) -> utoipa::openapi::path::OperationBuilder {
    use utoipa::openapi::path::OperationBuilder;
    use utoipa::openapi::security::SecurityRequirement;
    let mut operation = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .tag(tag);
    if config.is_optional() {
        operation = operation.security(SecurityRequirement::default());
    }
    for source in config.sources() {
        operation = operation.security(SecurityRequirement::new(
            crate::scheme::name(source),
            config.scopes().to_vec(),
        ));
    }
    for (status, response) in refusals(config) {
        operation = operation.response(status, response);
    }
    operation
}

pub(crate) fn problem(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ApiKeyProblem")))
                .build(),
        )
        .build()
}

/// The example of a refusal with `status` by a guard configured so, as a request gets it: the
/// configured status for a missing key (naming where the key goes), 400 for a key sent twice,
/// 403 for a missing scope (or, on a route that requires none, a disabled key), 429 for a rate limit, 503 for a store that cannot answer. Not
/// public API: `#[api_key]` documents its refusals with it, as the runtime's documents do.
#[doc(hidden)]
pub fn refusal_example(status: u16, config: crate::GuardConfig) -> serde_json::Value {
    let shown = match status {
        400 => crate::Problem::DuplicateKey,
        429 => crate::Problem::RateLimited,
        503 => crate::Problem::StoreUnavailable,
        _ if status == config.status().as_u16() => crate::Problem::MissingKey,
        _ if config.scopes().is_empty() => crate::Problem::DisabledKey,
        _ => crate::Problem::InsufficientScope,
    };
    serde_json::from_str(&crate::rejection::example_body(shown, config))
        .unwrap_or(serde_json::Value::Null)
}

/// The refusals a guard configured so may answer, as `#[api_key]` documents them: a 401 with
/// its challenge, a 429 with when to retry.
pub(crate) fn refusals(config: &crate::GuardConfig) -> Vec<(String, utoipa::openapi::Response)> {
    use utoipa::PartialSchema;
    use utoipa::openapi::HeaderBuilder;

    crate::scheme::refusals(config)
        .into_iter()
        .map(|(status, description)| {
            let mut response = problem(description);
            if let Some(content) = response.content.get_mut("application/problem+json") {
                content.example = Some(refusal_example(status, *config));
            }
            let headers = match status {
                401 => vec![(
                    "WWW-Authenticate",
                    String::schema(),
                    "Where the API key goes",
                )],
                429 => std::iter::once((
                    "Retry-After",
                    u64::schema(),
                    "Seconds to wait before retrying (absent when waiting would not help: \
                     credits that are never refilled)",
                ))
                .chain(limit_headers(
                    "What each budget has left and when it is whole again: `\"key\";r=0;t=60`",
                ))
                .collect(),
                _ => Vec::new(),
            };
            for (name, schema, description) in headers {
                let header = HeaderBuilder::new()
                    .schema(schema)
                    .description(Some(description))
                    .build();
                response.headers.insert(name.to_owned(), header);
            }
            (status.to_string(), response)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_names_are_described() {
        assert!(scheme("apiKeyQuery_api_key").is_some());
        assert!(scheme("bearer").is_some());
        assert!(scheme("somethingElse_x").is_none());
        assert!(scheme("plain").is_none());
    }
}
