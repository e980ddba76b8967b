//! A change written to the table that this instance then fails to read back (the database lost
//! between the two): a key it issued is still handed over, and the change is applied here by
//! the next read that succeeds, a retried call's included.
//!
//! The failure is made exactly there: the instance connects as a role of the test's own, whose
//! right to read one column that only reads of keys read is taken away while it keeps the
//! right to change the table.

use super::*;

/// A role of this test's own, allowed everything on `schema`'s tables, and dropped with them.
struct Role {
    name: String,
    schema: String,
    admin: sqlx::PgPool,
}

impl Role {
    async fn new(schema: &str) -> Role {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&database_url())
            .await
            .unwrap();
        // Roles belong to the server, not the schema: those of test processes that are gone
        // go first.
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'axum_api_key\\_role\\_%'",
        )
        .fetch_all(&admin)
        .await
        .unwrap();
        for old in stale.into_iter().filter(|old| !owner_running(old)) {
            drop_role(&admin, &old).await;
        }
        let name = format!("axum_api_key_role_{schema}");
        drop_role(&admin, &name).await;
        for statement in [
            format!("CREATE ROLE {name} LOGIN"),
            format!("GRANT ALL ON SCHEMA {schema} TO {name}"),
            format!("GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {name}"),
        ] {
            sqlx::query(&statement).execute(&admin).await.unwrap();
        }
        Role {
            name,
            schema: schema.to_owned(),
            admin,
        }
    }

    /// An instance connected as this role.
    async fn instance(&self) -> PgKeys {
        let options: PgConnectOptions = database_url().parse().unwrap();
        PgKeys::options()
            .schema(&self.schema)
            .format(KeyFormat::new("pg").unwrap())
            .heartbeat(Duration::from_millis(200))
            .max_staleness(Duration::from_secs(5))
            .connect_with(options.username(&self.name))
            .await
            .expect("PgKeys connects as the role")
    }

    /// Takes away (or gives back) the role's right to read the table's column of last uses,
    /// which every read of keys reads and no change needs: it may still change every key.
    async fn may_read(&self, allowed: bool) {
        let (schema, name) = (&self.schema, &self.name);
        let statements = if allowed {
            vec![format!("GRANT SELECT ON {schema}.api_keys TO {name}")]
        } else {
            vec![
                format!("REVOKE SELECT ON {schema}.api_keys FROM {name}"),
                format!(
                    "GRANT SELECT (digest, id, scopes, not_before, expires_at, revoked_at, \
                       metadata, rate_limit, created_at, superseded, disabled, allowed_ips, \
                       credits, refill, credits_at, identity) ON {schema}.api_keys TO {name}"
                ),
            ]
        };
        for statement in statements {
            sqlx::query(&statement).execute(&self.admin).await.unwrap();
        }
    }

    async fn drop(self) {
        drop_role(&self.admin, &self.name).await;
    }
}

async fn drop_role(admin: &sqlx::PgPool, name: &str) {
    // Its connections first: a role cannot be dropped while logged in.
    let _ =
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
            .bind(name)
            .execute(admin)
            .await;
    let _ = sqlx::query(&format!("DROP OWNED BY {name}"))
        .execute(admin)
        .await;
    let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {name}"))
        .execute(admin)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_issued_while_the_table_cannot_be_read_back_are_handed_over_not_lost() {
    let logs = axum_api_key_tests::global_logs();
    let Some(schema) = schema("read_back").await else {
        return;
    };
    let owner = instance(&schema, "owner").await;
    let role = Role::new(&schema).await;
    let a = role.instance().await;
    let first = a.create("partner-a", ["orders:read"], None).await.unwrap();
    let b_first = a
        .create("partner-b", Vec::<String>::new(), None)
        .await
        .unwrap();
    let presented = axum_api_key::digest(b_first.as_bytes());

    role.may_read(false).await;
    // Each call writes its key, then fails to read it back: the key is stored (the owner's
    // instance accepts it) and must reach its holder, or it is lost for good.
    let created = a.create("partner-c", Vec::<String>::new(), None).await;
    let rotated = a.rotate("partner-a", Duration::from_secs(60)).await;
    let rotated_presented = a
        .rotate_presented(&presented, Duration::from_secs(60))
        .await;
    role.may_read(true).await;

    let created = created.expect("a created key is handed over");
    let rotated = rotated.expect("a rotated key is handed over");
    let rotated_presented = rotated_presented.expect("a key rotated by its holder is handed over");
    for (key, id) in [
        (created.as_str(), "partner-c"),
        (rotated.as_str(), "partner-a"),
        (rotated_presented.key(), "partner-b"),
    ] {
        until(&owner, key, Ok(id)).await;
        // And this instance accepts it as soon as it reads the table again.
        until(&a, key, Ok(id)).await;
    }
    assert_eq!(accepted(&a, &first).await, Ok("partner-a".to_owned()));
    // The failures were logged, and no key is in what they logged.
    let logs = logs.text();
    assert!(logs.contains("could not read it back yet"), "{logs}");
    for key in [
        first.as_str(),
        &b_first,
        &created,
        &rotated,
        rotated_presented.key(),
    ] {
        assert!(!logs.contains(key), "a key is in the logs");
    }
    drop(a);
    role.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_retried_after_a_failed_read_back_takes_effect_here_at_once() {
    let Some(schema) = schema("retried").await else {
        return;
    };
    let _owner = instance(&schema, "owner").await;
    let role = Role::new(&schema).await;
    let a = role.instance().await;
    let key = a
        .create("partner-a", Vec::<String>::new(), None)
        .await
        .unwrap();
    let other = a
        .create("partner-b", Vec::<String>::new(), None)
        .await
        .unwrap();

    role.may_read(false).await;
    // Written, not read back: this instance cannot say it refuses the key, so it fails.
    assert!(a.revoke("partner-a").await.is_err());
    assert!(a.disable("partner-b").await.is_err());
    role.may_read(true).await;
    // The operator tries again: nothing is left to write, but this instance now refuses the
    // keys before it answers, without waiting for its follower.
    assert_eq!(a.revoke("partner-a").await.unwrap(), 0);
    assert_eq!(accepted(&a, &key).await, Err(KeyError::Revoked));
    assert_eq!(a.disable("partner-b").await.unwrap(), 0);
    assert_eq!(accepted(&a, &other).await, Err(KeyError::Disabled));
    drop(a);
    role.drop().await;
}
