//! End-to-end and robustness testing for oxcd: histories of client operations recorded
//! against a running cluster, the checkers that judge them, and the harness, traffic and
//! fault scenarios that produce them.
//!
//! # Layout
//!
//! - [`history`]: the recorded history, plain serde types saved as JSON with a report,
//!   and the [`history::Recorder`] that concurrent clients record into.
//! - [`checker`]: the verdicts; [`checker::check`] runs them all.
//!   - `checker::linearizability`: which operations constrain the search, the cutting of
//!     the history into windows at quiet points, and the verdict with its
//!     [`checker::Linearization`].
//!   - `checker::search`: the Wing–Gong/Lowe search over one window, with its memo and
//!     reductions; `checker::operation`: an operation as the search sees it.
//!   - `checker::model`: etcd's KV semantics: revisions, versions, txns, leases,
//!     compaction, reads of old revisions.
//!   - `checker::resolve`: pins writes whose answer was lost but whose value was seen.
//!   - `checker::report`: shrinks a failing window and explains it; `checker::describe`
//!     renders requests and answers for it.
//!   - `checker::revision_log`: the events per revision a linearization produced.
//!   - `checker::watch`: the ordered, unique, atomic, bookmarkable, reliable, resumable
//!     and prev_kv guarantees of watch streams.
//! - [`harness`]: `oxcd` processes on loopback (started through oxcd-testkit, which the
//!   server's and the load generator's tests share) with a proxy per directed peer link;
//!   kill, pause, restart, wipe, partition, delay, move the leader.
//! - [`traffic`]: clients and watchers of one profile (Kubernetes-like, key-value, lease)
//!   recording into the history.
//! - [`scenario`]: profile × fault runs, checked, with a report directory on failure.
//!   The quick set runs in `tests/it/robustness.rs`; the `oxcd-robustness` binary loops
//!   random scenarios for soak testing.
//! - [`error`]: the crate's error type.

pub mod checker;
pub mod error;
pub mod harness;
pub mod history;
pub mod scenario;
pub mod traffic;
