//! Real `oxcd` member processes for tests, written once: the server's integration tests, the
//! load generator's, and oxcd-e2e's robustness harness all start, stop and wait for members
//! through this crate.
//!
//! Members run on loopback, each with its own ports, data dir and log file. The methods that
//! return nothing panic when something goes wrong, which is what a test wants; the ones that
//! return a [`Result`] are for harnesses that must carry on (oxcd-e2e's fault scenarios).
//!
//! # Layout
//!
//! - [`ports`]: free loopback ports, taken below the kernel's ephemeral range.
//! - [`binary`]: which server binary a member runs (`oxcd`, the `oxcd-failpoints` build,
//!   Debian's etcd), and building it when cargo has not.
//! - [`member`]: one member process: its [`Launch`] flags, data dir and log; kill -9,
//!   SIGTERM, SIGSTOP/SIGCONT, restart, waiting for it to exit; a one-member cluster in a temp
//!   dir of its own.
//! - [`cluster`]: members started together as a new cluster, members that join later, the
//!   leader they agree on.
//! - [`client`]: clients of members, and admin requests with a timeout.
//! - [`wait`]: polling a condition until a deadline.
//! - [`logs`]: what tests read from a member's log.
//! - [`error`]: the crate's error type.

pub mod binary;
pub mod client;
pub mod cluster;
pub mod error;
pub mod logs;
pub mod member;
pub mod ports;
pub mod wait;

pub use client::connect;
pub use cluster::Cluster;
pub use error::{Error, Result};
pub use logs::purged_upto;
pub use member::{Launch, Member};
pub use ports::free_port;
pub use wait::{poll_until, wait_for, wait_until};
