//! Usage metrics through the `metrics` facade (feature `metrics`); nothing without it.

#[cfg(feature = "metrics")]
use std::sync::atomic::{AtomicBool, Ordering};

use crate::key::VerifiedKey;

#[cfg(feature = "metrics")]
static LABEL_KEY_IDS: AtomicBool = AtomicBool::new(false);

/// Whether decisions carry a `key_id` label. Off by default: every key id is a new time
/// series, which a service with many keys may not want to pay for.
#[cfg(feature = "metrics")]
pub(crate) fn labels_key_ids() -> bool {
    crate::settings::label_key_ids().unwrap_or_else(|| LABEL_KEY_IDS.load(Ordering::Relaxed))
}

#[cfg(feature = "metrics")]
pub(crate) fn set_label_key_ids(on: bool) {
    LABEL_KEY_IDS.store(on, Ordering::Relaxed);
}

/// A refusal: `api_key_decisions_total{outcome="refused",reason}`, and
/// `api_key_rate_limited_total` for a key over its limit.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) fn refused(reason: &'static str, key: Option<&VerifiedKey>) {
    #[cfg(feature = "metrics")]
    {
        match key.filter(|_| labels_key_ids()) {
            Some(key) => {
                let id = key.id().to_owned();
                ::metrics::counter!("api_key_decisions_total", "outcome" => "refused", "reason" => reason, "key_id" => id.clone()).increment(1);
                if reason == "rate_limited" {
                    ::metrics::counter!("api_key_rate_limited_total", "key_id" => id).increment(1);
                }
            }
            None => {
                ::metrics::counter!("api_key_decisions_total", "outcome" => "refused", "reason" => reason).increment(1);
                if reason == "rate_limited" {
                    ::metrics::counter!("api_key_rate_limited_total").increment(1);
                }
            }
        }
    }
}

/// Credits an accepted request spent: `api_key_credits_spent_total` (with `key_id` when key
/// ids are labels).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) fn credits_spent(key: &VerifiedKey, cost: u32) {
    #[cfg(feature = "metrics")]
    match labels_key_ids() {
        true => ::metrics::counter!("api_key_credits_spent_total", "key_id" => key.id().to_owned())
            .increment(u64::from(cost)),
        false => ::metrics::counter!("api_key_credits_spent_total").increment(u64::from(cost)),
    }
}

/// A live key seen over plain HTTP: `api_key_exposed_total` (with `key_id` when key ids are
/// labels).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn exposed(key: &VerifiedKey) {
    exposed_id(key.id());
}

/// A key exposed (seen over plain HTTP, or reported by secret scanning), by its id:
/// `api_key_exposed_total`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn exposed_id(id: &str) {
    #[cfg(feature = "metrics")]
    match labels_key_ids() {
        true => {
            ::metrics::counter!("api_key_exposed_total", "key_id" => id.to_owned()).increment(1)
        }
        false => ::metrics::counter!("api_key_exposed_total").increment(1),
    }
}

/// A webhook delivery refused because the seen-id set was full inside its window:
/// `api_key_webhook_ids_full_total`.
#[cfg(feature = "webhooks")]
pub(crate) fn webhook_ids_full() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!("api_key_webhook_ids_full_total").increment(1);
}

/// An accepted key, or a request let in without one by an optional guard.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
#[inline]
pub(crate) fn accepted(outcome: &'static str, key: Option<&VerifiedKey>) {
    #[cfg(feature = "metrics")]
    match key.filter(|_| labels_key_ids()) {
        Some(key) => ::metrics::counter!("api_key_decisions_total", "outcome" => outcome, "reason" => "", "key_id" => key.id().to_owned()).increment(1),
        None => ::metrics::counter!("api_key_decisions_total", "outcome" => outcome, "reason" => "").increment(1),
    }
}

/// Measures the guard's time, `api_key_guard_seconds`, from its start to its decision.
pub(crate) struct Timer {
    #[cfg(feature = "metrics")]
    start: std::time::Instant,
}

impl Timer {
    #[inline]
    pub(crate) fn start() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            start: std::time::Instant::now(),
        }
    }

    /// Stops the timer without recording anything: the work it timed is done again, and timed,
    /// elsewhere.
    #[inline]
    pub(crate) fn discard(self) {
        let _ = std::mem::ManuallyDrop::new(self);
    }
}

#[cfg(feature = "metrics")]
impl Drop for Timer {
    fn drop(&mut self) {
        ::metrics::histogram!("api_key_guard_seconds").record(self.start.elapsed().as_secs_f64());
    }
}
