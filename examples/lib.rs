//! What the runnable examples share: making a demo key when none is configured, and serving a
//! router on loopback. See `cargo run --example quickstart`.

#![allow(clippy::print_stdout)]

use std::error::Error;

/// A fresh random key, `prefix` and 32 hex digits from the operating system's CSPRNG, for
/// runs with no keys configured. It lives in memory only.
pub fn demo_key(prefix: &str) -> Result<String, Box<dyn Error>> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|error| format!("no random bytes for a demo key: {error}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}_{hex}"))
}

/// Reads a `.env` file in the working directory, if there is one; variables already set win.
pub fn load_dotenv() -> Result<(), Box<dyn Error>> {
    match dotenvy::dotenv() {
        Err(error) if !error.not_found() => Err(format!(".env: {error}").into()),
        _ => Ok(()),
    }
}

/// Binds `127.0.0.1` on `PORT`, or on `default_port`.
pub async fn bind(default_port: u16) -> Result<tokio::net::TcpListener, Box<dyn Error>> {
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT must be a port number, not {port:?}"))?,
        Err(_) => default_port,
    };
    Ok(tokio::net::TcpListener::bind(("127.0.0.1", port)).await?)
}

/// Serves `app` on `listener` until Ctrl-C.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> Result<(), Box<dyn Error>> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
