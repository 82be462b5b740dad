//! WAL segment files: reopen, torn tails, truncation, purge, and the resident window.

use super::*;

fn entry(term: u64, index: u64) -> Entry {
    openraft::testing::blank_ent::<crate::typ::TypeConfig>(term, 1, index)
}

fn indexes(wal: &Wal) -> Vec<u64> {
    wal.range(0, None)
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect()
}

#[test]
fn the_per_entry_record_stays_small() {
    // One `Stored` per entry since the last purge stays in memory (a snapshot's worth:
    // 100k by default); entries themselves are boxed and evicted past the budget.
    assert!(std::mem::size_of::<Stored>() <= 64);
}

#[test]
fn entries_survive_reopen_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), None).unwrap();
    wal.append((1..=5).map(|i| entry(1, i)))
        .unwrap()
        .sync_data()
        .unwrap();
    let end = wal.segments[0].len;
    drop(wal);
    let path = segment_path(dir.path(), 0);
    // Half a record after the last one, as a crash mid-write leaves it.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[200, 0, 0, 0, 1, 2], end).unwrap();
    drop(f);
    let mut wal = Wal::open(dir.path(), None).unwrap();
    assert_eq!(indexes(&wal), vec![1, 2, 3, 4, 5]);
    wal.append([entry(1, 6)]).unwrap().sync_data().unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), None).unwrap();
    assert_eq!(indexes(&wal), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(wal.range(2, Some(4)).unwrap().len(), 2);
}

#[test]
fn truncate_and_purge_reach_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), None).unwrap();
    wal.append((1..=10).map(|i| entry(1, i))).unwrap();
    wal.truncate_after(Some(6)).unwrap();
    wal.append((7..=8).map(|i| entry(2, i)))
        .unwrap()
        .sync_data()
        .unwrap();
    drop(wal);
    let mut wal = Wal::open(dir.path(), None).unwrap();
    assert_eq!(indexes(&wal), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(wal.last_log_id().unwrap().leader_id.term, 2);
    let unneeded = wal.purge(8).unwrap();
    assert!(wal.is_empty());
    wal.append([entry(2, 9)]).unwrap().sync_data().unwrap();
    assert_eq!(unneeded, vec![segment_path(dir.path(), 0)]);
    for path in unneeded {
        std::fs::remove_file(path).unwrap();
    }
    drop(wal);
    let wal = Wal::open(dir.path(), Some(8)).unwrap();
    assert_eq!(indexes(&wal), vec![9]);
    // The purged segment is gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn segments_left_by_a_purge_that_never_became_durable_are_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let size = 4096;
    let mut wal = Wal::open_with(dir.path(), None, size).unwrap();
    let mut next = 1;
    while wal.segments.len() < 4 {
        wal.append([entry(1, next)]).unwrap();
        next += 1;
    }
    wal.segments.last().unwrap().file.sync_data().unwrap();
    let purged = wal.segments[2].first_index - 1;
    let first_two: Vec<PathBuf> = wal.segments[..2].iter().map(|s| s.path.clone()).collect();
    assert_eq!(wal.purge(purged).unwrap(), first_two);
    drop(wal);
    // A crash before the purged id was durable: the log is read from where it was.
    let wal = Wal::open_with(dir.path(), None, size).unwrap();
    assert_eq!(indexes(&wal), (1..next).collect::<Vec<_>>());
    drop(wal);
    // A crash after it was durable, before the files went.
    let wal = Wal::open_with(dir.path(), Some(purged), size).unwrap();
    assert_eq!(indexes(&wal), (purged + 1..next).collect::<Vec<_>>());
}

#[test]
fn records_overwrite_prepared_segments_and_continue_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let size = 4096;
    let mut wal = Wal::open_with(dir.path(), None, size).unwrap();
    assert_eq!(
        std::fs::read(segment_path(dir.path(), 0)).unwrap(),
        vec![0; 4096]
    );
    let mut next = 1;
    while wal.segments.len() < 3 {
        wal.append([entry(1, next)]).unwrap();
        next += 1;
    }
    // Every segment file is its prepared size or more, zeros after its records.
    for s in &wal.segments {
        let bytes = std::fs::read(&s.path).unwrap();
        assert!(
            bytes.len() as u64 >= size.max(s.len),
            "{}",
            s.path.display()
        );
        assert!(bytes[s.len as usize..].iter().all(|b| *b == 0));
    }
    wal.segments.last().unwrap().file.sync_data().unwrap();
    drop(wal);
    let mut wal = Wal::open_with(dir.path(), None, size).unwrap();
    assert_eq!(indexes(&wal), (1..next).collect::<Vec<_>>());
    // The next record goes after the last one, not at the end of the file.
    wal.append([entry(1, next)]).unwrap().sync_data().unwrap();
    let active_len = std::fs::metadata(&wal.segments.last().unwrap().path)
        .unwrap()
        .len();
    assert_eq!(active_len, size);
    drop(wal);
    let wal = Wal::open_with(dir.path(), None, size).unwrap();
    assert_eq!(indexes(&wal), (1..=next).collect::<Vec<_>>());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(SUFFIX))
        .collect();
    assert!(
        names.is_empty(),
        "open clears unused prepared files: {names:?}"
    );
}

#[test]
fn truncated_records_become_zeros_and_do_not_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), None).unwrap();
    wal.append((1..=10).map(|i| entry(1, i))).unwrap();
    let cut_at = wal.entries[6].offset;
    let end = wal.segments[0].len;
    wal.truncate_after(Some(6)).unwrap();
    let bytes = std::fs::read(segment_path(dir.path(), 0)).unwrap();
    assert_eq!(
        bytes.len() as u64,
        SEGMENT_BYTES,
        "the prepared space stays"
    );
    assert!(bytes[cut_at as usize..end as usize].iter().all(|b| *b == 0));
    drop(wal);
    let wal = Wal::open(dir.path(), None).unwrap();
    assert_eq!(indexes(&wal), (1..=6).collect::<Vec<_>>());
}

#[test]
fn corruption_before_the_tail_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), None).unwrap();
    wal.append((1..=3).map(|i| entry(1, i))).unwrap();
    wal.start_segment().unwrap();
    wal.append((4..=5).map(|i| entry(1, i)))
        .unwrap()
        .sync_data()
        .unwrap();
    drop(wal);
    let path = segment_path(dir.path(), 0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[HEADER + 2] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert!(Wal::open(dir.path(), None).is_err());
}

fn resident(wal: &Wal) -> Vec<u64> {
    wal.entries
        .iter()
        .filter(|s| s.entry.is_some())
        .map(|s| s.log_id.index)
        .collect()
}

fn terms(wal: &Wal) -> Vec<u64> {
    wal.range(0, None)
        .unwrap()
        .iter()
        .map(|e| e.log_id.leader_id.term)
        .collect()
}

#[test]
fn entries_beyond_the_resident_budget_are_read_back_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), None).unwrap();
    let record = HEADER as u64 + bincode::serialized_size(&entry(1, 1)).unwrap();
    wal.resident_budget = 3 * record;
    wal.append((1..=4).map(|i| entry(1, i))).unwrap();
    wal.start_segment().unwrap();
    wal.append((5..=8).map(|i| entry(1, i))).unwrap();
    assert_eq!(resident(&wal), vec![6, 7, 8]);
    assert_eq!(indexes(&wal), (1..=8).collect::<Vec<_>>());
    assert_eq!(
        wal.range(3, Some(6))
            .unwrap()
            .iter()
            .map(|e| e.log_id.index)
            .collect::<Vec<_>>(),
        vec![3, 4, 5]
    );

    // A conflict cuts into the entries on disk only; the new ones are resident.
    wal.truncate_after(Some(2)).unwrap();
    assert_eq!(resident(&wal), Vec::<u64>::new());
    wal.append((3..=5).map(|i| entry(2, i)))
        .unwrap()
        .sync_data()
        .unwrap();
    assert_eq!(indexes(&wal), vec![1, 2, 3, 4, 5]);
    assert_eq!(terms(&wal), vec![1, 1, 2, 2, 2]);
    assert_eq!(resident(&wal), vec![3, 4, 5]);

    wal.purge(1).unwrap();
    wal.append([entry(2, 6)]).unwrap().sync_data().unwrap();
    assert_eq!(resident(&wal), vec![4, 5, 6]);
    assert_eq!(indexes(&wal), vec![2, 3, 4, 5, 6]);
    assert_eq!(wal.resident_bytes, 3 * record);

    drop(wal);
    let wal = Wal::open(dir.path(), Some(1)).unwrap();
    assert_eq!(indexes(&wal), vec![2, 3, 4, 5, 6]);
    assert_eq!(terms(&wal), vec![1, 2, 2, 2, 2]);
}
