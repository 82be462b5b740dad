//! oxcd: an etcd-compatible, raft-replicated key-value store.
//!
//! # Layout
//! - [`config`]: etcd's flags, `ETCD_*` variables and config file;
//! - [`server`]: wiring: opens storage, starts raft, serves the client port;
//! - [`grpc`]: one module per etcd gRPC service;
//! - [`raft`]: openraft types, log store, state-machine adapter, peer network;
//! - [`state`]: the applied state on disk (key space, leases, applied position);
//! - [`apply`]: the deterministic command → effect function;
//! - [`mvcc`]: the revisioned key space; [`lease`]: lease table and expiry clock;
//! - [`watch`]: fan-out of applied revisions to watchers;
//! - [`storage`]: the storage engine boundary (sled);
//! - [`error`]: internal errors and their etcd wire form;
//! - [`proto`]: generated etcd wire types.

pub mod apply;
pub mod compactor;
pub mod config;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod lease;
pub mod members;
pub mod membership;
pub mod mvcc;
pub mod proto;
pub mod raft;
pub mod routing;
pub mod server;
pub mod state;
pub mod storage;
pub mod watch;
