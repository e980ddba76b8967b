//! Whether a check may wait: the guard in a handler's extractor awaits whatever the store and
//! the limiter need, while the guard as a layer first runs the same check without waiting, and
//! only a request that would have to wait takes the path that can.

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use crate::key::VerifiedKey;
use crate::rejection::ApiKeyRejection;
use crate::store::{KeyError, KeyStore};

/// How a check treats the points where it would wait.
pub(super) trait Mode: 'static {
    /// What a check stops with where it would have to wait: nothing, for a check that waits.
    type Wait: Send;

    /// `Some` for a check that may not wait: it stops at the first point that would.
    fn wait() -> Option<Self::Wait>;
}

/// A check that waits on the store and the limiter as they need: the extractor's.
pub(super) enum Awaiting {}

impl Mode for Awaiting {
    type Wait = Infallible;

    fn wait() -> Option<Infallible> {
        None
    }
}

/// A check that never waits: it stops before anything that would, untouched by it. Every
/// `.await` of the check is on a future that is ready at once in this mode (an `async fn`
/// without an `.await` of its own on that path), so its first poll finishes it.
pub(super) enum Now {}

/// Where a check that may not wait stopped.
pub(super) struct WouldWait;

impl Mode for Now {
    type Wait = WouldWait;

    fn wait() -> Option<WouldWait> {
        Some(WouldWait)
    }
}

/// How a check ended without letting the request in.
pub(super) enum Stop<W> {
    /// Refused, with the answer to send.
    Refused(ApiKeyRejection),
    /// Stopped before waiting on something, with nothing done: the check is to be run again by
    /// a guard that may wait.
    Wait(W),
}

impl<W> From<ApiKeyRejection> for Stop<W> {
    fn from(rejection: ApiKeyRejection) -> Self {
        Self::Refused(rejection)
    }
}

/// The store's answer for `key`: awaited by a check that waits; otherwise the answer the
/// store gives at once, or a stop where it has none.
pub(super) async fn verify<S: KeyStore, M: Mode>(
    store: &S,
    key: &str,
) -> Result<Result<VerifiedKey, KeyError>, M::Wait> {
    match M::wait() {
        None => Ok(store.verify(key).await),
        Some(wait) => store.verify_now(key).ok_or(wait),
    }
}

/// Whether a check of `store` can run in the [`Now`] mode and finish: the store answers from
/// memory and its budgets are counted in process. (A key over plain HTTP still stops it.)
pub(super) fn answers_now<S: KeyStore>(store: &S) -> bool {
    store.answers_from_memory() && !store.rate_limits().counts_in_redis()
}

/// A check in the [`Now`] mode, run to its end. It finishes on its first poll; were it ever
/// pending, it is dropped, having done nothing that a second check would do again, and told to
/// wait, so that the check that waits runs instead.
pub(super) fn at_once<T>(
    check: impl Future<Output = Result<T, Stop<WouldWait>>>,
) -> Result<T, Stop<WouldWait>> {
    let check = std::pin::pin!(check);
    match check.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(checked) => checked,
        Poll::Pending => Err(Stop::Wait(WouldWait)),
    }
}
