use std::io;

use super::*;

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn write(path: &std::path::Path, buckets: &[(&[u8], Pairs)]) -> u64 {
    let mut w = BoltWriter::create(path).unwrap();
    for (name, pairs) in buckets {
        w.bucket::<io::Error>(name, pairs.iter().cloned().map(Ok))
            .unwrap();
    }
    w.finish().unwrap()
}

fn read_all(path: &std::path::Path, len: Option<u64>) -> io::Result<Vec<(Vec<u8>, Pairs)>> {
    let r = BoltReader::open(path, len)?;
    let mut out = Vec::new();
    for (name, bucket) in r.buckets()? {
        let mut pairs = Vec::new();
        r.for_each::<io::Error>(&bucket, |k, v| {
            pairs.push((k.to_vec(), v.to_vec()));
            Ok(())
        })?;
        out.push((name, pairs));
    }
    Ok(out)
}

fn numbered(n: usize, value_len: usize) -> Pairs {
    (0..n)
        .map(|i| {
            (
                format!("key{i:08}").into_bytes(),
                vec![(i % 251) as u8; value_len],
            )
        })
        .collect()
}

#[test]
fn buckets_of_every_shape_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let buckets: Vec<(&[u8], Pairs)> = vec![
        (b"empty", vec![]),
        // Three levels of branches: ~100k pairs of ~40 bytes.
        (b"many", numbered(100_000, 20)),
        // Values larger than a page overflow onto more pages.
        (b"overflow", numbered(5, 3 * PAGE_SIZE + 7)),
        (
            b"small",
            vec![(b"a".to_vec(), vec![]), (b"b".to_vec(), b"1".to_vec())],
        ),
    ];
    let size = write(&path, &buckets);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    assert_eq!(size % PAGE_SIZE as u64, 0);
    let read = read_all(&path, None).unwrap();
    assert_eq!(read.len(), buckets.len());
    for ((name, pairs), (read_name, read_pairs)) in buckets.iter().zip(&read) {
        assert_eq!(name, read_name);
        assert_eq!(
            pairs,
            read_pairs,
            "bucket {}",
            String::from_utf8_lossy(name)
        );
    }
    assert_eq!(BoltReader::open(&path, None).unwrap().size(), size);
}

#[test]
fn out_of_order_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = BoltWriter::create(&dir.path().join("db")).unwrap();
    let pairs = vec![(b"b".to_vec(), vec![]), (b"a".to_vec(), vec![])];
    assert!(
        w.bucket::<io::Error>(b"x", pairs.into_iter().map(Ok))
            .is_err()
    );
    w.bucket::<io::Error>(b"y", std::iter::empty()).unwrap();
    assert!(w.bucket::<io::Error>(b"a", std::iter::empty()).is_err());
}

#[test]
fn damaged_and_truncated_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    write(&path, &[(b"key", numbered(20_000, 30))]);
    let good = std::fs::read(&path).unwrap();

    // Truncated: the meta says more pages than there are.
    let cut = dir.path().join("cut");
    std::fs::write(&cut, &good[..good.len() - PAGE_SIZE]).unwrap();
    let err = read_all(&cut, None).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");

    // Not a database at all.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![7u8; 3 * PAGE_SIZE]).unwrap();
    assert!(read_all(&junk, None).is_err());

    // One meta damaged: the other one still opens the database.
    let mut one_meta = good.clone();
    one_meta[PAGE_HEADER + 20] ^= 0xff;
    let p = dir.path().join("one-meta");
    std::fs::write(&p, &one_meta).unwrap();
    assert_eq!(read_all(&p, None).unwrap()[0].1.len(), 20_000);

    // Every byte of a data page flipped in turn never panics; most flips are caught.
    let expected = read_all(&path, None).unwrap();
    let mut caught = 0;
    for at in (3 * PAGE_SIZE..4 * PAGE_SIZE).step_by(7) {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        std::fs::write(&p, &bad).unwrap();
        if read_all(&p, None).map_or(true, |read| read != expected) {
            caught += 1;
        }
    }
    assert!(caught > 0);
}
