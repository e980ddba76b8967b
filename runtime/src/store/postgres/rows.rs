//! Rows of the keys table read as keys, and times as the table holds them (microseconds).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row;

use super::super::{Key, KeyDigest};
use super::PgKeysError;

/// A microsecond count bound as `$2`, as a `timestamptz`.
pub(super) const AT: &str = "(timestamptz 'epoch' + $2::int8 * interval '1 microsecond')";

/// The end of a grace period starting now, at the latest the end of year 9999.
pub(super) fn grace_deadline(grace: Duration) -> SystemTime {
    let latest = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    SystemTime::now()
        .checked_add(grace)
        .map_or(latest, |deadline| deadline.min(latest))
}

/// Microseconds since the Unix epoch.
pub(super) fn micros(at: SystemTime) -> i64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

pub(super) fn from_micros(micros: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

pub(super) fn digests_of(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<KeyDigest>, PgKeysError> {
    rows.iter()
        .map(|row| {
            let bytes: Vec<u8> = row.try_get("digest")?;
            bytes.try_into().map_err(|_| {
                PgKeysError::Database(sqlx::Error::Decode("a digest of 32 bytes".into()))
            })
        })
        .collect()
}

pub(super) const SELECT_ROWS: &str = "SELECT digest, id, scopes, \
     (extract(epoch FROM not_before) * 1000000)::int8 AS not_before, \
     (extract(epoch FROM expires_at) * 1000000)::int8 AS expires_at, \
     revoked_at IS NOT NULL AS revoked, superseded, metadata::text AS metadata, rate_limit, \
     disabled, allowed_ips::text[] AS allowed_ips, credits, refill, \
     (extract(epoch FROM credits_at) * 1000000)::int8 AS credits_at, identity, \
     extract(epoch FROM last_used)::int8 AS last_used \
     FROM api_keys";

/// A row as the store's [`Key`].
pub(super) fn record(row: &sqlx::postgres::PgRow) -> Result<(KeyDigest, Key), sqlx::Error> {
    let bytes: Vec<u8> = row.try_get("digest")?;
    let digest: KeyDigest = bytes
        .try_into()
        .map_err(|_| sqlx::Error::Decode("a digest of 32 bytes".into()))?;
    let id: String = row.try_get("id")?;
    let scopes: Vec<String> = row.try_get("scopes")?;
    let mut key = Key::from_digest(id, digest).scopes(scopes);
    if let Some(at) = row.try_get::<Option<i64>, _>("not_before")? {
        key = key.not_before(from_micros(at));
    }
    if let Some(at) = row.try_get::<Option<i64>, _>("expires_at")? {
        key = key.expires_at(from_micros(at));
    }
    key = key.revoked(row.try_get("revoked")?);
    key.record.superseded = row.try_get("superseded")?;
    key.record.disabled = row.try_get("disabled")?;
    if let Some(identity) = row.try_get::<Option<String>, _>("identity")? {
        key = key.identity(identity);
    }
    // The columns are checked by the table; a refill this crate cannot read is none.
    if let Some(refill) = row
        .try_get::<Option<String>, _>("refill")?
        .and_then(|text| text.parse::<crate::Refill>().ok())
    {
        key = key.refill(refill);
    }
    if let Some(credits) = row.try_get::<Option<i64>, _>("credits")? {
        key = key.credits(u64::try_from(credits).unwrap_or(0));
        if let Some(at) = row.try_get::<Option<i64>, _>("credits_at")?
            && let Some(credits) = key.record.credits_mut()
        {
            credits.counted_at = Some(from_micros(at));
        }
    }
    if let Some(at) = row.try_get::<Option<i64>, _>("last_used")? {
        key.record.used_at(u64::try_from(at).unwrap_or(0));
    }
    if let Some(networks) = row.try_get::<Option<Vec<String>>, _>("allowed_ips")? {
        // The column is `cidr[]`, which PostgreSQL checks; a network this crate does not read
        // (none is known) would leave the key usable from fewer places, never more.
        let parsed: Vec<crate::IpNetwork> = networks
            .iter()
            .filter_map(|text| text.parse().ok())
            .collect();
        if parsed.len() != networks.len() || parsed.is_empty() {
            tracing::warn!(
                target: "axum_api_key::audit",
                key_id = if key.id.len() <= crate::MAX_ID_LEN { key.id.as_str() } else { "(an id too long to show)" },
                "the allowed_ips column of this key holds a network that cannot be read, or none; \
                 the key is refused everywhere until it is corrected"
            );
            key.record.refuse_everywhere();
        } else {
            key = key.allowed_ips(parsed);
        }
    }
    if let Some(text) = row.try_get::<Option<String>, _>("rate_limit")? {
        match crate::limit::parse_limits(&text) {
            Ok(limits) => key.record.set_rate_limits(limits),
            // One mistyped row must not take every key down: the key is served without a limit,
            // and the operator told which.
            Err(error) => tracing::warn!(
                target: "axum_api_key::audit",
                key_id = if key.id.len() <= crate::MAX_ID_LEN { key.id.as_str() } else { "(an id too long to show)" },
                "the rate_limit column of this key is not a rate limit ({error}); the key is \
                 served without one until it is corrected"
            ),
        }
    }
    let metadata: String = row.try_get("metadata")?;
    let metadata: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&metadata).unwrap_or_default();
    for (name, value) in metadata {
        let text = match value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        key = key.metadata(name, text);
    }
    Ok((digest, key))
}

/// The record a [`Key`] describes, for listings.
pub(super) fn key_record(key: Key) -> crate::key::KeyRecord {
    let mut record = key.record;
    record.id = key.id.as_str().into();
    record
}

pub(super) fn decode_hex(text: &str) -> Option<KeyDigest> {
    super::super::decode_digest(text)
}
