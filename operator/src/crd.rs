//! The `EtcdCluster` resource: what a user asks for (spec) and what the operator reports
//! (status), with the CEL rules the API server applies before the operator sees an edit.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

mod backup;
mod recovery;
mod tls;

pub use backup::*;
pub use recovery::*;
pub use tls::*;

/// An oxcd cluster: `replicas` voting members, each one Pod and (unless `storage.emptyDir`)
/// one PersistentVolumeClaim, created, scaled and upgraded one safe step at a time.
// The printer columns repeat `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "oxcd.io",
    version = "v1alpha1",
    kind = "EtcdCluster",
    namespaced,
    shortname = "ec",
    status = "EtcdClusterStatus",
    derive = "PartialEq",
    cel,
    doc = "An oxcd (etcd-compatible) cluster run by oxcd-operator",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.leader"),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.currentVersion"
    ),
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Available")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct EtcdClusterSpec {
    /// Voting members wanted. Changes go one member at a time, each new member first as a
    /// learner. An odd number tolerates the most failures for its size.
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self >= 1").message("replicas must be at least 1"))]
    pub replicas: i32,
    /// oxcd version: the tag of the operator's image repository that members run.
    pub version: String,
    /// A full image reference used instead of `<repository>:<version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
    #[serde(default)]
    pub options: Options,
    /// Further `oxcd` flags, passed as they are after the generated ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    #[serde(default)]
    pub pod_disruption_budget: PodDisruptionBudgetSpec,
    #[serde(default)]
    pub service: ServiceSpec,
    #[serde(default)]
    pub recovery: Recovery,
    /// Backups on a schedule, taken by a CronJob that runs `oxcd-operator backup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
    #[serde(default)]
    pub maintenance: Maintenance,
    /// Where a new cluster's data comes from. Read once, when the cluster is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Bootstrap>,
    /// TLS on the client and peer ports, with client certificates checked. Set when the
    /// cluster is created; it cannot be added, removed or switched later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("tls cannot change once the cluster exists"))]
    pub tls: Option<TlsSpec>,
    /// Auth: once the cluster is as specified, the user `root` (role `root`) is made with
    /// the password in a Secret and auth is enabled; the operator then authenticates as
    /// root. Clients need a user from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
}

fn default_replicas() -> i32 {
    3
}

/// Where members keep their data.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(oldSelf.size) || !has(self.size) || quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0").message("storage.size cannot shrink"),
    validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("storage.storageClassName cannot change"),
    validation = Rule::new("has(self.emptyDir) == has(oldSelf.emptyDir)").message("storage cannot switch between emptyDir and persistent volumes"),
    validation = Rule::new("!has(self.emptyDir) || !has(self.size)").message("storage takes either emptyDir or size, not both")
)]
pub struct Storage {
    /// The size of each member's PersistentVolumeClaim. Can grow (if the storage class allows
    /// expansion), never shrink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(self)").message("storage.size must be a quantity such as 10Gi"))]
    pub size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Keep data in the pod's emptyDir: for development only. A member whose pod goes
    /// loses its data and is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDir>,
    #[serde(default)]
    pub retention_policy: RetentionPolicy,
}

impl Default for Storage {
    fn default() -> Storage {
        Storage {
            size: Some("1Gi".into()),
            storage_class_name: None,
            empty_dir: None,
            retention_policy: RetentionPolicy::default(),
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDir {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<Quantity>,
}

/// What happens to a member's PersistentVolumeClaim when the member is removed by a
/// scale-down, and when the whole EtcdCluster is deleted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    #[serde(default = "Retention::delete")]
    pub when_scaled: Retention,
    #[serde(default = "Retention::retain")]
    pub when_deleted: Retention,
}

impl Default for RetentionPolicy {
    fn default() -> RetentionPolicy {
        RetentionPolicy {
            when_scaled: Retention::Delete,
            when_deleted: Retention::Retain,
        }
    }
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    Retain,
    Delete,
}

impl Retention {
    fn delete() -> Retention {
        Retention::Delete
    }
    fn retain() -> Retention {
        Retention::Retain
    }
}

/// What goes into every member pod besides the operator's own settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
}

/// The oxcd flags users tune, typed. Unset ones keep oxcd's defaults.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    /// `--quota-backend-bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("quotaBackendBytes cannot be negative"))]
    pub quota_backend_bytes: Option<i64>,
    /// `--auto-compaction-mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_compaction_mode: Option<CompactionMode>,
    /// `--auto-compaction-retention`: a duration ("1h") in periodic mode, revisions in
    /// revision mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_compaction_retention: Option<String>,
    /// `--snapshot-count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_count: Option<i64>,
    /// `--heartbeat-interval`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<i64>,
    /// `--election-timeout`, in milliseconds: at least 5 heartbeat intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub election_timeout: Option<i64>,
    /// `--max-request-bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<i64>,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CompactionMode {
    Periodic,
    Revision,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetSpec {
    /// A PodDisruptionBudget that lets voluntary disruptions take at most the members the
    /// cluster can lose and keep its quorum.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

impl Default for PodDisruptionBudgetSpec {
    fn default() -> PodDisruptionBudgetSpec {
        PodDisruptionBudgetSpec { enabled: true }
    }
}

/// The client Service in front of the members.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// ClusterIP, NodePort or LoadBalancer.
    #[serde(default = "cluster_ip", rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn cluster_ip() -> String {
    "ClusterIP".into()
}

impl Default for ServiceSpec {
    fn default() -> ServiceSpec {
        ServiceSpec {
            type_: cluster_ip(),
            annotations: BTreeMap::new(),
        }
    }
}

/// What the operator last saw and what it is doing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EtcdClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Creating, Running, Scaling, Upgrading, Restarting or Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The cluster's id, in hex, recorded once the seed member bootstrapped it. Once set, no
    /// member is ever started as a new cluster again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The leader's member name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The leader's member id, in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<String>,
    /// Voting members.
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// The label selector of the member pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,
    /// The version every member runs, once they all run the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// The membership or rollout step in progress; the next edit of the spec waits for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    /// The ordinal the next member's name takes: names are never reused, so a volume left
    /// behind by a removed member can never be mistaken for a new one's.
    #[serde(default)]
    pub next_ordinal: u32,
    /// When the operator first saw no quorum; cleared once a quorum answers again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_lost_since: Option<Time>,
    /// The last recovery from quorum loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_recovery: Option<RecoveryReport>,
    /// The in-place restore in progress, or the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreProgress>,
    /// The rotation of the `auto` TLS CA in progress, or the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_rotation: Option<CaRotation>,
    /// Auth is enabled (`spec.auth`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auth_enabled: bool,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_url: String,
    #[serde(default)]
    pub learner: bool,
    #[serde(default)]
    pub leader: bool,
    #[serde(default)]
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_size: Option<i64>,
    /// The raft index the member had applied when it last answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_index: Option<u64>,
    /// Its store's revision when it last answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
}

/// One operation in progress. It is recorded before its first action, so an operator that
/// restarts anywhere in it finds it and finishes it; the targets it holds are the spec it was
/// started for, so an edit made meanwhile waits for it rather than mixing with it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub kind: OperationKind,
    /// The member the operation is about.
    pub member: String,
    /// Why: shown in conditions and events.
    pub reason: String,
    pub target_replicas: i32,
    pub target_version: String,
    pub started: Time,
    /// After this, Progressing turns False with ProgressDeadlineExceeded; the operation goes on.
    pub deadline: Time,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    /// Start the seed member: the one member ever started with `--initial-cluster-state new`.
    Bootstrap,
    /// Add a member as a learner, start it, promote it once it caught up.
    AddMember,
    /// Remove a member from the cluster, then delete its pod (and its volume, by policy).
    RemoveMember,
    /// Remove a member whose data is gone; a new member takes its place afterwards.
    ReplaceMember,
    /// Restart a member's pod with the current spec (version or configuration), leadership
    /// moved away first.
    RollMember,
    /// A majority is gone: restart the surviving member with `--force-new-cluster`, then
    /// without it; the cluster then grows back through learners.
    ForceNewCluster,
}

#[cfg(test)]
mod tests;
