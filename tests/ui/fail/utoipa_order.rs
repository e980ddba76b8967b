use axum_api_key::api_key;

/// `#[utoipa::path]` above `#[api_key]` has expanded before it: the operation would go
/// undocumented, so it is an error.
#[utoipa::path(get, path = "/data", responses((status = 200, body = String)))]
#[api_key]
async fn data() -> &'static str {
    "secret information"
}

fn main() {}

mod inside {
    /// The same inside a module.
    #[utoipa::path(get, path = "/inner", responses((status = 200, body = String)))]
    #[axum_api_key::api_key(scopes = ["inner:read"])]
    pub async fn inner() -> &'static str {
        "inner"
    }
}
