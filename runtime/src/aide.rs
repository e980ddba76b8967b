//! `#[api_key]` handlers in [aide](https://docs.rs/aide) documents (feature `aide`).
//!
//! The guard types implement aide's `OperationInput`, so a protected handler goes in
//! `api_route("/data", get(data))` like any other, and its operation gets the security
//! requirement of every place the key may be (the same names as with utoipa:
//! `apiKeyHeader_x-api-key`, …; the empty requirement too for an `optional` route) and the
//! refusals the guard may answer. [`security_schemes`] then describes those schemes:
//!
//! ```
//! use aide::axum::{routing::get, ApiRouter};
//! use aide::openapi::OpenApi;
//! use axum_api_key::{api_key, ApiKeys};
//!
//! #[api_key(scopes = ["reports"])]
//! async fn reports() -> String {
//!     "reports".to_owned()
//! }
//!
//! let mut api = OpenApi::default();
//! let app: axum::Router = ApiRouter::new()
//!     .api_route("/reports", get(reports))
//!     .finish_api(&mut api)
//!     .with_state(ApiKeys::new());
//! axum_api_key::aide::security_schemes(&mut api);
//! let json = serde_json::to_string(&api).unwrap();
//! assert!(json.contains(r#""security":[{"apiKeyHeader_x-api-key":["reports"]}]"#));
//! assert!(json.contains(r#""apiKeyHeader_x-api-key":{"type":"apiKey","in":"header","name":"x-api-key""#));
//! let responses = &api.paths.unwrap().paths["/reports"].as_item().unwrap().get.clone().unwrap().responses.unwrap();
//! let statuses: Vec<String> = responses.responses.keys().map(|s| s.to_string()).collect();
//! assert_eq!(statuses, ["200", "401", "400", "429", "503", "403"]);
//! ```

use aide::generate::GenContext;
use aide::openapi::{
    ApiKeyLocation, MediaType, OpenApi, Operation, ReferenceOr, Response, SecurityScheme,
};
use aide::operation::OperationInput;

use crate::extract::{GuardAlone, RequireApiKey};
use crate::guard_config::{GuardConfig, KeyConfig};
use crate::key::VerifiedKey;
use crate::scheme::Place;

/// Both guard types document the same requirement and refusals.
macro_rules! guard_operation_input {
    ($($guard:ident),*) => {$(
        impl<C: KeyConfig, S> OperationInput for $guard<C, S> {
            fn operation_input(_: &mut GenContext, operation: &mut Operation) {
                secure(operation, &C::CONFIG);
            }

            fn inferred_early_responses(
                _: &mut GenContext,
                _: &mut Operation,
            ) -> Vec<(Option<u16>, Response)> {
                refusals(&C::CONFIG)
            }
        }
    )*};
}

guard_operation_input!(RequireApiKey, GuardAlone);

/// The key a guard accepted: documented by the guard.
impl OperationInput for VerifiedKey {}

/// Adds the guard's security requirements, once.
fn secure(operation: &mut Operation, config: &GuardConfig) {
    let mut requirements = Vec::new();
    if config.is_optional() {
        requirements.push(Default::default());
    }
    for source in config.sources() {
        let scopes = config.scopes().iter().map(|s| (*s).to_owned()).collect();
        requirements.push(
            [(crate::scheme::name(source), scopes)]
                .into_iter()
                .collect(),
        );
    }
    for requirement in requirements {
        if !operation.security.contains(&requirement) {
            operation.security.push(requirement);
        }
    }
}

fn refusals(config: &GuardConfig) -> Vec<(Option<u16>, Response)> {
    crate::scheme::refusals(config)
        .into_iter()
        .map(|(status, description)| {
            let response = Response {
                description: description.to_owned(),
                content: [("application/problem+json".to_owned(), MediaType::default())]
                    .into_iter()
                    .collect(),
                ..Response::default()
            };
            (Some(status), response)
        })
        .collect()
}

/// Describes, under `components.securitySchemes`, every scheme that the operations of `api`
/// name with the names `#[api_key]` gives them. Call it after `finish_api`.
pub fn security_schemes(api: &mut OpenApi) {
    let mut names = std::collections::BTreeSet::new();
    for (_, item) in api.paths.iter().flat_map(|paths| paths.iter()) {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        for (_, operation) in item.iter() {
            for requirement in &operation.security {
                names.extend(requirement.keys().cloned());
            }
        }
    }
    let components = api.components.get_or_insert_with(Default::default);
    for name in names {
        let Some(place) = crate::scheme::place(&name) else {
            continue;
        };
        let api_key = |location, key: String| SecurityScheme::ApiKey {
            location,
            name: key,
            description: Some("An API key".to_owned()),
            extensions: Default::default(),
        };
        let scheme = match place {
            Place::Header(key) => api_key(ApiKeyLocation::Header, key),
            Place::Query(key) => api_key(ApiKeyLocation::Query, key),
            Place::Cookie(key) => api_key(ApiKeyLocation::Cookie, key),
            Place::Bearer => SecurityScheme::Http {
                scheme: "bearer".to_owned(),
                bearer_format: None,
                description: Some("The API key as a Bearer token".to_owned()),
                extensions: Default::default(),
            },
        };
        components
            .security_schemes
            .insert(name, ReferenceOr::Item(scheme));
    }
}
