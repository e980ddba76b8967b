//! The OpenAPI document of the admin routes (features `admin` and `openapi`).

use utoipa::openapi::OpenApi;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, OpenApiBuilder, PathsBuilder, Ref, Required, ResponseBuilder,
};

use crate::guard_config::KeyConfig;

/// A key as the admin API lists it: never the key, never its digest.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only: the answer is written by the route
pub struct AdminKey {
    /// The key's id.
    id: String,
    /// `valid`, `revoked`, `expired`, `not_yet_valid` or `disabled`.
    state: String,
    /// The scopes the key holds.
    scopes: Vec<String>,
    /// When the key stops working (RFC 3339), if it expires.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// The key's rate limits, one per window (`10/s`, `100000/day`).
    rate_limit: Vec<String>,
    /// The credits the key has left, if it has credits.
    credits_left: Option<u64>,
    /// How its credits are refilled (`10000/month`), if they are.
    refill: Option<String>,
    /// The identity it shares limits and credits under, if any.
    identity: Option<String>,
    /// The networks it may be used from; anywhere when empty.
    allowed_ips: Vec<String>,
    /// When a key of its id was last used (RFC 3339), if it was.
    #[schema(format = DateTime)]
    last_used: Option<String>,
    /// Its free metadata fields (owner, ticket).
    metadata: std::collections::BTreeMap<String, String>,
}

/// A page of `GET /keys`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AdminKeyPage {
    /// The keys of this page, sorted by id.
    keys: Vec<AdminKey>,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// Every key of one id: a rotated one beside its successor.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AdminKeysOfId {
    /// The id.
    id: String,
    /// Its keys.
    keys: Vec<AdminKey>,
}

/// A key to create: every field optional.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct NewKeyRequest {
    /// The id; a new `key-…` one when absent.
    id: Option<String>,
    /// The scopes it holds: only scopes the admin key holds itself.
    scopes: Option<Vec<String>>,
    /// When it stops working (RFC 3339, UTC).
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// Its rate limits, one per window (`["10/s", "100000/day"]`).
    rate_limit: Option<Vec<String>>,
    /// The uses it starts with.
    credits: Option<u64>,
    /// How the credits are refilled (`10000/month`); needs `credits`.
    refill: Option<String>,
    /// An identity it shares limits and credits under.
    identity: Option<String>,
    /// The networks it may be used from (`203.0.113.0/24`).
    allowed_ips: Option<Vec<String>>,
}

/// A key just made: the only time it is seen.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CreatedKey {
    /// The key's id.
    id: String,
    /// The scopes it holds (absent from a rotation's answer).
    scopes: Option<Vec<String>>,
    /// When it stops working (RFC 3339), if it expires.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// The key. It is shown this once (`Cache-Control: no-store`): hand it to its owner now.
    key: String,
}

/// A rotation's settings.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RotateRequest {
    /// How long the current key keeps working, in seconds; 0 by default.
    grace_seconds: Option<u64>,
}

/// A top-up.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CreditsRequest {
    /// The credits every key of the id holds from now.
    credits: u64,
    /// How they are refilled (`10000/month`), if they are.
    refill: Option<String>,
}

/// The OpenAPI document of [`router`](super::router) nested at `prefix` (`""` when not
/// nested), read routes guarded by `R` and changes by `W`: merge it into the app's document
/// before [`ApiKeySecurity`](crate::openapi::ApiKeySecurity) runs, which adds the security
/// schemes.
///
/// ```
/// use axum_api_key::{admin, api_key, openapi::ApiKeySecurity};
/// use utoipa::Modify;
///
/// #[api_key(scopes = ["keys:read"])]
/// struct AdminRead;
///
/// #[api_key(scopes = ["keys:write"])]
/// struct AdminWrite;
///
/// let mut api = admin::document::<AdminRead, AdminWrite>("/admin");
/// ApiKeySecurity.modify(&mut api);
/// assert!(api.paths.paths.contains_key("/admin/keys/{id}/rotate"));
/// ```
pub fn document<R: KeyConfig, W: KeyConfig>(prefix: &str) -> OpenApi {
    let json = crate::openapi::json_response;
    let body = |schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>| {
        Some(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema)).build(),
                )
                .required(Some(Required::True))
                .build(),
        )
    };
    let empty = |description: &str| ResponseBuilder::new().description(description).build();
    let id = || {
        ParameterBuilder::new()
            .name("id")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .schema(Some(
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String),
            ))
            .description(Some("The key id"))
            .build()
    };
    let reading = |operation_id: &str, summary: &str| operation::<R>(operation_id, summary);
    let changing = |operation_id: &str, summary: &str| {
        operation::<W>(operation_id, summary)
            .response("404", crate::openapi::problem("No key has this id"))
            .response("503", crate::openapi::problem("The key store failed"))
    };
    let mut list = reading(
        "admin_list_keys",
        "Every key, a page at a time; never a key",
    )
    .response("200", json("AdminKeyPage", "A page of keys, sorted by id"))
    .response(
        "400",
        crate::openapi::problem("A query the route does not read"),
    );
    for (name, description) in [
        ("prefix", "Only ids that start with this"),
        (
            "state",
            "Only keys in this state: valid, revoked, expired, not_yet_valid, disabled",
        ),
        ("identity", "Only keys of this identity"),
        ("limit", "Keys per page, 1 to 1000 (100 by default)"),
        ("cursor", "The `next_cursor` of the page before"),
    ] {
        list = list.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .schema(Some(
                    utoipa::openapi::schema::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String),
                ))
                .description(Some(description))
                .build(),
        );
    }
    let create = changing("admin_create_key", "A new key, shown once")
        .request_body(body(Ref::from_schema_name("NewKeyRequest").into()))
        .response(
            "201",
            json("CreatedKey", "The new key, once (Cache-Control: no-store)"),
        )
        .response(
            "400",
            crate::openapi::problem("A body the route does not read"),
        )
        .response(
            "409",
            crate::openapi::problem("The store has no key format to generate keys in"),
        )
        .response(
            "422",
            crate::openapi::problem("The store refused the key (an id taken)"),
        );
    let show = reading("admin_show_key", "Every key of an id; never a key")
        .parameter(id())
        .response("200", json("AdminKeysOfId", "The id's keys"))
        .response("404", crate::openapi::problem("No key has this id"));
    let revoke = changing(
        "admin_revoke_key",
        "Revokes every key of an id (idempotent)",
    )
    .parameter(id())
    .response("204", empty("Revoked"));
    let rotate = changing("admin_rotate_key", "A successor, shown once")
        .parameter(id())
        .request_body(body(Ref::from_schema_name("RotateRequest").into()))
        .response(
            "200",
            json("CreatedKey", "The new key, once (Cache-Control: no-store)"),
        )
        .response(
            "409",
            crate::openapi::problem("No live key to rotate, or no key format"),
        );
    let disable = changing(
        "admin_disable_key",
        "Suspends every key of an id (idempotent)",
    )
    .parameter(id())
    .response("204", empty("Disabled"));
    let enable = changing(
        "admin_enable_key",
        "Enables every key of an id again (idempotent)",
    )
    .parameter(id())
    .response("204", empty("Enabled"));
    let credits = changing("admin_set_credits", "Tops up every key of an id")
        .parameter(id())
        .request_body(body(Ref::from_schema_name("CreditsRequest").into()))
        .response("204", empty("Set"));
    let limits = changing(
        "admin_set_rate_limits",
        "Holds every key of an id to a plan of windows",
    )
    .parameter(id())
    .request_body(body(strings()))
    .response("204", empty("Set"))
    .response("400", crate::openapi::problem("Not a plan of rate limits"));

    let scopes = changing(
        "admin_set_scopes",
        "Gives every key of an id these scopes (each one the admin key holds)",
    )
    .parameter(id())
    .request_body(body(strings()))
    .response("204", empty("Set"))
    .response(
        "422",
        crate::openapi::problem("A scope that is not a token"),
    );

    let metadata = changing(
        "admin_set_metadata",
        "Replaces the metadata fields of every key of an id",
    )
    .parameter(id())
    .request_body(body(
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .additional_properties(Some(
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String),
            ))
            .build()
            .into(),
    ))
    .response("204", empty("Set"))
    .response("400", crate::openapi::problem("Not an object of strings"));

    let mut keys = PathItem::new(HttpMethod::Get, list);
    keys.merge_operations(PathItem::new(HttpMethod::Post, create));
    let mut one = PathItem::new(HttpMethod::Get, show);
    one.merge_operations(PathItem::new(HttpMethod::Delete, revoke));
    let mut disabled = PathItem::new(HttpMethod::Put, disable);
    disabled.merge_operations(PathItem::new(HttpMethod::Delete, enable));
    OpenApiBuilder::new()
        .paths(
            PathsBuilder::new()
                .path(format!("{prefix}/keys"), keys)
                .path(format!("{prefix}/keys/{{id}}"), one)
                .path(
                    format!("{prefix}/keys/{{id}}/rotate"),
                    PathItem::new(HttpMethod::Post, rotate),
                )
                .path(format!("{prefix}/keys/{{id}}/disabled"), disabled)
                .path(
                    format!("{prefix}/keys/{{id}}/credits"),
                    PathItem::new(HttpMethod::Put, credits),
                )
                .path(
                    format!("{prefix}/keys/{{id}}/rate_limit"),
                    PathItem::new(HttpMethod::Put, limits),
                )
                .path(
                    format!("{prefix}/keys/{{id}}/scopes"),
                    PathItem::new(HttpMethod::Put, scopes),
                )
                .path(
                    format!("{prefix}/keys/{{id}}/metadata"),
                    PathItem::new(HttpMethod::Put, metadata),
                ),
        )
        .components(Some(
            ComponentsBuilder::new()
                .schema_from::<crate::openapi::ApiKeyProblem>()
                .schema_from::<AdminKey>()
                .schema_from::<AdminKeyPage>()
                .schema_from::<AdminKeysOfId>()
                .schema_from::<NewKeyRequest>()
                .schema_from::<CreatedKey>()
                .schema_from::<RotateRequest>()
                .schema_from::<CreditsRequest>()
                .build(),
        ))
        .build()
}

/// A list of strings: a plan of rate limits, a key's scopes.
fn strings() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(
            utoipa::openapi::schema::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String),
        )
        .build()
        .into()
}

/// An operation guarded by `C`, tagged `admin`.
fn operation<C: KeyConfig>(operation_id: &str, summary: &str) -> OperationBuilder {
    crate::openapi::guarded(&C::CONFIG, operation_id, summary, "admin")
}
