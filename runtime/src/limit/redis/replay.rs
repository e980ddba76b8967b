//! Message ids of signed webhooks kept in the limiter's Redis (features `redis` and
//! `webhooks`): one claim script, one release script, and the process's own set when Redis
//! cannot answer.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::Shared;
use crate::limit::RateLimits;

/// Message ids of signed webhooks kept in the Redis of a [`RateLimits`], so that every
/// instance refuses a message another one handled, or is handling (feature `webhooks` with
/// `redis`).
///
/// A claim is one script (`SET key inflight NX PX ttl`, or the id's state when it is taken);
/// a 2xx answer sets the key to `handled` for the window; any other answer deletes it if it is
/// still a claim. Each call is bounded by the limiter's timeout; when Redis cannot answer, the
/// id is kept in this process instead, as the limiter falls back.
///
/// ```
/// use axum_api_key::{RateLimits, RedisLimits, RedisReplayGuard};
/// use axum_api_key::webhook::WebhookSecrets;
///
/// let limits = RateLimits::new().with_redis(RedisLimits::new("redis://127.0.0.1:6379")?);
/// let secrets = WebhookSecrets::new()
///     .with_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
///     .with_replay_guard(RedisReplayGuard::new(&limits).expect("limits counted in Redis"));
/// # Ok::<(), axum_api_key::ConfigError>(())
/// ```
pub struct RedisReplayGuard {
    redis: Shared,
    local: crate::webhook::SeenIds,
    claim: redis::Script,
    release: redis::Script,
}

/// Claims a message id: 0 when claimed now, 1 when another delivery holds it, 2 when handled.
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], 'inflight', 'NX', 'PX', ARGV[1]) then return 0 end
if redis.call('GET', KEYS[1]) == 'handled' then return 2 end
return 1
";

/// Releases a claim, and only a claim: a handled id stays.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == 'inflight' then redis.call('DEL', KEYS[1]) end
return 0
";

impl RedisReplayGuard {
    /// The guard of the Redis that `limits` counts in; `None` when it counts in process.
    pub fn new(limits: &RateLimits) -> Option<Self> {
        Some(Self {
            redis: limits.inner.redis.clone()?,
            local: crate::webhook::SeenIds::default(),
            claim: redis::Script::new(CLAIM),
            release: redis::Script::new(RELEASE),
        })
    }

    fn key(&self, id: &str) -> String {
        format!("{}:webhook:{id}", self.redis.0.config.prefix)
    }

    /// Runs one command on Redis within the limiter's timeout; `None` (and an outage noted)
    /// when it does not answer.
    async fn ask<T: redis::FromRedisValue>(
        &self,
        run: impl AsyncFnOnce(ConnectionManager) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let state = &self.redis.0;
        if self.redis.micros() < state.paused_until.load(Ordering::Relaxed) {
            return None;
        }
        let connection = self.redis.connection().ok()?;
        match tokio::time::timeout(state.config.timeout, run(connection)).await {
            Ok(Ok(answer)) => Some(answer),
            Ok(Err(_)) => {
                self.redis.outage("Redis could not be reached", "error");
                None
            }
            Err(_) => {
                self.redis
                    .outage("Redis did not answer within the timeout", "timeout");
                None
            }
        }
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl crate::webhook::ReplayGuard for RedisReplayGuard {
    fn claim<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> crate::webhook::GuardFuture<'a, crate::webhook::Sighting> {
        use crate::webhook::Sighting;
        Box::pin(async move {
            let key = self.key(id);
            let answer = self
                .ask(async |mut connection| {
                    self.claim
                        .key(&key)
                        .arg(millis(ttl))
                        .invoke_async::<i64>(&mut connection)
                        .await
                })
                .await;
            match answer {
                Some(0) => Sighting::First,
                Some(2) => Sighting::Seen,
                Some(_) => Sighting::InFlight,
                None => crate::webhook::ReplayGuard::claim(&self.local, id, ttl).await,
            }
        })
    }

    fn confirm<'a>(&'a self, id: &'a str, ttl: Duration) -> crate::webhook::GuardFuture<'a, ()> {
        Box::pin(async move {
            let key = self.key(id);
            let answer = self
                .ask(async |mut connection| {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg("handled")
                        .arg("PX")
                        .arg(millis(ttl))
                        .query_async::<()>(&mut connection)
                        .await
                })
                .await;
            if answer.is_none() {
                crate::webhook::ReplayGuard::confirm(&self.local, id, ttl).await;
            }
        })
    }

    fn release<'a>(&'a self, id: &'a str) -> crate::webhook::GuardFuture<'a, ()> {
        Box::pin(async move {
            let key = self.key(id);
            let _ = self
                .ask(async |mut connection| {
                    self.release
                        .key(&key)
                        .invoke_async::<i64>(&mut connection)
                        .await
                })
                .await;
            // A claim made here while Redis was away is released here too.
            crate::webhook::ReplayGuard::release(&self.local, id).await;
        })
    }
}
