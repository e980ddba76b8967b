//! What every store holds to: the longest key hashed, the shortest key accepted, the longest
//! id, and the digest kept instead of a key.

/// The longest key, in bytes, that is ever hashed. Longer keys are refused before any work.
///
/// Generous for any real key (a 256-bit random key is 43 characters in base64) while bounding the
/// work an attacker can make one request cost.
pub const MAX_KEY_LEN: usize = 256;

/// The longest key id, in bytes, in every store: ids are logged and shown to key holders.
pub const MAX_ID_LEN: usize = 128;

/// The shortest key, in bytes, that a store accepts in plaintext (`API_KEYS`, [`Key::new`](super::Key::new)):
/// a shorter one is short enough to guess. Generated keys are far longer.
pub const MIN_KEY_LEN: usize = 16;

/// The SHA-256 digest of a key: what the store holds instead of the key.
pub type KeyDigest = [u8; 32];
