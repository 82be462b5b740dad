//! The CronJobs a cluster's spec asks for: `spec.backup` runs `oxcd-operator backup` on its
//! schedule, `spec.maintenance.defragSchedule` runs `oxcd-operator defrag --cluster`. Both run
//! the members' image (it carries `oxcd-operator`), reach the cluster through its client
//! Service, and never run twice at once. A schedule is checked with the same cron parser
//! the backup command uses, so a spec the operator accepts is one the job can run.

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, SeccompProfile, SecretEnvSource, Volume, VolumeMount,
};
use kube::ResourceExt;

use crate::backup::schedule::Schedule;
use crate::crd::{BackupSpec, EtcdCluster};
use crate::error::{Error, Result};
use crate::resources::{self, NON_ROOT, locked_down, meta};

/// Where `backup.volumeClaimName` is mounted.
pub const BACKUP_DIR: &str = "/backups";

pub fn backup_job_name(ec: &EtcdCluster) -> String {
    format!("{}-backup", ec.name_any())
}

pub fn defrag_job_name(ec: &EtcdCluster) -> String {
    format!("{}-defrag", ec.name_any())
}

/// The client Service's URL, from inside the namespace's pods.
fn client_endpoint(ec: &EtcdCluster) -> String {
    format!(
        "http://{}.{}.svc:{}",
        resources::client_service_name(ec),
        ec.namespace().unwrap_or_default(),
        resources::CLIENT_PORT
    )
}

/// A five-field cron expression the backup command's parser takes.
fn checked_schedule(what: &str, expr: &str) -> Result<String> {
    if expr.split_whitespace().count() != 5 {
        return Err(Error::Invalid(format!(
            "{what} {expr:?} must be a cron expression of five fields"
        )));
    }
    Schedule::parse(expr).map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    Ok(expr.to_string())
}

/// Every CronJob the spec asks for, by name.
pub fn wanted(ec: &EtcdCluster, repository: &str) -> Result<Vec<CronJob>> {
    let mut jobs = Vec::new();
    if let Some(backup) = &ec.spec.backup {
        jobs.push(backup_cron_job(ec, backup, repository)?);
    }
    if let Some(expr) = &ec.spec.maintenance.defrag_schedule {
        jobs.push(defrag_cron_job(ec, expr, repository)?);
    }
    Ok(jobs)
}

fn backup_cron_job(ec: &EtcdCluster, backup: &BackupSpec, repository: &str) -> Result<CronJob> {
    let schedule = checked_schedule("backup.schedule", &backup.schedule)?;
    let mut args = vec![
        "--log-format=json".to_string(),
        "backup".into(),
        format!("--endpoints={}", client_endpoint(ec)),
        format!("--to={}", backup.to),
    ];
    if let Some(endpoint) = &backup.s3_endpoint {
        args.push(format!("--s3-endpoint={endpoint}"));
    }
    if let Some(region) = &backup.s3_region {
        args.push(format!("--s3-region={region}"));
    }
    if backup.s3_virtual_hosted_style {
        args.push("--s3-virtual-hosted-style".into());
    }
    if let Some(keep) = backup.retention.keep {
        args.push(format!("--keep={keep}"));
    }
    if let Some(age) = &backup.retention.max_age {
        crate::crd::parse_duration(age)
            .map_err(|e| Error::Invalid(format!("backup.retention.maxAge: {e}")))?;
        args.push(format!("--max-age={age}"));
    }
    let mut container = job_container(ec, "backup", args, repository);
    container.env_from = backup.credentials_secret.as_ref().map(|name| {
        vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: name.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]
    });
    let mut volumes = Vec::new();
    if let Some(claim) = &backup.volume_claim_name {
        container.volume_mounts = Some(vec![VolumeMount {
            name: "backups".into(),
            mount_path: BACKUP_DIR.into(),
            ..VolumeMount::default()
        }]);
        volumes.push(Volume {
            name: "backups".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
    }
    Ok(cron_job(
        ec,
        backup_job_name(ec),
        schedule,
        backup.suspend,
        container,
        volumes,
    ))
}

fn defrag_cron_job(ec: &EtcdCluster, expr: &str, repository: &str) -> Result<CronJob> {
    let schedule = checked_schedule("maintenance.defragSchedule", expr)?;
    let mut args = vec![
        "--log-format=json".to_string(),
        "defrag".into(),
        "--cluster".into(),
        format!("--endpoints={}", client_endpoint(ec)),
    ];
    if let Some(quota) = ec.spec.options.quota_backend_bytes {
        args.push(format!("--quota-backend-bytes={quota}"));
    }
    let container = job_container(ec, "defrag", args, repository);
    Ok(cron_job(
        ec,
        defrag_job_name(ec),
        schedule,
        false,
        container,
        Vec::new(),
    ))
}

fn job_container(ec: &EtcdCluster, name: &str, args: Vec<String>, repository: &str) -> Container {
    Container {
        name: name.into(),
        image: Some(resources::image(ec, repository)),
        command: Some(vec!["/usr/local/bin/oxcd-operator".into()]),
        args: Some(args),
        security_context: Some(locked_down()),
        ..Container::default()
    }
}

fn cron_job(
    ec: &EtcdCluster,
    name: String,
    schedule: String,
    suspend: bool,
    container: Container,
    volumes: Vec<Volume>,
) -> CronJob {
    let template = &ec.spec.pod_template.clone().unwrap_or_default();
    CronJob {
        metadata: meta(ec, name),
        spec: Some(CronJobSpec {
            schedule,
            suspend: Some(suspend),
            concurrency_policy: Some("Forbid".into()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    template: PodTemplateSpec {
                        metadata: None,
                        spec: Some(PodSpec {
                            restart_policy: Some("OnFailure".into()),
                            security_context: Some(PodSecurityContext {
                                run_as_non_root: Some(true),
                                run_as_user: Some(NON_ROOT),
                                run_as_group: Some(NON_ROOT),
                                fs_group: Some(NON_ROOT),
                                seccomp_profile: Some(SeccompProfile {
                                    type_: "RuntimeDefault".into(),
                                    ..SeccompProfile::default()
                                }),
                                ..PodSecurityContext::default()
                            }),
                            containers: vec![container],
                            volumes: (!volumes.is_empty()).then_some(volumes),
                            image_pull_secrets: (!template.image_pull_secrets.is_empty())
                                .then(|| template.image_pull_secrets.clone()),
                            node_selector: (!template.node_selector.is_empty())
                                .then(|| template.node_selector.clone()),
                            tolerations: (!template.tolerations.is_empty())
                                .then(|| template.tolerations.clone()),
                            ..PodSpec::default()
                        }),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        status: None,
    }
}

/// BackupReady, from the backup CronJob's status: True once a run succeeded (with its time),
/// False while the newest scheduled run has not succeeded after the last success, Unknown
/// before any run.
pub fn backup_condition(job: &CronJob) -> (String, &'static str, String) {
    let status = job.status.clone().unwrap_or_default();
    let scheduled = status.last_schedule_time.map(|t| t.0);
    let succeeded = status.last_successful_time.map(|t| t.0);
    let running = status.active.is_some_and(|a| !a.is_empty());
    match (scheduled, succeeded) {
        (None, _) => (
            "Unknown".into(),
            "NoBackupYet",
            "no backup has been scheduled yet".into(),
        ),
        (Some(_), None) if running => (
            "Unknown".into(),
            "BackupRunning",
            "the first backup is running".into(),
        ),
        (Some(at), None) => (
            "False".into(),
            "BackupFailed",
            format!("the backup scheduled at {at} has not succeeded"),
        ),
        (Some(at), Some(ok)) if at > ok && !running => (
            "False".into(),
            "BackupFailed",
            format!("the backup scheduled at {at} has not succeeded; the last success was at {ok}"),
        ),
        (Some(_), Some(ok)) => (
            "True".into(),
            "BackupSucceeded",
            format!("the last backup succeeded at {ok}"),
        ),
    }
}
