//! Snapshots in etcd's format, as an operator uses them: Debian's `etcdctl snapshot save`
//! and `oxcdctl snapshot save` from a live oxcd cluster under writes, `oxcd snapshot restore` of that file into a new
//! 3-member oxcd cluster and `etcdctl snapshot restore` into a real etcd 3.4, an etcd 3.4
//! snapshot restored into oxcd (migration), and damaged files refused. Every restored store
//! is compared key by key (value, create and mod revision, version, lease) with the source at
//! the snapshot's revision.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use oxcd_testkit::cluster::CLUSTER_TOKEN;
use oxcd_testkit::{Cluster, Member, binary};
use sha2::Digest;

use crate::etcdctl_cluster::etcdctl;

/// A key as every client sees it: key, value, create and mod revision, version, lease.
type Kv = (Vec<u8>, Vec<u8>, i64, i64, i64, i64);

/// Every key of the store at `rev` (0: the current revision), and the revision read.
async fn all_keys(c: &mut Client, rev: i64) -> (Vec<Kv>, i64) {
    let resp = c
        .get(
            "\0",
            Some(GetOptions::new().with_from_key().with_revision(rev)),
        )
        .await
        .unwrap();
    let kvs = resp
        .kvs()
        .iter()
        .map(|kv| {
            let (k, v) = (kv.key().to_vec(), kv.value().to_vec());
            (
                k,
                v,
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease(),
            )
        })
        .collect();
    (kvs, resp.header().unwrap().revision())
}

/// Writes a store worth restoring: puts, overwrites, deletes, a txn of two puts (one
/// revision, two sub-revisions), a key on a lease, and a compaction. Returns the lease.
async fn fill(c: &mut Client) -> i64 {
    for i in 0..200 {
        c.put(format!("key/{i:03}"), format!("value {i}"), None)
            .await
            .unwrap();
    }
    for i in (0..200).step_by(3) {
        c.put(format!("key/{i:03}"), format!("again {i}"), None)
            .await
            .unwrap();
    }
    c.delete(
        "key/1",
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await
    .unwrap();
    let txn = etcd_client::Txn::new().and_then(vec![
        etcd_client::TxnOp::put("txn/a", "1", None),
        etcd_client::TxnOp::put("txn/b", "2", None),
    ]);
    c.txn(txn).await.unwrap();
    let lease = c.lease_grant(600, None).await.unwrap().id();
    c.put(
        "leased",
        "x",
        Some(etcd_client::PutOptions::new().with_lease(lease)),
    )
    .await
    .unwrap();
    let rev = c.put("big", "y".repeat(100_000), None).await.unwrap();
    c.compact(rev.header().unwrap().revision() - 5, None)
        .await
        .unwrap();
    lease
}

/// Runs `oxcd snapshot ...`; its exit status and standard error.
fn oxcd_snapshot(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary::oxcd().unwrap())
        .arg("snapshot")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The restore flags of `member` of `cluster`.
pub(crate) fn restore_args(cluster: &Cluster, i: usize) -> Vec<String> {
    let m = &cluster.members[i];
    vec![
        "--data-dir".into(),
        m.data_dir.display().to_string(),
        "--name".into(),
        m.name.clone(),
        "--initial-cluster".into(),
        m.launch.initial_cluster.clone(),
        "--initial-cluster-token".into(),
        CLUSTER_TOKEN.into(),
        "--initial-advertise-peer-urls".into(),
        m.peer_url(),
    ]
}

/// Restores `file` into every member of a new, not yet started cluster of `binary` (oxcd or
/// etcd: the restore is `oxcd snapshot restore` or `etcdctl snapshot restore`), starts it and
/// returns it with a client once it has a leader.
async fn restored_cluster(file: &Path, binary: PathBuf, n: usize) -> (Cluster, Client) {
    let is_etcd = binary == oxcd_testkit::binary::etcd();
    let mut cluster = Cluster::new(binary, n, &[]).unwrap();
    for i in 0..n {
        let args = restore_args(&cluster, i);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let file = file.to_str().unwrap();
        if is_etcd {
            let mut all = vec!["snapshot", "restore", file];
            all.extend(args);
            etcdctl(&[], &all).await.ok("snapshot restore");
        } else {
            let mut all = vec!["restore", file];
            all.extend(args);
            let (ok, _, stderr) = oxcd_snapshot(&all);
            assert!(ok, "oxcd snapshot restore failed: {stderr}");
        }
    }
    cluster.spawn_all().unwrap();
    cluster.leader().await;
    let client = cluster.client(0).await;
    (cluster, client)
}

/// `etcdctl snapshot save` from `endpoint` into `file`.
async fn save(endpoint: String, file: &Path) {
    etcdctl(&[endpoint], &["snapshot", "save", file.to_str().unwrap()])
        .await
        .ok("snapshot save");
}

/// `etcdctl snapshot status -w json` and `oxcd snapshot status -w json` of `file`: they must
/// agree. Returns the revision.
async fn same_status(file: &Path) -> i64 {
    let file = file.to_str().unwrap();
    let etcd = etcdctl(&[], &["snapshot", "status", file, "-w", "json"])
        .await
        .ok("snapshot status");
    let (ok, ours, stderr) = oxcd_snapshot(&["status", file, "-w", "json"]);
    assert!(ok, "{stderr}");
    let etcd: serde_json::Value = serde_json::from_str(&etcd).unwrap();
    let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
    assert_eq!(ours, etcd);
    etcd["revision"].as_i64().unwrap()
}

#[tokio::test]
async fn a_live_clusters_snapshot_restores_into_oxcd_and_into_etcd() {
    let mut source = Cluster::start(3);
    source.leader().await;
    let mut c = source.client(0).await;
    let lease = fill(&mut c).await;
    // Writes go on while the snapshot is taken.
    let mut writer = source.client(1).await;
    let writing = tokio::spawn(async move {
        for i in 0.. {
            if writer.put(format!("live/{i:05}"), "v", None).await.is_err() {
                return;
            }
        }
    });
    // The snapshot is taken once the writer is under way (on a loaded machine its first
    // put can take a while).
    let reader = source.client(0).await;
    oxcd_testkit::wait_until(Duration::from_secs(60), "the writer's first puts", || {
        let mut reader = reader.clone();
        async move {
            let count = GetOptions::new().with_prefix().with_count_only();
            let got = reader.get("live/", Some(count)).await.ok()?;
            (got.count() >= 10).then_some(())
        }
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oxcd.db");
    save(source.members[2].endpoint(), &file).await;
    // oxcdctl's snapshot save too, from another member, writes still going on.
    let by_oxcdctl = dir.path().join("oxcdctl.db");
    let out = Command::new(binary::oxcdctl().unwrap())
        .arg(format!("--endpoints={}", source.members[1].endpoint()))
        .args(["snapshot", "save"])
        .arg(&by_oxcdctl)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Snapshot saved at {}\n", by_oxcdctl.display())
    );
    writing.abort();
    let rev = same_status(&file).await;
    let (expected, _) = all_keys(&mut c, rev).await;
    assert!(expected.iter().any(|kv| kv.0.starts_with(b"live/")));
    let oxcdctl_rev = same_status(&by_oxcdctl).await;
    let (from_oxcdctl, _) = all_keys(&mut c, oxcdctl_rev).await;
    let (_one, mut o) = restored_cluster(&by_oxcdctl, binary::oxcd().unwrap(), 1).await;
    assert_eq!(all_keys(&mut o, 0).await, (from_oxcdctl, oxcdctl_rev));

    let (restored, mut r) = restored_cluster(&file, binary::oxcd().unwrap(), 3).await;
    assert_eq!(all_keys(&mut r, 0).await, (expected.clone(), rev));
    // The compaction came along; the lease too, with its key.
    let (code, _) = crate::calls::status(
        r.get("key/000", Some(GetOptions::new().with_revision(2)))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, tonic::Code::OutOfRange);
    let ttl = r
        .lease_time_to_live(
            lease,
            Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()),
        )
        .await
        .unwrap();
    assert_eq!(ttl.keys(), [b"leased".to_vec()]);
    // Every member serves it, and the new cluster takes writes after it.
    for i in 0..3 {
        let mut m = restored.client(i).await;
        let serial = m
            .get(
                "\0",
                Some(GetOptions::new().with_from_key().with_serializable()),
            )
            .await
            .unwrap();
        assert_eq!(serial.kvs().len(), expected.len(), "member {i}");
    }
    let put = r.put("after", "restore", None).await.unwrap();
    assert_eq!(put.header().unwrap().revision(), rev + 1);
    let members = r.member_list().await.unwrap();
    assert_eq!(members.members().len(), 3);

    // A real etcd 3.4 restores the same file and serves the same keys.
    let (_etcd, mut e) = restored_cluster(&file, binary::etcd(), 1).await;
    assert_eq!(all_keys(&mut e, 0).await, (expected, rev));
}

#[tokio::test]
async fn an_etcd_snapshot_restores_into_oxcd() {
    let etcd = Member::start_etcd();
    let mut c = etcd.client().await;
    let lease = fill(&mut c).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd.db");
    save(etcd.endpoint(), &file).await;
    let rev = same_status(&file).await;
    let expected = all_keys(&mut c, 0).await;
    assert_eq!(expected.1, rev);

    let (_restored, mut r) = restored_cluster(&file, binary::oxcd().unwrap(), 1).await;
    assert_eq!(all_keys(&mut r, 0).await, expected);
    let leases = r.leases().await.unwrap();
    assert_eq!(
        leases.leases().iter().map(|l| l.id()).collect::<Vec<_>>(),
        [lease]
    );
    let (code, _) = crate::calls::status(
        r.get("key/000", Some(GetOptions::new().with_revision(2)))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, tonic::Code::OutOfRange);
    let put = r.put("after", "restore", None).await.unwrap();
    assert_eq!(put.header().unwrap().revision(), rev + 1);
}

#[tokio::test]
async fn the_snapshot_stream_is_etcds_and_damaged_files_are_refused() {
    let member = Member::start();
    let mut c = member.client().await;
    fill(&mut c).await;
    let mut stream = c.snapshot().await.unwrap();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        chunks.push((chunk.remaining_bytes(), chunk.blob().to_vec()));
    }
    // 32 KiB chunks, each with the bytes still to come, then the sha256 of the database.
    let (hash, data) = chunks.split_last().unwrap();
    assert_eq!(hash.0, 0);
    let db: Vec<u8> = data.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(hash.1, sha2::Sha256::digest(&db).to_vec());
    let mut sent = 0;
    for (i, (remaining, blob)) in data.iter().enumerate() {
        if i + 1 < data.len() {
            assert_eq!(blob.len(), 32 * 1024);
        }
        sent += blob.len() as u64;
        assert_eq!(*remaining, db.len() as u64 - sent);
    }
    assert_eq!(db.len() % 4096, 0);

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    std::fs::write(&good, [db.as_slice(), &hash.1].concat()).unwrap();
    let peer = format!("http://127.0.0.1:{}", oxcd_testkit::free_port());
    let restore = |file: &Path, data_dir: &Path, extra: &[&str]| {
        let mut args = vec![
            "restore".to_string(),
            file.display().to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--initial-cluster".into(),
            format!("default={peer}"),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        oxcd_snapshot(&args)
    };
    let refused = |file: &Path, extra: &[&str], why: &str| {
        let target = dir.path().join("refused.etcd");
        let (ok, _, stderr) = restore(file, &target, extra);
        assert!(
            !ok && stderr.starts_with("Error: ") && stderr.contains(why),
            "{stderr}"
        );
        // Nothing half-built is left.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("refused"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    };

    let mut flipped = std::fs::read(&good).unwrap();
    flipped[5000] ^= 1;
    let bad = dir.path().join("flipped.db");
    std::fs::write(&bad, &flipped).unwrap();
    refused(&bad, &[], "expected sha256");
    let short = dir.path().join("short.db");
    std::fs::write(&short, &db[..db.len() - 4096]).unwrap();
    refused(
        &short,
        &[],
        "snapshot missing hash but --skip-hash-check=false",
    );
    refused(&short, &["--skip-hash-check"], "truncated");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x42; 3 * 4096 + 32]).unwrap();
    refused(&junk, &["--skip-hash-check"], "invalid database");
    refused(&dir.path().join("missing.db"), &[], "missing.db");
    refused(&good, &["--name", "nobody"], "couldn't find local name");

    // A copy of the database alone (no sha256) restores with --skip-hash-check.
    let bare = dir.path().join("bare.db");
    std::fs::write(&bare, &db).unwrap();
    let (ok, _, stderr) = restore(&bare, &dir.path().join("bare.etcd"), &["--skip-hash-check"]);
    assert!(ok, "{stderr}");
    // A data dir in use is never overwritten.
    let (ok, _, stderr) = restore(&good, &dir.path().join("bare.etcd"), &[]);
    assert!(!ok && stderr.contains("not empty"), "{stderr}");
}
