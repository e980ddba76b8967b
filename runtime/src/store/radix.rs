//! [`Radix`]: a persistent map from a 64-bit hash to small groups of values, which copies only
//! the path to a group when it changes.
//!
//! Three levels of 64 slots, indexed by the hash's top 18 bits, lead to the groups (a handful
//! of values each at a million values). Cloning the map is one reference count; changing a
//! group copies it and the three nodes above it, and shares everything else with the map it
//! came from. A change costs about the same at a thousand values and at a million, and a reader
//! of one version never sees another's changes: it is what lets a key store change without
//! copying itself, and without a request ever waiting. (Wider nodes make a change dearer, since
//! a copy increments the reference count of every child; narrower ones make the path longer,
//! and a lookup of a key not in cache waits on memory once per level. Six levels of eight made
//! lookups spread over a million keys 1.6 times slower than three of 64.)

use std::sync::Arc;

const BITS: u32 = 6;
const FAN: usize = 1 << BITS;
const DEPTH: u32 = 3;

/// A node: branches above the last level, groups of values at it.
// The branch nodes are the 65 above the last level: boxing the larger variant would cost every
// lookup one more indirection to save at most 33 KiB.
#[allow(clippy::large_enum_variant)]
enum Node<T> {
    Branches([Option<Arc<Node<T>>>; FAN]),
    Groups([Option<Arc<[T]>>; FAN]),
}

impl<T> Clone for Node<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Branches(children) => Self::Branches(children.clone()),
            Self::Groups(groups) => Self::Groups(groups.clone()),
        }
    }
}

impl<T> Node<T> {
    fn empty(level: u32) -> Self {
        if level + 1 == DEPTH {
            Self::Groups([const { None }; FAN])
        } else {
            Self::Branches([const { None }; FAN])
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Self::Branches(children) => children.iter().all(Option::is_none),
            Self::Groups(groups) => groups.iter().all(Option::is_none),
        }
    }
}

/// A persistent map from the top bits of a hash to the values with that hash prefix.
pub(crate) struct Radix<T> {
    root: Option<Arc<Node<T>>>,
}

impl<T> Clone for Radix<T> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
        }
    }
}

impl<T> Default for Radix<T> {
    fn default() -> Self {
        Self { root: None }
    }
}

/// The slot of `hash` in a node of `level`.
fn slot(hash: u64, level: u32) -> usize {
    ((hash >> (64 - BITS * (level + 1))) as usize) & (FAN - 1)
}

impl<T: Clone> Radix<T> {
    /// The values whose hash shares `hash`'s prefix: a handful in any map.
    pub(crate) fn group(&self, hash: u64) -> &[T] {
        let mut node = match &self.root {
            Some(root) => &**root,
            None => return &[],
        };
        let mut level = 0;
        loop {
            match node {
                Node::Branches(children) => match &children[slot(hash, level)] {
                    Some(child) => node = child,
                    None => return &[],
                },
                Node::Groups(groups) => {
                    return groups[slot(hash, level)].as_deref().unwrap_or(&[]);
                }
            }
            level += 1;
        }
    }

    /// Changes the group of `hash` with `change`, copying only the path to it. An emptied
    /// group, and a node left without children, are dropped.
    pub(crate) fn change<R>(&mut self, hash: u64, change: impl FnOnce(&mut Vec<T>) -> R) -> R {
        change_in(&mut self.root, 0, hash, change)
    }

    /// Every value, group by group.
    pub(crate) fn values(&self) -> Vec<T> {
        fn collect<T: Clone>(node: &Node<T>, out: &mut Vec<T>) {
            match node {
                Node::Branches(children) => {
                    children.iter().flatten().for_each(|c| collect(c, out));
                }
                Node::Groups(groups) => {
                    groups
                        .iter()
                        .flatten()
                        .for_each(|g| out.extend_from_slice(g));
                }
            }
        }
        let mut out = Vec::new();
        if let Some(root) = &self.root {
            collect(root, &mut out);
        }
        out
    }
}

fn change_in<T: Clone, R>(
    slot_of_node: &mut Option<Arc<Node<T>>>,
    level: u32,
    hash: u64,
    change: impl FnOnce(&mut Vec<T>) -> R,
) -> R {
    let node = Arc::make_mut(slot_of_node.get_or_insert_with(|| Arc::new(Node::empty(level))));
    let out = match node {
        Node::Branches(children) => {
            change_in(&mut children[slot(hash, level)], level + 1, hash, change)
        }
        Node::Groups(groups) => {
            let group = &mut groups[slot(hash, level)];
            let mut values = group.as_deref().map(<[T]>::to_vec).unwrap_or_default();
            let out = change(&mut values);
            *group = (!values.is_empty()).then(|| values.into());
            out
        }
    };
    if node.is_empty() {
        *slot_of_node = None;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    #[test]
    fn groups_hold_what_was_put_and_versions_stay_apart() {
        let mut map = Radix::default();
        for i in 0u64..10_000 {
            map.change(spread(i), |group| group.push(i));
        }
        let before = map.clone();
        map.change(spread(7), |group| group.retain(|&v| v != 7));
        assert!(!map.group(spread(7)).contains(&7));
        assert!(
            before.group(spread(7)).contains(&7),
            "the earlier version is unchanged"
        );
        assert_eq!(map.values().len(), 9_999);
        assert_eq!(before.values().len(), 10_000);
        for i in (0u64..10_000).filter(|&i| i != 7) {
            assert!(map.group(spread(i)).contains(&i));
        }
        // Hashes that differ only below the indexed bits share a group.
        map.change(0, |group| group.push(1));
        map.change(1, |group| group.push(2));
        assert_eq!(map.group(0), map.group(0x3FFF_FFFF_FFFF));
        // Emptied groups and nodes go away.
        let mut single = Radix::default();
        single.change(u64::MAX, |group| group.push(1));
        single.change(u64::MAX, Vec::clear);
        assert!(single.root.is_none());
        assert!(single.group(u64::MAX).is_empty());
    }
}
