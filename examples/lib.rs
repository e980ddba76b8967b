//! Runnable examples live beside this file; see `cargo run --example quickstart`.
