//! `oxcd snapshot restore`: a member's data dir from a snapshot file (oxcd's or etcd's), for
//! a new cluster, as etcdutl builds one.
//!
//! Every member of the new cluster restores the same file with the same `--initial-cluster`
//! and token, and so starts from the same state: the snapshot's key space, leases and alarms,
//! at log index N (the number of members, etcd's consistent index after a restore) of term 1,
//! with the new membership, the log empty after it. The new cluster's and members' ids come
//! from `--initial-cluster` and `--initial-cluster-token`, as for a new cluster. The data dir
//! is built beside its final path and renamed into place when complete.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use openraft::RaftTypeConfig;
use openraft::vote::RaftLeaderIdExt;
use prost::Message;

use super::layout::{self, LeaseRecord};
use super::{SnapshotFile, Summary};
use crate::auth::{AuthRecords, AuthStore};
use crate::bolt::BoltReader;
use crate::error::{Error, Result};
use crate::membership::identity::{self, Identity};
use crate::membership::ids::InitialCluster;
use crate::proto::etcdserverpb::AlarmMember;
use crate::proto::mvccpb::KeyValue;
use crate::raft::log_store::LogStore;
use crate::state::StateStore;
use crate::storage::SledBackend;
use crate::typ::{LogId, MemberNode, SnapshotMeta, StoredMembership, TypeConfig};

/// What `oxcd snapshot restore` is told.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub snapshot: PathBuf,
    pub data_dir: PathBuf,
    pub wal_dir: Option<PathBuf>,
    pub name: String,
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    pub initial_advertise_peer_urls: String,
    pub skip_hash_check: bool,
}

/// Builds the data dir; returns what the snapshot held.
pub fn restore(opts: &RestoreOptions) -> Result<Summary> {
    for dir in std::iter::once(&opts.data_dir).chain(&opts.wal_dir) {
        if !is_empty_or_missing(dir) {
            return Err(Error::InvalidArgument(format!(
                "data-dir {:?} not empty or could not be read",
                dir.display().to_string()
            )));
        }
    }
    let cluster = InitialCluster::parse(&opts.initial_cluster, &opts.initial_cluster_token)?;
    let me = cluster.member(&opts.name).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            opts.name
        ))
    })?;
    let advertised: BTreeSet<String> = crate::config::split_urls(&opts.initial_advertise_peer_urls)
        .into_iter()
        .map(|u| u.trim_end_matches('/').to_string())
        .collect();
    if advertised != me.node.peer_urls.iter().cloned().collect() {
        return Err(Error::InvalidArgument(format!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
            opts.name,
            me.node.peer_urls.join(","),
            opts.initial_advertise_peer_urls
        )));
    }
    let file = SnapshotFile::open(&opts.snapshot, opts.skip_hash_check)?;

    let building = aside(&opts.data_dir, "restoring");
    let wal_building = opts.wal_dir.as_ref().map(|w| aside(w, "restoring"));
    for dir in std::iter::once(&building).chain(&wal_building) {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
    }
    let member_dir = building.join("member");
    std::fs::create_dir_all(&member_dir)?;
    let summary = build(&file.db, &member_dir, wal_building.as_deref(), &cluster)?;
    identity::save(
        &member_dir,
        &Identity {
            member_id: me.id,
            cluster_id: cluster.cluster_id,
        },
    )?;
    if let (Some(from), Some(to)) = (&wal_building, &opts.wal_dir) {
        move_into_place(from, to)?;
    }
    move_into_place(&building, &opts.data_dir)?;
    Ok(summary)
}

/// Writes the state and the raft log of a restored member into `member_dir`.
fn build(
    db: &BoltReader,
    member_dir: &Path,
    wal_dir: Option<&Path>,
    cluster: &InitialCluster,
) -> Result<Summary> {
    let state = StateStore::open(&member_dir.join("state"), &member_dir.join("snap"), 1)?;
    let first = cluster.members.iter().map(|m| m.id).min().unwrap_or(0);
    let leader =
        <<TypeConfig as RaftTypeConfig>::LeaderId as RaftLeaderIdExt>::new_committed(1, first);
    let log_id = LogId::new(leader, cluster.members.len() as u64);
    let nodes: BTreeMap<u64, MemberNode> = cluster
        .members
        .iter()
        .map(|m| (m.id, m.node.clone()))
        .collect();
    let voters: BTreeSet<u64> = nodes.keys().copied().collect();
    let membership = openraft::Membership::new(vec![voters], nodes).map_err(Error::internal)?;
    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), membership),
    };
    let mut summary = Summary::default();
    let mut compaction = (0, 0);
    let mut auth = AuthRecords::default();
    state.replace_with(&meta, |put| {
        for (name, bucket) in db.buckets()? {
            match name.as_slice() {
                layout::KEY => db.for_each(&bucket, |k, v| {
                    let (rev, tombstone) = layout::parse_rev_key(k)?;
                    let mut kv = KeyValue::decode(v).map_err(|e| {
                        Error::InvalidArgument(format!("snapshot has a malformed key value: {e}"))
                    })?;
                    let value = if tombstone {
                        // etcd's tombstones hold the key alone; oxcd's name their revision.
                        kv.mod_revision = rev.main;
                        kv.encode_to_vec()
                    } else {
                        v.to_vec()
                    };
                    summary.revision = summary.revision.max(rev.main);
                    summary.total_key += 1;
                    let (k, v) = crate::mvcc::encode_revision(rev, tombstone, &value);
                    put(k, v)
                })?,
                layout::LEASE => db.for_each(&bucket, |_, v| {
                    let lease = LeaseRecord::decode(v).map_err(malformed)?;
                    let (k, v) = crate::lease::table::lease_pair(lease.id, lease.ttl);
                    put(k, v)
                })?,
                layout::ALARM => db.for_each(&bucket, |k, _| {
                    let alarm = AlarmMember::decode(k).map_err(malformed)?;
                    let (k, v) = crate::alarm::alarm_pair(alarm.member_id, alarm.alarm);
                    put(k, v)
                })?,
                layout::META => db.for_each(&bucket, |k, v| {
                    match k {
                        layout::FINISHED_COMPACT => compaction.0 = layout::parse_rev_key(v)?.0.main,
                        layout::SCHEDULED_COMPACT => {
                            compaction.1 = layout::parse_rev_key(v)?.0.main
                        }
                        _ => {}
                    }
                    Ok::<_, Error>(())
                })?,
                layout::AUTH => db.for_each(&bucket, |k, v| {
                    match k {
                        layout::AUTH_ENABLED => auth.enabled = v == [1],
                        layout::AUTH_REVISION => {
                            let bytes = v.try_into().map_err(|_| {
                                Error::InvalidArgument(
                                    "snapshot has a malformed authRevision".into(),
                                )
                            })?;
                            auth.revision = u64::from_be_bytes(bytes);
                        }
                        _ => {}
                    }
                    Ok::<_, Error>(())
                })?,
                layout::AUTH_USERS => db.for_each(&bucket, |k, v| {
                    auth.users.push((k.to_vec(), v.to_vec()));
                    Ok::<_, Error>(())
                })?,
                layout::AUTH_ROLES => db.for_each(&bucket, |k, v| {
                    auth.roles.push((k.to_vec(), v.to_vec()));
                    Ok::<_, Error>(())
                })?,
                // Members are the new cluster's; the cluster version is this build's.
                _ => {}
            }
        }
        for (k, v) in AuthStore::pairs_from_records(&auth)? {
            put(k, v)?;
        }
        let (finished, _) = compaction;
        summary.revision = summary.revision.max(finished);
        let compacted = (finished > 0).then_some(finished);
        for (k, v) in crate::mvcc::position_pairs(summary.revision.max(1), compacted) {
            put(k, v)?;
        }
        Ok(())
    })?;
    let (finished, scheduled) = compaction;
    if scheduled > finished {
        state.compact_restored(scheduled)?;
    }
    state.flush()?;
    let raft_db = SledBackend::open_db(&member_dir.join("db"))?;
    let wal = wal_dir.map_or_else(|| member_dir.join("wal"), Path::to_path_buf);
    LogStore::open(&raft_db, &wal)?.start_after(log_id)?;
    raft_db.flush().map_err(Error::internal)?;
    summary.total_size = db.size();
    Ok(summary)
}

fn malformed(e: prost::DecodeError) -> Error {
    Error::InvalidArgument(format!("snapshot has a malformed record: {e}"))
}

fn is_empty_or_missing(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// A sibling path of `dir` for building it.
fn aside(dir: &Path, what: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}"));
    dir.with_file_name(name)
}

/// Renames the completed `from` to `to` (an empty `to` is replaced) and syncs the parent.
fn move_into_place(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir(to)?;
    }
    std::fs::rename(from, to)?;
    let parent = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(parent)?.sync_all()?;
    Ok(())
}
