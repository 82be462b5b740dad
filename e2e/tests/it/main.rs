//! The oxcd-e2e library tests: each checker shown to pass correct histories and to fail
//! broken ones.

mod fixtures;
mod linearizability;
mod random;
mod report;
mod watch;
