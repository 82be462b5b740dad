//! The replicated types: what goes through raft (an etcd mutation, prost-encoded), what
//! applying it answers, what the cluster knows of a member, and openraft's type configuration
//! with short aliases for its generic types. Below both the consensus layer and the applied
//! state, which share these types without depending on each other.

use std::fmt;

use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::proto::oxcdpb::{InternalRequest, InternalResponse};

/// A replicated command: one etcd mutation, prost-encoded in the log. Printed (Display and
/// Debug alike) by its kind only: commands carry values, password hashes and tokens, which
/// logs must not show.
#[derive(Clone, PartialEq)]
pub struct Command(pub InternalRequest);

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({self})")
    }
}

/// The result of applying a [`Command`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CommandResult(pub InternalResponse);

macro_rules! prost_serde {
    ($ty:ident, $inner:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0.encode_to_vec())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let bytes = <Vec<u8>>::deserialize(d)?;
                <$inner>::decode(bytes.as_slice())
                    .map($ty)
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
prost_serde!(Command, InternalRequest);
prost_serde!(CommandResult, InternalResponse);

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}",
            self.0.request.as_ref().map(std::mem::discriminant)
        )
    }
}

/// What the cluster knows of a member: etcd's Member fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemberNode {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    /// Added as a voting member (etcd's MemberAdd without `--learner`): raft keeps it a
    /// learner until it has caught up, then the leader promotes it, so adding a member never
    /// costs the cluster its quorum while the newcomer is still empty.
    pub promote_when_ready: bool,
}

openraft::declare_raft_types!(
    /// oxcd's raft types: etcd commands in, etcd responses out, member ids as node ids.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        Node = MemberNode,
);

// Short names for openraft's generic types.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<TypeConfig, E>;
pub type ClientWriteError = openraft::error::ClientWriteError<TypeConfig>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::PutRequest;
    use crate::proto::oxcdpb::internal_request::Request;

    #[test]
    fn commands_round_trip_through_bincode() {
        let cmd = Command(InternalRequest {
            request: Some(Request::Put(PutRequest {
                key: b"k".to_vec(),
                value: vec![0, 1, 2],
                ..Default::default()
            })),
            header: None,
        });
        let bytes = bincode::serialize(&cmd).unwrap();
        assert_eq!(bincode::deserialize::<Command>(&bytes).unwrap(), cmd);
    }
}
