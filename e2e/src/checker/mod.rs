//! Checkers for recorded histories: linearizability of the KV operations against the
//! etcd model, and watch guarantees against the revisions that linearization produced.

pub mod linearizability;
pub mod report;
pub mod revision_log;
pub mod watch;

mod describe;
mod model;
mod operation;
mod resolve;
mod search;

use std::fmt;

use crate::history::{History, Request};
pub use linearizability::{CheckOptions, Linearizability, Linearization, check_linearizability};
pub use report::ViolationReport;
pub use revision_log::RevisionLog;
pub use watch::{Compaction, WatchGuarantee, WatchViolation, check_watches};

/// Every checker's verdict on one history.
#[derive(Debug)]
pub struct Report {
    pub linearizability: Linearizability,
    /// Watch violations. Reliability, resumability and prev_kv are checked only when a
    /// linearization was found.
    pub watch: Vec<WatchViolation>,
}

impl Report {
    /// Whether every check passed (an `Unknown` linearizability verdict does not).
    pub fn is_ok(&self) -> bool {
        self.linearizability.is_ok() && self.watch.is_empty()
    }
}

/// Runs every checker on `history`.
pub fn check(history: &History, options: &CheckOptions) -> Report {
    let linearizability = check_linearizability(history, options);
    let log = match &linearizability {
        Linearizability::Ok(linearization) => Some(linearization.revision_log()),
        _ => None,
    };
    let compactions: Vec<Compaction> = history
        .operations
        .iter()
        .filter_map(|op| match op.request {
            Request::Compact { revision } => Some(Compaction {
                invoked: op.invoke,
                revision,
            }),
            _ => None,
        })
        .collect();
    let watch = check_watches(&history.watches, log.as_ref(), &compactions);
    Report {
        linearizability,
        watch,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.linearizability {
            Linearizability::Ok(linearization) => {
                writeln!(
                    f,
                    "linearizable, final revision {}",
                    linearization.revision()
                )?;
            }
            Linearizability::Violation(report) => writeln!(f, "{report}")?,
            Linearizability::Unknown { reason } => {
                writeln!(f, "linearizability unknown: {reason}")?
            }
        }
        if self.watch.is_empty() {
            return write!(f, "watch guarantees hold");
        }
        writeln!(f, "{} watch violations:", self.watch.len())?;
        for violation in &self.watch {
            writeln!(f, "    {violation}")?;
        }
        Ok(())
    }
}
