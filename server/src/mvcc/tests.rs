use super::*;
use crate::storage::SledBackend;

struct Fixture {
    _dir: tempfile::TempDir,
    db: sled::Db,
    backend: SledBackend,
    store: Store,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = SledBackend::open_db(dir.path()).unwrap();
        let backend = SledBackend::new(&db, "state").unwrap();
        Fixture {
            _dir: dir,
            db,
            backend,
            store: Store::default(),
        }
    }

    fn put(&mut self, key: &str, value: &str) -> i64 {
        let mut batch = WriteBatch::default();
        let mut txn = self.store.write(&self.backend, &mut batch);
        txn.put(key.as_bytes(), value.as_bytes().to_vec(), 0, false)
            .unwrap();
        let (rev, _) = txn.finish();
        self.backend.write(batch).unwrap();
        rev
    }

    fn delete(&mut self, key: &str, end: &str) -> (i64, usize) {
        let mut batch = WriteBatch::default();
        let mut txn = self.store.write(&self.backend, &mut batch);
        let n = txn
            .delete_range(&KeyRange::from_request(key.as_bytes(), end.as_bytes()))
            .unwrap()
            .len();
        let (rev, _) = txn.finish();
        self.backend.write(batch).unwrap();
        (rev, n)
    }

    fn get(&self, key: &str, rev: i64) -> Result<Option<KeyValue>> {
        let r = self.store.range(
            &self.backend,
            &KeyRange::single(key.as_bytes()),
            rev,
            0,
            false,
        )?;
        Ok(r.kvs.into_iter().next())
    }
}

#[test]
fn revisions_versions_and_history() {
    let mut f = Fixture::new();
    assert_eq!(f.put("a", "1"), 1);
    assert_eq!(f.put("a", "2"), 2);
    assert_eq!(f.put("b", "x"), 3);
    let a = f.get("a", 0).unwrap().unwrap();
    assert_eq!(
        (
            a.create_revision,
            a.mod_revision,
            a.version,
            a.value.as_slice()
        ),
        (1, 2, 2, b"2".as_slice())
    );
    assert_eq!(f.get("a", 1).unwrap().unwrap().value, b"1");
    assert_eq!(f.delete("a", ""), (4, 1));
    assert!(f.get("a", 0).unwrap().is_none());
    assert_eq!(
        f.delete("nothing", ""),
        (4, 0),
        "deleting nothing keeps the revision"
    );
    assert_eq!(f.put("a", "3"), 5);
    let a = f.get("a", 0).unwrap().unwrap();
    assert_eq!(
        (a.create_revision, a.version),
        (5, 1),
        "a new generation starts after delete"
    );
    assert_eq!(f.get("a", 3).unwrap().unwrap().value, b"2");
    assert_eq!(f.get("a", 6).unwrap_err(), Error::FutureRev);
}

#[test]
fn range_counts_and_limits() {
    let mut f = Fixture::new();
    for k in ["k1", "k2", "k3", "x"] {
        f.put(k, "v");
    }
    let r = f
        .store
        .range(&f.backend, &KeyRange::from_request(b"k", b"l"), 0, 2, false)
        .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.rev), (2, 3, 4));
    let r = f
        .store
        .range(
            &f.backend,
            &KeyRange::from_request(b"\0", b"\0"),
            0,
            0,
            true,
        )
        .unwrap();
    assert_eq!((r.kvs.len(), r.count), (0, 4));
    let r = f
        .store
        .range(
            &f.backend,
            &KeyRange::from_request(b"k", b"\0"),
            2,
            0,
            false,
        )
        .unwrap();
    assert_eq!(
        r.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        vec![b"k1".to_vec(), b"k2".to_vec()]
    );
}

#[test]
fn compaction_and_reload() {
    let mut f = Fixture::new();
    f.put("a", "1");
    f.put("a", "2");
    f.put("b", "1");
    f.delete("b", "");
    let mut batch = WriteBatch::default();
    f.store.compact(3, &mut batch).unwrap();
    f.backend.write(batch).unwrap();
    assert_eq!(f.get("a", 1).unwrap_err(), Error::Compacted);
    assert_eq!(f.get("a", 3).unwrap().unwrap().value, b"2");
    let mut batch = WriteBatch::default();
    assert_eq!(
        f.store.compact(3, &mut batch).unwrap_err(),
        Error::Compacted
    );
    assert_eq!(
        f.store.compact(9, &mut batch).unwrap_err(),
        Error::FutureRev
    );
    f.backend.flush().unwrap();
    drop(f.db);
    let reloaded = Store::load(&f.backend).unwrap();
    assert_eq!((reloaded.current_rev(), reloaded.compact_rev()), (4, 3));
    assert_eq!(reloaded.live(b"a").unwrap().version, 2);
    assert!(reloaded.live(b"b").is_none());
    let events = reloaded
        .events(&f.backend, &KeyRange::from_request(b"\0", b"\0"), 3, 4)
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].r#type, EventType::Delete as i32);
    assert_eq!(events[1].prev_kv.as_ref().unwrap().value, b"1");
}

#[test]
fn txn_reads_its_own_writes_at_one_revision() {
    let mut f = Fixture::new();
    f.put("a", "1");
    let mut batch = WriteBatch::default();
    let mut txn = f.store.write(&f.backend, &mut batch);
    txn.put(b"a", b"2".to_vec(), 0, false).unwrap();
    txn.put(b"b", b"3".to_vec(), 0, false).unwrap();
    let r = txn
        .range(&KeyRange::from_request(b"a", b"c"), 0, false)
        .unwrap();
    assert_eq!(
        r.kvs.iter().map(|kv| kv.value.clone()).collect::<Vec<_>>(),
        vec![b"2".to_vec(), b"3".to_vec()]
    );
    let (rev, events) = txn.finish();
    f.backend.write(batch).unwrap();
    assert_eq!((rev, events.len()), (2, 2));
    assert_eq!(f.get("b", 0).unwrap().unwrap().mod_revision, 2);
}

#[test]
fn puts_read_the_replaced_version_only_when_asked_or_watched() {
    let mut f = Fixture::new();
    f.store.set_event_interest(true, false);
    f.put("a", "1");
    let put = |f: &mut Fixture, value: &str, want_prev: bool| {
        let mut batch = WriteBatch::default();
        let mut txn = f.store.write(&f.backend, &mut batch);
        let prev = txn
            .put(b"a", value.as_bytes().to_vec(), 0, want_prev)
            .unwrap()
            .prev;
        let (_, events) = txn.finish();
        f.backend.write(batch).unwrap();
        let event_prev = events[0].prev_kv.as_ref().map(|p| p.value.clone());
        (prev.map(|p| p.value), event_prev)
    };
    assert_eq!(put(&mut f, "2", false), (None, None));
    assert_eq!(put(&mut f, "3", true), (Some(b"2".to_vec()), None));
    f.store.set_event_interest(true, true);
    assert_eq!(put(&mut f, "4", false), (None, Some(b"3".to_vec())));
    assert_eq!(
        put(&mut f, "5", true),
        (Some(b"4".to_vec()), Some(b"4".to_vec()))
    );
    // Version and create revision come from the index either way.
    let kv = f.get("a", 0).unwrap().unwrap();
    assert_eq!((kv.version, kv.create_revision), (5, 1));
}

#[test]
fn writes_produce_no_events_while_nobody_listens() {
    let mut f = Fixture::new();
    f.put("a", "1");
    f.store.set_event_interest(false, false);
    let mut batch = WriteBatch::default();
    let mut txn = f.store.write(&f.backend, &mut batch);
    txn.put(b"a", b"2".to_vec(), 0, false).unwrap();
    let deleted = txn.delete_range(&KeyRange::single(b"a")).unwrap();
    let (rev, events) = txn.finish();
    f.backend.write(batch).unwrap();
    assert!(events.is_empty());
    assert_eq!(
        (rev, deleted.len(), deleted[0].value.clone()),
        (2, 1, b"2".to_vec())
    );
    // History still has both changes for watchers that come later.
    let history = f
        .store
        .events(&f.backend, &KeyRange::single(b"a"), 2, 2)
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].prev_kv.as_ref().unwrap().value, b"2");
}
