//! Backups and restores: `spec.bootstrap`, `spec.backup`, `spec.maintenance`, the restore
//! progress in status, and the `EtcdBackup` and `EtcdRestore` resources.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

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
