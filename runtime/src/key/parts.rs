//! Pieces of a key's record laid out small: a store holds a million records.

/// A key's digest in a record, as four words; equal to any other, as the digest is not what a
/// record says about its key.
#[derive(Clone, Copy, Default)]
pub(crate) struct StoredDigest(pub(crate) [u64; 4]);

impl PartialEq for StoredDigest {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for StoredDigest {}

/// A key's id, held in the record itself when short (as ids are) rather than in an allocation
/// of its own: a store of a million keys saves a million allocations.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum IdText {
    Inline { len: u8, bytes: [u8; 22] },
    Heap(Box<str>),
}

impl Default for IdText {
    fn default() -> Self {
        Self::Inline {
            len: 0,
            bytes: [0; 22],
        }
    }
}

impl From<&str> for IdText {
    fn from(id: &str) -> Self {
        match u8::try_from(id.len()) {
            Ok(len) if usize::from(len) <= 22 => {
                let mut bytes = [0; 22];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(id.into()),
        }
    }
}

impl std::ops::Deref for IdText {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            // Only ever filled from a `&str`, whole: the bytes are UTF-8.
            Self::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Self::Heap(id) => id,
        }
    }
}
