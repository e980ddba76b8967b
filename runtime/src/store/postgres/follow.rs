//! Keeping the snapshot in step: `LISTEN` on a connection of its own, a full read every
//! minute and after every reconnection, a heartbeat, and a timeout on every round trip.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sqlx::Executor;
use sqlx::postgres::{PgListener, PgPoolOptions};

use super::super::KeyDigest;
use super::super::set::KeySet;
use super::rows::{SELECT_ROWS, decode_hex, record};
use super::{Inner, PgKeysError};

impl Inner {
    pub(super) fn staleness(&self) -> Duration {
        let at = self.in_step_at.load(Ordering::Acquire);
        let now = self.started.elapsed();
        if at == 0 {
            return now;
        }
        now.saturating_sub(Duration::from_micros(at))
    }

    pub(super) fn mark_in_step(&self) {
        let now = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.in_step_at.store(now.max(1), Ordering::Release);
    }

    /// Reads every key and swaps the snapshot whole.
    pub(super) async fn resync(&self) -> Result<usize, PgKeysError> {
        self.resync_on(&self.pool).await
    }

    /// [`resync`](Self::resync) through this connection (the follower's own).
    pub(super) async fn resync_on<'e>(
        &self,
        executor: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    ) -> Result<usize, PgKeysError> {
        let mut unread = self.changing.lock().await;
        let count = self.read_all(executor).await?;
        // Everything written before the read began was read: nothing is left unread.
        *unread = Unread::default();
        Ok(count)
    }

    /// A full read, as [`resync_on`](Self::resync_on) makes it with the snapshot's changes
    /// held off.
    async fn read_all<'e>(
        &self,
        executor: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    ) -> Result<usize, PgKeysError> {
        // The rows are read one at a time into a copy of the current set, which changes only
        // what differs: the read holds the set requests read, the changed records and the
        // digests seen, never a second whole set nor every row at once. A read that fails half
        // way leaves the current set as it was.
        let mut set = KeySet::clone(&self.snapshot.load());
        set.format = self.format.clone();
        let mut seen = std::collections::HashSet::new();
        let mut rows = sqlx::query(SELECT_ROWS).fetch(executor);
        while let Some(row) =
            std::future::poll_fn(|cx| futures_core::Stream::poll_next(rows.as_mut(), cx)).await
        {
            match record(&row?) {
                Ok((digest, key)) => {
                    seen.insert(digest);
                    if let Err(error) = set.put(key) {
                        let error = error.without_id();
                        tracing::warn!(target: "axum_api_key::audit", %error, "a row of the keys table was skipped");
                    }
                }
                Err(error) => {
                    tracing::warn!(target: "axum_api_key::audit", %error, "a row of the keys table could not be read");
                }
            }
        }
        drop(rows);
        set.retain_digests(&seen);
        let count = set.len();
        self.snapshot.publish(set);
        self.mark_in_step();
        Ok(count)
    }

    /// Reads the rows of these digests again and applies them to the snapshot: each key is
    /// replaced, added, or removed if its row is gone. The rows of earlier changes that could
    /// not be read back are read with them; should this read fail too, these digests join them,
    /// for the next read that succeeds.
    pub(super) async fn refresh(&self, digests: &[KeyDigest]) -> Result<(), PgKeysError> {
        self.refresh_on(&self.pool, digests).await
    }

    /// [`refresh`](Self::refresh) through this connection (the follower's own).
    pub(super) async fn refresh_on<'e>(
        &self,
        executor: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
        digests: &[KeyDigest],
    ) -> Result<(), PgKeysError> {
        let mut unread = self.changing.lock().await;
        if unread.overflowed {
            // Too many to name: the whole table is read instead, in the time a full read may
            // take.
            let full_read = self
                .options
                .max_staleness
                .max(self.options.round_trip_timeout);
            tokio::time::timeout(full_read, self.read_all(executor))
                .await
                .map_err(|_| timed_out("reading the keys"))??;
            *unread = Unread::default();
            return Ok(());
        }
        let mut wanted: std::collections::HashSet<KeyDigest> = digests.iter().copied().collect();
        wanted.extend(unread.digests.iter().copied());
        let slices: Vec<&[u8]> = wanted.iter().map(|d| &d[..]).collect();
        let statement = format!("{SELECT_ROWS} WHERE digest = ANY($1)");
        let read = sqlx::query(&statement).bind(&slices).fetch_all(executor);
        // One round trip, bounded: a connection gone silent must not hold the snapshot's
        // changes (the follower's among them) until the system gives up on it.
        let rows = match tokio::time::timeout(self.options.round_trip_timeout, read).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(error)) => {
                unread.add(digests);
                return Err(error.into());
            }
            Err(_) => {
                unread.add(digests);
                return Err(timed_out("reading changed keys"));
            }
        };
        let mut next = KeySet::clone(&self.snapshot.load());
        for digest in &wanted {
            next.remove(digest);
        }
        for row in &rows {
            if let Ok((_, key)) = record(row)
                && let Err(error) = next.insert(key, true)
            {
                let error = error.without_id();
                tracing::warn!(target: "axum_api_key::audit", %error, "a row of the keys table was skipped");
            }
        }
        self.snapshot.publish(next);
        unread.digests.clear();
        Ok(())
    }
}

/// The keys this instance changed in the table, or was told of, but could not read back: the
/// next read that succeeds applies them (a full read, past [`MAX_UNREAD`] of them). Held under
/// the lock that serialises changes to the snapshot, so that a full read clears exactly what it
/// covered.
#[derive(Default)]
pub(super) struct Unread {
    digests: std::collections::HashSet<KeyDigest>,
    /// More than [`MAX_UNREAD`] were left unread; the next read is a full one.
    overflowed: bool,
}

/// How many unread keys are kept by digest before the next read becomes a full one: bounded,
/// whatever the number of changes made while the database does not answer.
const MAX_UNREAD: usize = 1024;

impl Unread {
    fn add(&mut self, digests: &[KeyDigest]) {
        if self.overflowed {
            return;
        }
        self.digests.extend(digests.iter().copied());
        if self.digests.len() > MAX_UNREAD {
            self.digests = std::collections::HashSet::new();
            self.overflowed = true;
        }
    }
}

/// Follows the table: listens for its notifications, applies them, reads it again in full on a
/// period and after every reconnection, and checks an idle connection. Ends with the store.
pub(super) async fn follow(inner: Weak<Inner>) {
    use tokio::time::timeout;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let round_trip = strong.options.round_trip_timeout;
        // A full read may take longer than one round trip, but never longer than the snapshot
        // may go stale.
        let full_read = strong.options.max_staleness.max(round_trip);
        let listener = async {
            let mut listener = timeout(round_trip, async {
                // A pool of one for each listening connection: one given up may hang in
                // sqlx's own clean-up (its `UNLISTEN` waits on the silent connection until
                // the system gives up on it) and must not hold the place of the next.
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(round_trip)
                    .connect_lazy_with(strong.listen_with.clone());
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen(&strong.channel).await?;
                Ok::<_, sqlx::Error>(listener)
            })
            .await
            .map_err(|_| timed_out("listening"))??;
            // Without a connection of its own to reopen silently: a lost connection is seen
            // here, and handled as one, resync included.
            listener.eager_reconnect(false);
            // Changes made while not listening are caught up here, on the new connection: the
            // follower never waits on a connection of the shared pool, which may be as dead as
            // the one just given up.
            timeout(full_read, strong.resync_on(&mut listener))
                .await
                .map_err(|_| timed_out("reading the keys"))??;
            Ok::<_, PgKeysError>(listener)
        }
        .await;
        let mut listener = match listener {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(target: "axum_api_key::audit", %error, "the key database cannot be followed; retrying");
                drop(strong);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let (heartbeat, resync_every) = (strong.options.heartbeat, strong.options.resync_every);
        drop(strong);
        let mut last_resync = Instant::now();
        let error = loop {
            let received = timeout(heartbeat, listener.try_recv()).await;
            let Some(strong) = inner.upgrade() else {
                return;
            };
            match received {
                Ok(Ok(Some(notification))) => {
                    if let Some(digest) = decode_hex(notification.payload()) {
                        match timeout(round_trip, strong.refresh_on(&mut listener, &[digest])).await
                        {
                            Ok(Ok(())) => {}
                            Ok(Err(error)) => break error,
                            Err(_) => break timed_out("reading a changed key"),
                        }
                    }
                    strong.mark_in_step();
                }
                // The connection was lost: notifications may have been missed.
                Ok(Ok(None)) => break PgKeysError::Database(sqlx::Error::PoolClosed),
                Ok(Err(error)) => break error.into(),
                // Quiet: check the listening connection itself, which proves nothing was lost;
                // a connection that does not answer in time is taken for dead.
                Err(_) => match timeout(round_trip, listener.execute("SELECT 1")).await {
                    Ok(Ok(_)) => strong.mark_in_step(),
                    Ok(Err(error)) => break error.into(),
                    Err(_) => break timed_out("the heartbeat"),
                },
            }
            if last_resync.elapsed() >= resync_every {
                match timeout(full_read, strong.resync_on(&mut listener)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => break error,
                    Err(_) => break timed_out("reading the keys"),
                }
                last_resync = Instant::now();
            }
        };
        tracing::warn!(target: "axum_api_key::audit", %error, "the key database connection was lost; reconnecting");
        drop(listener);
    }
}

/// A round trip that did not end in time.
pub(super) fn timed_out(what: &str) -> PgKeysError {
    PgKeysError::Database(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} did not answer in time"),
    )))
}

#[cfg(test)]
mod tests {
    use super::{MAX_UNREAD, Unread};

    /// Changes not read back are kept by digest up to a bound; past it, the next read is a full
    /// one and nothing more is kept, whatever the number of changes.
    #[test]
    fn unread_keys_are_bounded() {
        let mut unread = Unread::default();
        let digest = |n: usize| {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&n.to_le_bytes());
            digest
        };
        let first: Vec<_> = (0..MAX_UNREAD).map(digest).collect();
        unread.add(&first);
        unread.add(&first[..10]);
        assert_eq!(
            (unread.digests.len(), unread.overflowed),
            (MAX_UNREAD, false)
        );
        unread.add(&[digest(MAX_UNREAD)]);
        assert!(unread.overflowed);
        assert!(unread.digests.is_empty());
        unread.add(&first);
        assert!(unread.digests.is_empty());
    }
}
