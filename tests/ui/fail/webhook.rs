use axum::body::Bytes;
use axum::Json;
use axum_api_key::webhook;

#[webhook]
async fn no_scheme(_body: Bytes) {}

#[webhook(scheme = "standrd")]
async fn misspelled(_body: Bytes) {}

#[webhook(scheme = standard)]
async fn not_a_string(_body: Bytes) {}

#[webhook(scheme = "stripe", tolerance = "300")]
async fn tolerance_text(_body: Bytes) {}

#[webhook(scheme = "stripe", tolerance = 0)]
async fn tolerance_zero(_body: Bytes) {}

#[webhook(scheme = "github", max_body = 2000000000)]
async fn too_large(_body: Bytes) {}

#[webhook(scheme = "github", secret = MySecrets)]
async fn unknown_argument(_body: Bytes) {}

#[webhook(scheme = "github", scheme = "stripe")]
async fn twice(_body: Bytes) {}

#[webhook(scheme = "standard")]
fn not_async(_body: Bytes) {}

#[webhook(scheme = "standard")]
async fn body_first(Json(_event): Json<serde_json::Value>, _id: axum::extract::Path<u32>) {}

#[webhook(scheme = "stripe", tolerance = 300u8)]
async fn tolerance_suffix(_body: Bytes) {}

#[webhook(scheme = "standard", max_body = 1024usize)]
async fn max_body_suffix(_body: Bytes) {}

#[webhook(scheme = "github", tolerance = 60)]
async fn github_tolerance(_body: Bytes) {}

fn main() {}
