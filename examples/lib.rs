//! What the runnable examples share: reading `.env`, and serving a router on loopback. See
//! `cargo run --example quickstart`.

use std::error::Error;

/// Reads a `.env` file in the working directory, if there is one; variables already set win.
pub fn load_dotenv() -> Result<(), Box<dyn Error>> {
    match dotenvy::dotenv() {
        Err(error) if !error.not_found() => Err(format!(".env: {error}").into()),
        _ => Ok(()),
    }
}

/// The exit code of an example's run: 0, or 2 with the error said as a sentence (which entry,
/// what is wrong, the fix), never as a debug dump.
pub fn exit(run: Result<(), Box<dyn Error>>) -> std::process::ExitCode {
    match run {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::from(2)
        }
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

/// Serves `app` on `listener` until Ctrl-C, telling each request its peer's address
/// (`ConnectInfo`), which the brute-force throttle counts failed attempts against.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> Result<(), Box<dyn Error>> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
