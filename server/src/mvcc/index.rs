//! The in-memory key index: for every key, the revisions at which it changed.
//!
//! Values live in the backend, addressed by revision; the index answers "which revision of
//! this key is visible at revision R" and keeps the live version's metadata so Txn compares
//! and Puts need no disk read. It is rebuilt from the backend at start.

use std::collections::BTreeMap;
use std::ops::Bound;

/// A (main, sub) revision: main is the store revision of a write batch, sub the position of a
/// change inside it (a Txn with several writes shares one main revision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// Metadata of the live version of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyMeta {
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// The change history of one key, oldest first.
#[derive(Debug, Clone, Default)]
pub struct KeyHistory {
    /// Revisions still on disk; `true` marks a tombstone (a delete).
    pub revs: Vec<(Revision, bool)>,
    /// The live version, `None` when the key is currently deleted.
    pub live: Option<KeyMeta>,
}

impl KeyHistory {
    /// The revision of the version visible at store revision `at`, if the key existed then.
    pub fn visible_at(&self, at: i64) -> Option<Revision> {
        let idx = self.revs.partition_point(|(r, _)| r.main <= at);
        match idx.checked_sub(1).map(|i| self.revs[i]) {
            Some((rev, false)) => Some(rev),
            _ => None,
        }
    }

    /// The revision that a change at `rev` replaced, if that was a live version.
    pub fn previous_live(&self, rev: Revision) -> Option<Revision> {
        let idx = self.revs.partition_point(|(r, _)| *r < rev);
        match idx.checked_sub(1).map(|i| self.revs[i]) {
            Some((prev, false)) => Some(prev),
            _ => None,
        }
    }

    /// Drops history superseded at `at`, keeping the version visible then (unless it is a
    /// tombstone older than `at`). Returns the removed revisions.
    pub fn compact(&mut self, at: i64) -> Vec<Revision> {
        let idx = self.revs.partition_point(|(r, _)| r.main <= at);
        if idx == 0 {
            return Vec::new();
        }
        // The newest revision at or below `at` stays (what a read at `at` sees), except a
        // tombstone below `at`. A tombstone at `at` itself stays too: a watch may start at
        // the compaction revision and must see that delete (etcd 3.4.33+, etcd PR 18274).
        let (last, tombstone) = self.revs[idx - 1];
        let keep_from = if tombstone && last.main < at {
            idx
        } else {
            idx - 1
        };
        self.revs.drain(..keep_from).map(|(r, _)| r).collect()
    }
}

/// A key range as etcd encodes it: `end == None` is the single key, an empty `end` (from a
/// `"\0"` range end) means every key `>= start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// Builds a range from a request's `key` and `range_end` fields.
    pub fn from_request(key: &[u8], range_end: &[u8]) -> KeyRange {
        let end = match range_end {
            [] => None,
            [0] => Some(Vec::new()),
            e => Some(e.to_vec()),
        };
        KeyRange {
            start: key.to_vec(),
            end,
        }
    }

    pub fn single(key: &[u8]) -> KeyRange {
        KeyRange {
            start: key.to_vec(),
            end: None,
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            None => key == self.start.as_slice(),
            Some(end) if end.is_empty() => key >= self.start.as_slice(),
            Some(end) => key >= self.start.as_slice() && key < end.as_slice(),
        }
    }

    /// True when the range can hold no key (an end at or below the start).
    pub fn is_empty(&self) -> bool {
        matches!(&self.end, Some(end) if !end.is_empty() && end.as_slice() <= self.start.as_slice())
    }

    /// True when both ranges can contain a common key.
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        let (a_end, b_end) = (self.exclusive_end(), other.exclusive_end());
        let a_before_b_end = b_end.as_ref().is_none_or(|e| self.start < *e);
        let b_before_a_end = a_end.as_ref().is_none_or(|e| other.start < *e);
        a_before_b_end && b_before_a_end
    }

    /// The exclusive upper bound, `None` for unbounded.
    fn exclusive_end(&self) -> Option<Vec<u8>> {
        match &self.end {
            None => {
                let mut e = self.start.clone();
                e.push(0);
                Some(e)
            }
            Some(e) if e.is_empty() => None,
            Some(e) => Some(e.clone()),
        }
    }

    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        let start = Bound::Included(self.start.as_slice());
        match &self.end {
            None => (start, Bound::Included(self.start.as_slice())),
            Some(e) if e.is_empty() => (start, Bound::Unbounded),
            Some(e) => (start, Bound::Excluded(e.as_slice())),
        }
    }
}

/// Key → history, ordered by key.
#[derive(Debug, Default)]
pub struct KeyIndex {
    keys: BTreeMap<Vec<u8>, KeyHistory>,
}

impl KeyIndex {
    pub fn get(&self, key: &[u8]) -> Option<&KeyHistory> {
        self.keys.get(key)
    }

    /// The history of `key`, created empty when the key is new (one search of the index).
    pub fn get_or_insert(&mut self, key: &[u8]) -> &mut KeyHistory {
        self.keys.entry(key.to_vec()).or_default()
    }

    /// Histories of the keys in `range`, in key order.
    pub fn range<'a>(
        &'a self,
        range: &'a KeyRange,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a KeyHistory)> + 'a {
        // BTreeMap::range panics on an end below the start; such a range holds no key.
        let (lo, hi) = if range.is_empty() {
            let start = range.start.as_slice();
            (Bound::Included(start), Bound::Excluded(start))
        } else {
            range.bounds()
        };
        self.keys.range::<[u8], _>((lo, hi))
    }

    /// Compacts every key at `at`, dropping keys left without history.
    pub fn compact(&mut self, at: i64) -> Vec<Revision> {
        let mut removed = Vec::new();
        self.keys.retain(|_, h| {
            removed.extend(h.compact(at));
            !h.revs.is_empty()
        });
        removed
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision { main, sub: 0 }
    }

    /// A key put at revisions 2 and 4, deleted at 6 and put again at 8.
    fn puts_at_2_4_delete_at_6_put_at_8() -> KeyHistory {
        KeyHistory {
            revs: vec![
                (rev(2), false),
                (rev(4), false),
                (rev(6), true),
                (rev(8), false),
            ],
            live: None,
        }
    }

    #[test]
    fn visibility_follows_puts_and_tombstones() {
        let h = puts_at_2_4_delete_at_6_put_at_8();
        assert_eq!(h.visible_at(1), None);
        assert_eq!(h.visible_at(2), Some(rev(2)));
        assert_eq!(h.visible_at(5), Some(rev(4)));
        assert_eq!(h.visible_at(6), None);
        assert_eq!(h.visible_at(7), None);
        assert_eq!(h.visible_at(100), Some(rev(8)));
        assert_eq!(h.previous_live(rev(4)), Some(rev(2)));
        assert_eq!(h.previous_live(rev(8)), None);
    }

    #[test]
    fn compaction_keeps_visible_version_and_drops_tombstones() {
        let mut h = puts_at_2_4_delete_at_6_put_at_8();
        assert_eq!(h.compact(5), vec![rev(2)]);
        assert_eq!(h.visible_at(5), Some(rev(4)));
        // A tombstone at the compaction revision itself stays, for watches starting there.
        assert_eq!(h.compact(6), vec![rev(4)]);
        assert_eq!(h.revs, vec![(rev(6), true), (rev(8), false)]);
        assert_eq!(h.visible_at(6), None);
        assert_eq!(h.compact(7), vec![rev(6)]);
        assert_eq!(h.revs, vec![(rev(8), false)]);
    }

    #[test]
    fn ranges_follow_etcd_encoding() {
        let all = KeyRange::from_request(b"\0", b"\0");
        assert!(all.contains(b"a") && all.contains(b"zzz"));
        let prefix = KeyRange::from_request(b"a", b"b");
        assert!(prefix.contains(b"a1") && !prefix.contains(b"b"));
        let single = KeyRange::from_request(b"a", b"");
        assert!(single.contains(b"a") && !single.contains(b"a1"));
        assert!(KeyRange::from_request(b"b", b"a").is_empty());
        let mut index = KeyIndex::default();
        index.get_or_insert(b"a");
        index.get_or_insert(b"b");
        let inverted = KeyRange::from_request(b"b", b"a");
        assert_eq!(index.range(&inverted).count(), 0);
        assert!(single.overlaps(&prefix));
        assert!(!KeyRange::single(b"b").overlaps(&prefix));
        assert!(KeyRange::from_request(b"x", b"\0").overlaps(&KeyRange::single(b"y")));
    }
}
