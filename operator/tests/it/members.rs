//! The operator's cluster-facing code (`members`, `act`, the planner) driving real oxcd
//! processes: creating a cluster, scaling it 3 -> 5 -> 3 under a writing client, replacing a
//! member whose data was wiped, and finishing every operation after a crash at every point.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};
use oxcd_operator::act::{Transition, Workloads};
use oxcd_operator::local::{self, Crashes, LocalWorkloads};
use oxcd_operator::members;
use oxcd_operator::plan::{Step, Want};

const TOKEN: &str = "default-demo-0000";

fn want(replicas: usize) -> Want {
    Want::new(replicas, "v1", "c1")
}

async fn drive(w: &LocalWorkloads, want: &Want, crash_every_call: bool) -> Vec<Transition> {
    let timeout = Duration::from_secs(180);
    let crashes = if crash_every_call {
        Crashes::EveryCall
    } else {
        Crashes::Never
    };
    local::drive(w, "demo", TOKEN, want, crashes, timeout)
        .await
        .unwrap_or_else(|last| {
            let status = w.status.lock().unwrap();
            panic!(
                "not in sync with {want:?} after {timeout:?}; last: {last:?}\n{status:#?}\n{}",
                w.logs()
            )
        })
}

fn workloads(dir: &std::path::Path) -> LocalWorkloads {
    let binary = oxcd_testkit::binary::oxcd().expect("the oxcd binary");
    LocalWorkloads::new(dir, binary, Box::new(oxcd_testkit::free_port))
}

/// The member list, once every member in it has published its name (a member that just
/// started publishes it shortly after).
async fn voters(w: &LocalWorkloads) -> (Option<u64>, Vec<(String, bool)>) {
    let started = Instant::now();
    loop {
        let view = members::observe(&members::Access::plain(), &w.client_urls()).await;
        let mut listed: Vec<(String, bool)> = view
            .members
            .iter()
            .map(|m| (m.name.clone(), m.learner))
            .collect();
        listed.sort();
        let published = listed.iter().all(|(name, _)| !name.is_empty());
        if published || started.elapsed() > Duration::from_secs(30) {
            return (view.cluster_id, listed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names(listed: &[(String, bool)]) -> Vec<&str> {
    listed.iter().map(|(n, _)| n.as_str()).collect()
}

/// Writes keys until told to stop; the keys whose put was acknowledged, with their values.
fn writer(
    endpoints: Vec<String>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<String, String>> {
    tokio::spawn(async move {
        let options = ConnectOptions::new().with_timeout(Duration::from_secs(3));
        let mut client = Client::connect(&endpoints, Some(options))
            .await
            .expect("connect the writer");
        let mut acked = BTreeMap::new();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let (key, value) = (format!("w/{i:08}"), format!("v{i}"));
            if client.put(key.clone(), value.clone(), None).await.is_ok() {
                acked.insert(key, value);
            }
            i += 1;
        }
        acked
    })
}

async fn assert_all_there(endpoints: &[String], acked: &BTreeMap<String, String>) {
    let mut client = Client::connect(endpoints, None).await.expect("connect");
    let got = client
        .get("w/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("read back");
    let stored: BTreeMap<String, String> = got
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
            )
        })
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|(k, v)| stored.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

/// Creates a 3-member cluster through the operator and writes the key `kept`; its id.
async fn three_members_with_a_key(w: &LocalWorkloads) -> Option<u64> {
    drive(w, &want(3), false).await;
    let (cluster_id, _) = voters(w).await;
    let mut client = Client::connect(w.client_urls(), None).await.unwrap();
    client.put("kept", "yes", None).await.unwrap();
    cluster_id
}

/// The key `kept` reads back. Members that were just restarted may refuse for a moment
/// while they catch up (Unavailable, as a member still applying its promotion answers), so
/// the read is tried for up to 30 s; any answer it gets must hold the key.
async fn assert_key_kept(w: &LocalWorkloads) {
    let started = Instant::now();
    loop {
        let read = async {
            let mut client = Client::connect(w.client_urls(), None).await?;
            client.get("kept", None).await
        };
        match read.await {
            Ok(got) => {
                assert_eq!(got.kvs()[0].value_str().unwrap(), "yes");
                return;
            }
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                eprintln!("reading `kept` back: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("`kept` could not be read back for 30 s: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_a_live_cluster_3_to_5_to_3_under_writes_keeping_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let w = workloads(dir.path());
    drive(&w, &want(3), false).await;
    let (cluster_id, listed) = voters(&w).await;
    assert_eq!(names(&listed), ["demo-0", "demo-1", "demo-2"]);
    assert_eq!(
        w.status.lock().unwrap().cluster_id,
        cluster_id.map(|id| format!("{id:x}"))
    );

    let seeds = w.client_urls();
    let stop = Arc::new(AtomicBool::new(false));
    let writes = writer(seeds.clone(), stop.clone());
    let up = drive(&w, &want(5), false).await;
    let reasons: Vec<&str> = up.iter().map(|t| t.reason).collect();
    assert_eq!(
        reasons,
        [
            "ScalingUp",
            "MemberAdded",
            "MemberPromoted",
            "ScalingUp",
            "MemberAdded",
            "MemberPromoted"
        ],
        "{up:#?}"
    );
    let (id_at_5, listed) = voters(&w).await;
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|(_, learner)| !learner), "{listed:?}");
    drive(&w, &want(3), false).await;
    stop.store(true, Ordering::Relaxed);
    let acked = writes.await.unwrap();
    assert!(
        acked.len() > 10,
        "the writer made progress: {}",
        acked.len()
    );

    let (id_at_3, listed) = voters(&w).await;
    assert_eq!(names(&listed), ["demo-0", "demo-1", "demo-2"]);
    assert_eq!(
        (id_at_5, id_at_3),
        (cluster_id, cluster_id),
        "one cluster throughout"
    );
    // The removed members' pods and volumes are gone (retention Delete).
    assert!(!w.root.join("volumes/demo-3").exists() && !w.root.join("volumes/demo-4").exists());
    assert_all_there(&seeds, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_finishes_when_the_operator_dies_after_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let w = workloads(dir.path());
    drive(&w, &want(3), true).await;
    let (cluster_id, listed) = voters(&w).await;
    assert_eq!(names(&listed), ["demo-0", "demo-1", "demo-2"]);
    let mut client = Client::connect(w.client_urls(), None).await.unwrap();
    client.put("before", "scaling", None).await.unwrap();
    drive(&w, &want(4), true).await;
    drive(&w, &want(2), true).await;
    let (id, listed) = voters(&w).await;
    assert_eq!(id, cluster_id);
    assert_eq!(names(&listed), ["demo-0", "demo-1"]);
    assert!(listed.iter().all(|(_, learner)| !learner));
    assert!(w.status.lock().unwrap().operation.is_none());
    let mut client = Client::connect(w.client_urls(), None).await.unwrap();
    let got = client.get("before", None).await.unwrap();
    assert_eq!(got.kvs()[0].value_str().unwrap(), "scaling");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_data_is_wiped_is_replaced_not_bootstrapped() {
    let dir = tempfile::tempdir().unwrap();
    let w = workloads(dir.path());
    let cluster_id = three_members_with_a_key(&w).await;

    // A member whose process dies is started again in its pod, on its data.
    w.kill_process("demo-0");
    drive(&w, &want(3), false).await;
    let demo_0 = w.client_url("demo-0");
    let mut c = Client::connect([demo_0.clone()], None).await.unwrap();
    let status = c.status().await.expect("demo-0 answers again");
    assert_eq!(status.header().unwrap().cluster_id(), cluster_id.unwrap());

    // A lost pod whose volume survives restarts on its data, as the same member.
    w.kill_pod("demo-2");
    drive(&w, &want(3), false).await;
    let (_, listed) = voters(&w).await;
    assert_eq!(names(&listed), ["demo-0", "demo-1", "demo-2"]);

    // Its data wiped: the init step refuses it, and it is replaced by a new member.
    w.kill_pod("demo-1");
    w.wipe("demo-1").unwrap();
    let events = drive(&w, &want(3), false).await;
    let reasons: Vec<&str> = events.iter().map(|t| t.reason).collect();
    assert!(reasons.contains(&"MemberReplaced"), "{events:#?}");
    let (id, listed) = voters(&w).await;
    assert_eq!(id, cluster_id, "no second cluster");
    assert_eq!(names(&listed), ["demo-0", "demo-2", "demo-3"]);
    for url in w.client_urls() {
        let mut c = Client::connect([url.clone()], None).await.unwrap();
        let status = c.status().await.unwrap();
        assert_eq!(
            status.header().unwrap().cluster_id(),
            cluster_id.unwrap(),
            "{url}"
        );
    }
    assert_key_kept(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_lost_with_two_pods_comes_back_on_their_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let w = workloads(dir.path());
    let cluster_id = three_members_with_a_key(&w).await;

    // Two of three pods lost at once: the survivor cannot confirm any member list, and the
    // members missing from what it knows must not be taken for removed ones.
    w.kill_pod("demo-1");
    w.kill_pod("demo-2");
    drive(&w, &want(3), false).await;
    let (id, listed) = voters(&w).await;
    assert_eq!(id, cluster_id, "no second cluster");
    assert_eq!(names(&listed), ["demo-0", "demo-1", "demo-2"]);
    assert_key_kept(&w).await;

    // All three lost: restarted from what status recorded, on their volumes.
    for member in ["demo-0", "demo-1", "demo-2"] {
        w.kill_pod(member);
    }
    drive(&w, &want(3), false).await;
    let (id, listed) = voters(&w).await;
    assert_eq!(id, cluster_id, "no second cluster");
    assert_eq!(names(&listed), ["demo-0", "demo-1", "demo-2"]);
    assert_key_kept(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_restarts_one_member_at_a_time_the_leader_last() {
    let dir = tempfile::tempdir().unwrap();
    let w = workloads(dir.path());
    let cluster_id = three_members_with_a_key(&w).await;

    let upgrade = Want {
        version: "v2".into(),
        ..want(3)
    };
    let events = drive(&w, &upgrade, false).await;
    let reasons: Vec<&str> = events.iter().map(|t| t.reason).collect();
    let restarts: Vec<&str> = events
        .iter()
        .filter(|t| t.reason == "Upgraded")
        .map(|t| t.note.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(restarts.len(), 3, "{reasons:?}");
    // The leader's own roll moves leadership away before its pod goes.
    let last_roll = reasons.iter().rposition(|r| *r == "RollingMember").unwrap();
    assert!(
        reasons[last_roll..].contains(&"LeaderMoved") || restarts[2] != restarts[0],
        "{events:#?}"
    );
    let status = w.status.lock().unwrap().clone();
    assert!(status.operation.is_none());
    assert_eq!(status.current_version.as_deref(), Some("v2"));
    let (id, listed) = voters(&w).await;
    assert_eq!(id, cluster_id);
    assert_eq!(names(&listed), ["demo-0", "demo-1", "demo-2"]);
    assert_key_kept(&w).await;
}

/// Kills the member processes a persisted run left, when the test ends however it ends.
struct KillMembers(std::path::PathBuf);

impl Drop for KillMembers {
    fn drop(&mut self) {
        let binary = oxcd_testkit::binary::oxcd().expect("the oxcd binary");
        LocalWorkloads::open(&self.0, binary, Box::new(oxcd_testkit::free_port)).kill_all();
    }
}

/// Runs `oxcd-operator-local` on `dir`, each run killed (exit 3) right after its first
/// cluster call or write, until one finds the members in sync. How many runs were killed.
async fn run_until_in_sync(dir: &std::path::Path, replicas: usize) -> usize {
    let oxcd = oxcd_testkit::binary::oxcd().expect("the oxcd binary");
    let started = Instant::now();
    let mut killed = 0;
    loop {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_oxcd-operator-local"))
            .arg("--dir")
            .arg(dir)
            .arg("--oxcd")
            .arg(&oxcd)
            .args([
                "--replicas",
                &replicas.to_string(),
                "--crash-after-calls",
                "1",
            ])
            .output()
            .await
            .expect("run oxcd-operator-local");
        match out.status.code() {
            Some(0) => return killed,
            Some(3) => killed += 1,
            other => panic!("exit {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not in sync at {replicas} after 300 s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_process_killed_after_every_call_finishes_each_operation() {
    let dir = tempfile::tempdir().unwrap();
    let _cleanup = KillMembers(dir.path().to_path_buf());
    let created = run_until_in_sync(dir.path(), 3).await;
    let open = || {
        let binary = oxcd_testkit::binary::oxcd().unwrap();
        LocalWorkloads::open(dir.path(), binary, Box::new(oxcd_testkit::free_port))
    };
    let w = open();
    let mut client = Client::connect(w.client_urls(), None).await.unwrap();
    client.put("kept", "yes", None).await.unwrap();
    let (cluster_id, _) = voters(&w).await;
    let up = run_until_in_sync(dir.path(), 4).await;
    let down = run_until_in_sync(dir.path(), 2).await;
    // Every operation took several processes, each killed after one call.
    assert!(
        created >= 3 && up >= 4 && down >= 3,
        "{created} {up} {down}"
    );
    let w = open();
    let (id, listed) = voters(&w).await;
    assert_eq!(id, cluster_id, "one cluster throughout");
    assert_eq!(names(&listed), ["local-0", "local-1"]);
    assert!(listed.iter().all(|(_, learner)| !learner));
    assert!(w.status.lock().unwrap().operation.is_none());
    assert_key_kept(&w).await;
}

/// Keys `r/000..` written on a 3-member cluster and applied on every member, with their mod
/// revisions; the cluster id.
async fn three_members_with_applied_writes(
    w: &LocalWorkloads,
    want: &Want,
) -> (Option<u64>, BTreeMap<String, i64>) {
    drive(w, want, false).await;
    let (cluster_id, _) = voters(w).await;
    let mut client = Client::connect(w.client_urls(), None).await.unwrap();
    let mut written = BTreeMap::new();
    for i in 0..100 {
        let key = format!("r/{i:03}");
        let put = client.put(key.clone(), "v", None).await.expect("put");
        written.insert(key, put.header().unwrap().revision());
    }
    for url in w.client_urls() {
        let started = Instant::now();
        while local_keys(&url).await != written {
            assert!(started.elapsed() < Duration::from_secs(60), "{url} lags");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (cluster_id, written)
}

/// The `r/` keys one member holds, with their mod revisions, read locally (serializable),
/// as a member without quorum still answers.
async fn local_keys(url: &str) -> BTreeMap<String, i64> {
    let Ok(mut client) = Client::connect([url], None).await else {
        return BTreeMap::new();
    };
    let options = GetOptions::new().with_prefix().with_serializable();
    let Ok(got) = client.get("r/", Some(options)).await else {
        return BTreeMap::new();
    };
    got.kvs()
        .iter()
        .map(|kv| (kv.key_str().unwrap().to_string(), kv.mod_revision()))
        .collect()
}

/// Kills demo-0 and demo-1 and deletes their volumes: demo-2 is left alone, without quorum.
async fn lose_the_majority(w: &LocalWorkloads) {
    for member in ["demo-0", "demo-1"] {
        w.kill_pod(member);
        w.delete_volume(member).await.unwrap();
    }
}

/// The cluster after a recovery: 3 voters around the survivor, the same cluster id, every
/// key the survivor held with its revision on every member, no pod left with the flag.
async fn assert_recovered(
    w: &LocalWorkloads,
    cluster_id: Option<u64>,
    written: &BTreeMap<String, i64>,
) {
    let (id, listed) = voters(w).await;
    assert_eq!(id, cluster_id, "the survivor keeps the cluster id");
    assert_eq!(names(&listed), ["demo-2", "demo-3", "demo-4"]);
    assert!(listed.iter().all(|(_, learner)| !learner), "{listed:?}");
    for url in w.client_urls() {
        let started = Instant::now();
        while local_keys(&url).await != *written {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{url} does not hold every key the survivor had"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for workload in w.observe().await.unwrap() {
        let pod = workload.pod.expect("every member has its pod");
        assert!(
            !pod.forced,
            "{} still runs with --force-new-cluster",
            workload.name
        );
    }
    let status = w.status.lock().unwrap().clone();
    let report = status.last_recovery.expect("the recovery is reported");
    assert_eq!(report.survivor, "demo-2");
    assert_eq!(report.lost_members.len(), 2, "{report:?}");
    assert!(report.survivor_applied_index > 0);
    // Every write was applied everywhere before the loss: nothing reported as possibly lost.
    let (kept, seen) = (
        report.survivor_revision.unwrap(),
        report.lost_revision.unwrap(),
    );
    assert!(kept >= seen, "{report:?}");
    assert!(kept > 100, "the survivor holds the 100 writes: {report:?}");
    assert_eq!(status.quorum_lost_since, None);
    let mut client = Client::connect(w.client_urls(), None).await.unwrap();
    client
        .put("after", "recovery", None)
        .await
        .expect("writes work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_recovery_forces_the_survivor_and_grows_back_to_three_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let w = workloads(dir.path());
    let mut want = want(3);
    want.recovery.automatic = true;
    want.recovery.after = k8s_openapi::jiff::SignedDuration::from_secs(2);
    let (cluster_id, written) = three_members_with_applied_writes(&w, &want).await;

    lose_the_majority(&w).await;
    let events = drive(&w, &want, false).await;
    let reasons: Vec<&str> = events.iter().map(|t| t.reason).collect();
    let expected = [
        "RecoveringQuorum",
        "ForcedNewCluster",
        "QuorumRecovered",
        "ScalingUp",
        "MemberAdded",
        "MemberPromoted",
        "ScalingUp",
        "MemberAdded",
        "MemberPromoted",
    ];
    assert_eq!(reasons, expected, "{events:#?}");
    assert_recovered(&w, cluster_id, &written).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_recovery_waits_for_the_annotation_naming_the_survivor() {
    let dir = tempfile::tempdir().unwrap();
    let w = workloads(dir.path());
    let mut want = want(3);
    let (cluster_id, written) = three_members_with_applied_writes(&w, &want).await;

    lose_the_majority(&w).await;
    let crash = oxcd_operator::act::CrashPoints::disarmed();
    let mut refusals = 0;
    let started = Instant::now();
    while refusals < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no plan reported"
        );
        let pass = local::pass(&w, "demo", TOKEN, &want, &crash).await.unwrap();
        match &pass.step {
            Step::Refuse { reason, message } => {
                assert_eq!(*reason, "QuorumLost");
                assert!(
                    message.contains("set the annotation oxcd.io/force-new-cluster=demo-2"),
                    "{message}"
                );
                refusals += 1;
            }
            Step::Wait { .. } => {}
            step => panic!("nothing is to happen without the annotation: {step:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = w.status.lock().unwrap().clone();
    assert!(status.operation.is_none(), "{status:#?}");
    assert!(status.quorum_lost_since.is_some());
    let degraded = status.conditions.iter().find(|c| c.type_ == "Degraded");
    let degraded = degraded.expect("a Degraded condition");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "QuorumLost")
    );
    assert!(
        degraded.message.contains("demo-2 survives"),
        "{}",
        degraded.message
    );
    let workloads = w.observe().await.unwrap();
    let running: Vec<&str> = workloads
        .iter()
        .filter(|wl| wl.pod.is_some())
        .map(|wl| wl.name.as_str())
        .collect();
    assert_eq!(running, ["demo-2"]);
    assert!(!workloads[0].pod.as_ref().unwrap().forced);
    assert_eq!(local_keys(&w.client_url("demo-2")).await, written);

    // The annotation names another member: still nothing.
    want.recovery.approved = Some("demo-0".into());
    let pass = local::pass(&w, "demo", TOKEN, &want, &crash).await.unwrap();
    assert!(matches!(pass.step, Step::Refuse { .. }), "{:?}", pass.step);

    want.recovery.approved = Some("demo-2".into());
    let events = drive(&w, &want, false).await;
    assert!(
        events.iter().any(|t| t.reason == "ForcedNewCluster"),
        "{events:#?}"
    );
    assert_recovered(&w, cluster_id, &written).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_enabled_with_root_and_the_operator_goes_on_scaling_as_root() {
    use oxcd_operator::members::Access;
    use oxcd_operator::plan::Password;
    let dir = tempfile::tempdir().unwrap();
    let w = workloads(dir.path());
    let mut want = want(3);
    want.auth = Some(Password("s3cret-root".into()));
    let events = drive(&w, &want, false).await;
    assert_eq!(
        events.last().map(|t| t.reason),
        Some("AuthEnabled"),
        "{events:#?}"
    );
    assert!(w.status.lock().unwrap().auth_enabled);
    let urls = w.client_urls();
    let timeout = Duration::from_secs(5);
    // Without a user: refused. As root: served.
    let mut anonymous = Access::plain().connect(&urls, timeout).await.unwrap();
    let refused = anonymous.get("k", None).await.expect_err("auth is on");
    assert!(
        refused.to_string().contains("user name is empty"),
        "{refused}"
    );
    let root = Access::plain().with_credentials("root", "s3cret-root");
    let mut client = root.connect(&urls, timeout).await.unwrap();
    client.put("k", "v", None).await.unwrap();
    let wrong = Access::plain().with_credentials("root", "guess");
    assert!(wrong.connect(&urls, timeout).await.is_err());

    // Membership changes go on as root.
    want.replicas = 4;
    drive(&w, &want, false).await;
    want.replicas = 3;
    drive(&w, &want, false).await;
    let mut client = root.connect(&w.client_urls(), timeout).await.unwrap();
    assert_eq!(client.member_list().await.unwrap().members().len(), 3);
    assert_eq!(client.get("k", None).await.unwrap().kvs()[0].value(), b"v");

    // The backup command, as the CronJob runs it: root through the environment.
    let store = dir.path().join("backups");
    std::fs::create_dir_all(&store).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oxcd-operator"))
        .args(["--log-format", "text", "backup"])
        .arg(format!("--endpoints={}", w.client_urls()[0]))
        .arg(format!("--to=file://{}", store.display()))
        .env("ETCDCTL_USER", "root")
        .env("ETCDCTL_PASSWORD", "s3cret-root")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("s3cret-root"),
        "the password is not logged"
    );
}
