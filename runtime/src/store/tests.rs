//! The key set and its store: lookups, changes and what a listing shows.

use std::time::{Duration, SystemTime};

use super::*;
use crate::error::{ConfigError, ConfigErrorKind};
use crate::format::KeyFormat;

#[test]
fn verifies_known_keys_only() {
    let keys = ApiKeys::new()
        .with_key("a", "key-a-0123456789")
        .with_key("b", "key-b-0123456789");
    assert_eq!(
        keys.verify(b"key-a-0123456789").map(|k| k.id().to_owned()),
        Ok("a".to_owned())
    );
    assert_eq!(
        keys.verify(b"key-b-0123456789").map(|k| k.id().to_owned()),
        Ok("b".to_owned())
    );
    assert_eq!(
        keys.verify(b"key-c-0123456789").err(),
        Some(KeyError::Unknown)
    );
    assert_eq!(keys.verify(b"").err(), Some(KeyError::Malformed));
    assert_eq!(keys.verify(b"key a").err(), Some(KeyError::Malformed));
    assert_eq!(
        keys.verify("kéy".as_bytes()).err(),
        Some(KeyError::Malformed)
    );
    assert_eq!(
        keys.verify(&[b'k'; MAX_KEY_LEN + 1]).err(),
        Some(KeyError::TooLong)
    );
}

#[test]
fn the_shape_check_accepts_exactly_visible_ascii() {
    for byte in 0..=u8::MAX {
        for at in 0..17 {
            let mut key = vec![b'k'; 17];
            key[at] = byte;
            assert_eq!(
                is_key_shaped(&key),
                byte.is_ascii_graphic(),
                "byte {byte:#04x} at {at}"
            );
        }
    }
    assert!(!is_key_shaped(b""));
}

#[test]
fn a_key_of_the_maximum_length_is_accepted() {
    let long = "k".repeat(MAX_KEY_LEN);
    let keys = ApiKeys::new().with_key("long", &long);
    assert!(keys.verify(long.as_bytes()).is_ok());
}

#[test]
fn refuses_bad_additions() {
    let keys = ApiKeys::new().with_key("a", "key-a-0123456789");
    let kind = |r: Result<ApiKeys, ConfigError>| r.err().map(|e| e.kind());
    assert_eq!(
        kind(keys.clone().try_with_key("a", "other-0123456789")),
        Some(ConfigErrorKind::DuplicateId)
    );
    assert_eq!(
        kind(keys.clone().try_with_key("b", "key-a-0123456789")),
        Some(ConfigErrorKind::DuplicateKey)
    );
    assert_eq!(
        kind(keys.clone().try_with_key("", "x-0123456789abcdef")),
        Some(ConfigErrorKind::EmptyId)
    );
    assert_eq!(
        kind(keys.clone().try_with_key("b c", "x-0123456789abcdef")),
        Some(ConfigErrorKind::InvalidId)
    );
    assert_eq!(
        kind(keys.clone().try_with_key("b", "")),
        Some(ConfigErrorKind::EmptyKey)
    );
    assert_eq!(
        kind(keys.clone().try_with_key("b", "a b")),
        Some(ConfigErrorKind::KeyNotPrintable)
    );
    let long = "k".repeat(MAX_KEY_LEN + 1);
    assert_eq!(
        kind(keys.clone().try_with_key("b", long)),
        Some(ConfigErrorKind::KeyTooLong)
    );
    // A refused addition leaves the store as it was.
    assert_eq!(keys.len(), 1);
}

#[test]
fn building_copies_a_shared_store_and_managing_changes_every_clone() {
    let one = ApiKeys::new().with_key("a", "key-a-0123456789");
    let two = one.clone().with_key("b", "key-b-0123456789");
    assert_eq!(one.len(), 1);
    assert_eq!(two.len(), 2);
    assert!(one.verify(b"key-b-0123456789").is_err());

    let served = two.clone();
    two.add(Key::new("c", "key-c-0123456789")).unwrap();
    assert_eq!(served.verify(b"key-c-0123456789").unwrap().id(), "c");
    served.revoke("a").unwrap();
    assert_eq!(
        two.verify(b"key-a-0123456789").unwrap_err(),
        KeyError::Revoked
    );
    assert_eq!(
        one.verify(b"key-a-0123456789").unwrap().id(),
        "a",
        "a store built apart is apart"
    );
}

#[test]
fn validity_times_are_enforced() {
    let hour = Duration::from_secs(3600);
    let now = SystemTime::now();
    let keys = ApiKeys::new()
        .with(Key::new("old", "key-old-0123456789").expires_at(now - hour))
        .with(Key::new("early", "key-early-0123456789").not_before(now + hour))
        .with(
            Key::new("current", "key-current-0123456789")
                .not_before(now - hour)
                .expires_at(now + hour),
        )
        .with(Key::new("gone", "key-gone-0123456789").revoked(true));
    assert_eq!(
        keys.verify(b"key-old-0123456789").unwrap_err(),
        KeyError::Expired
    );
    assert_eq!(
        keys.verify(b"key-early-0123456789").unwrap_err(),
        KeyError::NotYetValid
    );
    assert_eq!(
        keys.verify(b"key-current-0123456789").unwrap().id(),
        "current"
    );
    assert_eq!(
        keys.verify(b"key-gone-0123456789").unwrap_err(),
        KeyError::Revoked
    );
    assert_eq!(
        keys.revoke("nobody").unwrap_err().kind(),
        ConfigErrorKind::UnknownId
    );
}

#[test]
fn rotation_keeps_the_old_key_until_the_deadline() {
    let format = KeyFormat::new("test").unwrap();
    let old = format.generate();
    let keys = ApiKeys::new()
        .with_format(format)
        .with(Key::new("svc", &old).scopes(["a"]).metadata("owner", "ops"));
    let new = keys.rotate("svc", Duration::from_secs(60)).unwrap();
    let rotated = keys.verify(new.as_bytes()).unwrap();
    assert_eq!(
        (rotated.id(), rotated.scopes().collect::<Vec<_>>()),
        ("svc", vec!["a"])
    );
    assert_eq!(rotated.metadata("owner"), Some("ops"));
    assert!(rotated.expires_at().is_none());
    let old_key = keys.verify(old.as_bytes()).unwrap();
    assert!(
        old_key
            .expires_at()
            .is_some_and(|at| at <= SystemTime::now() + Duration::from_secs(60))
    );

    let newer = keys.rotate("svc", Duration::ZERO).unwrap();
    assert_eq!(keys.verify(old.as_bytes()).unwrap_err(), KeyError::Expired);
    assert_eq!(keys.verify(new.as_bytes()).unwrap_err(), KeyError::Expired);
    assert!(keys.verify(newer.as_bytes()).is_ok());
    // A grace period no clock can hold is no panic: the old key works until the end of
    // year 9999, the last time a records file can hold.
    let endless = keys.rotate("svc", Duration::MAX).unwrap();
    assert!(keys.verify(endless.as_bytes()).is_ok());
    let kept = keys.verify(newer.as_bytes()).unwrap();
    assert_eq!(
        kept.expires_at(),
        Some(std::time::UNIX_EPOCH + Duration::from_secs(253_402_300_799))
    );
    assert_eq!(
        ApiKeys::new()
            .with_key("x", "key-x-0123456789")
            .rotate("x", Duration::ZERO)
            .unwrap_err()
            .kind(),
        ConfigErrorKind::NoFormat
    );
}

#[test]
fn a_format_refuses_other_keys_before_lookup() {
    let format = KeyFormat::new("app").unwrap();
    let good = format.generate();
    let keys = ApiKeys::new()
        .with_format(format.clone())
        .with_key("a", &good);
    assert!(keys.verify(good.as_bytes()).is_ok());
    let mut typo = good.clone().into_bytes();
    let last = typo.len() - 8;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    assert_eq!(keys.verify(&typo).unwrap_err(), KeyError::Malformed);
    assert_eq!(keys.verify(b"app_short").unwrap_err(), KeyError::Malformed);
    let other = KeyFormat::new("other").unwrap().generate();
    assert_eq!(
        keys.clone().try_with_key("b", other).unwrap_err().kind(),
        ConfigErrorKind::NotOfFormat
    );
    assert_eq!(
        keys.try_with_key("c", "plain-key-0123456789")
            .unwrap_err()
            .kind(),
        ConfigErrorKind::NotOfFormat
    );
}

#[test]
fn debug_shows_no_key_and_no_digest() {
    let keys = ApiKeys::new().with_key("a", "secret-value-0123456789");
    let shown = format!("{keys:?} {keys:#?}");
    assert!(!shown.contains("secret-value-0123456789"));
    assert!(!shown.contains("digest"));
    assert_eq!(format!("{keys:?}"), "ApiKeys { len: 1, .. }");
}

#[test]
fn a_thread_never_reads_a_set_older_than_the_last_change_that_returned() {
    let keys = ApiKeys::new().with_key("a", "key-a-0123456789");
    let other = ApiKeys::new().with_key("b", "key-b-0123456789");
    // Both stores are in this thread's slots.
    assert!(keys.verify(b"key-a-0123456789").is_ok());
    assert!(other.verify(b"key-b-0123456789").is_ok());
    for round in 0..50 {
        let writer = keys.clone();
        std::thread::spawn(move || {
            writer.add(Key::new(
                format!("new-{round}"),
                format!("key-new-{round}-0123456789"),
            ))
        })
        .join()
        .unwrap()
        .unwrap();
        assert!(
            keys.verify(format!("key-new-{round}-0123456789").as_bytes())
                .is_ok(),
            "round {round}"
        );
        assert_eq!(
            other
                .verify(format!("key-new-{round}-0123456789").as_bytes())
                .unwrap_err(),
            KeyError::Unknown
        );
        let revoker = keys.clone();
        std::thread::spawn(move || revoker.revoke(&format!("new-{round}")))
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(
            keys.verify(format!("key-new-{round}-0123456789").as_bytes())
                .unwrap_err(),
            KeyError::Revoked,
            "round {round}"
        );
    }
    // More stores than a thread keeps at hand: each still reads its own set.
    let many: Vec<ApiKeys> = (0..10)
        .map(|i| ApiKeys::new().with_key(format!("k{i}"), format!("key-{i}-0123456789")))
        .collect();
    for _ in 0..3 {
        for (i, store) in many.iter().enumerate() {
            assert_eq!(
                store
                    .verify(format!("key-{i}-0123456789").as_bytes())
                    .unwrap()
                    .id(),
                format!("k{i}")
            );
            assert!(store.verify(b"key-a-0123456789").is_err());
        }
    }
}

#[test]
fn store_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<ApiKeys>();
    assert_send_sync::<VerifiedKey>();
}

/// A full read of a store's source (what `PgKeys` does every minute) brought into a copy of the
/// current set: what did not change stays shared with the set requests still read, rather than
/// a second whole set being built beside it.
#[test]
fn a_full_read_shares_what_did_not_change() {
    use std::collections::HashSet;
    let key = |i: usize| Key::from_digest(format!("k{i}"), digest(format!("key-{i}").as_bytes()));
    let mut before = KeySet::default();
    for i in 0..100 {
        before.insert(key(i), true).unwrap();
    }
    let record = |set: &KeySet, i: usize| {
        let found = set.find(&digest(format!("key-{i}").as_bytes()));
        found.map(|entry| std::ptr::from_ref(entry.key.record()))
    };

    // The read: keys 0..90 as they were, 5 of them changed, 10 gone, one new.
    let mut after = KeySet::clone(&before);
    let mut seen = HashSet::new();
    for i in (0..90).chain([500]) {
        let mut next = key(i);
        if i % 20 == 0 {
            next = next.scopes(["changed"]);
        }
        seen.insert(digest(format!("key-{i}").as_bytes()));
        after.put(next).unwrap();
    }
    assert_eq!(after.retain_digests(&seen), 10);

    assert_eq!(after.len(), 91);
    for i in (0..90).filter(|i| i % 20 != 0) {
        assert_eq!(record(&after, i), record(&before, i), "key {i} is shared");
    }
    for i in (0..90).step_by(20) {
        assert_ne!(record(&after, i), record(&before, i), "key {i} changed");
        let found = after.find(&digest(format!("key-{i}").as_bytes())).unwrap();
        assert!(found.key.has_scope("changed"));
    }
    for i in 90..100 {
        assert!(record(&after, i).is_none(), "key {i} is gone");
        assert!(record(&before, i).is_some(), "the set read before keeps it");
    }
    assert!(record(&after, 500).is_some());
    // The set requests read meanwhile is untouched.
    assert_eq!(before.len(), 100);
    assert!(
        !before
            .find(&digest(b"key-0"))
            .unwrap()
            .key
            .has_scope("changed")
    );
}

/// A store built as a copy of another shares no slot with it: a revoke in one is not seen by
/// the other.
#[test]
fn a_store_built_from_another_does_not_share_its_changes() {
    let a = ApiKeys::new().with_key("k", "key-k-0123456789");
    let b = a.clone().with_key("j", "key-j-0123456789");
    let c = a.clone().with_rate_limits(crate::RateLimits::new());
    a.revoke("k").unwrap();
    assert_eq!(a.verify(b"key-k-0123456789").err(), Some(KeyError::Revoked));
    assert_eq!(b.verify(b"key-k-0123456789").unwrap().id(), "k");
    assert_eq!(c.verify(b"key-k-0123456789").unwrap().id(), "k");
    b.revoke("j").unwrap();
    assert!(a.verify(b"key-j-0123456789").is_err());
    assert_eq!(b.verify(b"key-j-0123456789").err(), Some(KeyError::Revoked));
}

/// Keys added, removed and changed while other threads verify: a reader is never let in by
/// another key's record, a key is never refused while it is in the store unchanged, and a
/// revoke holds for every request after it returns.
#[test]
fn readers_see_whole_changes_while_slots_change_under_them() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let key = |i: usize| format!("key-{i:06}-0123456789");
    let mut keys = ApiKeys::new();
    for i in 0..64 {
        keys = keys.with_key(format!("stable-{i}"), key(i));
    }
    let done = AtomicBool::new(false);
    let revoked_up_to = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut checked = 0;
                while !done.load(Ordering::Acquire) || checked < 1_000 {
                    checked += 1;
                    // The stable keys are always let in, as themselves.
                    let i = checked % 64;
                    let verified = keys.verify(key(i).as_bytes()).expect("a stable key");
                    assert_eq!(verified.id(), format!("stable-{i}"));
                    // A churning key, if let in, is let in as itself.
                    let j = 1_000 + checked % 500;
                    if let Ok(verified) = keys.verify(key(j).as_bytes()) {
                        assert_eq!(verified.id(), format!("churn-{j}"));
                    }
                    // A key revoked before this request began is refused.
                    let revoked = revoked_up_to.load(Ordering::Acquire);
                    if revoked > 0 {
                        let r = 2_000 + checked % revoked;
                        assert_eq!(
                            keys.verify(key(r).as_bytes()).err(),
                            Some(KeyError::Revoked),
                            "{r}"
                        );
                    }
                }
            });
        }
        for round in 0..3_000 {
            let j = 1_000 + round % 500;
            let digest = digest(key(j).as_bytes());
            keys.change_set(|set| {
                if !set.remove(&digest) {
                    set.insert(Key::new(format!("churn-{j}"), key(j)), false)?;
                }
                Ok(())
            })
            .unwrap();
            if round % 10 == 0 {
                let r = 2_000 + round / 10;
                keys.add(Key::new(format!("revoked-{r}"), key(r))).unwrap();
                keys.revoke(&format!("revoked-{r}")).unwrap();
                revoked_up_to.store(r - 2_000 + 1, Ordering::Release);
            }
        }
        done.store(true, Ordering::Release);
    });
}
