//! The backend contract, checked against both implementations, and their own tests.

use std::collections::BTreeMap;

use super::*;

/// The contract every backend must keep.
fn conformance(b: &dyn Backend) {
    let mut batch = WriteBatch::default();
    batch.put(b"b".to_vec(), b"2".to_vec());
    batch.put(b"a".to_vec(), b"1".to_vec());
    batch.put(b"c".to_vec(), b"3".to_vec());
    b.write(batch).unwrap();
    assert_eq!(b.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(b.get(b"z").unwrap(), None);
    let keys: Vec<_> = b.scan(b"a", b"c").map(|r| r.unwrap().0).collect();
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
    let all: Vec<_> = b.scan(b"", b"").map(|r| r.unwrap().0).collect();
    assert_eq!(all.len(), 3);
    let mut batch = WriteBatch::default();
    batch.delete(b"a".to_vec());
    batch.put(b"b".to_vec(), b"22".to_vec());
    b.write(batch).unwrap();
    b.flush().unwrap();
    assert_eq!(b.get(b"a").unwrap(), None);
    assert_eq!(b.get(b"b").unwrap(), Some(b"22".to_vec()));
}

/// Runs `open` until sled lets go of the lock file: its io threads may hold a database's
/// lock for a moment after the last handle of an earlier open in this process dropped.
pub(crate) fn when_unlocked<T>(mut open: impl FnMut() -> Result<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open() {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            opened => return opened.unwrap(),
        }
    }
}

#[test]
fn sled_backend_conforms_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = SledBackend::open_db(dir.path()).unwrap();
        conformance(&SledBackend::new(&db, "t").unwrap());
    }
    let db = when_unlocked(|| SledBackend::open_db(dir.path()));
    let b = SledBackend::new(&db, "t").unwrap();
    assert_eq!(b.get(b"b").unwrap(), Some(b"22".to_vec()));
    assert_eq!(b.get(b"c").unwrap(), Some(b"3".to_vec()));
}

/// A key of mvcc's revision key space: prefix, main and sub revision.
fn rev(main: u64, sub: u64) -> Vec<u8> {
    let mut k = vec![packed::PREFIX];
    k.extend_from_slice(&main.to_be_bytes());
    k.extend_from_slice(&sub.to_be_bytes());
    k
}

/// Random puts, removals, reads and scans of plain and revision keys, each checked
/// against an ordered map; then the same after reopening.
#[test]
fn sled_backend_reads_revision_keys_as_written_though_it_packs_them() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let plain: Vec<Vec<u8>> = [&b""[..], b"a", b"l\0\x01", b"m/rev", b"q\xff", b"s", b"z"]
        .iter()
        .map(|k| k.to_vec())
        .collect();
    let key = |next: &mut dyn FnMut(u64) -> u64| match next(4) {
        0 => plain[next(plain.len() as u64) as usize].clone(),
        _ => rev(next(70), next(3)),
    };
    let bound = |next: &mut dyn FnMut(u64) -> u64, key: Vec<u8>| match next(4) {
        0 => Vec::new(),
        1 => key[..next(key.len() as u64 + 1) as usize].to_vec(),
        _ => key,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    {
        let db = SledBackend::open_db(dir.path()).unwrap();
        let b = SledBackend::new(&db, "t").unwrap();
        for round in 0..300 {
            let mut batch = WriteBatch::default();
            for _ in 0..next(20) {
                let k = key(&mut next);
                if next(4) == 0 {
                    model.remove(&k);
                    batch.delete(k);
                } else {
                    let v = format!("{round}").repeat(next(40) as usize).into_bytes();
                    model.insert(k.clone(), v.clone());
                    batch.put(k, v);
                }
            }
            b.write(batch).unwrap();
            let k = key(&mut next);
            assert_eq!(b.get(&k).unwrap(), model.get(&k).cloned(), "get {k:?}");
            let (start, end) = (key(&mut next), key(&mut next));
            let (start, end) = (bound(&mut next, start), bound(&mut next, end));
            let scanned: Vec<Pair> = b.scan(&start, &end).map(|p| p.unwrap()).collect();
            let expected: Vec<Pair> = model
                .iter()
                .filter(|(k, _)| **k >= start && (end.is_empty() || **k < end))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(scanned, expected, "scan {start:?}..{end:?}");
        }
        b.flush().unwrap();
    }
    let db = when_unlocked(|| SledBackend::open_db(dir.path()));
    let b = SledBackend::new(&db, "t").unwrap();
    let all: Vec<Pair> = b.scan(&[], &[]).map(|p| p.unwrap()).collect();
    assert_eq!(all, model.into_iter().collect::<Vec<_>>());
    // Stored: plain keys and blocks, no revision key of its own.
    assert!(b.scan_stored().all(|p| !packed::is_packed(&p.unwrap().0)));
    // The revision key space holds revision keys only.
    let mut batch = WriteBatch::default();
    batch.put(b"r1".to_vec(), b"v".to_vec());
    assert!(b.write(batch).is_err());
    let buffered = BufferedBackend::new(b);
    let mut batch = WriteBatch::default();
    batch.put(b"r1".to_vec(), b"v".to_vec());
    assert!(buffered.write(batch).is_err());
    assert_eq!(buffered.get(b"r1").unwrap(), None);
}

#[test]
fn revision_keys_stored_one_by_one_are_packed_and_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let db = SledBackend::open_db(dir.path()).unwrap();
    let tree = db.open_tree("t").unwrap();
    let mut expected = BTreeMap::new();
    for main in 0..25_000u64 {
        let (k, v) = (rev(main, main % 2), main.to_string().into_bytes());
        tree.insert(&k, v.clone()).unwrap();
        expected.insert(k, v);
    }
    tree.insert(b"m/rev", b"x".to_vec()).unwrap();
    expected.insert(b"m/rev".to_vec(), b"x".to_vec());
    let b = SledBackend::new(&db, "t").unwrap();
    b.pack_unpacked_revisions().unwrap();
    assert!(b.scan_stored().all(|p| !packed::is_packed(&p.unwrap().0)));
    let all: BTreeMap<Vec<u8>, Vec<u8>> = b.scan(&[], &[]).map(|p| p.unwrap()).collect();
    assert_eq!(all, expected);
    assert_eq!(b.get(&rev(24_999, 1)).unwrap(), Some(b"24999".to_vec()));
    assert_eq!(b.get(&rev(24_999, 0)).unwrap(), None);
}

#[test]
fn buffered_backend_conforms_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = SledBackend::open_db(dir.path()).unwrap();
        conformance(&BufferedBackend::new(SledBackend::new(&db, "t").unwrap()));
    }
    let db = when_unlocked(|| SledBackend::open_db(dir.path()));
    let b = SledBackend::new(&db, "t").unwrap();
    assert_eq!(b.get(b"b").unwrap(), Some(b"22".to_vec()));
    assert_eq!(b.get(b"c").unwrap(), Some(b"3".to_vec()));
}

fn keys_and_values(b: &dyn Backend, start: &[u8], end: &[u8]) -> Vec<(String, String)> {
    b.scan(start, end)
        .map(|r| {
            let (k, v) = r.unwrap();
            (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())
        })
        .collect()
}

#[test]
fn buffered_writes_overlay_committed_ones_until_committed_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let db = SledBackend::open_db(dir.path()).unwrap();
    let base = SledBackend::new(&db, "t").unwrap();
    let b = BufferedBackend::new(base.clone());
    let mut batch = WriteBatch::default();
    for k in ["a", "c", "e", "g"] {
        batch.put(k, format!("{k}1"));
    }
    b.write(batch).unwrap();
    assert!(base.get(b"a").unwrap().is_none(), "still buffered");
    b.commit().unwrap();
    assert_eq!(base.get(b"a").unwrap(), Some(b"a1".to_vec()));

    let mut batch = WriteBatch::default();
    batch.delete("a");
    batch.put("b", "b2");
    batch.put("c", "c2");
    batch.delete("e");
    batch.put("h", "h2");
    batch.delete("zz");
    b.write(batch).unwrap();
    let expect = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        keys_and_values(&b, b"", b""),
        expect(&[("b", "b2"), ("c", "c2"), ("g", "g1"), ("h", "h2")])
    );
    assert_eq!(
        keys_and_values(&b, b"c", b"h"),
        expect(&[("c", "c2"), ("g", "g1")])
    );
    assert_eq!(keys_and_values(&b, b"d", b"g"), expect(&[]));
    assert_eq!(b.get(b"a").unwrap(), None);
    assert_eq!(b.get(b"g").unwrap(), Some(b"g1".to_vec()));
    // The written tree still holds the old values until the commit.
    assert_eq!(
        keys_and_values(&base, b"", b""),
        expect(&[("a", "a1"), ("c", "c1"), ("e", "e1"), ("g", "g1")])
    );
    b.commit().unwrap();
    assert_eq!(
        keys_and_values(&base, b"", b""),
        keys_and_values(&b, b"", b"")
    );
    assert!(!b.commit_due(), "nothing is waiting after a commit");

    b.write({
        let mut batch = WriteBatch::default();
        batch.put("x", "x3");
        batch
    })
    .unwrap();
    b.clear().unwrap();
    assert_eq!(keys_and_values(&b, b"", b""), expect(&[]));
    assert_eq!(keys_and_values(&base, b"", b""), expect(&[]));
}

#[test]
fn a_buffer_is_due_for_commit_once_it_has_waited() {
    let dir = tempfile::tempdir().unwrap();
    let db = SledBackend::open_db(dir.path()).unwrap();
    let b = BufferedBackend::new(SledBackend::new(&db, "t").unwrap());
    assert!(!b.commit_due());
    let mut batch = WriteBatch::default();
    batch.put("k", "v");
    b.write(batch).unwrap();
    std::thread::sleep(COMMIT_INTERVAL);
    assert!(b.commit_due());
}
