//! etcd's bucket layout in its bbolt database (see `docs/etcd-snapshot-format.md`): bucket
//! names, the keys of `meta`, and the encodings of revisions, leases and members.

use prost::Message;

use crate::error::{Error, Result};
use crate::mvcc::Revision;
use crate::typ::MemberNode;

pub const ALARM: &[u8] = b"alarm";
pub const AUTH: &[u8] = b"auth";
pub const AUTH_ROLES: &[u8] = b"authRoles";
pub const AUTH_USERS: &[u8] = b"authUsers";
pub const CLUSTER: &[u8] = b"cluster";
pub const KEY: &[u8] = b"key";
pub const LEASE: &[u8] = b"lease";
pub const MEMBERS: &[u8] = b"members";
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
pub const META: &[u8] = b"meta";

pub const AUTH_ENABLED: &[u8] = b"authEnabled";
pub const AUTH_REVISION: &[u8] = b"authRevision";
pub const CLUSTER_VERSION: &[u8] = b"clusterVersion";
pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
pub const FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
pub const SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
pub const TERM: &[u8] = b"term";

const REV_KEY_LEN: usize = 17;
const TOMBSTONE_MARK: u8 = b't';

/// A revision as a key of `key`: main revision, `_`, sub revision (big-endian), and a `t`
/// after a tombstone's.
pub fn rev_key(rev: Revision, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(REV_KEY_LEN + 1);
    k.extend_from_slice(&(rev.main as u64).to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&(rev.sub as u64).to_be_bytes());
    if tombstone {
        k.push(TOMBSTONE_MARK);
    }
    k
}

/// The revision of a key of `key` (and of the compaction marks in `meta`), and whether it
/// marks a tombstone.
pub fn parse_rev_key(k: &[u8]) -> Result<(Revision, bool)> {
    let tombstone = match k.len() {
        REV_KEY_LEN => false,
        18 if k[REV_KEY_LEN] == TOMBSTONE_MARK => true,
        _ => {
            return Err(Error::InvalidArgument(format!(
                "snapshot has a malformed revision key {k:02x?}"
            )));
        }
    };
    let main = u64::from_be_bytes(k[0..8].try_into().expect("8 bytes")) as i64;
    let sub = u64::from_be_bytes(k[9..17].try_into().expect("8 bytes")) as i64;
    Ok((Revision { main, sub }, tombstone))
}

/// etcd's `leasepb.Lease`, as the `lease` bucket holds it.
#[derive(Clone, PartialEq, Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// A member as etcd's `members` bucket holds it: the id in hex as the key, JSON as the value.
pub fn member_pair(id: u64, node: &MemberNode, learner: bool) -> (Vec<u8>, Vec<u8>) {
    let mut member = serde_json::json!({
        "id": id,
        "peerURLs": node.peer_urls,
    });
    if learner {
        member["isLearner"] = true.into();
    }
    if !node.name.is_empty() {
        member["name"] = node.name.clone().into();
    }
    if !node.client_urls.is_empty() {
        member["clientURLs"] = node.client_urls.clone().into();
    }
    (
        format!("{id:x}").into_bytes(),
        member.to_string().into_bytes(),
    )
}

/// An 8-byte big-endian integer of `meta`.
pub fn meta_u64(v: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(v)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::InvalidArgument("snapshot has a malformed meta value".into()))
}
