//! Leases: the replicated lease table, and the leader's clock that decides when they expire.
//!
//! The table (lease → TTL and attached keys) is state-machine state: it changes only by
//! applying committed entries. Deadlines are not replicated: whichever member leads keeps
//! them in [`LeaseClock`], restarts them on election (like etcd's lessor promotion) and
//! proposes a revoke when one passes.
//!
//! # Layout
//! - [`table`]: the replicated table, loaded from and written to the state backend;
//! - [`clock`]: the leader's deadlines. The loop that proposes revokes for expired leases runs
//!   on the member handle ([`crate::server::lease`]), since it proposes through raft.

pub mod clock;
pub mod table;

pub use clock::LeaseClock;
pub use table::{Lease, LeaseTable};

/// etcd's upper bound on a lease TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
