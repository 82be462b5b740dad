//! `oxcd-bench`, a load generator for etcd v3 servers (oxcd or etcd itself) in the spirit of
//! etcd's `benchmark` tool: it speaks the v3 gRPC API through the `etcd-client` crate, so
//! both servers are measured through the same client.
//!
//! # Layout
//!
//! - [`cli`]: the command line: shared options ([`cli::Common`]) and one subcommand per
//!   workload.
//! - [`pool`]: the `--conns` connections to the `--target` members, shared round-robin; each
//!   an HTTP/2 connection of its own that requests go out on directly, kept with the clients
//!   that use it on one of `--threads` single-threaded event loops.
//! - [`driver`]: the closed loop of `--clients` [`driver::Worker`]s under a budget
//!   (`--total` or `--duration`, paced by `--rate`), latencies in an HDR histogram.
//! - [`keys`]: key spaces and values.
//! - [`kv`]: `put`, `range`, `txn-put`, `mixed`; [`watch`]: watch fan-out delivery latency;
//!   [`lease`]: `lease-keepalive`; [`load`]: bulk load, then a full scan by prefix in pages.
//! - [`gateway`]: `gateway-put` and `gateway-range`, the same requests through the JSON
//!   gateway over HTTP/1.1.
//! - [`report`]: the [`report::Summary`], printed for people and as one JSON line.
//! - [`tls`]: TLS to https endpoints (`--cacert`, `--cert`, `--key`).
//! - [`error`]: the crate's error type: why a run could not start.
//!
//! The `oxcd-bench` binary (`src/main.rs`) parses the command line and calls [`run`];
//! `compare.sh`, beside this crate, runs it against oxcd and Debian's etcd 3.4 side by side.

pub mod cli;
pub mod driver;
pub mod error;
pub mod gateway;
pub mod keys;
pub mod kv;
pub mod lease;
pub mod load;
pub mod pool;
pub mod report;
pub mod tls;
pub mod watch;

use cli::{Cli, Workload};
use error::Error;
use report::Summary;

/// Runs the workload the command line names ([`Cli::validate`] it first). Fails only when
/// the run cannot start (no connection, no leader); failed requests are counted instead.
pub async fn run(cli: &Cli) -> Result<Summary, Error> {
    let common = &cli.common;
    match &cli.workload {
        Workload::Put(args) => kv::put(common, args).await,
        Workload::Range(args) => kv::range(common, args).await,
        Workload::TxnPut(args) => kv::txn_put(common, args).await,
        Workload::Mixed(args) => kv::mixed(common, args).await,
        Workload::Watch(args) => watch::watch(common, args).await,
        Workload::LeaseKeepalive(args) => lease::lease_keepalive(common, args).await,
        Workload::Load(args) => load::load(common, args).await,
        Workload::GatewayPut(args) => gateway::put(common, args).await,
        Workload::GatewayRange(args) => gateway::range(common, args).await,
    }
}
