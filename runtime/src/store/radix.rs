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

/// One level of the map. The levels are types, not variants of one node type: a lookup knows
/// from the type which kind of node it is in and reads only the slot it needs, where a tag
/// would cost a second cache line per level (and, at a million keys, the node below the root's
/// children is rarely in cache).
trait Level<T>: Clone {
    fn empty() -> Self;
    fn is_empty(&self) -> bool;
    fn group(&self, hash: u64, level: u32) -> &[T];
    /// Changes the group of `hash`; returns what `change` returned, and whether this node was
    /// left empty.
    fn change<R>(
        &mut self,
        hash: u64,
        level: u32,
        change: impl FnOnce(&mut Vec<T>) -> R,
    ) -> (R, bool);
    fn collect(&self, out: &mut Vec<T>);
}

/// The last level: groups of values.
struct Groups<T> {
    groups: [Option<Arc<[T]>>; FAN],
}

/// A level above the last: nodes of the level below.
struct Branch<C> {
    children: [Option<Arc<C>>; FAN],
}

impl<T> Clone for Groups<T> {
    fn clone(&self) -> Self {
        Self {
            groups: self.groups.clone(),
        }
    }
}

impl<C> Clone for Branch<C> {
    fn clone(&self) -> Self {
        Self {
            children: self.children.clone(),
        }
    }
}

impl<T: Clone> Level<T> for Groups<T> {
    fn empty() -> Self {
        Self {
            groups: [const { None }; FAN],
        }
    }

    fn is_empty(&self) -> bool {
        self.groups.iter().all(Option::is_none)
    }

    fn group(&self, hash: u64, level: u32) -> &[T] {
        self.groups[slot(hash, level)].as_deref().unwrap_or(&[])
    }

    fn change<R>(
        &mut self,
        hash: u64,
        level: u32,
        change: impl FnOnce(&mut Vec<T>) -> R,
    ) -> (R, bool) {
        let group = &mut self.groups[slot(hash, level)];
        let mut values = group.as_deref().map(<[T]>::to_vec).unwrap_or_default();
        let out = change(&mut values);
        let emptied = values.is_empty();
        *group = (!emptied).then(|| values.into());
        // Only a group that went away can have left the node empty.
        (out, emptied && self.is_empty())
    }

    fn collect(&self, out: &mut Vec<T>) {
        self.groups
            .iter()
            .flatten()
            .for_each(|group| out.extend_from_slice(group));
    }
}

impl<T: Clone, C: Level<T>> Level<T> for Branch<C> {
    fn empty() -> Self {
        Self {
            children: [const { None }; FAN],
        }
    }

    fn is_empty(&self) -> bool {
        self.children.iter().all(Option::is_none)
    }

    fn group(&self, hash: u64, level: u32) -> &[T] {
        match &self.children[slot(hash, level)] {
            Some(child) => child.group(hash, level + 1),
            None => &[],
        }
    }

    fn change<R>(
        &mut self,
        hash: u64,
        level: u32,
        change: impl FnOnce(&mut Vec<T>) -> R,
    ) -> (R, bool) {
        let (out, emptied) =
            change_child(&mut self.children[slot(hash, level)], hash, level, change);
        (out, emptied && self.is_empty())
    }

    fn collect(&self, out: &mut Vec<T>) {
        self.children
            .iter()
            .flatten()
            .for_each(|child| child.collect(out));
    }
}

/// Changes the node in `child` (made if there is none, copied if it is shared), and drops it
/// if the change left it empty; returns whether it did.
fn change_child<T, C: Level<T>, R>(
    child: &mut Option<Arc<C>>,
    hash: u64,
    level: u32,
    change: impl FnOnce(&mut Vec<T>) -> R,
) -> (R, bool) {
    let node = Arc::make_mut(child.get_or_insert_with(|| Arc::new(C::empty())));
    let (out, emptied) = node.change(hash, level + 1, change);
    if emptied {
        *child = None;
    }
    (out, emptied)
}

/// The three levels: 2^18 groups, a handful of values each at a million values.
type Root<T> = Branch<Branch<Groups<T>>>;

/// A persistent map from the top bits of a hash to the values with that hash prefix.
pub(crate) struct Radix<T> {
    root: Option<Arc<Root<T>>>,
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
        match &self.root {
            Some(root) => root.group(hash, 0),
            None => &[],
        }
    }

    /// Changes the group of `hash` with `change`, copying only the path to it. An emptied
    /// group, and a node left without children, are dropped.
    pub(crate) fn change<R>(&mut self, hash: u64, change: impl FnOnce(&mut Vec<T>) -> R) -> R {
        let root = Arc::make_mut(self.root.get_or_insert_with(|| Arc::new(Root::empty())));
        let (out, emptied) = root.change(hash, 0, change);
        if emptied {
            self.root = None;
        }
        out
    }

    /// Every value, group by group.
    pub(crate) fn values(&self) -> Vec<T> {
        let mut out = Vec::new();
        if let Some(root) = &self.root {
            root.collect(&mut out);
        }
        out
    }
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
