//! A cluster of real `oxcd` processes on loopback for robustness runs, with the faults
//! the harness can inject into it. The processes themselves (ports, launch flags, kill -9,
//! SIGSTOP/SIGCONT, restart, the `oxcd-failpoints` binary, waiting) are oxcd-testkit's; what
//! is here is what robustness adds to them.
//!
//! # Layout
//!
//! - [`proxy`]: the TCP proxy of one directed peer link: pass, drop, blackhole, delay.
//! - [`cluster`]: members plus a proxy per directed link (each member dials its peers
//!   through them, see `OXCD_PEER_ROUTES` in the server's `raft::network`), and the
//!   cluster-level actions: isolate, partition, heal, wipe a member, move the leader,
//!   wait for a leader, check that members converged.

pub mod cluster;
pub mod proxy;

pub use cluster::{Cluster, ClusterOptions};
pub use proxy::{LinkMode, LinkProxy};
