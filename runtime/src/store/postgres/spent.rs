//! What requests spend, written back to the table: credits at most once a second, last uses
//! at most once a minute.

use std::time::SystemTime;

use super::rows::digests_of;
use super::{PgKeys, PgKeysError};
use crate::store::KeyStore;

impl PgKeys {
    /// Writes the credits this process spent to the table, as one statement that takes them
    /// off each key's count (or off its refill, when a refill came since the count was
    /// written): instances writing at once all land, none overwrites another. Returns how many
    /// names (key ids or identities) were written. The store calls it on its own at most
    /// [`CREDITS_WRITE_DELAY`](crate::CREDITS_WRITE_DELAY) after a request spends credits.
    ///
    /// Each instance spends from the table's count less what it spent itself since: between
    /// two writes, instances without Redis may together spend more than the count, by what
    /// the others spent in that time. With
    /// [`RateLimits::with_redis`](crate::RateLimits::with_redis) the count is shared exactly,
    /// and nothing is written here.
    pub async fn write_credits(&self) -> Result<usize, PgKeysError> {
        let limits = KeyStore::rate_limits(self);
        if limits.counts_in_redis() {
            return Ok(0);
        }
        let table = limits.credit_table();
        let now = SystemTime::now();
        // What each name spent in the current period: only that comes off the count.
        let spent: Vec<(Box<str>, i64, u64)> = table
            .unwritten()
            .into_iter()
            .filter_map(|(name, _)| {
                let credits = self
                    .inner
                    .snapshot
                    .read(|set| set.credits_counted_as(&name))?;
                let spent = table.spent(&name, &credits, now);
                let period = credits.refill.map_or(0, |refill| refill.period_of(now));
                (spent > 0).then_some((name, period, spent))
            })
            .collect();
        if spent.is_empty() {
            return Ok(0);
        }
        let names: Vec<&str> = spent.iter().map(|(name, _, _)| &**name).collect();
        let amounts: Vec<i64> = spent
            .iter()
            .map(|(_, _, spent)| i64::try_from(*spent).unwrap_or(i64::MAX))
            .collect();
        // Not bounded as the other calls are: a write whose answer was lost may have been made,
        // and made again it would spend the credits twice. It runs in the background, holding up
        // no request, until the connection answers or fails.
        let rows = sqlx::query(
            "UPDATE api_keys AS k SET credits = GREATEST(0, \
               CASE WHEN k.refill IS NOT NULL AND k.credits_at IS NOT NULL \
                 AND date_trunc(split_part(k.refill, '/', 2), k.credits_at AT TIME ZONE 'UTC') \
                   < date_trunc(split_part(k.refill, '/', 2), now() AT TIME ZONE 'UTC') \
                 THEN split_part(k.refill, '/', 1)::int8 ELSE k.credits END - v.spent), \
               credits_at = now() \
             FROM unnest($1::text[], $2::int8[]) AS v(name, spent) \
             WHERE COALESCE(k.identity, k.id) = v.name AND k.credits IS NOT NULL \
             RETURNING k.digest",
        )
        .bind(&names)
        .bind(&amounts)
        .fetch_all(&self.inner.pool)
        .await?;
        for (name, period, spent) in &spent {
            table.written(name, *period, *spent);
        }
        self.inner.refresh(&digests_of(&rows)?).await?;
        Ok(spent.len())
    }

    /// Writes the last use of every key id this process let in since its last write to the
    /// table's `last_used` column, in one statement that only ever moves it forward (so
    /// instances writing at once all land, the latest use winning), and returns how many ids
    /// were written. The store calls it on its own at most
    /// [`LAST_USED_WRITE_DELAY`](crate::LAST_USED_WRITE_DELAY) after a key is used, whatever
    /// the traffic; call it at shutdown to write the last minute's uses. A write of
    /// `last_used` alone notifies no instance: it changes nothing about which keys are
    /// accepted.
    pub async fn write_last_used(&self) -> Result<usize, PgKeysError> {
        let uses = KeyStore::rate_limits(self).uses();
        let unwritten = uses.unwritten();
        if unwritten.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = unwritten.iter().map(|(id, _)| &**id).collect();
        let seconds: Vec<i64> = unwritten
            .iter()
            .map(|(_, at)| i64::try_from(*at).unwrap_or(i64::MAX))
            .collect();
        self.inner
            .within(
                sqlx::query(
                    "UPDATE api_keys AS k SET last_used = \
               GREATEST(k.last_used, timestamptz 'epoch' + v.at * interval '1 second') \
             FROM unnest($1::text[], $2::int8[]) AS v(id, at) WHERE k.id = v.id",
                )
                .bind(&ids)
                .bind(&seconds)
                .execute(&self.inner.pool),
            )
            .await?;
        for (id, at) in &unwritten {
            uses.written(id, *at);
        }
        Ok(unwritten.len())
    }
}
