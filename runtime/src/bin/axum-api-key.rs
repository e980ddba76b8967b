//! `axum-api-key`: generate API keys and the configuration that holds only their digests.
//!
//! ```sh
//! cargo run -p axum-api-key --features cli -- generate --prefix myapp --id partner-a --scopes orders:read --expires 90d
//! printf %s "$KEY" | cargo run -p axum-api-key --features cli -- hash --id partner-a
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Read;
use std::process::ExitCode;
use std::time::SystemTime;

use axum_api_key::{ApiKeys, Key, KeyFormat, MAX_KEY_LEN, digest};
use clap::{Parser, Subcommand};

/// Generate API keys for axum-api-key, and the configuration entries that hold only their
/// digests.
#[derive(Parser)]
#[command(name = "axum-api-key", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a new key. The key goes to standard output, once; its configuration (the digest,
    /// never the key) goes to standard error.
    Generate {
        /// The key's prefix, 1 to 16 letters and digits: keys look like `<prefix>_…`.
        #[arg(long)]
        prefix: String,
        /// The id the key is known by, in logs and handlers.
        #[arg(long)]
        id: String,
        /// Scopes the key holds, separated by commas.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// How long the key is valid, e.g. `90d` or `12h`.
        #[arg(long)]
        expires: Option<humantime::Duration>,
    },
    /// Read a key from standard input and print its configuration entries (digest only).
    Hash {
        /// The id the key is known by.
        #[arg(long, default_value = "default")]
        id: String,
        /// Scopes the key holds, separated by commas.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Generate {
            prefix,
            id,
            scopes,
            expires,
        } => {
            let format = KeyFormat::new(&prefix).map_err(|e| format!("--prefix: {e}"))?;
            let key = format.generate();
            // A records file holds years up to 9999: anything later is refused, never a panic.
            let latest = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799);
            let expires = expires
                .map(|duration| {
                    SystemTime::now()
                        .checked_add(*duration)
                        .filter(|at| *at <= latest)
                        .ok_or("--expires: too far in the future; give a duration ending before the year 10000")
                })
                .transpose()?;
            let mut checked = Key::new(id.as_str(), &key).scopes(scopes.iter().cloned());
            if let Some(at) = expires {
                checked = checked.expires_at(at);
            }
            // The store's own rules judge the id and scopes.
            ApiKeys::new()
                .with_format(format)
                .try_with(checked)
                .map_err(|e| e.to_string())?;

            println!("{key}");
            eprintln!();
            eprintln!("The key for `{id}` is above, shown this once: hand it to its owner now.");
            eprintln!("Configure its digest, which cannot be turned back into the key:");
            eprintln!();
            print_entries(
                &mut std::io::stderr(),
                &id,
                &scopes,
                digest(key.as_bytes()),
                expires,
            );
            Ok(())
        }
        Command::Hash { id, scopes } => {
            let mut input = Vec::new();
            std::io::stdin()
                .take(MAX_KEY_LEN as u64 + 3)
                .read_to_end(&mut input)
                .map_err(|e| format!("reading the key from standard input: {e}"))?;
            let key = input.strip_suffix(b"\n").unwrap_or(&input);
            let key = key.strip_suffix(b"\r").unwrap_or(key);
            let checked = Key::new(id.as_str(), key).scopes(scopes.iter().cloned());
            ApiKeys::new()
                .try_with(checked)
                .map_err(|e| e.to_string())?;
            print_entries(&mut std::io::stdout(), &id, &scopes, digest(key), None);
            Ok(())
        }
    }
}

/// The `API_KEYS` entry (when it can say everything) and the records-file entry.
fn print_entries(
    out: &mut dyn std::io::Write,
    id: &str,
    scopes: &[String],
    digest: [u8; 32],
    expires: Option<SystemTime>,
) {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut text = String::new();
    match expires {
        None => {
            let scoped = if scopes.is_empty() {
                String::new()
            } else {
                format!("[{}]", scopes.join(" "))
            };
            text.push_str(&format!(
                "API_KEYS entry:\n    {id}{scoped}=sha256:{hex}\n\n"
            ));
        }
        Some(_) => text.push_str(
            "API_KEYS entries cannot expire; use the records file (ApiKeys::from_file):\n\n",
        ),
    }
    text.push_str("Records file entry (ApiKeys::from_file):\n");
    text.push_str(&format!(
        "    [[keys]]\n    id = \"{id}\"\n    digest = \"sha256:{hex}\"\n"
    ));
    if !scopes.is_empty() {
        let quoted: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
        text.push_str(&format!("    scopes = [{}]\n", quoted.join(", ")));
    }
    if let Some(at) = expires {
        text.push_str(&format!(
            "    expires = {}\n",
            humantime::format_rfc3339_seconds(at)
        ));
    }
    // Nothing is lost when a terminal closes early; there is nowhere else to report it.
    let _ = out.write_all(text.as_bytes());
}
