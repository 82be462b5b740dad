//! Consensus: the log store (WAL files), the state-machine adapter and the peer network,
//! around openraft (whose type configuration is in [`crate::typ`]).
//!
//! # Layout
//! - [`log_store`]: raft log in WAL segments and vote on sled, flushed before log I/O is
//!   reported complete; `wal`: the segment files;
//! - [`state_machine`]: openraft's view of [`crate::state::StateStore`];
//! - [`network`]: the client side of the peer port (the server side is
//!   [`crate::grpc::peer`]);
//! - [`peer_activity`]: since when each peer has answered without a break, as the network
//!   sees it (etcd's `ActiveSince`).

pub mod log_store;
pub mod network;
pub mod peer_activity;
pub mod state_machine;
mod wal;

use crate::typ::TypeConfig;

/// The raft handle every service uses.
pub type Raft = openraft::Raft<TypeConfig, state_machine::StateMachine>;
