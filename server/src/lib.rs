//! oxcd: an etcd-compatible, raft-replicated key-value store.
//!
//! # Layout
//! From the top of the module graph to the bottom; every arrow points down, none back up
//! (`tests/it/modules.rs` checks that the modules form no cycle):
//!
//! ```text
//! app, offline ─▶ proxy, transport, grpc/http ─▶ v3 ─▶ backup ─▶ membership, compactor ─▶ server
//!   ─▶ raft ─▶ state ─▶ apply ─▶ mvcc, lease, alarm, auth, watch ─▶ storage, bolt
//!                       (beside all: typ, config, error, proto, metrics, checksum, tls)
//! ```
//!
//! - [`app`]: start-up wiring: opens storage, builds raft, spawns the loops, serves the ports;
//! - [`transport`]: listeners, accepting (TLS handshakes included), one server per port
//!   (gRPC + HTTP), graceful shutdown; what a request knows of its connection
//!   ([`transport::client_cert_cn`]);
//! - [`grpc`]: thin gRPC adapters over the v3 core, the request-context layer, and the peer
//!   port's service; [`http`]: the client port's HTTP endpoints;
//! - [`v3`]: the transport-neutral core, one function per etcd v3 RPC; [`v2`]: etcd's v2
//!   keys API, kept in the v3 key space under a reserved prefix;
//! - [`proxy`]: etcd's v2 proxy (`--proxy`, or the discovery fallback): no data, every
//!   HTTP request forwarded to the members' client URLs;
//! - [`offline`]: the offline tools, `oxcd snapshot restore|status` and `oxcd member-guard`;
//! - [`backup`]: snapshots in etcd's format: writing the state as etcd's database, a
//!   snapshot file's status, restoring a data dir from one (oxcd's or etcd's);
//! - [`membership`]: member and cluster ids, this member's identity on disk, the Cluster
//!   operations and the membership loops; [`compactor`]: auto compaction;
//! - [`server`]: the member handle: proposals, linearizable reads, lease routing to the
//!   leader, leader monitoring;
//! - [`raft`]: consensus: the WAL log store, the state-machine adapter, the peer network;
//! - [`state`]: the applied state on disk (key space, leases, applied position), snapshots
//!   and defragmentation; [`apply`]: the deterministic command → effect function;
//! - [`mvcc`]: the revisioned key space; [`lease`]: lease table and the leader's clock;
//!   [`alarm`]: the replicated alarms; [`auth`]: users, roles, permissions and tokens;
//!   [`watch`]: fan-out of applied revisions to watchers;
//! - [`storage`]: the storage engine boundary (sled); [`bolt`]: bbolt's file format, etcd's
//!   database, read and written page by page;
//! - [`typ`]: the replicated types and openraft's type configuration; [`config`]: etcd's
//!   flags, `ETCD_*` variables and config file; [`error`]: internal errors and their etcd
//!   wire form; [`proto`]: generated etcd wire types; [`metrics`]: Prometheus metrics under
//!   etcd's names; [`checksum`]: CRC-32C; [`tls`]: both ports' rustls configurations from
//!   the security flags, re-read when their files change, and dialing peers over TLS.

pub mod alarm;
pub mod app;
pub mod apply;
pub mod auth;
pub mod backup;
pub mod bolt;
pub mod checksum;
pub mod compactor;
pub mod config;
pub mod error;
pub mod grpc;
pub mod http;
pub mod lease;
pub mod membership;
pub mod metrics;
pub mod mvcc;
pub mod offline;
pub mod proto;
pub mod proxy;
pub mod raft;
pub mod server;
pub mod state;
pub mod storage;
pub mod tls;
pub mod transport;
pub mod typ;
pub mod v2;
pub mod v3;
pub mod watch;
