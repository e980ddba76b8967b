//! The admin API: support staff and back-office tools manage every customer's keys over HTTP,
//! each with a narrowly scoped admin key of its own.
//!
//! ```sh
//! cargo run --example admin
//! ```
//!
//! The server makes two admin keys, one that reads (`keys:read`) and one that also changes
//! (`keys:write`, and `orders:read`, the one scope it may give), and a customer key, all in
//! memory, and prints them once with a `curl` line for each operation. `PORT` overrides the
//! port (3001).
//!
//! - `GET /admin/keys`, `GET /admin/keys/{id}`: list and show, never a key;
//! - `POST /admin/keys`: create (the key shown once), `POST /admin/keys/{id}/rotate`;
//! - `PUT`/`DELETE /admin/keys/{id}/disabled`: suspend, enable;
//! - `PUT /admin/keys/{id}/credits`, `PUT /admin/keys/{id}/rate_limit`: a plan;
//! - `DELETE /admin/keys/{id}`: revoke;
//! - `GET /orders`: a customer route, `orders:read`.

#![allow(clippy::print_stdout)]

use std::error::Error;

use axum::Router;
use axum::routing::get;
use axum_api_key::{ApiKeys, Key, KeyFormat, VerifiedKey, admin, api_key};

/// The admin routes that read.
#[api_key(scopes = ["keys:read"])]
pub(crate) struct AdminRead;

/// The admin routes that change keys.
#[api_key(scopes = ["keys:write"])]
pub(crate) struct AdminWrite;

#[api_key(scopes = ["orders:read"])]
async fn orders(key: VerifiedKey) -> String {
    format!("orders of {}\n", key.id())
}

/// The app: the admin API under `/admin`, beside a customer route.
pub(crate) fn app(keys: ApiKeys) -> Router {
    Router::new()
        .nest(
            "/admin",
            admin::router::<AdminRead, AdminWrite, ApiKeys, _>(),
        )
        .route("/orders", get(orders))
        .with_state(keys)
}

/// A store in the format `cust`, with a read-only admin key, a write admin key and a customer
/// key; returns them in that order.
pub(crate) fn demo() -> Result<(ApiKeys, [String; 3]), Box<dyn Error>> {
    let format = KeyFormat::new("cust")?;
    let (reader, writer, customer) = (format.generate(), format.generate(), format.generate());
    let keys = ApiKeys::new()
        .with_format(format)
        .try_with(Key::new("support-reader", &reader).scopes(["keys:read"]))?
        .try_with(Key::new("support-writer", &writer).scopes([
            "keys:read",
            "keys:write",
            "orders:read",
        ]))?
        .try_with(
            Key::new("acme", &customer)
                .scopes(["orders:read"])
                .credits(1000),
        )?;
    Ok((keys, [reader, writer, customer]))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    axum_api_key_examples::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let (keys, [reader, writer, customer]) = demo()?;
    let listener = axum_api_key_examples::bind(3001).await?;
    let a = format!("http://{}", listener.local_addr()?);
    println!("admin API listening on {a}/admin");
    println!();
    println!("Demo keys, in memory only, shown this once:");
    println!("    read-only admin (keys:read):                   {reader}");
    println!("    write admin (keys:read keys:write orders:read): {writer}");
    println!("    customer `acme` (orders:read, 1000 credits):    {customer}");
    println!();
    println!("Read:");
    println!("    curl -s -H 'x-api-key: {reader}' '{a}/admin/keys?limit=10'");
    println!("    curl -s -H 'x-api-key: {reader}' {a}/admin/keys/acme");
    println!("Create (the key is in the answer, once):");
    println!(
        "    curl -s -H 'x-api-key: {writer}' -H 'content-type: application/json' -d '{{\"id\": \"globex\", \"scopes\": [\"orders:read\"], \"rate_limit\": [\"10/s\", \"10000/day\"], \"credits\": 500, \"refill\": \"500/day\"}}' {a}/admin/keys"
    );
    println!("Change:");
    println!("    curl -s -X PUT -H 'x-api-key: {writer}' {a}/admin/keys/acme/disabled");
    println!("    curl -s -X DELETE -H 'x-api-key: {writer}' {a}/admin/keys/acme/disabled");
    println!(
        "    curl -s -X PUT -H 'x-api-key: {writer}' -d '{{\"credits\": 5000, \"refill\": \"5000/month\"}}' {a}/admin/keys/acme/credits"
    );
    println!(
        "    curl -s -X PUT -H 'x-api-key: {writer}' -d '[\"5/s\", \"1000/day\"]' {a}/admin/keys/acme/rate_limit"
    );
    println!(
        "    curl -s -H 'x-api-key: {writer}' -d '{{\"grace_seconds\": 3600}}' {a}/admin/keys/acme/rotate"
    );
    println!("    curl -s -X DELETE -H 'x-api-key: {writer}' {a}/admin/keys/acme");
    println!("Refused:");
    println!(
        "    curl -s -H 'x-api-key: {reader}' -d '{{\"id\": \"x\"}}' {a}/admin/keys    # read-only: 403"
    );
    println!(
        "    curl -s -H 'x-api-key: {writer}' -d '{{\"id\": \"x\", \"scopes\": [\"admin\"]}}' {a}/admin/keys    # a scope it lacks: 403"
    );
    println!("The customer:");
    println!("    curl -s -H 'x-api-key: {customer}' {a}/orders");
    axum_api_key_examples::serve(listener, app(keys)).await
}
