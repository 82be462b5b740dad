//! Writing the applied state as etcd's database, the file `Maintenance.Snapshot` streams.

use std::fs::File;

use prost::Message;

use super::layout::{self, LeaseRecord};
use crate::auth::AuthRecords;
use crate::bolt::BoltWriter;
use crate::error::{Error, Result};
use crate::proto::etcdserverpb::{AlarmMember, AlarmType};
use crate::proto::mvccpb::KeyValue;
use crate::state::StateStore;
use crate::storage::Pair;
use crate::typ::{LogId, StoredMembership};

/// What is read under the state lock; the revisions are read after it.
struct Fixed {
    applied: Option<LogId>,
    membership: StoredMembership,
    leases: Vec<(i64, i64)>,
    alarms: Vec<AlarmMember>,
    compact_rev: i64,
    auth: AuthRecords,
}

/// Writes one applied position of `state` to `file` as etcd's bbolt database, with etcd's
/// buckets (users and roles as etcd's `authpb` records); returns the database's size. Memory
/// stays at a few pages whatever the size of the state.
pub fn write_etcd_db(state: &StateStore, file: File, cluster_version: &str) -> Result<u64> {
    let frozen = state.freeze(|inner, _| {
        Ok(Fixed {
            applied: inner.applied,
            membership: inner.membership.clone(),
            leases: inner.kv.leases.iter().map(|(id, l)| (id, l.ttl)).collect(),
            alarms: inner.kv.alarms.list(AlarmType::None as i32),
            compact_rev: inner.kv.mvcc.compact_rev(),
            auth: inner.kv.auth.records(),
        })
    })?;
    let fixed = &frozen.taken;
    let mut db = BoltWriter::new(file)?;
    let alarms = fixed.alarms.iter().map(|a| (a.encode_to_vec(), Vec::new()));
    db.bucket(layout::ALARM, sorted(alarms))?;
    let auth = &fixed.auth;
    db.bucket(
        layout::AUTH,
        sorted([
            (layout::AUTH_ENABLED.to_vec(), vec![u8::from(auth.enabled)]),
            (
                layout::AUTH_REVISION.to_vec(),
                auth.revision.to_be_bytes().to_vec(),
            ),
        ]),
    )?;
    db.bucket(layout::AUTH_ROLES, sorted(auth.roles.iter().cloned()))?;
    db.bucket(layout::AUTH_USERS, sorted(auth.users.iter().cloned()))?;
    let version = (
        layout::CLUSTER_VERSION.to_vec(),
        cluster_version.as_bytes().to_vec(),
    );
    db.bucket(layout::CLUSTER, sorted([version]))?;
    db.bucket(
        layout::KEY,
        frozen.revisions().map(|pair| {
            let (k, v) = pair?;
            let (rev, tombstone, kv) = crate::mvcc::revision_parts(&k, &v)?;
            let value = if tombstone {
                // etcd's tombstones hold the key alone.
                let kv = KeyValue::decode(kv).map_err(Error::internal)?;
                KeyValue {
                    key: kv.key,
                    ..KeyValue::default()
                }
                .encode_to_vec()
            } else {
                kv.to_vec()
            };
            Ok::<_, Error>((layout::rev_key(rev, tombstone), value))
        }),
    )?;
    let leases = fixed.leases.iter().map(|&(id, ttl)| {
        let record = LeaseRecord {
            id,
            ttl,
            remaining_ttl: 0,
        };
        (id.to_be_bytes().to_vec(), record.encode_to_vec())
    });
    db.bucket(layout::LEASE, sorted(leases))?;
    let membership = fixed.membership.membership();
    let members = membership.nodes().map(|(id, node)| {
        layout::member_pair(*id, node, !membership.voter_ids().any(|v| v == *id))
    });
    db.bucket(layout::MEMBERS, sorted(members))?;
    db.bucket(layout::MEMBERS_REMOVED, sorted([]))?;
    let mut meta = vec![(
        layout::CONSISTENT_INDEX.to_vec(),
        fixed.applied.map_or(0, |l| l.index).to_be_bytes().to_vec(),
    )];
    if let Some(applied) = fixed.applied {
        let term = applied.committed_leader_id().term;
        meta.push((layout::TERM.to_vec(), term.to_be_bytes().to_vec()));
    }
    if fixed.compact_rev > 0 {
        let at = crate::mvcc::Revision {
            main: fixed.compact_rev,
            sub: 0,
        };
        for name in [layout::FINISHED_COMPACT, layout::SCHEDULED_COMPACT] {
            meta.push((name.to_vec(), layout::rev_key(at, false)));
        }
    }
    db.bucket(layout::META, sorted(meta))?;
    drop(frozen);
    Ok(db.finish()?)
}

/// `pairs` in ascending key order, as a bucket takes them.
fn sorted(pairs: impl IntoIterator<Item = Pair>) -> impl Iterator<Item = Result<Pair>> {
    let mut pairs: Vec<Pair> = pairs.into_iter().collect();
    pairs.sort();
    pairs.into_iter().map(Ok)
}
