//! Where a record's fields sit, for the lookup that reads them.

use super::KeyRecord;
use std::mem::{offset_of, size_of};

/// What a lookup reads of a record (the digest it compares, whether the key is revoked,
/// disabled, or has validity times) shares the first cache line with the reference count it
/// increments: at a million keys the record is not in cache, and a field further in would cost
/// a second miss.
#[test]
fn what_a_lookup_reads_sits_in_the_first_line_of_the_record() {
    // An `Arc`'s counts are the first 16 bytes of its allocation.
    let line = 64 - 16;
    for (field, offset) in [
        ("revoked", offset_of!(KeyRecord, revoked)),
        ("disabled", offset_of!(KeyRecord, disabled)),
        ("validity", offset_of!(KeyRecord, validity)),
        ("digest", offset_of!(KeyRecord, digest) + 24),
    ] {
        assert!(offset + 8 <= line, "{field} at {offset}");
    }
}

/// A record and its `Arc`'s counts fill a 128-byte allocator chunk exactly (glibc serves
/// `16 + 104` bytes from one, with its 8-byte header), so that the records of a store lie at
/// one stride and each sits alike across cache lines: at 112 bytes they took 144-byte chunks,
/// each 16 bytes further across a line than the last, and at 128, 160-byte chunks.
#[test]
fn a_record_and_its_counts_fit_a_128_byte_chunk() {
    assert!(size_of::<KeyRecord>() <= 104, "{}", size_of::<KeyRecord>());
}

/// The last use held in 32 bits only moves forward, and a time past what they hold (2106) is
/// held as their last second rather than wrapping to a time long past.
#[test]
fn a_last_use_moves_forward_and_saturates() {
    let mut record = KeyRecord::default();
    assert_eq!(record.last_used(), 0);
    record.used_at(1_800_000_000);
    record.used_at(1_700_000_000);
    assert_eq!(record.last_used(), 1_800_000_000);
    record.used_at(u64::from(u32::MAX) + 10);
    assert_eq!(record.last_used(), u64::from(u32::MAX));
}

/// Scopes in one word: none is no allocation, and some read back as they were given.
#[test]
fn scopes_read_back_as_given() {
    let none = super::Scopes::from(Vec::new());
    assert!(none.is_empty());
    assert_eq!(format!("{none:?}"), "[]");
    let some = super::Scopes::from(vec![Box::<str>::from("a:read"), "b:write".into()]);
    assert_eq!(&*some, &[Box::<str>::from("a:read"), "b:write".into()][..]);
    assert_eq!(format!("{some:?}"), r#"["a:read", "b:write"]"#);
    assert_eq!(size_of::<super::Scopes>(), 8);
}
