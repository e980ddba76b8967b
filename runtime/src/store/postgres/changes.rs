//! Changing the keys of the table: each change one statement or one transaction, applied to
//! this instance's snapshot at once and to the others' through `NOTIFY`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use sqlx::Row;

use super::super::set::KeySet;
use super::super::{Key, KeyDigest, Rotation, digest};
use super::rows::{AT, digests_of, from_micros, grace_deadline, micros};
use super::{PgKeys, PgKeysError};
use crate::limit::RateLimit;
use crate::store::KeyStore;

impl PgKeys {
    /// Disables every key of `id` ([`ApiKeys::disable`](crate::ApiKeys::disable)): refused
    /// here from the moment it returns, everywhere else within a second, until
    /// [`enable`](Self::enable). Returns how many keys changed.
    pub async fn disable(&self, id: &str) -> Result<u64, PgKeysError> {
        self.set_disabled(id, true).await
    }

    /// Enables every key of `id` again. Returns how many keys changed.
    pub async fn enable(&self, id: &str) -> Result<u64, PgKeysError> {
        self.set_disabled(id, false).await
    }

    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<u64, PgKeysError> {
        let update =
            "UPDATE api_keys SET disabled = $2 WHERE id = $1 AND disabled <> $2 RETURNING digest";
        let rows = self
            .inner
            .within(
                sqlx::query(update)
                    .bind(id)
                    .bind(disabled)
                    .fetch_all(&self.inner.pool),
            )
            .await?;
        self.changed(id, &rows).await
    }

    /// Restricts every key of `id` to these networks (an empty list lifts the restriction):
    /// enforced here from the moment it returns, everywhere else within a second. Returns how
    /// many keys changed.
    pub async fn set_allowed_ips(
        &self,
        id: &str,
        networks: &[crate::IpNetwork],
    ) -> Result<u64, PgKeysError> {
        let texts: Option<Vec<String>> =
            (!networks.is_empty()).then(|| networks.iter().map(ToString::to_string).collect());
        let update =
            "UPDATE api_keys SET allowed_ips = $2::text[]::cidr[] WHERE id = $1 RETURNING digest";
        let rows = self
            .inner
            .within(
                sqlx::query(update)
                    .bind(id)
                    .bind(texts)
                    .fetch_all(&self.inner.pool),
            )
            .await?;
        self.changed(id, &rows).await
    }

    /// Sets the credits of every key of `id` (and of its identity) to `credits`, refilled as
    /// `refill` says: a top-up or a new plan, counted from at once everywhere. Returns how
    /// many keys changed.
    pub async fn set_credits(
        &self,
        id: &str,
        credits: u64,
        refill: Option<crate::Refill>,
    ) -> Result<u64, PgKeysError> {
        let credits = i64::try_from(credits.min(crate::MAX_CREDITS)).unwrap_or(i64::MAX);
        let rows = self
            .inner
            .within(
                sqlx::query(
                    "UPDATE api_keys SET credits = $2, refill = $3, credits_at = now() \
             WHERE id = $1 OR (identity IS NOT NULL \
               AND identity = (SELECT identity FROM api_keys WHERE id = $1 LIMIT 1)) \
             RETURNING digest, COALESCE(identity, id) AS counted_as",
                )
                .bind(id)
                .bind(credits)
                .bind(refill.map(|refill| refill.to_string()))
                .fetch_all(&self.inner.pool),
            )
            .await?;
        if let Some(row) = rows.first() {
            let counted_as: String = row.try_get("counted_as")?;
            KeyStore::rate_limits(self)
                .credit_table()
                .forget(&counted_as);
        }
        self.changed(id, &rows).await
    }

    /// Gives every key of `id` exactly `scopes`, rotated keys included: from here at once,
    /// everywhere else within a second. Returns how many keys were changed, or an error for an
    /// unknown id or a scope that is not a token, with nothing changed.
    pub async fn set_scopes<I, S>(&self, id: &str, scopes: I) -> Result<u64, PgKeysError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        if let Some(bad) = scopes
            .iter()
            .find(|scope| !super::super::set::is_scope_token(scope))
        {
            let shown: String = bad.chars().take(64).collect();
            return Err(PgKeysError::Invalid(
                crate::ConfigError::new(crate::ConfigErrorKind::InvalidScope)
                    .with_message(format!("`{shown}` is not a scope token"))
                    .with_id(id),
            ));
        }
        let rows = self
            .inner
            .within(
                sqlx::query("UPDATE api_keys SET scopes = $2 WHERE id = $1 RETURNING digest")
                    .bind(id)
                    .bind(&scopes)
                    .fetch_all(&self.inner.pool),
            )
            .await?;
        self.changed(id, &rows).await
    }

    /// Replaces the free metadata fields of every key of `id`, rotated keys included (the
    /// `metadata` column, a JSON object of strings). Returns how many keys were changed.
    pub async fn set_metadata(
        &self,
        id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<u64, PgKeysError> {
        let json = serde_json::to_string(metadata).unwrap_or_else(|_| "{}".to_owned());
        let rows = self
            .inner
            .within(
                sqlx::query(
                    "UPDATE api_keys SET metadata = $2::jsonb WHERE id = $1 RETURNING digest",
                )
                .bind(id)
                .bind(json)
                .fetch_all(&self.inner.pool),
            )
            .await?;
        self.changed(id, &rows).await
    }

    /// Gives every key of `id` the identity `identity` (or none), whose keys share their rate
    /// limits and credits. Returns how many keys changed.
    pub async fn set_identity(&self, id: &str, identity: Option<&str>) -> Result<u64, PgKeysError> {
        let rows = self
            .inner
            .within(
                sqlx::query("UPDATE api_keys SET identity = $2 WHERE id = $1 RETURNING digest")
                    .bind(id)
                    .bind(identity)
                    .fetch_all(&self.inner.pool),
            )
            .await?;
        self.changed(id, &rows).await
    }

    /// The rows an update of `id`'s keys returned, applied to the snapshot: how many changed,
    /// or [`PgKeysError::UnknownId`] when none changed because no key has `id`.
    async fn changed(&self, id: &str, rows: &[sqlx::postgres::PgRow]) -> Result<u64, PgKeysError> {
        if rows.is_empty() {
            self.must_exist(id).await?;
        }
        let digests = digests_of(rows)?;
        self.inner.refresh(&digests).await?;
        Ok(digests.len() as u64)
    }

    /// `Ok` when some key has `id`, [`PgKeysError::UnknownId`] otherwise.
    async fn must_exist(&self, id: &str) -> Result<(), PgKeysError> {
        let exists: bool = self
            .inner
            .within(
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1)")
                    .bind(id)
                    .fetch_one(&self.inner.pool),
            )
            .await?;
        if exists {
            Ok(())
        } else {
            Err(PgKeysError::UnknownId(id.to_owned()))
        }
    }

    /// Generates a key in the store's format for `id`, stores its digest (never the key) and
    /// returns the key, once: hand it to its owner now. Every instance accepts it within a
    /// second, this one from the moment this returns.
    ///
    /// Once the key is stored it is returned, whatever happens next: should this instance
    /// fail to read its row back (the database lost at that moment), that is logged and it
    /// accepts the key from its next read that succeeds. The same holds for the keys
    /// [`rotate`](Self::rotate) and [`rotate_presented`](Self::rotate_presented) issue. A
    /// change that issues no key, such as [`revoke`](Self::revoke), fails instead, for its
    /// caller must not take this instance to refuse a key it may still accept; a retry, even
    /// one with nothing left to change, brings this instance in step before it returns.
    pub async fn create<I, S>(
        &self,
        id: &str,
        scopes: I,
        expires: Option<SystemTime>,
    ) -> Result<String, PgKeysError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let format = self.inner.format.clone().ok_or(PgKeysError::NoFormat)?;
        let key = format.generate();
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        // The store's own rules judge the id and the scopes before anything is written.
        let mut check = Key::new(id, &key).scopes(scopes.iter().cloned());
        if let Some(at) = expires {
            check = check.expires_at(at);
        }
        KeySet::default()
            .insert(check, false)
            .map_err(PgKeysError::Invalid)?;
        let digest = digest(key.as_bytes());
        self.inner
            .within(
                sqlx::query(
                    "INSERT INTO api_keys (digest, id, scopes, expires_at) \
             VALUES ($1, $2, $3, timestamptz 'epoch' + $4::int8 * interval '1 microsecond')",
                )
                .bind(&digest[..])
                .bind(id)
                .bind(&scopes)
                .bind(expires.map(micros))
                .execute(&self.inner.pool),
            )
            .await?;
        self.read_back_issued(&[digest]).await;
        Ok(key)
    }

    /// Sets (or, with `None`, removes) the rate limit of every key of `id`, rotated ones
    /// included: counted from here at once, everywhere else within a second. Returns how many
    /// keys were changed.
    pub async fn set_rate_limit(
        &self,
        id: &str,
        limit: Option<RateLimit>,
    ) -> Result<u64, PgKeysError> {
        self.set_rate_limits(id, limit.as_slice()).await
    }

    /// Sets the rate limits of every key of `id` to the plan `limits` (`10/s` and
    /// `100000/day`; none removes them), rotated keys included: counted from here at once,
    /// everywhere else within a second. The column holds them as one text, `10/s, 100000/day`.
    /// Returns how many keys were changed, or an error for a list that breaks the rules of
    /// [`Key::rate_limits`](crate::Key::rate_limits), with nothing changed.
    pub async fn set_rate_limits(
        &self,
        id: &str,
        limits: &[RateLimit],
    ) -> Result<u64, PgKeysError> {
        crate::limit::check_limits(limits).map_err(|error| {
            PgKeysError::Invalid(
                crate::ConfigError::new(crate::ConfigErrorKind::BadRateLimit)
                    .with_message(error.to_string())
                    .with_id(id),
            )
        })?;
        let text = (!limits.is_empty()).then(|| crate::limit::limits_text(limits.iter().copied()));
        let rows = self
            .inner
            .within(
                sqlx::query("UPDATE api_keys SET rate_limit = $2 WHERE id = $1 RETURNING digest")
                    .bind(id)
                    .bind(text)
                    .fetch_all(&self.inner.pool),
            )
            .await?;
        self.inner.refresh(&digests_of(&rows)?).await?;
        Ok(rows.len() as u64)
    }

    /// Revokes every key of `id`: refused here from the moment it returns, everywhere else
    /// within a second. Returns how many keys were revoked.
    pub async fn revoke(&self, id: &str) -> Result<u64, PgKeysError> {
        let rows = self
            .inner
            .within(
                sqlx::query(
                    "UPDATE api_keys SET revoked_at = now() \
             WHERE id = $1 AND revoked_at IS NULL RETURNING digest",
                )
                .bind(id)
                .fetch_all(&self.inner.pool),
            )
            .await?;
        if rows.is_empty() {
            self.must_exist(id).await?;
        }
        let digests = digests_of(&rows)?;
        self.inner.refresh(&digests).await?;
        Ok(digests.len() as u64)
    }

    /// Issues a new key for `id` with the scopes, metadata, limit, not-before time and expiry
    /// of its current key (the one neither revoked nor rotated out), and lets the old keys work
    /// until `grace` has passed (or their own expiry, if sooner). The old keys are marked
    /// rotated out, so they cannot rotate themselves. Returns the new key, once.
    pub async fn rotate(&self, id: &str, grace: Duration) -> Result<String, PgKeysError> {
        let format = self.inner.format.clone().ok_or(PgKeysError::NoFormat)?;
        let key = format.generate();
        let digest = digest(key.as_bytes());
        let capped = self
            .inner
            .within(async {
                let mut transaction = self.inner.pool.begin().await?;
                let live = sqlx::query(
                    "SELECT digest, (extract(epoch FROM expires_at) * 1000000)::int8 AS expires \
                     FROM api_keys WHERE id = $1 AND revoked_at IS NULL \
                     ORDER BY superseded, expires_at IS NULL DESC, created_at DESC \
                     LIMIT 1 FOR UPDATE",
                )
                .bind(id)
                .fetch_optional(&mut *transaction)
                .await?;
                let Some(live) = live else {
                    return Err(PgKeysError::UnknownId(id.to_owned()));
                };
                let template: Vec<u8> = live.try_get("digest")?;
                let kept: Option<i64> = live.try_get("expires")?;
                // The old keys first, so that an instance following the table never sees the
                // new key beside an old one not rotated out yet.
                let capped = sqlx::query(&format!(
                    "UPDATE api_keys SET superseded = true, \
                     expires_at = LEAST(COALESCE(expires_at, {AT}), {AT}) \
                     WHERE id = $1 AND revoked_at IS NULL RETURNING digest"
                ))
                .bind(id)
                .bind(micros(grace_deadline(grace)))
                .fetch_all(&mut *transaction)
                .await?;
                // The successor keeps the current key's expiry as it was before the rotation.
                sqlx::query(
                    "INSERT INTO api_keys (digest, id, scopes, metadata, rate_limit, not_before, \
                       disabled, allowed_ips, credits, refill, credits_at, identity, expires_at) \
                     SELECT $1, id, scopes, metadata, rate_limit, not_before, disabled, \
                       allowed_ips, credits, refill, credits_at, identity, \
                       timestamptz 'epoch' + $3::int8 * interval '1 microsecond' \
                     FROM api_keys WHERE digest = $2",
                )
                .bind(&digest[..])
                .bind(&template)
                .bind(kept)
                .execute(&mut *transaction)
                .await?;
                transaction.commit().await?;
                Ok::<_, PgKeysError>(capped)
            })
            .await?;
        let mut changed = digests_of(&capped)?;
        changed.push(digest);
        self.read_back_issued(&changed).await;
        Ok(key)
    }

    /// Rotates the key whose digest is `presented`, at its holder's request, as
    /// [`ApiKeys::rotate_presented`](crate::ApiKeys::rotate_presented) does: one statement,
    /// conditioned on the key's row being live and not rotated already, so that of two
    /// rotations by one key (on one instance or two) exactly one succeeds, and on its id having
    /// fewer than [`MAX_KEYS_IN_GRACE`](crate::MAX_KEYS_IN_GRACE) keys in their grace period
    /// ([`PgKeysError::TooManyInGrace`]; rotations by two keys of one id at the same moment may
    /// both pass it). It then deletes the id's finished rows (revoked or expired) but the newest
    /// [`MAX_FINISHED_KEYS`](crate::MAX_FINISHED_KEYS).
    pub async fn rotate_presented(
        &self,
        presented: &KeyDigest,
        grace: Duration,
    ) -> Result<Rotation, PgKeysError> {
        let format = self.inner.format.clone().ok_or(PgKeysError::NoFormat)?;
        let key = format.generate();
        let digest = digest(key.as_bytes());
        // `prev` is the row before the update: the successor keeps its expiry.
        let row = self
            .inner
            .within(
                sqlx::query(&format!(
                    "WITH old AS ( \
               UPDATE api_keys AS k SET superseded = true, \
                 expires_at = LEAST(COALESCE(k.expires_at, {AT}), {AT}) \
               FROM api_keys AS prev \
               WHERE k.digest = $1 AND prev.digest = k.digest \
                 AND k.revoked_at IS NULL AND NOT k.superseded \
                 AND (k.expires_at IS NULL OR k.expires_at > now()) \
                 AND (k.not_before IS NULL OR k.not_before <= now()) \
                 AND NOT k.disabled \
                 AND (SELECT count(*) FROM api_keys AS g WHERE g.id = k.id AND g.superseded \
                   AND g.revoked_at IS NULL AND g.expires_at > now()) < $4 \
               RETURNING k.id, k.scopes, k.metadata, k.rate_limit, k.not_before, \
                 k.disabled, k.allowed_ips, k.credits, k.refill, k.credits_at, k.identity, \
                 prev.expires_at AS kept, \
                 (extract(epoch FROM k.expires_at) * 1000000)::int8 AS ends) \
             INSERT INTO api_keys (digest, id, scopes, metadata, rate_limit, not_before, \
               disabled, allowed_ips, credits, refill, credits_at, identity, expires_at) \
             SELECT $3, id, scopes, metadata, rate_limit, not_before, disabled, allowed_ips, \
               credits, refill, credits_at, identity, kept FROM old \
             RETURNING (SELECT ends FROM old) AS ends, \
               (extract(epoch FROM expires_at) * 1000000)::int8 AS expires"
                ))
                .bind(&presented[..])
                .bind(micros(grace_deadline(grace)))
                .bind(&digest[..])
                .bind(i64::try_from(crate::MAX_KEYS_IN_GRACE).unwrap_or(i64::MAX))
                .fetch_optional(&self.inner.pool),
            )
            .await?;
        let Some(row) = row else {
            // Why not: rotated already, its id's keys in grace at the most, or not live.
            let why = "SELECT k.superseded, (SELECT count(*) FROM api_keys AS g \
                 WHERE g.id = k.id AND g.superseded AND g.revoked_at IS NULL \
                   AND g.expires_at > now()) \
               FROM api_keys AS k WHERE k.digest = $1";
            let state: Option<(bool, i64)> = self
                .inner
                .within(
                    sqlx::query_as(why)
                        .bind(&presented[..])
                        .fetch_optional(&self.inner.pool),
                )
                .await?;
            return Err(match state {
                Some((true, _)) => PgKeysError::Superseded,
                Some((false, in_grace))
                    if usize::try_from(in_grace).unwrap_or(usize::MAX)
                        >= crate::MAX_KEYS_IN_GRACE =>
                {
                    PgKeysError::TooManyInGrace
                }
                _ => PgKeysError::NotLive,
            });
        };
        let ends: i64 = row.try_get("ends")?;
        let expires: Option<i64> = row.try_get("expires")?;
        // The id's finished keys are held to the newest few, as in memory: a rotation and a
        // revocation finish one key each turn, and one leaked key must not grow the table
        // without end. Ordered as `KeySet::forget_finished` orders them. The rotation is made
        // by now: should this fail, the holder still gets its new key, and the next rotation
        // forgets what this one did not.
        let forgotten = self
            .inner
            .within(
                sqlx::query(
                    "DELETE FROM api_keys WHERE digest IN ( \
               SELECT f.digest FROM api_keys AS f \
               WHERE f.id = (SELECT id FROM api_keys WHERE digest = $1) \
                 AND (f.revoked_at IS NOT NULL OR f.expires_at <= now()) \
               ORDER BY f.expires_at DESC NULLS LAST, f.created_at DESC OFFSET $2) \
             RETURNING digest",
                )
                .bind(&digest[..])
                .bind(i64::try_from(crate::MAX_FINISHED_KEYS).unwrap_or(i64::MAX))
                .fetch_all(&self.inner.pool),
            )
            .await
            .and_then(|rows| digests_of(&rows));
        let mut changed = forgotten.unwrap_or_else(|error| {
            tracing::warn!(target: "axum_api_key::audit", %error, "finished keys of a rotated id were not forgotten");
            Vec::new()
        });
        changed.extend([*presented, digest]);
        self.read_back_issued(&changed).await;
        Ok(Rotation::new(
            key,
            from_micros(ends),
            expires.map(from_micros),
        ))
    }

    /// Reads back the rows of a change that issued a key, made by now: the key must reach its
    /// holder, whom an error would leave without it. Should the read fail, it is logged, and
    /// the rows are applied by this instance's next read that succeeds (its next change, or its
    /// follower's, within a heartbeat of the database answering again).
    async fn read_back_issued(&self, digests: &[KeyDigest]) {
        if let Err(error) = self.inner.refresh(digests).await {
            tracing::warn!(
                target: "axum_api_key::audit",
                %error,
                "a key was issued and stored, but this instance could not read it back yet: it accepts it once it reads the table again"
            );
        }
    }

    /// Revokes the key whose digest is `presented`, and no other key of its id.
    pub async fn revoke_presented(&self, presented: &KeyDigest) -> Result<(), PgKeysError> {
        let exists: bool = self
            .inner
            .within(
                sqlx::query_scalar(
                    "WITH revoked AS (UPDATE api_keys SET revoked_at = now() \
               WHERE digest = $1 AND revoked_at IS NULL RETURNING digest) \
             SELECT EXISTS (SELECT 1 FROM api_keys WHERE digest = $1)",
                )
                .bind(&presented[..])
                .fetch_one(&self.inner.pool),
            )
            .await?;
        if !exists {
            return Err(PgKeysError::NotLive);
        }
        self.inner.refresh(&[*presented]).await?;
        Ok(())
    }
}
