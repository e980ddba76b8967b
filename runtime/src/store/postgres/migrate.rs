//! The keys table, made or upgraded by embedded migrations, once whatever the number of
//! instances starting.

use sqlx::Executor;
use sqlx::postgres::PgPool;

use super::PgKeysError;

/// Creates or upgrades the keys table, once whatever the number of instances starting.
pub(super) async fn migrate(pool: &PgPool) -> Result<(), PgKeysError> {
    let mut transaction = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.api_keys'))")
        .execute(&mut *transaction)
        .await?;
    transaction
        .execute(
            "CREATE TABLE IF NOT EXISTS api_keys_schema_version (\
               version integer PRIMARY KEY, \
               applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let version: Option<i32> =
        sqlx::query_scalar("SELECT max(version) FROM api_keys_schema_version")
            .fetch_one(&mut *transaction)
            .await?;
    for (number, migration) in MIGRATIONS.iter().enumerate() {
        let number = i32::try_from(number + 1).unwrap_or(i32::MAX);
        if version.is_some_and(|version| version >= number) {
            continue;
        }
        transaction.execute(*migration).await?;
        sqlx::query("INSERT INTO api_keys_schema_version (version) VALUES ($1)")
            .bind(number)
            .execute(&mut *transaction)
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// The migrations, in order; each runs once, in the transaction that records it.
pub(super) const MIGRATIONS: &[&str] = &["
CREATE TABLE api_keys (
    digest bytea PRIMARY KEY CHECK (length(digest) = 32),
    id text NOT NULL,
    scopes text[] NOT NULL DEFAULT '{}',
    not_before timestamptz,
    expires_at timestamptz,
    revoked_at timestamptz,
    metadata jsonb NOT NULL DEFAULT '{}',
    -- The per-key rate limit, such as `100/min`, for the rate limiter.
    rate_limit text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_id ON api_keys (id);
CREATE FUNCTION api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.api_keys', encode(COALESCE(NEW.digest, OLD.digest), 'hex'));
    RETURN NULL;
END
$$;
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify();
", "
-- A key rotated out: it has a successor and cannot rotate again.
ALTER TABLE api_keys ADD COLUMN superseded boolean NOT NULL DEFAULT false;
", "
-- A suspension, undone by setting it back; and the networks a key may be used from (NULL for
-- anywhere).
ALTER TABLE api_keys ADD COLUMN disabled boolean NOT NULL DEFAULT false;
ALTER TABLE api_keys ADD COLUMN allowed_ips cidr[]
    CHECK (allowed_ips IS NULL OR cardinality(allowed_ips) > 0);
", "
-- A plan: uses left as of `credits_at`, refilled as `refill` says (`10000/month`); and the
-- identity whose keys share their limits and credits.
ALTER TABLE api_keys ADD COLUMN credits bigint CHECK (credits >= 0);
ALTER TABLE api_keys ADD COLUMN refill text
    CHECK (refill ~ '^[1-9][0-9]{0,15}/(hour|day|month)$');
ALTER TABLE api_keys ADD COLUMN credits_at timestamptz;
ALTER TABLE api_keys ADD COLUMN identity text CHECK (length(identity) BETWEEN 1 AND 128);
", "
-- When a key of the row's id was last used, written at most once a minute by each instance.
-- A write of it alone tells no instance anything: it is no change to what keys are accepted.
ALTER TABLE api_keys ADD COLUMN last_used timestamptz;
DROP TRIGGER api_keys_notify ON api_keys;
CREATE TRIGGER api_keys_notify AFTER INSERT OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_notify();
CREATE TRIGGER api_keys_notify_update AFTER UPDATE ON api_keys
    FOR EACH ROW WHEN ((to_jsonb(OLD) - 'last_used') IS DISTINCT FROM (to_jsonb(NEW) - 'last_used'))
    EXECUTE FUNCTION api_keys_notify();
"];
