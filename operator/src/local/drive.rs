//! Driving [`LocalWorkloads`] as an operator process would: one pass with only what the
//! workloads keep, and passes until in sync, with operators that die where a test says.

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;

use super::LocalWorkloads;
use crate::act::{Actor, CrashPoints, Pass, Transition};
use crate::error::{Error, Result};
use crate::plan::{Step, Want};

/// One reconcile pass, as an operator that knows only what the workloads keep.
pub async fn pass(
    w: &LocalWorkloads,
    cluster: &str,
    token: &str,
    want: &Want,
    crash: &CrashPoints,
) -> Result<Pass> {
    let mut actor = Actor {
        workloads: w,
        cluster: cluster.into(),
        token: token.into(),
        want: want.clone(),
        status: w.status.lock().unwrap().clone(),
        crash,
        now: Timestamp::now(),
        generation: Some(1),
        extra_conditions: Vec::new(),
        changed_before: false,
    };
    actor.pass().await
}

/// Where [`drive`]'s operators die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crashes {
    Never,
    /// Every pass's operator dies right after its first cluster call or write, and a new
    /// one takes over in this process.
    EveryCall,
    /// The pass dies right after its `n`th cluster call or write, and [`drive`] stops with
    /// [`Stopped::Crashed`]: for a process that exits there.
    StopAfterCalls(i64),
}

/// Why [`drive`] stopped short of being in sync; what the last pass said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    Crashed(String),
    TimedOut(String),
}

/// Runs reconcile passes until the members are in sync with `want`, each pass as a fresh
/// operator that knows only what the workloads keep (the status): what a restarted
/// operator process would know. The transitions, in order.
pub async fn drive(
    w: &LocalWorkloads,
    cluster: &str,
    token: &str,
    want: &Want,
    crashes: Crashes,
    timeout: Duration,
) -> std::result::Result<Vec<Transition>, Stopped> {
    let started = Instant::now();
    let mut transitions = Vec::new();
    let mut last = String::new();
    while started.elapsed() < timeout {
        let crash = match crashes {
            Crashes::Never => CrashPoints::disarmed(),
            Crashes::EveryCall => CrashPoints::after(1),
            Crashes::StopAfterCalls(n) => CrashPoints::after(n),
        };
        let pause = match pass(w, cluster, token, want, &crash).await {
            Ok(pass) => {
                transitions.extend(pass.transitions);
                last = format!("{:?}", pass.step);
                match pass.step {
                    Step::InSync => return Ok(transitions),
                    Step::Wait { .. } | Step::Refuse { .. } => true,
                    _ => false,
                }
            }
            Err(Error::Crash(after)) => match crashes {
                Crashes::StopAfterCalls(_) => return Err(Stopped::Crashed(after)),
                _ => false,
            },
            // A call the cluster refused for now (an election, peers connected for less
            // than 5 s): the next pass looks again.
            Err(e) => {
                last = format!("error: {e}");
                true
            }
        };
        if pause {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Err(Stopped::TimedOut(last))
}
