//! Leaked keys revoked by themselves: the endpoint of GitHub's secret scanning partner program.
//!
//! ```sh
//! cargo run --example leaks
//! ```
//!
//! The server makes a customer key and a P-256 signing key standing in for GitHub's, trusts
//! that key's public half, and prints a report of the customer key signed with it, and the
//! `curl` line that sends it: the key is revoked within the request (`GET /data` with it is
//! `401` after). `PORT` overrides the port (3002). `LEAKS_TRUSTED_KEY` (a PEM public key) and
//! `LEAKS_TRUSTED_KEY_ID` trust one more key, such as one a test signs with.
//!
//! - `POST /github/secret-scanning`: a signed report;
//! - `GET /data`: the customer route.

#![allow(clippy::print_stdout)]

use std::error::Error;

use axum::Router;
use axum::routing::get;
use axum_api_key::secret_scanning::{self, SecretScanning};
use axum_api_key::{ApiKeys, Key, KeyFormat, VerifiedKey, api_key};
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::EncodePublicKey as _;

#[api_key]
async fn data(key: VerifiedKey) -> String {
    format!("data for {}\n", key.id())
}

/// The app: the scanning endpoint beside a customer route.
pub(crate) fn app(keys: ApiKeys, scanning: SecretScanning) -> Router {
    Router::new()
        .nest(
            "/github/secret-scanning",
            secret_scanning::router::<ApiKeys, _>(scanning),
        )
        .route("/data", get(data))
        .with_state(keys)
}

/// A new signing key, from the system's random source.
fn signing_key() -> Result<SigningKey, Box<dyn Error>> {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|error| format!("no random source: {error}"))?;
        // A value past the curve's order (odds of 2^-32) is drawn again.
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    axum_api_key_examples::exit(run().await)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let format = KeyFormat::new("leak")?;
    let customer = format.generate();
    let keys = ApiKeys::new()
        .with_format(format)
        .try_with(Key::new("acme", &customer))?;
    let signer = signing_key()?;
    let pem = signer
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .map_err(|error| format!("the public key: {error}"))?;
    let mut scanning = SecretScanning::new()
        .with_key("local-demo", &pem)?
        .on_leak(|leak| {
            println!(
                "leak reported: key `{}` {} (found at {})",
                leak.key_id,
                leak.action,
                leak.url.as_deref().unwrap_or("an unknown place")
            );
        });
    if let Ok(trusted) = std::env::var("LEAKS_TRUSTED_KEY") {
        let id = std::env::var("LEAKS_TRUSTED_KEY_ID").unwrap_or_else(|_| "trusted".to_owned());
        scanning = scanning.with_key(id, &trusted)?;
    }

    let listener = axum_api_key_examples::bind(3002).await?;
    let a = format!("http://{}", listener.local_addr()?);
    let report = format!(
        r#"[{{"token":"{customer}","type":"leak_api_key","url":"https://github.com/octo-org/octo-repo/blob/main/settings.py","source":"content"}}]"#
    );
    let signature: DerSignature = signer.sign(report.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(signature.to_bytes());
    println!("secret scanning endpoint on {a}/github/secret-scanning");
    println!();
    println!("The customer key `acme`, in memory only: {customer}");
    println!("    curl -H 'x-api-key: {customer}' {a}/data    # 200, until reported");
    println!();
    println!(
        "The signing key standing in for GitHub's (its public half is trusted as `local-demo`):"
    );
    println!("{pem}");
    println!("A report of the customer key, signed with it; sending it revokes the key:");
    println!(
        "    curl -s -H 'Github-Public-Key-Identifier: local-demo' -H 'Github-Public-Key-Signature: {signature}' --data-binary '{report}' {a}/github/secret-scanning"
    );
    println!(
        "The same report with a signature of another key is refused (401), and changes nothing."
    );
    axum_api_key_examples::serve(listener, app(keys, scanning)).await
}
