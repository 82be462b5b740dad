//! The v3 service core: one function per etcd v3 RPC, shared by every transport. Each takes
//! the decoded request and its [`RequestContext`], makes etcd's checks, proposes or reads, and
//! answers the response or an [`Error`](crate::error::Error), which the transport turns into
//! its wire form in one place (gRPC: `error.rs`). gRPC ([`crate::grpc`]) and the HTTP
//! endpoints ([`crate::http`]) only decode, call and encode.
//!
//! # Layout
//! - [`context`]: the request context and the checks made before any RPC;
//! - [`kv`] (+ [`txn_check`]): Range, Put, DeleteRange, Txn, Compact;
//! - [`watch`]: watch streams over the applied revisions' hub;
//! - [`lease`]: Grant, Revoke, KeepAlive, TimeToLive, Leases;
//! - [`auth`]: the Auth service, and the permission checks other services make;
//! - [`cluster`]: the Cluster service's membership RPCs;
//! - [`maintenance`]: Status, Alarm, Defragment, Hash, HashKV, MoveLeader;
//! - [`lock`] and [`election`]: etcd's Lock and Election services, built as its concurrency
//!   recipes are ([`concurrency`]) on the KV, Lease and Watch functions above.

pub mod auth;
pub mod cluster;
pub mod concurrency;
pub mod context;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod txn_check;
pub mod watch;

use std::sync::Arc;

pub use context::RequestContext;

use crate::server::EtcdServer;

/// The `version` etcd clients see in Status: the etcd API level oxcd implements.
pub const ETCD_API_VERSION: &str = "3.5.0";

/// Room gRPC framing and headers take beyond the request payload (etcd's grpcOverheadBytes):
/// a request between max-request-bytes and this is refused by the server with
/// "etcdserver: request is too large", a larger one by the transport; watch responses above
/// it are fragmented for clients that allow it.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// The largest message a client may send on the gRPC port (or, in JSON, to the gateway):
/// `--max-request-bytes` plus [`GRPC_OVERHEAD_BYTES`].
pub fn max_message_bytes(limits: &crate::server::Limits) -> usize {
    limits.max_request_bytes + GRPC_OVERHEAD_BYTES
}

/// The v3 services of one member.
pub struct Core {
    pub server: Arc<EtcdServer>,
    lease_ids: lease::LeaseIds,
    auth_attempts: auth::Attempts,
}

impl Core {
    pub fn new(server: Arc<EtcdServer>) -> Core {
        Core {
            lease_ids: lease::LeaseIds::new(server.member_id),
            auth_attempts: auth::Attempts::default(),
            server,
        }
    }
}
