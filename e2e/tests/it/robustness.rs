//! The quick robustness set: each test runs one traffic profile against a fresh 3-member
//! cluster while one fault strikes, then checks the history for linearizability and watch
//! guarantees, and the members for convergence. A failure prints the directory with the
//! history, the checker's report and the members' logs.
//!
//! The tests take turns (one cluster at a time): on a small machine two clusters under
//! traffic at once slow each other into timeouts. `OXCD_ROBUSTNESS_SEED` changes the
//! seeds; the long run is the `oxcd-robustness` binary.

use std::time::Duration;

use oxcd_e2e::scenario::{self, CrashPoint, Fault, Scenario};
use oxcd_e2e::traffic::Profile;

/// One cluster at a time, across the tests of this binary.
pub static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Traffic per scenario.
const TRAFFIC: Duration = Duration::from_secs(10);

async fn run_scenario(profile: Profile, fault: Fault, seed: u64) {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let seed = std::env::var("OXCD_ROBUSTNESS_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(seed, |base| base.wrapping_add(seed));
    let mut scenario = Scenario::new(profile, fault, seed);
    scenario.traffic.duration = TRAFFIC;
    let result = scenario::run(&scenario)
        .await
        .unwrap_or_else(|e| panic!("scenario {} could not run: {e}", scenario.name()));
    let summary = scenario::report::summary(&scenario, &result);
    eprintln!("{summary}");
    assert!(
        result.is_ok(),
        "{summary}\nreport: {}",
        result
            .report_dir
            .map(|dir| dir.display().to_string())
            .unwrap_or_default()
    );
    assert!(
        result.faults > 0 || fault == Fault::Nothing,
        "the fault never struck"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_traffic_through_leader_kill() {
    run_scenario(Profile::Kubernetes, Fault::KillLeader, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_traffic_through_follower_kill() {
    run_scenario(Profile::Lease, Fault::KillFollower, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_traffic_through_leader_isolation() {
    run_scenario(Profile::KeyValue, Fault::IsolateLeader, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_traffic_through_member_wipe() {
    run_scenario(Profile::Kubernetes, Fault::WipeMember, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_traffic_through_crash_before_log_save() {
    run_scenario(
        Profile::KeyValue,
        Fault::Failpoint(CrashPoint::RaftBeforeSave),
        5,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_watches_through_compaction() {
    run_scenario(Profile::Kubernetes, Fault::Compaction, 6).await;
}
