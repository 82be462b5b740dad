//! Performing steps: one reconcile pass observes the members (through [`Workloads`] and the
//! cluster API), asks the planner for the one next step, and carries it out.
//!
//! Nothing is kept in memory from one pass to the next: what a pass needs is in the status it
//! loaded and in what it observes, so a process that dies between any two calls resumes
//! where it stopped. [`CrashPoints`] let tests stop a pass after any cluster call or write.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::crd::{EtcdClusterStatus, OperationKind, RecoveryReport, RestorePhase, RestoreProgress};
use crate::error::{Error, Result};
use crate::members::{self, ClusterView};
use crate::observe;
use crate::plan::{self, Observed, Step, Want};
use crate::status;

/// Where a member's pod and volume live: Kubernetes in production ([`crate::k8s`]), plain
/// processes and directories in tests. Every call is idempotent: creating what exists or
/// deleting what is gone succeeds.
pub trait Workloads: Sync {
    fn peer_url(&self, member: &str) -> String;
    fn client_url(&self, member: &str) -> String;
    /// How the operator reaches the members (TLS or not).
    fn access(&self) -> members::Access {
        members::Access::plain()
    }
    /// This cluster's member pods and volumes.
    fn observe(&self) -> impl Future<Output = Result<Vec<Workload>>> + Send;
    /// Creates the member's volume if it has none, then its pod.
    fn start_member(&self, launch: &Launch) -> impl Future<Output = Result<()>> + Send;
    fn delete_pod(&self, member: &str) -> impl Future<Output = Result<()>> + Send;
    fn delete_volume(&self, member: &str) -> impl Future<Output = Result<()>> + Send;
    /// Writes the status (the operation in progress included) where the next pass reads it.
    fn save_status(&self, status: &EtcdClusterStatus) -> impl Future<Output = Result<()>> + Send;
}

/// A member's pod and volume as the workloads see them.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub pod: Option<plan::Pod>,
    pub volume: plan::Volume,
}

/// How to start one member.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub member: String,
    /// `--initial-cluster-state new`: the seed, once, before any cluster id is recorded.
    pub new_cluster: bool,
    /// `--initial-cluster`: name and peer URL of each member that the joining one must know.
    pub initial_cluster: Vec<(String, String)>,
    pub token: String,
    pub guard: Guard,
    pub version: String,
    pub config: String,
    /// `--force-new-cluster`: keep the data, make the membership this member alone.
    pub force_new_cluster: bool,
    /// The data dir is restored from a backup first (`oxcd-operator restore-member`): the
    /// seed of a cluster started from a backup.
    pub restore: Option<Restore>,
}

/// Where the seed's data comes from when a cluster starts from a backup.
#[derive(Debug, Clone, PartialEq)]
pub struct Restore {
    /// `restore-member`'s flags that name the backup: `--from`, `--name`, the store's.
    pub args: Vec<String>,
    /// A Secret whose keys become the restore step's environment (Kubernetes only).
    pub credentials_secret: Option<String>,
    /// A PersistentVolumeClaim the backups are on (Kubernetes only).
    pub volume_claim_name: Option<String>,
}

impl Restore {
    /// `oxcd-operator restore-member`'s arguments for `launch`'s member.
    pub fn member_args(&self, launch: &Launch, data_dir: &str, peer_url: &str) -> Vec<String> {
        let initial: Vec<String> = launch
            .initial_cluster
            .iter()
            .map(|(n, u)| format!("{n}={u}"))
            .collect();
        let mut args = vec!["restore-member".to_string()];
        args.extend(self.args.iter().cloned());
        for (flag, value) in [
            ("--data-dir", data_dir.to_string()),
            ("--member-name", launch.member.clone()),
            ("--initial-cluster", initial.join(",")),
            ("--initial-advertise-peer-urls", peer_url.to_string()),
            ("--initial-cluster-token", launch.token.clone()),
        ] {
            args.push(format!("{flag}={value}"));
        }
        args
    }
}

/// The init step's arguments (`oxcd member-guard`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Guard {
    pub cluster_id: Option<u64>,
    pub member_id: Option<u64>,
    /// The member has started before: an empty data dir means its data is gone.
    pub require_data: bool,
}

impl Guard {
    pub fn args(&self, data_dir: &str) -> Vec<String> {
        let mut args = vec![
            "member-guard".to_string(),
            "--data-dir".into(),
            data_dir.into(),
        ];
        if let Some(id) = self.cluster_id {
            args.extend(["--cluster-id".into(), format!("{id:x}")]);
        }
        if let Some(id) = self.member_id {
            args.extend(["--member-id".into(), format!("{id:x}")]);
        }
        if self.require_data {
            args.push("--require-data".into());
        }
        args
    }
}

/// Test-armed crash points: after the given number of cluster calls and writes, the next
/// one's pass stops with [`Error::Crash`], as if the process died right after it.
#[derive(Debug, Default)]
pub struct CrashPoints {
    remaining: AtomicI64,
}

impl CrashPoints {
    pub fn disarmed() -> CrashPoints {
        CrashPoints {
            remaining: AtomicI64::new(-1),
        }
    }

    /// Crash after `n` more calls.
    pub fn after(n: i64) -> CrashPoints {
        CrashPoints {
            remaining: AtomicI64::new(n),
        }
    }

    fn check(&self, what: &str) -> Result<()> {
        match self.remaining.fetch_sub(1, Ordering::SeqCst) {
            1 => Err(Error::Crash(what.to_string())),
            n if n <= 0 => {
                self.remaining.store(n.min(0), Ordering::SeqCst);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// A transition worth an Event.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub reason: &'static str,
    pub note: String,
}

/// One reconcile pass over one cluster.
pub struct Actor<'a, W: Workloads> {
    pub workloads: &'a W,
    pub cluster: String,
    /// `--initial-cluster-token`: `<namespace>-<name>-<uid>`.
    pub token: String,
    pub want: Want,
    /// The status as loaded; the pass updates and saves it.
    pub status: EtcdClusterStatus,
    pub crash: &'a CrashPoints,
    pub now: k8s_openapi::jiff::Timestamp,
    /// The EtcdCluster's metadata.generation, reported as observedGeneration.
    pub generation: Option<i64>,
    /// Conditions observed outside the pass, reported with its own.
    pub extra_conditions: Vec<status::ExtraCondition>,
    /// The status was changed before the pass (a CA rotation's step): saved even if the
    /// pass changes nothing.
    pub changed_before: bool,
}

/// What a pass did.
#[derive(Debug, Clone)]
pub struct Pass {
    pub step: Step,
    pub observed: Observed,
    pub view: ClusterView,
    pub transitions: Vec<Transition>,
}

impl<W: Workloads> Actor<'_, W> {
    pub async fn pass(&mut self) -> Result<Pass> {
        let workloads = self.workloads.observe().await?;
        let endpoints = self.endpoints(&workloads);
        let view = members::observe(&self.access(), &endpoints).await;
        let observed = observe::combine(self, &workloads, &view);
        let step = plan::plan(&observed);
        let loaded = self.status.clone();
        self.status = status::report(
            &loaded,
            &observed,
            &view,
            &step,
            self.generation,
            self.workloads,
            &self.extra_conditions,
        );
        let reported = self.status.clone();
        let transitions = self.perform(&step, &observed, &view).await?;
        // Begin, Finish and the restore's steps saved the status themselves; any other step
        // saves what it reports.
        if self.status == reported && (reported != loaded || self.changed_before) {
            self.workloads.save_status(&self.status).await?;
            self.crash.check("writing the status")?;
        }
        Ok(Pass {
            step,
            observed,
            view,
            transitions,
        })
    }

    /// How `member` starts: the spec's version and configuration, this cluster's token.
    fn launch(
        &self,
        member: &str,
        new_cluster: bool,
        initial_cluster: Vec<(String, String)>,
        guard: Guard,
    ) -> Launch {
        Launch {
            member: member.to_string(),
            new_cluster,
            initial_cluster,
            token: self.token.clone(),
            guard,
            version: self.want.version.clone(),
            config: self.want.config.clone(),
            force_new_cluster: false,
            restore: None,
        }
    }

    /// How to reach the members: the workloads' TLS, and root's password with `spec.auth`.
    fn access(&self) -> members::Access {
        let access = self.workloads.access();
        match &self.want.auth {
            Some(password) => access.with_credentials(members::ROOT, &password.0),
            None => access,
        }
    }

    /// Client URLs to reach the cluster: every member with a pod, then those in status.
    fn endpoints(&self, workloads: &[Workload]) -> Vec<String> {
        let mut urls: Vec<String> = workloads
            .iter()
            .filter(|w| w.pod.is_some())
            .map(|w| self.workloads.client_url(&w.name))
            .collect();
        urls.extend(
            self.status
                .members
                .iter()
                .map(|m| self.workloads.client_url(&m.name)),
        );
        urls.sort();
        urls.dedup();
        urls
    }

    async fn perform(
        &mut self,
        step: &Step,
        observed: &Observed,
        view: &ClusterView,
    ) -> Result<Vec<Transition>> {
        let endpoints: Vec<String> = view.health.keys().cloned().collect();
        let w = self.workloads;
        let access = self.access();
        let mut transitions = Vec::new();
        let mut note = |reason: &'static str, note: String| {
            transitions.push(Transition { reason, note });
        };
        match step {
            Step::InSync | Step::Wait { .. } | Step::Refuse { .. } => {}
            Step::Begin(op) => {
                let ordinal = observe::ordinal(&self.cluster, &op.member).unwrap_or(0);
                self.status.next_ordinal = self.status.next_ordinal.max(ordinal + 1);
                self.status.operation = Some(op.clone());
                if op.kind == OperationKind::ForceNewCluster
                    && let Some(Ok(plan)) = plan::recovery_plan(observed)
                {
                    self.status.last_recovery = Some(RecoveryReport {
                        started: Some(self.now.into()),
                        survivor: plan.survivor,
                        survivor_applied_index: plan.survivor_applied,
                        lost_members: plan.lost,
                        lost_applied_index: plan.lost_applied,
                        survivor_revision: plan.survivor_revision,
                        lost_revision: plan.lost_revision,
                    });
                }
                w.save_status(&self.status).await?;
                self.crash.check("recording the operation")?;
                note(
                    begin_reason(op.kind),
                    format!("{} {}: {}", verb(op.kind), op.member, op.reason),
                );
            }
            Step::Finish { cluster_id } => {
                if let Some(id) = cluster_id {
                    self.status.cluster_id = Some(format!("{id:x}"));
                    note("ClusterCreated", format!("cluster {id:x} bootstrapped"));
                }
                let done = self.status.operation.take();
                w.save_status(&self.status).await?;
                self.crash.check("finishing the operation")?;
                if let Some(op) = done
                    .as_ref()
                    .filter(|op| op.kind == OperationKind::ForceNewCluster)
                {
                    note(
                        "QuorumRecovered",
                        format!(
                            "member {} leads a quorum again; the cluster grows back through \
                             learners",
                            op.member
                        ),
                    );
                }
                if let Some(op) = done.filter(|op| op.kind == OperationKind::RollMember) {
                    // A roll for a new version is an upgrade; for a new configuration, a restart.
                    let upgraded = op.reason != plan::CONFIG_CHANGED;
                    let reason = if upgraded {
                        "Upgraded"
                    } else {
                        "MemberRestarted"
                    };
                    note(
                        reason,
                        format!("member {} runs {}", op.member, op.target_version),
                    );
                }
            }
            Step::CreateSeed { member } => {
                let seed_only = vec![(member.clone(), w.peer_url(member))];
                let mut launch = self.launch(member, true, seed_only, Guard::default());
                // A restore the operator began itself (a quorum loss with no survivor)
                // starts from the latest backup.
                let own_restore = self.want.restore.is_none()
                    && self.status.restore.as_ref().is_some_and(|r| {
                        r.phase != RestorePhase::Completed
                            && r.name.starts_with(plan::OWN_RESTORE_PREFIX)
                    });
                launch.restore = match own_restore {
                    true => self.want.recovery.backup.clone(),
                    false => self.want.bootstrap_from.clone(),
                };
                w.start_member(&launch).await?;
                self.crash.check("creating the seed")?;
            }
            Step::AddLearner { member } => {
                let id = members::add_learner(&access, &endpoints, &w.peer_url(member)).await?;
                self.crash.check("MemberAdd")?;
                note(
                    "MemberAdded",
                    format!("member {member} ({id:x}) added as a learner"),
                );
            }
            Step::StartMember {
                member,
                id,
                require_data,
            } => {
                let guard = Guard {
                    cluster_id: observed.cluster_id,
                    member_id: Some(*id),
                    require_data: *require_data,
                };
                let initial_cluster = observe::initial_cluster(self, observed);
                let launch = self.launch(member, false, initial_cluster, guard);
                w.start_member(&launch).await?;
                self.crash.check("starting a member")?;
            }
            Step::Promote { member, id } => {
                members::promote(&access, &endpoints, *id).await?;
                self.crash.check("MemberPromote")?;
                note(
                    "MemberPromoted",
                    format!("member {member} ({id:x}) is a voting member"),
                );
            }
            Step::MoveLeader { from, to } => {
                members::move_leader(&access, &w.client_url(from), *to).await?;
                self.crash.check("MoveLeader")?;
                note(
                    "LeaderMoved",
                    format!("leadership moved from {from} to {to:x}"),
                );
            }
            Step::RemoveFromCluster { member, id } => {
                members::remove(&access, &endpoints, *id).await?;
                self.crash.check("MemberRemove")?;
                let replaced = self.status.operation.as_ref().map(|op| op.kind)
                    == Some(OperationKind::ReplaceMember);
                let reason = if replaced {
                    "MemberReplaced"
                } else {
                    "MemberRemoved"
                };
                note(
                    reason,
                    format!("member {member} ({id:x}) removed from the cluster"),
                );
            }
            Step::DeletePod { member } => {
                w.delete_pod(member).await?;
                self.crash.check("deleting a pod")?;
            }
            Step::DeleteVolume { member } => {
                w.delete_volume(member).await?;
                self.crash.check("deleting a volume")?;
            }
            Step::BeginRestore { name } => {
                let old = self.status.cluster_id.clone();
                self.status.restore = Some(RestoreProgress {
                    name: name.clone(),
                    phase: RestorePhase::Stopping,
                    old_cluster_id: old.clone(),
                    started: Some(self.now.into()),
                    ..RestoreProgress::default()
                });
                self.status.operation = None;
                w.save_status(&self.status).await?;
                self.crash.check("recording the restore")?;
                let old = old.unwrap_or_else(|| "none".into());
                note(
                    "RestoreStarted",
                    format!("restoring in place ({name}): members stop; old cluster id {old}"),
                );
            }
            Step::ResetForRestore => {
                self.status.cluster_id = None;
                self.status.members.clear();
                self.status.operation = None;
                self.status.quorum_lost_since = None;
                if let Some(p) = &mut self.status.restore {
                    p.phase = RestorePhase::Restoring;
                }
                w.save_status(&self.status).await?;
                self.crash.check("forgetting the old cluster")?;
            }
            Step::FinishRestore => {
                let revision = view.health.values().map(|h| h.revision).max();
                if let Some(p) = &mut self.status.restore {
                    p.phase = RestorePhase::Completed;
                    p.new_cluster_id = self.status.cluster_id.clone();
                    p.revision = revision;
                    p.completed = Some(self.now.into());
                    let (old, new) = (p.old_cluster_id.clone(), p.new_cluster_id.clone());
                    note(
                        "Restored",
                        format!(
                            "restored in place ({}): cluster id {} replaces {}, at revision {}",
                            p.name,
                            new.unwrap_or_default(),
                            old.unwrap_or_else(|| "none".into()),
                            revision.unwrap_or_default()
                        ),
                    );
                }
                w.save_status(&self.status).await?;
                self.crash.check("finishing the restore")?;
            }
            Step::EnableAuth => {
                let password = self.want.auth.clone().map(|p| p.0).unwrap_or_default();
                members::enable_auth(&access, &endpoints, &password).await?;
                self.crash.check("AuthEnable")?;
                self.status.auth_enabled = true;
                w.save_status(&self.status).await?;
                self.crash.check("recording auth")?;
                note("AuthEnabled", "auth enabled with the user root".into());
            }
            Step::ForceNewCluster { member, id } => {
                w.delete_pod(member).await?;
                self.crash.check("deleting the survivor's pod")?;
                let guard = Guard {
                    cluster_id: observed.cluster_id,
                    member_id: Some(*id),
                    require_data: true,
                };
                let initial_cluster = vec![(member.clone(), w.peer_url(member))];
                let mut launch = self.launch(member, false, initial_cluster, guard);
                launch.force_new_cluster = true;
                w.start_member(&launch).await?;
                self.crash
                    .check("starting the survivor with --force-new-cluster")?;
                note(
                    "ForcedNewCluster",
                    format!("member {member} ({id:x}) restarted with --force-new-cluster"),
                );
            }
        }
        Ok(transitions)
    }
}

fn verb(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Bootstrap => "bootstrapping from",
        OperationKind::AddMember => "adding",
        OperationKind::RemoveMember => "removing",
        OperationKind::ReplaceMember => "replacing",
        OperationKind::RollMember => "restarting",
        OperationKind::ForceNewCluster => "recovering the quorum from",
    }
}

fn begin_reason(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Bootstrap => "Bootstrapping",
        OperationKind::AddMember => "ScalingUp",
        OperationKind::RemoveMember => "ScalingDown",
        OperationKind::ReplaceMember => "ReplacingMember",
        OperationKind::RollMember => "RollingMember",
        OperationKind::ForceNewCluster => "RecoveringQuorum",
    }
}
