//! What the planner reads (the observation, the spec as far as it cares) and what it answers
//! (the one next step).

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::crd::{Operation, Retention};

/// Everything the planner looks at.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The EtcdCluster's name: members are `<name>-<ordinal>`.
    pub cluster: String,
    pub want: Want,
    /// The cluster id recorded in status: set once the seed bootstrapped.
    pub cluster_id: Option<u64>,
    /// The cluster id the members report (seen before it is recorded).
    pub seen_cluster_id: Option<u64>,
    pub operation: Option<Operation>,
    pub next_ordinal: u32,
    /// Every member the operator knows of by any sign: pod, volume or member-list entry.
    pub members: Vec<Member>,
    /// The member list holds every committed change (it came after a linearizable read).
    /// Otherwise (no quorum) it may be stale, or only what status last recorded: members
    /// missing from it may still be members, so nothing is removed or deleted.
    pub list_confirmed: bool,
    /// When the operator first saw no quorum (from status).
    pub quorum_lost_since: Option<Timestamp>,
    /// The in-place restore in progress, or the last one (from status).
    pub restore: Option<crate::crd::RestoreProgress>,
    /// Auth was enabled (from status).
    pub auth_enabled: bool,
    pub now: Timestamp,
}

/// The spec, as far as the planner cares.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    pub replicas: usize,
    pub version: String,
    /// A digest of the generated configuration: a pod with another one is restarted.
    pub config: String,
    /// Data lives in the pod (emptyDir): a lost pod is lost data.
    pub ephemeral: bool,
    pub when_scaled: Retention,
    pub recovery: RecoveryWant,
    /// The backup a new cluster's seed is restored from (`spec.bootstrap.fromBackup`): read
    /// when the seed is created, not by the planner.
    pub bootstrap_from: Option<crate::act::Restore>,
    /// The name of an EtcdRestore asking for this cluster to be restored in place.
    pub restore: Option<String>,
    /// `spec.auth`: auth enabled with the user root and this password.
    pub auth: Option<Password>,
}

/// A password, never printed.
#[derive(Clone, PartialEq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// `spec.recovery`, and the approval annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryWant {
    pub automatic: bool,
    pub after: SignedDuration,
    /// The member the annotation `oxcd.io/force-new-cluster` names.
    pub approved: Option<String>,
    /// Where the latest backup is (`spec.backup`): with no member left to recover from, the
    /// cluster is restored in place from it.
    pub backup: Option<crate::act::Restore>,
}

impl Default for RecoveryWant {
    fn default() -> RecoveryWant {
        RecoveryWant {
            automatic: false,
            after: SignedDuration::from_mins(5),
            approved: None,
            backup: None,
        }
    }
}

impl Want {
    /// On persistent volumes, deleted when a scale-down removes their member: a new
    /// EtcdCluster's defaults.
    pub fn new(replicas: usize, version: &str, config: &str) -> Want {
        Want {
            replicas,
            version: version.into(),
            config: config.into(),
            ephemeral: false,
            when_scaled: Retention::Delete,
            recovery: RecoveryWant::default(),
            bootstrap_from: None,
            restore: None,
            auth: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Member {
    pub name: String,
    pub ordinal: u32,
    pub pod: Option<Pod>,
    pub volume: Volume,
    /// Its entry in the cluster's member list.
    pub listed: Option<Listed>,
    /// Its answer to a status request; `None` when it did not answer.
    pub health: Option<Health>,
    /// The index it has applied, when it answers a status request at all (with no leader
    /// too, as a member without quorum does).
    pub answered: Option<u64>,
    /// The index it had applied when it last answered, as status recorded it.
    pub last_applied: Option<u64>,
    /// Its store's revision: as it answers now, or as status last recorded it.
    pub revision: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pod {
    pub version: String,
    pub config: String,
    /// The init step refused the data dir (emptied, or another cluster's or member's).
    pub guard_refused: bool,
    /// Why its container cannot run, when it cannot (an image that cannot be pulled, a
    /// crash loop): reported in Degraded.
    pub failing: Option<String>,
    /// Started with `--force-new-cluster`.
    pub forced: bool,
    /// Its container runs and passes its readiness check.
    pub ready: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum Volume {
    #[default]
    Missing,
    Ours,
    /// Carries another cluster's uid: never mounted, never deleted by us.
    Foreign {
        owner: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Listed {
    pub id: u64,
    pub learner: bool,
    /// It has started and published its name: its data dir can no longer be empty.
    pub started: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Health {
    pub leader: bool,
    pub applied_index: u64,
}

/// The one next step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing to do: the cluster is as specified.
    InSync,
    /// Record an operation in status before acting on it.
    Begin(Operation),
    /// Clear the finished operation from status (and record the cluster id after bootstrap).
    Finish {
        cluster_id: Option<u64>,
    },
    /// Create the seed's volume and pod with `--initial-cluster-state new`.
    CreateSeed {
        member: String,
    },
    /// MemberAdd, as a learner, with the member's peer URL.
    AddLearner {
        member: String,
    },
    /// Create the volume (if missing) and pod of a listed member, to join or rejoin.
    StartMember {
        member: String,
        id: u64,
        require_data: bool,
    },
    Promote {
        member: String,
        id: u64,
    },
    MoveLeader {
        from: String,
        to: u64,
    },
    RemoveFromCluster {
        member: String,
        id: u64,
    },
    DeletePod {
        member: String,
    },
    DeleteVolume {
        member: String,
    },
    /// Restart the member's pod with `--force-new-cluster`: it keeps its data and becomes
    /// the only member.
    ForceNewCluster {
        member: String,
        id: u64,
    },
    /// Record an in-place restore in status (the cluster id it replaces) before acting on it.
    BeginRestore {
        name: String,
    },
    /// Every member pod and volume is gone: forget the cluster (its id, members and
    /// operation), so that it is created again from the backup.
    ResetForRestore,
    /// The restored cluster is as specified: record its id and revision.
    FinishRestore,
    /// Enable auth with the user root (`spec.auth`), then record it.
    EnableAuth,
    /// Requeue and look again: something is in progress or must recover first.
    Wait {
        reason: &'static str,
        message: String,
    },
    /// Nothing safe can be done until someone acts: reported as Degraded.
    Refuse {
        reason: &'static str,
        message: String,
    },
}
