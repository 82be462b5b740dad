//! The faults a scenario injects while traffic runs, and how each is undone.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::harness::{Cluster, LinkMode};
use crate::history::{ClientId, Recorder, Request};
use crate::traffic::client::RecordingClient;

/// The client ID of the harness's own recorded requests (compactions).
pub const HARNESS_CLIENT: ClientId = 1000;

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// None: the baseline.
    Nothing,
    /// kill -9 the leader, restart it a moment later.
    KillLeader,
    /// kill -9 a follower, restart it a moment later.
    KillFollower,
    /// kill -9 every member at once, restart them all: nothing acknowledged may be lost.
    KillAll,
    /// SIGSTOP a member for a few seconds, then SIGCONT.
    PauseMember,
    /// Blackhole every link to and from the leader for a few seconds, then heal.
    IsolateLeader,
    /// Drop only what the leader sends: it still hears the others, they no longer hear it.
    PartitionLeaderOneWay,
    /// Delay every peer link by 20–150 ms for a while.
    DelayLinks,
    /// Replace a follower by a new member with an empty data dir (MemberRemove, wipe,
    /// MemberAdd, start with `--initial-cluster-state existing`).
    WipeMember,
    /// Hand leadership to a follower (Maintenance MoveLeader).
    MoveLeader,
    /// A member crashes at a fail point (armed at cluster start), then restarts.
    Failpoint(CrashPoint),
    /// Compactions while watches run, recorded in the history.
    Compaction,
    /// Maintenance Defragment on every member, repeatedly.
    Defragment,
}

/// Where a `Fault::Failpoint` member crashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrashPoint {
    RaftBeforeSave,
    RaftAfterSave,
    ApplyBefore,
    ApplyAfter,
    SnapshotBeforeBuild,
    /// Armed when a follower that was down long enough to need a snapshot restarts.
    SnapshotBeforeInstall,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 6] = [
        CrashPoint::RaftBeforeSave,
        CrashPoint::RaftAfterSave,
        CrashPoint::ApplyBefore,
        CrashPoint::ApplyAfter,
        CrashPoint::SnapshotBeforeBuild,
        CrashPoint::SnapshotBeforeInstall,
    ];

    /// The fail point's name in the server.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::RaftBeforeSave => "raft-before-save",
            CrashPoint::RaftAfterSave => "raft-after-save",
            CrashPoint::ApplyBefore => "apply-before",
            CrashPoint::ApplyAfter => "apply-after",
            CrashPoint::SnapshotBeforeBuild => "snapshot-before-build",
            CrashPoint::SnapshotBeforeInstall => "snapshot-before-install",
        }
    }

    /// Whether a member is armed at cluster start; else the fault arms one on restart.
    pub fn armed_at_start(self) -> bool {
        self != CrashPoint::SnapshotBeforeInstall
    }

    /// How many passes of the fail point to let through before crashing: some way into
    /// the traffic, well before its end.
    pub fn passes(self, rng: &mut StdRng) -> u32 {
        match self {
            // Snapshots come every `--snapshot-count` entries: the first or the second.
            CrashPoint::SnapshotBeforeBuild => rng.random_range(0..2),
            CrashPoint::SnapshotBeforeInstall => 0,
            _ => rng.random_range(20..150),
        }
    }

    /// The `FAILPOINTS` value that crashes after `passes` passes.
    pub fn failpoints(self, passes: u32) -> String {
        format!("{}={passes}*off->panic", self.name())
    }
}

impl Fault {
    /// Every fault the long run picks from.
    pub fn all() -> Vec<Fault> {
        let mut faults = vec![
            Fault::Nothing,
            Fault::KillLeader,
            Fault::KillFollower,
            Fault::KillAll,
            Fault::PauseMember,
            Fault::IsolateLeader,
            Fault::PartitionLeaderOneWay,
            Fault::DelayLinks,
            Fault::WipeMember,
            Fault::MoveLeader,
            Fault::Compaction,
            Fault::Defragment,
        ];
        faults.extend(CrashPoint::ALL.map(Fault::Failpoint));
        faults
    }

    /// Whether striking again in the same run makes sense: not for a member armed at
    /// start (its fail point is gone after the crash), nor for the faults that repeat
    /// by themselves until the traffic ends.
    pub fn repeatable(self) -> bool {
        match self {
            Fault::Nothing | Fault::Compaction | Fault::Defragment => false,
            Fault::Failpoint(point) => !point.armed_at_start(),
            _ => true,
        }
    }

    pub fn name(self) -> String {
        match self {
            Fault::Nothing => "none".into(),
            Fault::KillLeader => "kill-leader".into(),
            Fault::KillFollower => "kill-follower".into(),
            Fault::KillAll => "kill-all".into(),
            Fault::PauseMember => "pause-member".into(),
            Fault::IsolateLeader => "isolate-leader".into(),
            Fault::PartitionLeaderOneWay => "partition-leader-one-way".into(),
            Fault::DelayLinks => "delay-links".into(),
            Fault::WipeMember => "wipe-member".into(),
            Fault::MoveLeader => "move-leader".into(),
            Fault::Failpoint(point) => format!("crash-at-{}", point.name()),
            Fault::Compaction => "compaction".into(),
            Fault::Defragment => "defragment".into(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fault::all()
            .into_iter()
            .find(|fault| fault.name() == s)
            .ok_or_else(|| format!("unknown fault {s:?}"))
    }
}

/// What the injector needs besides the cluster.
pub struct Injection<'a> {
    pub rng: &'a mut StdRng,
    pub recorder: &'a Arc<Recorder>,
    /// When the traffic ends: faults are undone before it.
    pub traffic_end: Instant,
    /// The member armed with the fail point, for `Fault::Failpoint`.
    pub armed: Option<usize>,
}

/// Injects `fault` once (or, for compaction and defragment, repeatedly), undoes it, and
/// returns how many times it struck.
pub async fn inject(cluster: &mut Cluster, fault: Fault, at: Injection<'_>) -> Result<usize> {
    let Injection {
        rng,
        recorder,
        traffic_end,
        armed,
    } = at;
    let settle = Duration::from_millis(rng.random_range(1000..3000));
    tokio::time::sleep(settle).await;
    let outage = Duration::from_millis(rng.random_range(1500..3500));
    match fault {
        Fault::Nothing => Ok(0),
        Fault::KillLeader | Fault::KillFollower => {
            let victim = pick(cluster, rng, fault == Fault::KillLeader).await?;
            cluster.kill(victim);
            tokio::time::sleep(outage).await;
            cluster.start_member(victim)?;
            Ok(1)
        }
        Fault::KillAll => {
            for member in 0..cluster.size() {
                cluster.kill(member);
            }
            tokio::time::sleep(outage / 2).await;
            cluster.revive_all()?;
            Ok(1)
        }
        Fault::PauseMember => {
            let victim = rng.random_range(0..cluster.size());
            cluster.pause(victim)?;
            tokio::time::sleep(outage).await;
            cluster.resume(victim)?;
            Ok(1)
        }
        Fault::IsolateLeader => {
            let leader = pick(cluster, rng, true).await?;
            cluster.isolate(leader, LinkMode::Blackhole);
            tokio::time::sleep(outage).await;
            cluster.heal();
            Ok(1)
        }
        Fault::PartitionLeaderOneWay => {
            let leader = pick(cluster, rng, true).await?;
            for other in (0..cluster.size()).filter(|&i| i != leader) {
                cluster.set_link(leader, other, LinkMode::Drop);
            }
            tokio::time::sleep(outage).await;
            cluster.heal();
            Ok(1)
        }
        Fault::DelayLinks => {
            delay_links(cluster, rng, outage * 2).await;
            Ok(1)
        }
        Fault::WipeMember => {
            let victim = pick(cluster, rng, false).await?;
            cluster.wipe(victim).await?;
            Ok(1)
        }
        Fault::MoveLeader => {
            let target = pick(cluster, rng, false).await?;
            cluster.move_leader(target).await?;
            Ok(1)
        }
        Fault::Failpoint(point) if !point.armed_at_start() => {
            let victim = pick(cluster, rng, false).await?;
            crash_installing_snapshot(cluster, victim, point, traffic_end).await
        }
        Fault::Failpoint(point) => {
            let member = armed.ok_or_else(|| Error::Cluster("no member armed".into()))?;
            await_crash(cluster, member, point, traffic_end).await?;
            tokio::time::sleep(outage / 3).await;
            cluster.start_member(member)?;
            Ok(1)
        }
        Fault::Compaction => compactions(cluster, rng, recorder, traffic_end).await,
        Fault::Defragment => defragments(cluster, traffic_end, outage / 2).await,
    }
}

/// Delays every link by its own 20–150 ms for `outage`.
async fn delay_links(cluster: &mut Cluster, rng: &mut StdRng, outage: Duration) {
    for from in 0..cluster.size() {
        for to in (0..cluster.size()).filter(|&to| to != from) {
            let delay = Duration::from_millis(rng.random_range(20..150));
            cluster.set_link(from, to, LinkMode::Delay(delay));
        }
    }
    tokio::time::sleep(outage).await;
    cluster.heal();
}

/// Waits (until the traffic ends) for the armed member to crash at its fail point.
async fn await_crash(
    cluster: &mut Cluster,
    member: usize,
    point: CrashPoint,
    traffic_end: Instant,
) -> Result<()> {
    let left = traffic_end.saturating_duration_since(Instant::now());
    cluster
        .member(member)
        .exited_within(left)
        .await
        .map(|_| ())
        .ok_or_else(|| Error::Cluster(format!("fail point {} never fired", point.name())))
}

/// Keeps `victim` down until the log it needs is purged, brings it back with the fail
/// point armed, so that it crashes installing the leader's snapshot, and restarts it to
/// recover from that. Returns 0 (and just restarts it) if the traffic ends too soon for
/// the log to be purged.
async fn crash_installing_snapshot(
    cluster: &mut Cluster,
    victim: usize,
    point: CrashPoint,
    traffic_end: Instant,
) -> Result<usize> {
    let others: Vec<usize> = (0..cluster.size()).filter(|&i| i != victim).collect();
    let last_index = cluster
        .client_of(&[victim])
        .await?
        .status()
        .await?
        .raft_index();
    cluster.kill(victim);
    // The leader postpones a purge while a replication uses those entries, so wait for the
    // purge itself rather than for some number of writes.
    let stop_waiting = traffic_end - Duration::from_secs(5);
    loop {
        if Instant::now() >= stop_waiting {
            cluster.start_member(victim)?;
            return Ok(0);
        }
        let leader = cluster
            .leader_among(&others, Duration::from_secs(5))
            .await?;
        if cluster.member(leader).purged_upto() > last_index {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.restart_with_failpoints(victim, &point.failpoints(0))?;
    await_crash(cluster, victim, point, traffic_end).await?;
    cluster.start_member(victim)?;
    Ok(1)
}

/// Defragments every member, again and again, until the traffic nears its end.
async fn defragments(
    cluster: &mut Cluster,
    traffic_end: Instant,
    pause: Duration,
) -> Result<usize> {
    let mut count = 0;
    while Instant::now() + Duration::from_secs(2) < traffic_end {
        for member in 0..cluster.size() {
            cluster.defragment(member).await?;
            count += 1;
        }
        tokio::time::sleep(pause).await;
    }
    Ok(count)
}

/// The leader, or a random follower.
async fn pick(cluster: &mut Cluster, rng: &mut StdRng, leader: bool) -> Result<usize> {
    let current = cluster.leader(Duration::from_secs(15)).await?;
    if leader {
        return Ok(current);
    }
    let followers: Vec<usize> = (0..cluster.size()).filter(|&i| i != current).collect();
    Ok(followers[rng.random_range(0..followers.len())])
}

/// The current revision, as the given members report it.
async fn revision(cluster: &Cluster, members: &[usize]) -> Result<i64> {
    let mut client = cluster.client_of(members).await?;
    Ok(client.status().await?.header().map_or(0, |h| h.revision()))
}

/// Compacts a little below the current revision every second or two, until the traffic
/// nears its end; each compaction is recorded.
async fn compactions(
    cluster: &mut Cluster,
    rng: &mut StdRng,
    recorder: &Arc<Recorder>,
    traffic_end: Instant,
) -> Result<usize> {
    let mut client = RecordingClient::new(
        HARNESS_CLIENT,
        cluster.endpoints(),
        recorder.clone(),
        Duration::from_secs(3),
    );
    let mut count = 0;
    while Instant::now() + Duration::from_secs(2) < traffic_end {
        let leader = cluster.leader(Duration::from_secs(10)).await?;
        let revision = revision(cluster, &[leader]).await?;
        let behind = rng.random_range(0..20);
        if revision - behind > 1 {
            client
                .execute(Request::Compact {
                    revision: revision - behind,
                })
                .await;
            count += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(700..2000))).await;
    }
    Ok(count)
}
