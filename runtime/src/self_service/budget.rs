//! The rotations each id asked of one self-service router in its current hour, held to
//! [`MAX_SELF_SERVICE_ROTATIONS`](super::MAX_SELF_SERVICE_ROTATIONS).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long an id's budget lasts from its first rotation.
pub(super) const WINDOW: Duration = Duration::from_secs(3600);

/// At most this many ids are counted at once (about 200 bytes each at the longest id): more
/// than a process sees rotate their keys in an hour. Past it, ids whose hour is over are
/// dropped, and should none be, a rotation of an id not counted yet waits for one to be: the
/// table never grows past it, and an id counted is never forgotten before its hour is over.
const MOST_IDS: usize = 16_384;

/// The rotations of each id in its current window: when the window began, and how many.
#[derive(Default)]
pub(super) struct RotationBudget {
    by_id: Mutex<HashMap<Box<str>, (Instant, u32)>>,
}

impl RotationBudget {
    /// Counts a rotation asked by a holder of `id` at `now`: `Err` with how long until the id
    /// may rotate again when it has made `most` rotations in its window already.
    pub(super) fn spend(&self, id: &str, most: u32, now: Instant) -> Result<(), Duration> {
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        let left = |began: Instant| WINDOW.saturating_sub(now.saturating_duration_since(began));
        if let Some((began, count)) = by_id.get_mut(id) {
            if left(*began).is_zero() {
                *began = now;
                *count = 0;
            }
            if *count >= most {
                return Err(left(*began));
            }
            *count += 1;
            return Ok(());
        }
        if by_id.len() >= MOST_IDS {
            by_id.retain(|_, (began, _)| !left(*began).is_zero());
        }
        if by_id.len() >= MOST_IDS {
            let soonest = by_id.values().map(|(began, _)| left(*began)).min();
            return Err(soonest.unwrap_or(WINDOW));
        }
        if most == 0 {
            return Err(WINDOW);
        }
        by_id.insert(id.into(), (now, 1));
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `most` rotations in an hour, then none until the hour from the first is over; each id
    /// apart.
    #[test]
    fn an_id_makes_its_rotations_then_waits_for_its_hour() {
        let budget = RotationBudget::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(budget.spend("a", 3, start), Ok(()));
        }
        let later = start + Duration::from_secs(600);
        assert_eq!(budget.spend("a", 3, later), Err(Duration::from_secs(3000)));
        assert_eq!(budget.spend("b", 3, later), Ok(()));
        assert_eq!(budget.spend("a", 3, start + WINDOW), Ok(()));
        assert_eq!(budget.spend("a", 0, start), Err(Duration::from_secs(3600)));
        assert_eq!(budget.spend("c", 0, start), Err(WINDOW));
    }

    /// The table never holds more than its bound: ids whose hour is over make room, and
    /// while none is over, a new id waits rather than pushing a counted one out.
    #[test]
    fn the_ids_counted_are_bounded() {
        let budget = RotationBudget::default();
        let start = Instant::now();
        for n in 0..MOST_IDS {
            assert_eq!(budget.spend(&format!("id-{n}"), 5, start), Ok(()));
        }
        let soon = start + Duration::from_secs(60);
        assert_eq!(
            budget.spend("one-more", 5, soon),
            Err(Duration::from_secs(3540))
        );
        assert_eq!(budget.len(), MOST_IDS);
        // An id counted keeps its count.
        assert_eq!(budget.spend("id-0", 5, soon), Ok(()));
        // Once their hour is over, they make room.
        assert_eq!(budget.spend("one-more", 5, start + WINDOW), Ok(()));
        assert_eq!(budget.len(), 1);
    }
}
