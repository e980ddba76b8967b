//! `axum-api-key keys … --database-url`: the same commands on PostgreSQL.

use super::*;

#[test]
fn keys_commands_work_on_a_database() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("axum_api_key_cli_{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let created = runtime.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&pool)
            .await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await
    });
    if let Err(error) = created {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true and no PostgreSQL: {error}"
        );
        eprintln!("skipped: no PostgreSQL at {url} ({error})");
        return;
    }
    let at = ["--database-url", url.as_str(), "--schema", schema.as_str()];
    let args = |command: &[&str]| -> Vec<String> {
        command
            .iter()
            .chain(at.iter())
            .map(|arg| (*arg).to_owned())
            .collect()
    };

    let out = tool_owned(
        &args(&[
            "keys",
            "create",
            "--id",
            "db-partner",
            "--prefix",
            "db",
            "--scopes",
            "a,b",
        ]),
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = text(&out.stdout).trim_end().to_owned();
    assert!(key.starts_with("db_"), "{key}");

    let out = tool_owned(&args(&["keys", "list"]), b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(listing.contains("db-partner\tvalid\t[a b]"), "{listing}");
    assert!(!listing.contains(&key));

    let out = tool_owned(
        &args(&[
            "keys",
            "rotate",
            "--id",
            "db-partner",
            "--prefix",
            "db",
            "--grace",
            "1h",
        ]),
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Suspended and back, and a key held to a network.
    let out = tool_owned(&args(&["keys", "disable", "--id", "db-partner"]), b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Disabled 2 key(s)"));
    let listing = text(&tool_owned(&args(&["keys", "list"]), b"").stdout);
    assert_eq!(
        listing.matches("db-partner\tdisabled").count(),
        2,
        "{listing}"
    );
    let out = tool_owned(&args(&["keys", "enable", "--id", "db-partner"]), b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tool_owned(
        &args(&[
            "keys",
            "create",
            "--id",
            "db-office",
            "--prefix",
            "db",
            "--allow-ip",
            "203.0.113.0/24,2001:db8::/32",
        ]),
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&tool_owned(&args(&["keys", "list"]), b"").stdout);
    assert!(
        listing.contains("db-office\tvalid\t[] from 203.0.113.0/24,2001:db8::/32"),
        "{listing}"
    );
    // A plan in the database: credits with a refill, two windows, an identity.
    let out = tool_owned(
        &args(&[
            "keys",
            "create",
            "--id",
            "db-plan",
            "--prefix",
            "db",
            "--credits",
            "50",
            "--refill",
            "50/day",
            "--rate-limit",
            "10/s,1000/day",
            "--identity",
            "acme-db",
        ]),
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&tool_owned(&args(&["keys", "list"]), b"").stdout);
    assert!(
        listing.contains("db-plan\tvalid\t[] limited 10/s, 1000/day credits 50 refill 50/day"),
        "{listing}"
    );
    let out = tool_owned(
        &args(&[
            "keys", "create", "--id", "db-bad", "--prefix", "db", "--refill", "5/day",
        ]),
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--refill needs --credits"),
        "{}",
        text(&out.stderr)
    );
    let out = tool_owned(&args(&["keys", "revoke", "--id", "db-partner"]), b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Revoked 2 key(s)"),
        "{}",
        text(&out.stderr)
    );
    let listing = text(&tool_owned(&args(&["keys", "list"]), b"").stdout);
    assert_eq!(
        listing.matches("db-partner\trevoked").count(),
        2,
        "{listing}"
    );

    // A key is never printed but by create and rotate, on stdout.
    let out = tool_owned(&args(&["keys", "create", "--id", "no-prefix"]), b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    runtime.block_on(async {
        if let Ok(pool) = sqlx::postgres::PgPoolOptions::new().connect(&url).await {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&pool)
                .await;
        }
    });
}
