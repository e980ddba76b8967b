//! The `#[api_key]` attribute of [`axum-api-key`](https://docs.rs/axum-api-key).
//!
//! Depend on `axum-api-key` and write `axum_api_key::api_key`; this crate is its implementation
//! and is documented there. `attr.rs` parses and checks the arguments, `signature.rs` checks the
//! function, `expand.rs` rewrites it with the configuration type of `config.rs`; `tokens.rs`
//! writes the user's tokens back in messages and points errors at them.

#![warn(clippy::unwrap_used)]

mod attr;
mod config;
mod expand;
#[cfg(feature = "openapi")]
mod openapi;
mod signature;
mod tokens;
#[cfg(feature = "webhooks")]
mod webhook;

use proc_macro::TokenStream;

/// Protects an async axum handler with an API key.
///
/// See the documentation of `axum_api_key::api_key`, which re-exports this attribute.
#[proc_macro_attribute]
pub fn api_key(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::api_key(args.into(), item.into()).into()
}

/// Verifies a signed webhook before an async axum handler runs.
///
/// See the documentation of `axum_api_key::webhook`, which re-exports this attribute.
#[cfg(feature = "webhooks")]
#[proc_macro_attribute]
pub fn webhook(args: TokenStream, item: TokenStream) -> TokenStream {
    webhook::webhook(args.into(), item.into()).into()
}
