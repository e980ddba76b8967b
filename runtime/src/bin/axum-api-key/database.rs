//! The `keys` commands on a `PgKeys` database (`--database-url`).

use super::*;

#[cfg(not(feature = "postgres"))]
pub(super) fn database_keys(_: &str, _: Option<String>, _: Keys) -> Result<(), String> {
    Err(
        "this build of the tool has no PostgreSQL support: build it with `--features cli,postgres`"
            .to_owned(),
    )
}

/// The same commands on a `PgKeys` database.
#[cfg(feature = "postgres")]
pub(super) fn database_keys(
    url: &str,
    schema: Option<String>,
    command: Keys,
) -> Result<(), String> {
    use axum_api_key::PgKeys;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let prefix = match &command {
        Keys::Create { prefix, .. } | Keys::Rotate { prefix, .. } => prefix.clone(),
        _ => None,
    };
    runtime.block_on(async move {
        let mut options = PgKeys::options();
        if let Some(schema) = schema {
            options = options.schema(schema);
        }
        if let Some(prefix) = &prefix {
            options = options.format(KeyFormat::new(prefix).map_err(|e| format!("--format: {e}"))?);
        }
        let keys = options.connect(url).await.map_err(|e| e.to_string())?;
        let need_prefix = || "a database names no key format: give --format (e.g. `--format myapp`)".to_owned();
        match command {
            Keys::Create {
                id,
                scopes,
                expires,
                allowed_ips,
                credits,
                refill,
                rate_limits,
                identity,
                ..
            } => {
                if prefix.is_none() {
                    return Err(need_prefix());
                }
                if refill.is_some() && credits.is_none() {
                    return Err("--refill needs --credits: the uses the key starts with (e.g. \
                                `--credits 10000 --refill 10000/month`)"
                        .to_owned());
                }
                axum_api_key::VerifiedKey::new("check")
                    .with_rate_limits(rate_limits.iter().copied())
                    .map_err(|e| format!("--rate-limit: {e}"))?;
                if let Some(identity) = &identity {
                    check_identity(identity)?;
                }
                let id = id.map_or_else(new_id, Ok)?;
                let expires = expires.map(|duration| expiry(*duration)).transpose()?;
                let key = keys.create(&id, scopes, expires).await.map_err(|e| e.to_string())?;
                // The key is not out yet: if its restrictions or its plan cannot be written, it
                // is revoked rather than handed out open.
                let plan = async {
                    if !allowed_ips.is_empty() {
                        keys.set_allowed_ips(&id, &allowed_ips).await?;
                    }
                    if !rate_limits.is_empty() {
                        keys.set_rate_limits(&id, &rate_limits).await?;
                    }
                    if let Some(credits) = credits {
                        keys.set_credits(&id, credits, refill).await?;
                    }
                    if let Some(identity) = &identity {
                        keys.set_identity(&id, Some(identity)).await?;
                    }
                    Ok::<_, axum_api_key::PgKeysError>(())
                };
                if let Err(error) = plan.await {
                    let _ = keys.revoke(&id).await;
                    return Err(format!("{error}; the new key was revoked"));
                }
                println!("{key}");
                eprintln!();
                eprintln!("The key for `{id}` is above, shown this once: hand it to its owner now.");
            }
            Keys::List { .. } => print_listing(&keys.list().await.map_err(|e| e.to_string())?),
            Keys::Revoke { id, .. } => {
                let count = keys.revoke(&id).await.map_err(|e| e.to_string())?;
                eprintln!("Revoked {count} key(s) of `{id}`.");
            }
            Keys::Disable { id, .. } => {
                let count = keys.disable(&id).await.map_err(|e| e.to_string())?;
                eprintln!("Disabled {count} key(s) of `{id}`.");
            }
            Keys::Enable { id, .. } => {
                let count = keys.enable(&id).await.map_err(|e| e.to_string())?;
                eprintln!("Enabled {count} key(s) of `{id}`.");
            }
            Keys::Rotate { id, grace, .. } => {
                if prefix.is_none() {
                    return Err(need_prefix());
                }
                from_now(*grace, "--grace")?;
                let key = keys.rotate(&id, *grace).await.map_err(|e| e.to_string())?;
                println!("{key}");
                eprintln!();
                eprintln!("The new key for `{id}` is above, shown this once; the old one works for {grace} more.");
            }
        }
        Ok(())
    })
}
