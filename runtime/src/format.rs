//! [`KeyFormat`]: generated keys that carry their own checksum, GitHub-token style.

use crate::error::{ConfigError, ConfigErrorKind};

/// How many random base62 characters a generated key holds: 178 bits of entropy.
const RANDOM_LEN: usize = 30;
/// How many base62 characters encode the CRC-32 checksum.
const CHECKSUM_LEN: usize = 6;
/// The longest prefix a format accepts.
const MAX_PREFIX_LEN: usize = 16;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The shape of generated keys: `prefix_`, 30 random base62 characters from the operating
/// system's CSPRNG, and a 6-character base62 CRC-32 of everything before it.
///
/// The prefix makes a leaked key recognisable (to people and to secret scanners), and the
/// checksum lets a store with this format refuse typos and garbage before any hashing or lookup.
///
/// ```
/// use axum_api_key::KeyFormat;
///
/// let format = KeyFormat::new("myapp")?;
/// let key = format.generate();
/// assert!(key.starts_with("myapp_") && key.len() == "myapp_".len() + 36);
/// assert!(format.is_well_formed(key.as_bytes()));
/// assert!(!format.is_well_formed(key.replace('_', "-").as_bytes()));
/// # Ok::<(), axum_api_key::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFormat {
    prefix: Box<str>,
}

impl KeyFormat {
    /// A format with this prefix: 1 to 16 ASCII letters and digits.
    pub fn new(prefix: &str) -> Result<Self, ConfigError> {
        if !is_prefix(prefix.as_bytes()) {
            return Err(ConfigError::new(ConfigErrorKind::InvalidPrefix));
        }
        Ok(Self {
            prefix: prefix.into(),
        })
    }

    /// The prefix, without the `_` that follows it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A new key. It is returned once and kept nowhere: hand it to its owner and store its
    /// [`digest`](crate::digest).
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random bytes, which leaves no safe way to make a
    /// key.
    pub fn generate(&self) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 1 + RANDOM_LEN + CHECKSUM_LEN);
        key.push_str(&self.prefix);
        key.push('_');
        let mut random = 0;
        let mut bytes = [0u8; 64];
        while random < RANDOM_LEN {
            if let Err(error) = getrandom::fill(&mut bytes) {
                panic!("KeyFormat::generate: the operating system gave no random bytes: {error}");
            }
            // 248 = 4 × 62: bytes above it are dropped so that every character is equally likely.
            for &byte in bytes
                .iter()
                .filter(|&&byte| byte < 248)
                .take(RANDOM_LEN - random)
            {
                key.push(char::from(BASE62[usize::from(byte % 62)]));
                random += 1;
            }
        }
        let sum = checksum(key.as_bytes());
        key.extend(sum.iter().map(|&digit| char::from(digit)));
        key
    }

    /// Whether `key` is a key of this format: the prefix, the length, the characters and the
    /// checksum all right. Costs a CRC-32 of about 40 bytes, far less than a SHA-256.
    pub fn is_well_formed(&self, key: &[u8]) -> bool {
        Self::prefix_of(key).is_some_and(|prefix| prefix.as_bytes() == self.prefix.as_bytes())
    }

    /// The prefix of a well-formed generated key of any format.
    pub(crate) fn prefix_of(key: &[u8]) -> Option<&str> {
        let body_len = RANDOM_LEN + CHECKSUM_LEN;
        let split = key.len().checked_sub(body_len + 1)?;
        let (head, body) = key.split_at(split);
        let [b'_', body @ ..] = body else { return None };
        if !is_prefix(head) || !body.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        let (signed, sum) = key.split_at(key.len() - CHECKSUM_LEN);
        if checksum(signed) != sum {
            return None;
        }
        std::str::from_utf8(head).ok()
    }
}

/// A prefix a format accepts: 1 to 16 ASCII letters and digits.
fn is_prefix(prefix: &[u8]) -> bool {
    !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix.iter().all(u8::is_ascii_alphanumeric)
}

/// The CRC-32 of `bytes` as six base62 digits; no allocation, as stores check it per request.
fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = u64::from(crc32(bytes));
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[usize::try_from(value % 62).unwrap_or_default()];
        value /= 62;
    }
    digits
}

/// CRC-32 (ISO-HDLC, as in zlib and PNG), bit by bit: keys are short.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let format = KeyFormat::new("myapp").unwrap();
        let keys: Vec<String> = (0..200).map(|_| format.generate()).collect();
        for key in &keys {
            assert!(format.is_well_formed(key.as_bytes()), "{key}");
            assert_eq!(KeyFormat::prefix_of(key.as_bytes()), Some("myapp"));
            assert!(key[6..].bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let format = KeyFormat::new("ab").unwrap();
        let key = format.generate().into_bytes();
        for at in 0..key.len() {
            for replacement in BASE62.iter().chain(b"_-") {
                if *replacement == key[at] {
                    continue;
                }
                let mut typo = key.clone();
                typo[at] = *replacement;
                // CRC-32 detects every single-byte change.
                assert!(
                    !format.is_well_formed(&typo),
                    "{}",
                    String::from_utf8_lossy(&typo)
                );
            }
        }
        assert!(!format.is_well_formed(&key[..key.len() - 1]));
        assert!(!KeyFormat::new("other").unwrap().is_well_formed(&key));
    }

    #[test]
    fn prefixes_are_short_and_alphanumeric() {
        assert!(KeyFormat::new("").is_err());
        assert!(KeyFormat::new("my_app").is_err());
        assert!(KeyFormat::new("a".repeat(17).as_str()).is_err());
        assert!(KeyFormat::new("MyApp2").is_ok());
    }
}
