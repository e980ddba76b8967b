//! `axum-api-key`: generate API keys and the configuration that holds only their digests.
//!
//! ```sh
//! cargo run -p axum-api-key --features cli -- generate --format myapp --id partner-a --scopes orders:read --expires 90d
//! printf %s "$KEY" | cargo run -p axum-api-key --features cli -- hash --id partner-a
//! cargo run -p axum-api-key --features cli -- keys create --file keys.toml --id partner-b
//! cargo run -p axum-api-key --features cli -- keys list --file keys.toml
//! cargo run -p axum-api-key --features cli -- keys rotate --file keys.toml --id partner-b --grace 24h
//! cargo run -p axum-api-key --features cli -- keys revoke --file keys.toml --id partner-b
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use axum_api_key::{
    ApiKeys, ConfigError, ConfigErrorKind, Key, KeyError, KeyFormat, MAX_KEY_LEN, digest,
};
use clap::{Parser, Subcommand};

mod database;
mod output;

use database::database_keys;
use output::{print_entries, print_listing};

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
        /// The key format: its prefix, 1 to 16 letters and digits. Keys look like `<prefix>_…`.
        #[arg(long = "format", visible_alias = "prefix", value_name = "PREFIX")]
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
    /// Manage the keys of a records file, as the service's own store does: every change is
    /// written to the file before the command returns, and a service reading the file sees it
    /// on its next reload.
    #[command(subcommand)]
    Keys(Keys),
}

/// Where the keys live: a records file, or a PostgreSQL database.
#[derive(clap::Args)]
struct Place {
    /// The records file.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The PostgreSQL database of a `PgKeys` store, e.g. `postgres://postgres@127.0.0.1/test`
    /// (`DATABASE_URL` when neither this nor `--file` is given).
    #[arg(long)]
    database_url: Option<String>,
    /// The schema of the keys table in the database.
    #[arg(long)]
    schema: Option<String>,
}

#[derive(Subcommand)]
enum Keys {
    /// Make a new key and add its record (its digest, never the key) to the file. The key goes
    /// to standard output, once.
    Create {
        #[command(flatten)]
        place: Place,
        /// The id the key is known by; a new `key-…` id when not given.
        #[arg(long)]
        id: Option<String>,
        /// Scopes the key holds, separated by commas.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// How long the key is valid, e.g. `90d`.
        #[arg(long)]
        expires: Option<humantime::Duration>,
        /// The key format (its prefix, e.g. `myapp`): needed to start a new file, and always
        /// for a database; a file that exists names its own.
        #[arg(long = "format", visible_alias = "prefix", value_name = "PREFIX")]
        prefix: Option<String>,
        /// Networks the key may be used from, e.g. `203.0.113.0/24,2001:db8::/32`; anywhere
        /// when not given.
        #[arg(long = "allow-ip", value_delimiter = ',', value_name = "NETWORK")]
        allowed_ips: Vec<axum_api_key::IpNetwork>,
        /// Uses the key may spend, e.g. `10000`; unlimited when not given.
        #[arg(long)]
        credits: Option<u64>,
        /// How the credits are refilled, e.g. `10000/month`, `500/day`.
        #[arg(long)]
        refill: Option<axum_api_key::Refill>,
        /// The key's rate limits, one per window, e.g. `10/s,100000/day` (at most 4).
        #[arg(long = "rate-limit", value_delimiter = ',', value_name = "LIMIT")]
        rate_limits: Vec<axum_api_key::RateLimit>,
        /// A name the key shares its rate limits and credits under with other keys of it,
        /// e.g. a customer's.
        #[arg(long)]
        identity: Option<String>,
    },
    /// List the keys of the file: id, scopes, expiry and state. Never a key or a digest.
    List {
        #[command(flatten)]
        place: Place,
    },
    /// Revoke every key of an id.
    Revoke {
        #[command(flatten)]
        place: Place,
        /// The id whose keys to revoke.
        #[arg(long)]
        id: String,
    },
    /// Disable every key of an id: refused (403, `key-disabled`) until enabled again, with
    /// everything else about them kept.
    Disable {
        #[command(flatten)]
        place: Place,
        /// The id whose keys to disable.
        #[arg(long)]
        id: String,
    },
    /// Enable every key of an id again after `keys disable`.
    Enable {
        #[command(flatten)]
        place: Place,
        /// The id whose keys to enable.
        #[arg(long)]
        id: String,
    },
    /// Issue a new key for an id; the old ones keep working until the grace period ends. The
    /// new key goes to standard output, once.
    Rotate {
        #[command(flatten)]
        place: Place,
        /// The id whose key to rotate.
        #[arg(long)]
        id: String,
        /// How long the old key keeps working, e.g. `24h`; none by default.
        #[arg(long, default_value = "0s")]
        grace: humantime::Duration,
        /// The key format (its prefix, e.g. `myapp`), when the file names none (always, for a
        /// database).
        #[arg(long = "format", visible_alias = "prefix", value_name = "PREFIX")]
        prefix: Option<String>,
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
            let format = KeyFormat::new(&prefix).map_err(|e| format!("--format: {e}"))?;
            let key = format.generate();
            let expires = expires.map(|duration| expiry(*duration)).transpose()?;
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
        Command::Keys(command) => keys(command),
    }
}

/// An identity is named as an id is: 1 to 64 printable characters.
fn check_identity(identity: &str) -> Result<(), String> {
    if identity.is_empty()
        || identity.len() > axum_api_key::MAX_ID_LEN
        || !identity.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(format!(
            "--identity: an identity is 1 to {} printable ASCII characters, e.g. `acme`",
            axum_api_key::MAX_ID_LEN
        ));
    }
    Ok(())
}

/// A time a duration from now, if a clock and a records file can hold it.
fn from_now(duration: std::time::Duration, flag: &str) -> Result<SystemTime, String> {
    let latest = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799);
    SystemTime::now()
        .checked_add(duration)
        .filter(|at| *at <= latest)
        .ok_or_else(|| {
            format!("{flag}: too far in the future; give a duration ending before the year 10000")
        })
}

/// The shortest validity `--expires` takes: a key that expires sooner is a mistake (`0s`,
/// `1ns`), not a key anyone could hand over and use.
const SHORTEST_EXPIRY: std::time::Duration = std::time::Duration::from_secs(60);

/// The expiry `--expires` asks for, if it is at least a minute away and a records file can
/// hold it.
fn expiry(duration: std::time::Duration) -> Result<SystemTime, String> {
    if duration < SHORTEST_EXPIRY {
        return Err(format!(
            "--expires: {} is too soon; a key must be valid for at least a minute (e.g. `90d`)",
            humantime::format_duration(duration)
        ));
    }
    from_now(duration, "--expires")
}

/// The database to use, if the keys live in one: `--database-url`, or `DATABASE_URL` when no
/// `--file` is given.
fn database(place: &Place) -> Result<Option<String>, String> {
    match (&place.file, &place.database_url) {
        (Some(_), Some(_)) => Err("give --file or --database-url, not both".to_owned()),
        (Some(_), None) => Ok(None),
        (None, Some(url)) => Ok(Some(url.clone())),
        (None, None) => match std::env::var("DATABASE_URL") {
            Ok(url) => Ok(Some(url)),
            Err(_) => Err(
                "say where the keys are: --file keys.toml, or --database-url (or DATABASE_URL)"
                    .to_owned(),
            ),
        },
    }
}

fn keys(command: Keys) -> Result<(), String> {
    let place = match &command {
        Keys::Create { place, .. }
        | Keys::List { place }
        | Keys::Revoke { place, .. }
        | Keys::Disable { place, .. }
        | Keys::Enable { place, .. }
        | Keys::Rotate { place, .. } => place,
    };
    if let Some(url) = database(place)? {
        return database_keys(&url, place.schema.clone(), command);
    }
    let file = place.file.clone().unwrap_or_default();
    let open = |file: &PathBuf| ApiKeys::from_file_allowing_empty(file).map_err(config_error);
    match command {
        Keys::Create {
            place: _,
            id,
            scopes,
            expires,
            prefix,
            allowed_ips,
            credits,
            refill,
            rate_limits,
            identity,
        } => {
            let prefix = prefix
                .map(|prefix| KeyFormat::new(&prefix).map_err(|e| format!("--format: {e}")))
                .transpose()?;
            if !file.exists() {
                create_records_file(&file, prefix.as_ref())?;
            }
            let keys = open(&file)?;
            // The file's own format wins: every key in it must be of one format.
            let format = match (keys.format(), prefix) {
                (Some(format), Some(asked)) if format.prefix() != asked.prefix() => {
                    return Err(format!(
                        "--format: the keys of {} are of the format `{}`; drop --format or give \
                         that one",
                        file.display(),
                        format.prefix()
                    ));
                }
                (Some(format), _) => format,
                (None, Some(asked)) => asked,
                (None, None) => {
                    return Err(
                        "the records file names no key format: add `format = \"myapp\"` \
                                to it, or give --format myapp"
                            .to_owned(),
                    );
                }
            };
            let id = id.map_or_else(new_id, Ok)?;
            let key = format.generate();
            let mut record = Key::new(id.as_str(), &key).scopes(scopes.iter().cloned());
            if let Some(duration) = expires {
                record = record.expires_at(expiry(*duration)?);
            }
            if !allowed_ips.is_empty() {
                record = record.allowed_ips(allowed_ips.iter().copied());
            }
            if let Some(refill) = refill {
                record = record.refill(refill);
            }
            if let Some(credits) = credits {
                record = record.credits(credits);
            }
            if !rate_limits.is_empty() {
                record = record
                    .rate_limits(rate_limits)
                    .map_err(|e| format!("--rate-limit: {e}"))?;
            }
            if let Some(identity) = &identity {
                check_identity(identity)?;
                record = record.identity(identity.as_str());
            }
            keys.add(record).map_err(config_error)?;
            println!("{key}");
            eprintln!();
            eprintln!(
                "The key for `{id}` is above, shown this once: hand it to its owner now. Its digest \
                 is in {}.",
                file.display()
            );
            Ok(())
        }
        Keys::List { place: _ } => {
            print_listing(&open(&file)?.list());
            Ok(())
        }
        Keys::Revoke { place: _, id } => {
            let count = open(&file)?.revoke(&id).map_err(config_error)?;
            eprintln!("Revoked {count} key(s) of `{id}` in {}.", file.display());
            Ok(())
        }
        Keys::Disable { place: _, id } => {
            let count = open(&file)?.disable(&id).map_err(config_error)?;
            eprintln!("Disabled {count} key(s) of `{id}` in {}.", file.display());
            Ok(())
        }
        Keys::Enable { place: _, id } => {
            let count = open(&file)?.enable(&id).map_err(config_error)?;
            eprintln!("Enabled {count} key(s) of `{id}` in {}.", file.display());
            Ok(())
        }
        Keys::Rotate {
            place: _,
            id,
            grace,
            prefix,
        } => {
            let mut keys = open(&file)?;
            if let Some(prefix) = prefix {
                keys = keys
                    .with_format(KeyFormat::new(&prefix).map_err(|e| format!("--format: {e}"))?);
            }
            // A grace period the file cannot hold is refused here, not saturated.
            from_now(*grace, "--grace")?;
            let key = keys.rotate(&id, *grace).map_err(config_error)?;
            println!("{key}");
            eprintln!();
            eprintln!(
                "The new key for `{id}` is above, shown this once; the old one works for {grace} \
                 more."
            );
            Ok(())
        }
    }
}

/// An id for a key created without `--id`: `key-` and 8 random hexadecimal digits.
fn new_id() -> Result<String, String> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a new id: {e}"))?;
    Ok(bytes.iter().fold("key-".to_owned(), |mut id, byte| {
        id.push_str(&format!("{byte:02x}"));
        id
    }))
}

/// A store's error in the words of this tool: what to pass or change, never a Rust call.
fn config_error(error: ConfigError) -> String {
    match error.kind() {
        ConfigErrorKind::NoFormat => {
            "the records file names no key format, which a new key needs: \
                                      add `format = \"myapp\"` to it, or give --format myapp"
                .to_owned()
        }
        _ => error.to_string(),
    }
}

/// Starts a records file for `keys create`, naming the key format so that every later key is
/// of it. Never overwrites: a file that appears meanwhile is left as it is.
fn create_records_file(file: &std::path::Path, format: Option<&KeyFormat>) -> Result<(), String> {
    use std::io::Write;
    let Some(format) = format else {
        return Err(format!(
            "{} does not exist; give --format (e.g. `--format myapp`) to start it with that key format",
            file.display()
        ));
    };
    let mut document = toml_edit::DocumentMut::new();
    document.insert("format", toml_edit::value(format.prefix()));
    let text = format!("# API keys: digests only, never keys.\n{document}");
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file);
    match created {
        Ok(mut out) => out
            .write_all(text.as_bytes())
            .and_then(|()| out.sync_all())
            .map_err(|e| format!("{}: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}
