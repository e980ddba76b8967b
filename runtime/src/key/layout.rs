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
    assert!(size_of::<KeyRecord>() <= 128, "{}", size_of::<KeyRecord>());
}
