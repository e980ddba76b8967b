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

/// A key's last use (seconds since 1970; 0 for never), in 32 bits: beside a record's flags it
/// takes no word of its own, and it holds every second until 2106.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LastUsed(pub(crate) u32);

/// A key's scopes, in one word: most keys have none, and those that have some pay the word's
/// allocation rather than every record a second word.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Scopes(Option<Box<Box<[Box<str>]>>>);

impl std::ops::Deref for Scopes {
    type Target = [Box<str>];

    fn deref(&self) -> &[Box<str>] {
        self.0.as_deref().map_or(&[], |scopes| scopes)
    }
}

impl From<Box<[Box<str>]>> for Scopes {
    fn from(scopes: Box<[Box<str>]>) -> Self {
        Self((!scopes.is_empty()).then(|| Box::new(scopes)))
    }
}

impl From<Vec<Box<str>>> for Scopes {
    fn from(scopes: Vec<Box<str>>) -> Self {
        scopes.into_boxed_slice().into()
    }
}

impl FromIterator<Box<str>> for Scopes {
    fn from_iter<I: IntoIterator<Item = Box<str>>>(scopes: I) -> Self {
        scopes.into_iter().collect::<Vec<_>>().into()
    }
}

impl std::fmt::Debug for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

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
