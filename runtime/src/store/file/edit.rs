//! One change applied to the records file as TOML: the tables of the keys it names found and
//! their fields set, with the file's comments and layout kept.

use std::time::{Duration, SystemTime};

use toml::value::Datetime;

use super::super::KeyDigest;
use super::super::change::FileEdit;
use super::{decode_digest, system_time};
use crate::error::{ConfigError, ConfigErrorKind};

/// Applies one edit to the records file's document.
pub(super) fn apply(
    document: &mut toml_edit::DocumentMut,
    edit: &FileEdit,
) -> Result<(), ConfigError> {
    use toml_edit::{Item, Value, value};
    let keys = document
        .entry("keys")
        .or_insert_with(|| Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    let Some(keys) = keys.as_array_of_tables_mut() else {
        return Err(ConfigError::new(ConfigErrorKind::FileSyntax)
            .at(None, Some("keys"))
            .with_message("`keys` must be an array of tables, `[[keys]]`"));
    };
    let of_id =
        |table: &toml_edit::Table, id: &str| table.get("id").and_then(Item::as_str) == Some(id);
    let of_digest = |table: &toml_edit::Table, digest: &KeyDigest| {
        table
            .get("digest")
            .and_then(Item::as_str)
            .and_then(|text| text.strip_prefix("sha256:"))
            .and_then(decode_digest)
            .is_some_and(|found| found == *digest)
    };
    // Sets `expires` to `at` unless the table already expires sooner.
    let expire = |table: &mut toml_edit::Table, at: SystemTime| -> Result<(), ConfigError> {
        let sooner = table
            .get("expires")
            .and_then(Item::as_datetime)
            .and_then(system_time)
            .is_some_and(|expires| expires <= at);
        if !sooner {
            table.insert("expires", value(datetime(at)?));
        }
        Ok(())
    };
    match edit {
        FileEdit::Append { digest, record } => {
            let mut table = toml_edit::Table::new();
            table.insert("id", value(&*record.id));
            let hex = crate::hex::encode(digest);
            table.insert("digest", value(format!("sha256:{hex}")));
            if !record.scopes.is_empty() {
                let scopes: toml_edit::Array = record.scopes.iter().map(|s| &**s).collect();
                table.insert("scopes", value(scopes));
            }
            if let Some(at) = record.not_before() {
                table.insert("not_before", value(datetime(at)?));
            }
            if let Some(at) = record.expires() {
                table.insert("expires", value(datetime(at)?));
            }
            if record.revoked {
                table.insert("revoked", value(true));
            }
            if record.superseded {
                table.insert("superseded", value(true));
            }
            if record.disabled {
                table.insert("disabled", value(true));
            }
            match record.key_limits() {
                [] => {}
                [one] => {
                    table.insert("rate_limit", value(one.limit.to_string()));
                }
                several => {
                    let limits: toml_edit::Array =
                        several.iter().map(|one| one.limit.to_string()).collect();
                    table.insert("rate_limit", value(limits));
                }
            }
            if let Some(credits) = record.credits() {
                table.insert("credits", value(credits_value(credits.remaining)));
                if let Some(refill) = credits.refill {
                    table.insert("refill", value(refill.to_string()));
                }
                if let Some(at) = credits.counted_at {
                    table.insert("credits_at", value(datetime(at)?));
                }
            }
            if let Some(identity) = record.identity() {
                table.insert("identity", value(identity));
            }
            if record.last_used() > 0 {
                let at = std::time::UNIX_EPOCH + Duration::from_secs(record.last_used());
                table.insert("last_used", value(datetime(at)?));
            }
            if let Some(networks) = record.allowed_ips() {
                let networks: toml_edit::Array = networks.iter().map(ToString::to_string).collect();
                table.insert("allowed_ips", value(networks));
            }
            let mut metadata = toml_edit::InlineTable::new();
            for (name, text) in record.metadata() {
                metadata.insert(name, Value::from(text));
            }
            if !metadata.is_empty() {
                table.insert("metadata", value(metadata));
            }
            keys.push(table);
        }
        FileEdit::Revoke { id } => {
            let mut found = false;
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                table.insert("revoked", value(true));
                found = true;
            }
            if !found {
                return Err(ConfigError::new(ConfigErrorKind::UnknownId).with_id(id));
            }
        }
        FileEdit::Supersede { id, at } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                table.insert("superseded", value(true));
                expire(table, *at)?;
            }
        }
        FileEdit::Disable { id, disabled } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                table.insert("disabled", value(*disabled));
            }
        }
        FileEdit::LastUsed { id, at } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                table.insert("last_used", value(datetime(*at)?));
            }
        }
        FileEdit::Metadata { id, metadata } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                if metadata.is_empty() {
                    table.remove("metadata");
                } else {
                    let mut inline = toml_edit::InlineTable::new();
                    for (name, text) in metadata {
                        inline.insert(name, text.as_str().into());
                    }
                    table.insert("metadata", value(inline));
                }
            }
        }
        FileEdit::Scopes { id, scopes } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                if scopes.is_empty() {
                    table.remove("scopes");
                } else {
                    let list: toml_edit::Array = scopes.iter().map(|scope| &**scope).collect();
                    table.insert("scopes", value(list));
                }
            }
        }
        FileEdit::RateLimits { id, limits } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                match limits.as_slice() {
                    [] => {
                        table.remove("rate_limit");
                    }
                    [one] => {
                        table.insert("rate_limit", value(one.to_string()));
                    }
                    several => {
                        let list: toml_edit::Array =
                            several.iter().map(ToString::to_string).collect();
                        table.insert("rate_limit", value(list));
                    }
                }
            }
        }
        FileEdit::Credits {
            id,
            remaining,
            refill,
            at,
        } => {
            for table in keys.iter_mut().filter(|table| of_id(table, id)) {
                table.insert("credits", value(credits_value(*remaining)));
                table.insert("credits_at", value(datetime(*at)?));
                match refill {
                    Some(Some(refill)) => {
                        table.insert("refill", value(refill.to_string()));
                    }
                    Some(None) => {
                        table.remove("refill");
                    }
                    None => {}
                }
            }
        }
        // A record forgotten goes whole, with the comments inside its table.
        FileEdit::Forget { digest } => keys.retain(|table| !of_digest(table, digest)),
        FileEdit::RevokeKey { digest } | FileEdit::SupersedeKey { digest, .. } => {
            let Some(table) = keys.iter_mut().find(|table| of_digest(table, digest)) else {
                return Err(ConfigError::new(ConfigErrorKind::UnknownKey));
            };
            match edit {
                FileEdit::SupersedeKey { at, .. } => {
                    table.insert("superseded", value(true));
                    expire(table, *at)?;
                }
                _ => {
                    table.insert("revoked", value(true));
                }
            }
        }
    }
    Ok(())
}

/// A count of credits as TOML writes integers (at most `MAX_CREDITS`, far below `i64::MAX`).
pub(super) fn credits_value(credits: u64) -> i64 {
    i64::try_from(credits.min(crate::MAX_CREDITS)).unwrap_or(i64::MAX)
}

/// A time as a TOML offset date-time in UTC, to the nanosecond.
pub(super) fn datetime(at: SystemTime) -> Result<Datetime, ConfigError> {
    let too_far = || ConfigError::new(ConfigErrorKind::BadTime);
    crate::time::rfc3339(at)
        .ok_or_else(too_far)?
        .parse()
        .map_err(|_| too_far())
}
