//! Budgets counted in Redis (feature `redis`), shared by every instance that uses the same
//! server and prefix.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[cfg(feature = "webhooks")]
mod replay;
#[cfg(feature = "webhooks")]
pub use replay::RedisReplayGuard;

use super::RateLimits;
use super::budget::{Budget, Budgets, Count, Scope};
use crate::error::{ConfigError, ConfigErrorKind};

/// What a request does while Redis is unreachable: once a round trip failed (refused, reset),
/// or [`RedisLimits::BREAKER_AFTER`] in a row went past the timeout. A single slow answer opens
/// nothing: that request is counted in this process, from the state Redis last gave for its
/// budgets, whatever this setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RedisFailure {
    /// Counts the request in this process instead (the default), from the state Redis last
    /// gave for each budget (a budget Redis never counted starts whole). Service goes on;
    /// during the outage each instance enforces the limits alone, so `N` instances let through
    /// up to `N` times the rate.
    #[default]
    FallBack,
    /// Refuses the request with `503 Service Unavailable` (`limiter_unavailable`): none is
    /// served while Redis is unreachable.
    Refuse,
}

/// Rate limits counted in Redis, so that every instance enforces one budget per key: give it
/// to [`RateLimits::with_redis`].
///
/// Each request is one round trip on one multiplexed connection (concurrent requests are
/// pipelined on it): a Lua script computes GCRA on Redis's clock for every budget of the
/// request at once, atomically, and a budget's entry expires when it is whole again. This
/// process keeps a copy of each budget as Redis last reported it.
///
/// No request waits longer than the [`timeout`](Self::timeout) (50 ms by default) on Redis. A
/// request past it, or whose round trip failed, is counted in this process from that copy, so
/// a slow answer never hands out a fresh budget. After a round trip that failed outright, or
/// [`RedisLimits::BREAKER_AFTER`] slow ones in a row, Redis is taken for unreachable: requests are counted as [`RedisFailure`] says, Redis is left
/// alone for a second at a time, and a `WARN` audit event (one per outage) says so; an `INFO`
/// event says when it answers again. Every request counted without Redis is in the metric
/// `api_key_limiter_fallbacks_total{reason}` (`timeout`, `error`, `unreachable`).
///
/// The connection is made on the first request, in the background, and made again on its own
/// after an outage.
///
/// ```
/// use std::time::Duration;
/// use axum_api_key::{ApiKeys, RateLimits, RedisFailure, RedisLimits};
///
/// let redis = RedisLimits::new("redis://127.0.0.1:6379")?
///     .prefix("myapp:limits")
///     .timeout(Duration::from_millis(10))
///     .on_failure(RedisFailure::FallBack);
/// let keys = ApiKeys::new().with_rate_limits(RateLimits::new().with_redis(redis));
/// # Ok::<(), axum_api_key::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisLimits {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    failure: RedisFailure,
}

impl fmt::Debug for RedisLimits {
    // The URL may hold a password: it is not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimits")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl RedisLimits {
    /// How long a request waits on Redis by default. A round trip on loopback takes about
    /// 0.15 ms (median; 0.23 ms at the 99th percentile) on a quiet 2-core machine, but under
    /// load on the same cores the scheduler alone can hold an answer for milliseconds: a
    /// timeout of 5 ms there failed healthy round trips by the thousand. 50 ms bounds what a
    /// request can wait while leaving a healthy but busy Redis room to answer.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

    /// How many round trips in a row must go past the timeout before Redis is taken for
    /// unreachable and left alone for a second (one that fails outright is enough).
    pub const BREAKER_AFTER: u32 = 3;

    /// Limits counted in the Redis server at `url` (`redis://host:port/db`, `rediss://` for
    /// TLS is not built in), under the prefix `axum-api-key`. Nothing is connected yet.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let client =
            redis::Client::open(url).map_err(|_| ConfigError::new(ConfigErrorKind::BadRedisUrl))?;
        Ok(Self {
            client,
            prefix: "axum-api-key".to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            failure: RedisFailure::FallBack,
        })
    }

    /// The prefix of every Redis key, so that several apps (or tests) share a server apart.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest a request waits on Redis. Default: 50 ms ([`Self::DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What a request does when Redis cannot answer in time. Default:
    /// [`RedisFailure::FallBack`].
    pub fn on_failure(mut self, failure: RedisFailure) -> Self {
        self.failure = failure;
        self
    }
}

impl RateLimits {
    /// Counts the budgets of keys and routes in Redis, shared with every instance that uses
    /// the same server and prefix. The throttle stays in this process.
    pub fn with_redis(self, redis: RedisLimits) -> Self {
        let shared = Shared(Arc::new(State {
            config: redis,
            script: redis::Script::new(SCRIPT),
            connection: OnceLock::new(),
            epoch: Instant::now(),
            paused_until: AtomicU64::new(0),
            down: AtomicBool::new(false),
            failures: std::sync::atomic::AtomicU32::new(0),
        }));
        self.rebuilt(|inner| inner.redis = Some(shared))
    }

    /// Connects to Redis now, waiting up to two seconds, rather than in the background on the
    /// first request: for start-up, so that the first requests are counted in Redis too. An
    /// error says that Redis did not answer; requests are counted as [`RedisFailure`] says
    /// until it does, and the connection is tried again on its own.
    pub async fn connect(&self) -> Result<(), std::io::Error> {
        let Some(redis) = &self.inner.redis else {
            return Ok(());
        };
        let mut connection = redis.connection()?;
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        match tokio::time::timeout(Duration::from_secs(2), ping).await {
            Ok(Ok(_)) => {
                redis.0.paused_until.store(0, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(error)) => Err(std::io::Error::other(error.to_string())),
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

/// GCRA for every budget of a request, on Redis's clock, and the key's credits, all or nothing:
/// a request refused by one budget, or by its credits, spends nothing. `ARGV[1]` is the number
/// `n` of budgets; `KEYS[i]` is a budget, `ARGV[3i-1]` its interval, `ARGV[3i]` its burst and
/// `ARGV[3i+1]` 0. A calendar window (a day, a month) has interval 0: its key names the window,
/// `ARGV[3i]` is its count and `ARGV[3i+1]` the time left in it by the server's clock, and it
/// holds the requests spent. Times are microseconds. When `KEYS[n+1]` is given it holds the
/// key's credits (a hash of the record's generation `g`, the refill period `p` and what is left,
/// `r`), and `ARGV[3n+2..]` are the request's cost, what the record leaves this period, the
/// record's generation, the period and how long to keep the count (milliseconds, 0 for ever):
/// a count of another generation (credits set anew) or an older period (a refill came) starts
/// from the record's. Returns each budget's remaining requests and time until it is whole, how
/// long to wait (0 when allowed), the credits left (-1 without credits) and whether they
/// refused (1 or 0). Arrival times are written with `%.0f`: Lua prints large numbers with 14
/// significant digits, which would round away microseconds.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local tats = {}
local wait = 0
for i = 1, n do
  local interval = tonumber(ARGV[3 * i - 1])
  local burst = tonumber(ARGV[3 * i])
  if interval == 0 then
    local ends = math.max(tonumber(ARGV[3 * i + 1]), 1)
    local used = tonumber(redis.call('GET', KEYS[i]) or '0')
    if used >= burst and ends > wait then wait = ends end
    tats[i] = used
  else
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if tat < now then tat = now end
    local allow_at = tat + interval - interval * burst
    if allow_at > now and allow_at - now > wait then wait = allow_at - now end
    tats[i] = tat
  end
end
local left = -1
local refused = 0
local cost, generation, period, keep = 0, '', 0, 0
if #KEYS > n then
  local at = 3 * n + 2
  cost = tonumber(ARGV[at])
  local base = tonumber(ARGV[at + 1])
  generation = ARGV[at + 2]
  period = tonumber(ARGV[at + 3])
  keep = tonumber(ARGV[at + 4])
  local held = redis.call('HMGET', KEYS[n + 1], 'g', 'p', 'r')
  if held[1] == generation and held[2] and tonumber(held[2]) >= period then
    left = tonumber(held[3])
    period = tonumber(held[2])
  else
    left = base
  end
  if left < cost then refused = 1 end
end
local spend = wait == 0 and refused == 0
if spend and #KEYS > n then
  left = left - cost
  redis.call('HSET', KEYS[n + 1], 'g', generation, 'p', period, 'r', string.format('%.0f', left))
  if keep > 0 then redis.call('PEXPIRE', KEYS[n + 1], keep) else redis.call('PERSIST', KEYS[n + 1]) end
end
local out = {}
for i = 1, n do
  local interval = tonumber(ARGV[3 * i - 1])
  local burst = tonumber(ARGV[3 * i])
  if interval == 0 then
    local ends = math.max(tonumber(ARGV[3 * i + 1]), 1)
    local used = tats[i]
    if spend then
      used = used + 1
      -- Kept a day past the window's end: long enough for any clock it meets.
      redis.call('SET', KEYS[i], used, 'PX', math.ceil(ends / 1000) + 86400000)
    end
    local remaining = burst - used
    if remaining < 0 then remaining = 0 end
    out[2 * i - 1] = remaining
    out[2 * i] = ends
  else
    local tat = tats[i]
    if spend then
      tat = tat + interval
      redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
    end
    local remaining = math.floor((now + interval * burst - tat) / interval)
    if remaining < 0 then remaining = 0 end
    out[2 * i - 1] = remaining
    out[2 * i] = tat - now
  end
end
out[2 * n + 1] = wait
out[2 * n + 2] = left
out[2 * n + 3] = refused
return out
";

/// The live side of [`RedisLimits`], shared by the clones of a [`RateLimits`].
#[derive(Clone)]
pub(crate) struct Shared(Arc<State>);

struct State {
    config: RedisLimits,
    script: redis::Script,
    /// Made on the first request, inside the server's runtime; it connects lazily and
    /// reconnects on its own.
    connection: OnceLock<ConnectionManager>,
    epoch: Instant,
    /// Until when Redis is left alone after a failure, in microseconds since `epoch`.
    paused_until: AtomicU64,
    /// Whether an outage was reported and its end not yet.
    down: AtomicBool,
    /// Round trips that failed in a row.
    failures: std::sync::atomic::AtomicU32,
}

/// What the shared limiter made of a request.
pub(crate) enum Outcome {
    Counted(Box<Count>),
    FallBack,
    Refuse,
}

/// Left alone this long after a failure: one request a second pays the timeout during an
/// outage, not every request.
const PAUSE: Duration = Duration::from_secs(1);

impl Shared {
    fn connection(&self) -> Result<ConnectionManager, std::io::Error> {
        if let Some(connection) = self.0.connection.get() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection =
            ConnectionManager::new_lazy_with_config(self.0.config.client.clone(), config)
                .map_err(|error| std::io::Error::other(error.to_string()))?;
        Ok(self.0.connection.get_or_init(|| connection).clone())
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.0.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub(crate) async fn spend(
        &self,
        id: &str,
        budgets: &Budgets,
        credits: Option<super::CreditAsk<'_>>,
        wall: std::time::SystemTime,
    ) -> Outcome {
        let state = &self.0;
        if self.micros() < state.paused_until.load(Ordering::Relaxed) {
            fallback("unreachable");
            return self.failed();
        }
        let Ok(mut connection) = self.connection() else {
            return self.outage("Redis could not be reached", "error");
        };
        let mut invocation = state.script.prepare_invoke();
        invocation.arg(budgets.iter().count());
        let mut len = 0;
        for (scope, limit) in budgets.iter() {
            len += 1;
            let prefix = &state.config.prefix;
            // A calendar window's key names the window: the next one starts from nothing.
            let window = limit.calendar().map_or_else(String::new, |every| {
                format!(":{}", super::local::window_of(every, wall))
            });
            match scope {
                Scope::Key => invocation.key(format!("{prefix}:key:{limit}:{id}{window}")),
                Scope::Route(route) => {
                    invocation.key(format!("{prefix}:route:{route}:{limit}:{id}{window}"))
                }
            };
            match limit.calendar() {
                Some(every) => {
                    let window = super::local::calendar_window(every, wall);
                    invocation
                        .arg(0)
                        .arg(limit.count())
                        .arg(window.ends_in / 1_000);
                }
                None => {
                    let interval = u64::try_from(limit.interval().as_micros()).unwrap_or(u64::MAX);
                    invocation.arg(interval.max(1)).arg(limit.burst()).arg(0);
                }
            }
        }
        if let Some(ask) = credits {
            let prefix = &state.config.prefix;
            invocation.key(format!("{prefix}:credits:{id}"));
            let (period, keep) = match ask.credits.refill {
                // Kept a day past the next refill: long enough for any clock it meets.
                Some(refill) => {
                    let period = refill.period_of(ask.now);
                    let until = refill
                        .next_start(period)
                        .duration_since(ask.now)
                        .unwrap_or_default()
                        + Duration::from_secs(86_400);
                    (period, u64::try_from(until.as_millis()).unwrap_or(u64::MAX))
                }
                None => (0, 0),
            };
            invocation
                .arg(ask.cost)
                .arg(ask.credits.base(ask.now))
                .arg(ask.credits.generation())
                .arg(period)
                .arg(keep);
        }
        let call = invocation.invoke_async::<Vec<i64>>(&mut connection);
        match tokio::time::timeout(state.config.timeout, call).await {
            Ok(Ok(values)) if values.len() == len * 2 + 3 => {
                state.failures.store(0, Ordering::Relaxed);
                if state.down.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        target: "axum_api_key::audit",
                        prefix = state.config.prefix,
                        "Redis answers again: rate limits are counted in it once more"
                    );
                }
                Outcome::Counted(Box::new(count(budgets, &values, credits, wall)))
            }
            Ok(Ok(_)) => self.outage("Redis answered the rate-limit script unexpectedly", "error"),
            Ok(Err(_)) => self.outage("Redis could not be reached", "error"),
            Err(_) => self.outage("Redis did not answer within the timeout", "timeout"),
        }
    }

    /// A round trip failed: this request is counted in this process; after
    /// [`RedisLimits::BREAKER_AFTER`] in a row, Redis is left alone for a while (said once per outage) and
    /// requests are counted as configured.
    fn outage(&self, why: &'static str, reason: &'static str) -> Outcome {
        let state = &self.0;
        fallback(reason);
        // An error (refused, reset) says Redis is away; a slow answer may be one of a few.
        let in_a_row = state.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if reason == "timeout" && in_a_row < RedisLimits::BREAKER_AFTER {
            return Outcome::FallBack;
        }
        let pause = u64::try_from(PAUSE.as_micros()).unwrap_or(u64::MAX);
        state
            .paused_until
            .store(self.micros().saturating_add(pause), Ordering::Relaxed);
        if !state.down.swap(true, Ordering::Relaxed) {
            let counted = match state.config.failure {
                RedisFailure::FallBack => "counted in this process",
                RedisFailure::Refuse => "refused with 503",
            };
            tracing::warn!(
                target: "axum_api_key::audit",
                prefix = state.config.prefix,
                "{why}: rate-limited requests are {counted} until it answers again"
            );
        }
        self.failed()
    }

    fn failed(&self) -> Outcome {
        match self.0.config.failure {
            RedisFailure::FallBack => Outcome::FallBack,
            RedisFailure::Refuse => Outcome::Refuse,
        }
    }
}

/// Counts a request counted without Redis, by why.
fn fallback(reason: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!("api_key_limiter_fallbacks_total", "reason" => reason).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = reason;
}

/// The script's answer as a [`Count`].
fn count(
    budgets: &Budgets,
    values: &[i64],
    credits: Option<super::CreditAsk<'_>>,
    wall: std::time::SystemTime,
) -> Count {
    let micros = |value: i64| Duration::from_micros(u64::try_from(value).unwrap_or(0));
    let (values, tail) = values.split_at(values.len().saturating_sub(3));
    let (wait, left, refused) = match *tail {
        [wait, left, refused] => (wait, left, refused == 1),
        _ => (0, -1, false),
    };
    if refused && let Some(ask) = credits {
        let refill_in = ask
            .credits
            .refill
            .map(|refill| refill.next_start(refill.period_of(ask.now)))
            .map(|at| at.duration_since(ask.now).unwrap_or_default());
        return Count {
            credits: Some(u64::try_from(left).unwrap_or(0)),
            credits_exhausted: true,
            retry_after: refill_in,
            ..Count::default()
        };
    }
    let mut counted = [None; super::MOST_BUDGETS];
    for (slot, (&(scope, limit), pair)) in counted
        .iter_mut()
        .zip(budgets.iter().zip(values.chunks_exact(2)))
    {
        let remaining = u32::try_from(pair[0]).unwrap_or(0);
        let reset = u64::try_from(pair[1]).unwrap_or(0).saturating_mul(1000);
        *slot = Some(Budget::new(
            scope,
            limit,
            remaining,
            reset,
            budgets.several(),
            limit
                .calendar()
                .map_or(0, |every| super::local::calendar_window(every, wall).length),
        ));
    }
    Count {
        budgets: counted,
        retry_after: (wait > 0).then(|| micros(wait)),
        unavailable: false,
        credits: credits.and_then(|_| u64::try_from(left).ok()),
        credits_exhausted: false,
    }
}
