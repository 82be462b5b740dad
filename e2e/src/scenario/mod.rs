//! Robustness scenarios: one traffic profile and one fault against a fresh cluster, then
//! the recorded history checked for linearizability and watch guarantees.
//!
//! A scenario runs traffic for a bounded time while the fault strikes and is undone;
//! then it heals the cluster, reads the final revision, lets every watcher catch up with
//! it, checks that the members converged (same revision, same HashKV), and runs the
//! checkers. A failing scenario writes the history, the checker's report and the members'
//! logs to a directory under the temp dir (see [`report`]); with
//! `OXCD_ROBUSTNESS_KEEP_REPORTS` set, a passing one does too.

pub mod fault;
pub mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::checker::{self, CheckOptions, Report};
use crate::error::Result;
use crate::harness::{Cluster, ClusterOptions};
use crate::history::{History, Outcome, Recorder, Request};
use crate::traffic::client::RecordingClient;
use crate::traffic::{self, Profile, TrafficOptions};
pub use fault::{CrashPoint, Fault};

/// Set to write the report directory of passing scenarios too.
pub const KEEP_REPORTS_VAR: &str = "OXCD_ROBUSTNESS_KEEP_REPORTS";

/// The client ID of the final read that fixes the revision watchers must reach.
const FINAL_READ_CLIENT: u32 = 1001;

/// One profile × fault run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub profile: Profile,
    pub fault: Fault,
    pub seed: u64,
    pub traffic: TrafficOptions,
    pub cluster: ClusterOptions,
    /// Strike again (after it was undone) while the traffic lasts, if the fault allows.
    pub repeat_fault: bool,
    /// Limits on the checker.
    pub check: CheckOptions,
}

impl Scenario {
    /// A scenario with the default cluster (3 members) and traffic (about 12 s).
    pub fn new(profile: Profile, fault: Fault, seed: u64) -> Self {
        Scenario {
            profile,
            fault,
            seed,
            traffic: TrafficOptions {
                seed,
                ..TrafficOptions::default()
            },
            cluster: ClusterOptions::default(),
            repeat_fault: false,
            check: CheckOptions {
                timeout: Some(Duration::from_secs(90)),
                ..CheckOptions::default()
            },
        }
    }

    pub fn name(&self) -> String {
        format!("{}-{}-seed{}", self.profile, self.fault, self.seed)
    }
}

/// What a scenario found.
#[derive(Debug)]
pub struct ScenarioResult {
    pub name: String,
    pub operations: usize,
    /// Operations that got an answer.
    pub answered: usize,
    pub watch_responses: usize,
    /// How many times the fault struck.
    pub faults: usize,
    /// Problems besides the checkers' verdicts: a fault that could not be injected or
    /// undone, members that did not recover or converge, watchers that never caught up.
    pub problems: Vec<String>,
    pub report: Report,
    /// Where the failure report went, if the scenario failed.
    pub report_dir: Option<PathBuf>,
}

impl ScenarioResult {
    pub fn is_ok(&self) -> bool {
        self.report.is_ok() && self.problems.is_empty()
    }

    /// Whether a checker found a violation (rather than a liveness problem).
    pub fn has_violation(&self) -> bool {
        self.report.linearizability.is_violation() || !self.report.watch.is_empty()
    }
}

/// Runs a scenario on a fresh cluster.
pub async fn run(scenario: &Scenario) -> Result<ScenarioResult> {
    let mut rng = StdRng::seed_from_u64(scenario.seed);
    let (cluster_options, armed) = arm(scenario, &mut rng);
    let mut cluster = Cluster::start(cluster_options).await?;
    let recorder = Arc::new(Recorder::new());
    let endpoints = cluster.endpoints();
    let mut traffic = traffic::start(scenario.profile, &endpoints, &recorder, &scenario.traffic);
    let traffic_end = Instant::now() + scenario.traffic.duration;
    let mut problems = Vec::new();
    let striking = strike(
        scenario,
        &mut cluster,
        &mut rng,
        &recorder,
        traffic_end,
        armed,
    );
    let (struck, ()) = tokio::join!(striking, traffic.wait_clients());
    let faults = struck.unwrap_or_else(|e| {
        problems.push(format!("fault {}: {e}", scenario.fault));
        0
    });
    let final_revision = recover(&mut cluster, &recorder, &mut problems).await;
    if let Some(revision) = final_revision {
        let lagging = traffic
            .finish_watchers(revision, Duration::from_secs(20))
            .await;
        if !lagging.is_empty() {
            problems.push(format!(
                "watchers {lagging:?} did not catch up with revision {revision}"
            ));
        }
    }
    drop(traffic);
    let history = recorder.history();
    let report = judge(&history, &scenario.check).await?;
    let mut result = summarize(scenario.name(), &history, faults, problems, report);
    if !result.is_ok() || std::env::var_os(KEEP_REPORTS_VAR).is_some() {
        let dir = report::write(scenario, &result, &history, &cluster)?;
        let verdict = if result.is_ok() { "passed" } else { "failed" };
        eprintln!(
            "robustness scenario {} {verdict}; report in {}",
            result.name,
            dir.display()
        );
        result.report_dir = Some(dir);
    }
    Ok(result)
}

/// The cluster options, with a member armed with the scenario's fail point if it is one
/// armed at start; returns that member too.
fn arm(scenario: &Scenario, rng: &mut StdRng) -> (ClusterOptions, Option<usize>) {
    let mut options = scenario.cluster.clone();
    let Fault::Failpoint(point) = scenario.fault else {
        return (options, None);
    };
    if !point.armed_at_start() {
        return (options, None);
    }
    let member = rng.random_range(0..options.size);
    let passes = point.passes(rng);
    options.failpoints.insert(member, point.failpoints(passes));
    (options, Some(member))
}

/// Injects the fault, again and again if the scenario asks and time allows; returns how
/// many times it struck.
async fn strike(
    scenario: &Scenario,
    cluster: &mut Cluster,
    rng: &mut StdRng,
    recorder: &Arc<Recorder>,
    traffic_end: Instant,
    armed: Option<usize>,
) -> Result<usize> {
    let mut count = 0;
    loop {
        let injection = fault::Injection {
            rng: &mut *rng,
            recorder,
            traffic_end,
            armed,
        };
        count += fault::inject(cluster, scenario.fault, injection).await?;
        let time_left = Instant::now() + Duration::from_secs(6) < traffic_end;
        if !(scenario.repeat_fault && scenario.fault.repeatable() && time_left) {
            return Ok(count);
        }
    }
}

/// Runs the checkers off the async threads: a search can take a while.
async fn judge(history: &History, options: &CheckOptions) -> Result<Report> {
    let (history, options) = (history.clone(), options.clone());
    tokio::task::spawn_blocking(move || checker::check(&history, &options))
        .await
        .map_err(|e| crate::error::Error::Cluster(format!("checker panicked: {e}")))
}

/// Heals the cluster, waits for it to serve and converge, and reads the final revision
/// (a recorded read). Problems found on the way are noted; returns the revision.
async fn recover(
    cluster: &mut Cluster,
    recorder: &Arc<Recorder>,
    problems: &mut Vec<String>,
) -> Option<i64> {
    cluster.heal();
    if let Err(e) = cluster.revive_all() {
        problems.push(format!("restarting members: {e}"));
    }
    if let Err(e) = cluster.wait_ready(Duration::from_secs(30)).await {
        problems.push(format!("cluster did not recover: {e}"));
        return None;
    }
    let mut client = RecordingClient::new(
        FINAL_READ_CLIENT,
        cluster.endpoints(),
        recorder.clone(),
        Duration::from_secs(3),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut revision = None;
    while revision.is_none() && Instant::now() < deadline {
        if let Outcome::Response(response) = client.execute(Request::get("final")).await {
            revision = Some(response.revision);
        }
    }
    if revision.is_none() {
        problems.push("the final read never succeeded".into());
    }
    if let Err(e) = cluster.wait_converged(Duration::from_secs(30)).await {
        problems.push(format!("members did not converge: {e}"));
    }
    revision
}

fn summarize(
    name: String,
    history: &History,
    faults: usize,
    mut problems: Vec<String>,
    report: Report,
) -> ScenarioResult {
    let operations = history.operations.len();
    let answered = history
        .operations
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Response(_)))
        .count();
    // A run in which almost nothing succeeded tested nothing.
    if answered < 50 {
        problems.push(format!(
            "only {answered} of {operations} operations were answered"
        ));
    }
    let watch_responses = history.watches.iter().map(|w| w.responses.len()).sum();
    ScenarioResult {
        name,
        operations,
        answered,
        watch_responses,
        faults,
        problems,
        report,
        report_dir: None,
    }
}
