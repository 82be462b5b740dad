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

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// The Secret with root's password under `password`; made with a random password if it
    /// does not exist (default `<cluster>-root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_secret_name: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// The client port (2379): clients must present a certificate the CA signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<TlsSource>,
    /// The peer port (2380).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<TlsSource>,
    /// With `auto`: how long member certificates are valid.
    #[serde(default = "default_validity")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+[smhd]$')").message("tls.validity must be a duration such as 90d"))]
    pub validity: String,
    /// With `auto`: a certificate is issued again this long before it expires; the Secret
    /// is updated in place and the members read the new files without restarting.
    #[serde(default = "default_renew_before")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+[smhd]$')").message("tls.renewBefore must be a duration such as 30d"))]
    pub renew_before: String,
}

fn default_validity() -> String {
    "90d".into()
}

fn default_renew_before() -> String {
    "30d".into()
}

/// Where a port's certificates come from: exactly one of these.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.auto), has(self.secretName), has(self.certManager)].filter(x, x).size() == 1").message("take exactly one of auto, secretName and certManager"))]
pub struct TlsSource {
    /// The operator keeps a CA in the Secret `<cluster>-ca`, issues each member a
    /// certificate (`<member>-tls`: its DNS names, the client Service, localhost) and itself a
    /// client certificate (`<cluster>-operator-tls`), and renews them before they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoTls>,
    /// A Secret with `tls.crt`, `tls.key` and `ca.crt` that every member uses: its
    /// certificate must name every member (`*.<cluster>-peers.<namespace>.svc`) and the
    /// client Service, for server and client use; the operator presents it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// A cert-manager Certificate (`<cluster>-<port>-tls`) from this issuer, written by the
    /// operator; its Secret is then used as with `secretName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<CertManagerTls>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct AutoTls {}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertManagerTls {
    pub issuer_ref: IssuerRef,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    pub name: String,
    /// Issuer or ClusterIssuer.
    #[serde(default = "issuer_kind")]
    pub kind: String,
    #[serde(default = "issuer_group")]
    pub group: String,
}

fn issuer_kind() -> String {
    "Issuer".into()
}

fn issuer_group() -> String {
    "cert-manager.io".into()
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    /// Start from a backup: the first member's data dir is restored from it (checked
    /// against its record and trailer) with the new cluster's identity; every other member
    /// joins as a learner and receives the data from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_backup: Option<FromBackup>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FromBackup {
    /// Where the backups are: the `backup.to` they were taken with.
    #[x_kube(validation = Rule::new("self.matches('^(s3|gs|az|file)://.+')").message("bootstrap.fromBackup.from must be an s3://, gs://, az:// or file:// URL"))]
    pub from: String,
    /// The backup's name (`snapshot-<time>.db`), or `latest`: the newest one.
    #[serde(default = "latest")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    #[serde(default)]
    pub s3_virtual_hosted_style: bool,
    /// A Secret whose keys become the restore step's environment (as for `backup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// A PersistentVolumeClaim mounted at `/backups`, for `file:///backups/...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_claim_name: Option<String>,
}

fn latest() -> String {
    "latest".into()
}

/// Scheduled backups: each run streams a snapshot from a healthy member into the store,
/// checks it (etcd's sha256 trailer, then the uploaded object read back), writes its record
/// (revision, size, sha256) next to it, and applies the retention.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Cron, five fields: `0 2 * * *` is every night at 02:00.
    #[x_kube(validation = Rule::new("self.matches('^[^ ]+( +[^ ]+){4}$')").message("backup.schedule must be a cron expression of five fields"))]
    pub schedule: String,
    /// Where backups go: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
    /// or `file:///backups/prefix` on `volumeClaimName`.
    #[x_kube(validation = Rule::new("self.matches('^(s3|gs|az|file)://.+')").message("backup.to must be an s3://, gs://, az:// or file:// URL"))]
    pub to: String,
    /// An S3-compatible server (MinIO, Ceph), instead of AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    /// Address buckets as `bucket.host` rather than `host/bucket`.
    #[serde(default)]
    pub s3_virtual_hosted_style: bool,
    /// A Secret whose keys become the backup job's environment: AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, GOOGLE_SERVICE_ACCOUNT_KEY, AZURE_STORAGE_ACCOUNT_KEY...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// A PersistentVolumeClaim mounted at `/backups`, for `file:///backups/...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_claim_name: Option<String>,
    #[serde(default)]
    pub retention: BackupRetention,
    /// Pause the schedule.
    #[serde(default)]
    pub suspend: bool,
}

/// Which backups are kept after each new one; the newest always stays.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupRetention {
    /// Keep the newest N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("backup.retention.keep must be at least 1"))]
    pub keep: Option<i32>,
    /// Delete backups older than this: `12h`, `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+[smhd]$')").message("backup.retention.maxAge must be a duration such as 12h or 7d"))]
    pub max_age: Option<String>,
}

/// Routine care of the members' databases.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    /// Cron, five fields: defragment every member, followers first and the leader last,
    /// skipped while a member is down; a NOSPACE alarm is disarmed once every database is
    /// under `options.quotaBackendBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^ ]+( +[^ ]+){4}$')").message("maintenance.defragSchedule must be a cron expression of five fields"))]
    pub defrag_schedule: Option<String>,
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

/// What the operator does when a majority of the voting members is gone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// `Manual` (the default) reports the plan in the QuorumLost condition and waits for the
    /// annotation `oxcd.io/force-new-cluster: <member>` naming the planned survivor;
    /// `Automatic` carries the plan out on its own.
    #[serde(default)]
    pub policy: RecoveryPolicy,
    /// How long a majority must have been gone (pod missing, volume lost, or not ready)
    /// before the plan is carried out: `30s`, `5m`, `1h`.
    #[serde(default = "default_after")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+[smhd]$')").message("recovery.after must be a duration such as 30s, 5m or 1h"))]
    pub after: String,
}

fn default_after() -> String {
    "5m".into()
}

impl Default for Recovery {
    fn default() -> Recovery {
        Recovery {
            policy: RecoveryPolicy::Manual,
            after: default_after(),
        }
    }
}

#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum RecoveryPolicy {
    #[default]
    Manual,
    Automatic,
}

/// `30s`, `90m`, `12h`, `7d`.
pub fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let expected = || format!("{s:?}: expected e.g. 30s, 90m, 12h, 7d");
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number.parse().map_err(|_| expected())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(expected()),
    };
    n.checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(expected)
}

/// A quorum recovery: what was done, and what may have been lost.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryReport {
    pub started: Option<Time>,
    /// The member restarted with `--force-new-cluster`: its data is the cluster's now.
    pub survivor: String,
    /// The raft index the survivor had applied.
    pub survivor_applied_index: u64,
    /// The voting members that were gone.
    pub lost_members: Vec<String>,
    /// The highest index any lost member was last seen to have applied. Entries past the
    /// survivor's index, up to this one, may be lost; a lost member may have applied more
    /// after it was last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_applied_index: Option<u64>,
    /// The survivor's revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survivor_revision: Option<i64>,
    /// The highest revision a lost member was last seen at: revisions past the survivor's,
    /// up to this one, may be lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_revision: Option<i64>,
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

/// A CA rotation, in steps that each wait for the kubelet to update the mounted files:
/// trust both CAs, issue every certificate from the new one, trust the new one alone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CaRotation {
    pub step: CaRotationStep,
    /// When the step was taken.
    pub since: Time,
    /// What asked for it: the `oxcd.io/rotate-ca` annotation's value, or `expiry`.
    pub trigger: String,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaRotationStep {
    /// Every member and the operator trust the old and the new CA.
    TrustBoth,
    /// Every certificate is issued by the new CA; both are still trusted.
    Reissued,
    /// The new CA alone is trusted and issues; the old one is gone.
    Done,
}

/// An in-place restore (an `EtcdRestore`): the members are stopped and their volumes
/// deleted, then the cluster is created again under the same name and Services, its first
/// member restored from the backup.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestoreProgress {
    /// The EtcdRestore's name.
    pub name: String,
    pub phase: RestorePhase,
    /// The cluster id before the restore, in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_cluster_id: Option<String>,
    /// The restored cluster's id, in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_cluster_id: Option<String>,
    /// The restored cluster's revision when it was first seen in sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<Time>,
}

#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum RestorePhase {
    /// Member pods and volumes are being deleted.
    #[default]
    Stopping,
    /// The cluster is being created again from the backup.
    Restoring,
    Completed,
}

/// A one-off backup of an EtcdCluster, to the store its `spec.backup` names: a Job runs
/// `oxcd-operator backup` (streamed, checked, recorded) and the record is reported here.
// The printer columns repeat `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "oxcd.io",
    version = "v1alpha1",
    kind = "EtcdBackup",
    namespaced,
    status = "EtcdBackupStatus",
    derive = "PartialEq",
    doc = "A one-off backup of an EtcdCluster",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterName"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Revision",
        type_ = "integer",
        json_path = ".status.record.revision"
    ),
    printcolumn(name = "Size", type_ = "integer", json_path = ".status.record.size"),
    printcolumn(
        name = "Location",
        type_ = "string",
        json_path = ".status.record.location"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct EtcdBackupSpec {
    /// The EtcdCluster to back up, in this namespace; its `spec.backup` gives the store,
    /// region, endpoint and credentials.
    pub cluster_name: String,
    /// Where this backup goes, if not the cluster's `backup.to` (same store settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EtcdBackupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// The Job that takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The backup's record, as written beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<BackupRecord>,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupPhase {
    Running,
    Succeeded,
    Failed,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupRecord {
    pub name: String,
    pub location: String,
    pub revision: i64,
    pub size: i64,
    pub sha256: String,
    pub taken_at: String,
}

/// Restores an existing EtcdCluster in place from a backup: same name, same Services, a new
/// cluster id. Every member's data is replaced: the members are stopped, their volumes
/// deleted, and the cluster created again with its first member restored from the backup.
// The printer columns repeat `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "oxcd.io",
    version = "v1alpha1",
    kind = "EtcdRestore",
    namespaced,
    status = "EtcdRestoreStatus",
    derive = "PartialEq",
    doc = "Restores an EtcdCluster in place from a backup",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterName"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Old ID", type_ = "string", json_path = ".status.oldClusterId"),
    printcolumn(name = "New ID", type_ = "string", json_path = ".status.newClusterId"),
    printcolumn(name = "Revision", type_ = "integer", json_path = ".status.revision")
)]
#[serde(rename_all = "camelCase")]
pub struct EtcdRestoreSpec {
    /// The EtcdCluster to restore, in this namespace.
    pub cluster_name: String,
    /// The backup.
    pub backup: FromBackup,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EtcdRestoreStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<Time>,
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
