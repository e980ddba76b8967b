//! What the tool prints: listings and records-file entries.

use super::*;

pub(super) fn print_listing(listed: &[axum_api_key::ListedKey]) {
    for listed in listed {
        let key = listed.key();
        let state = match listed.refused() {
            None => "valid",
            Some(KeyError::Revoked) => "revoked",
            Some(KeyError::Expired) => "expired",
            Some(KeyError::NotYetValid) => "not valid yet",
            Some(KeyError::Disabled) => "disabled",
            Some(_) => "refused",
        };
        let scopes: Vec<&str> = key.scopes().collect();
        let expires = key
            .expires_at()
            .map(|at| format!(" expires {}", humantime::format_rfc3339_seconds(at)))
            .unwrap_or_default();
        let limits: Vec<String> = key.rate_limits().map(|limit| limit.to_string()).collect();
        let limit = if limits.is_empty() {
            String::new()
        } else {
            format!(" limited {}", limits.join(", "))
        };
        let credits = match (listed.credits_left(), key.refill()) {
            (Some(left), Some(refill)) => format!(" credits {left} refill {refill}"),
            (Some(left), None) => format!(" credits {left}"),
            _ => String::new(),
        };
        let used = listed
            .last_used()
            .map(|at| format!(" last used {}", humantime::format_rfc3339_seconds(at)))
            .unwrap_or_default();
        let networks: Vec<String> = key.allowed_ips().iter().map(ToString::to_string).collect();
        let from = if networks.is_empty() {
            String::new()
        } else {
            format!(" from {}", networks.join(","))
        };
        println!(
            "{}\t{state}\t[{}]{expires}{limit}{credits}{from}{used}",
            key.id(),
            scopes.join(" ")
        );
    }
}

/// The `API_KEYS` entry (when it can say everything) and the records-file entry.
pub(super) fn print_entries(
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
    // Built as TOML, not pasted into a template: any id and scope the rules allow is quoted
    // as TOML quotes it.
    let mut record = toml_edit::Table::new();
    record.insert("id", toml_edit::value(id));
    record.insert("digest", toml_edit::value(format!("sha256:{hex}")));
    if !scopes.is_empty() {
        let array: toml_edit::Array = scopes.iter().map(String::as_str).collect();
        record.insert("scopes", toml_edit::value(array));
    }
    if let Some(at) = expires {
        let written = humantime::format_rfc3339_seconds(at).to_string();
        if let Ok(datetime) = written.parse::<toml_edit::Datetime>() {
            record.insert("expires", toml_edit::value(datetime));
        }
    }
    let mut keys = toml_edit::ArrayOfTables::new();
    keys.push(record);
    let mut document = toml_edit::DocumentMut::new();
    document.insert("keys", toml_edit::Item::ArrayOfTables(keys));
    for line in document.to_string().lines() {
        text.push_str(&format!("    {line}\n"));
    }
    // Nothing is lost when a terminal closes early; there is nowhere else to report it.
    let _ = out.write_all(text.as_bytes());
}
