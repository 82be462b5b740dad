//! The oxcd-e2e library tests: each checker shown to pass correct histories and to fail
//! broken ones, and the quick robustness set against real clusters.

mod fixtures;
mod harness;
mod linearizability;
mod random;
mod report;
mod robustness;
mod watch;
