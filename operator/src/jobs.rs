//! The CronJobs a cluster's spec asks for: `spec.backup` runs `oxcd-operator backup` on its
//! schedule, `spec.maintenance.defragSchedule` runs `oxcd-operator defrag --cluster`. Both run
//! the members' image (it carries `oxcd-operator`), reach the cluster through its client
//! Service, and never run twice at once. A schedule is checked with the same cron parser
//! the backup command uses, so a spec the operator accepts is one the job can run.

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, EnvVarSource, PersistentVolumeClaimVolumeSource, Pod,
    PodSpec, PodTemplateSpec, SecretEnvSource, SecretKeySelector, Volume, VolumeMount,
};
use kube::ResourceExt;

use crate::act::{Launch, Restore};
use crate::backup::schedule::Schedule;
use crate::crd::{BackupSpec, EtcdCluster, FromBackup};
use crate::error::{Error, Result};
use crate::resources::{self, locked_down, meta};

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
        "{}://{}.{}.svc:{}",
        crate::tls::scheme(ec, crate::tls::Port::Client),
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

/// The store flags the backup commands share.
fn store_args(endpoint: Option<&str>, region: Option<&str>, virtual_hosted: bool) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(endpoint) = endpoint {
        args.push(format!("--s3-endpoint={endpoint}"));
    }
    if let Some(region) = region {
        args.push(format!("--s3-region={region}"));
    }
    if virtual_hosted {
        args.push("--s3-virtual-hosted-style".into());
    }
    args
}

/// `spec.bootstrap.fromBackup`, as the seed's restore step.
pub fn restore(ec: &EtcdCluster) -> Option<Restore> {
    let from = ec.spec.bootstrap.as_ref()?.from_backup.as_ref()?;
    Some(restore_from(from))
}

/// The latest backup `spec.backup` keeps, as a seed's restore step.
pub fn latest_backup(ec: &EtcdCluster) -> Option<Restore> {
    let backup = ec.spec.backup.as_ref()?;
    Some(restore_from(&FromBackup {
        from: backup.to.clone(),
        name: "latest".into(),
        s3_endpoint: backup.s3_endpoint.clone(),
        s3_region: backup.s3_region.clone(),
        s3_virtual_hosted_style: backup.s3_virtual_hosted_style,
        credentials_secret: backup.credentials_secret.clone(),
        volume_claim_name: backup.volume_claim_name.clone(),
    }))
}

/// The seed's restore step from a backup source (`spec.bootstrap.fromBackup`, or an
/// EtcdRestore's `backup`).
pub fn restore_from(from: &FromBackup) -> Restore {
    let mut args = vec![
        format!("--from={}", from.from),
        format!("--name={}", from.name),
    ];
    args.extend(store_args(
        from.s3_endpoint.as_deref(),
        from.s3_region.as_deref(),
        from.s3_virtual_hosted_style,
    ));
    Restore {
        args,
        credentials_secret: from.credentials_secret.clone(),
        volume_claim_name: from.volume_claim_name.clone(),
    }
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
    let (container, volumes) = backup_pod(ec, backup, &backup.to, true, repository)?;
    Ok(cron_job(
        ec,
        backup_job_name(ec),
        schedule,
        backup.suspend,
        container,
        volumes,
    ))
}

/// A one-off backup (an `EtcdBackup`) to `to`, with the store settings of the cluster's
/// `spec.backup` and no retention: the Job's spec.
pub fn one_off_backup(
    ec: &EtcdCluster,
    backup: &BackupSpec,
    to: &str,
    repository: &str,
) -> Result<JobSpec> {
    let (container, volumes) = backup_pod(ec, backup, to, false, repository)?;
    Ok(job_spec(ec, container, volumes))
}

/// The container and volumes of a backup to `to`, with `backup`'s store and credentials
/// (and its retention, if `retention`).
fn backup_pod(
    ec: &EtcdCluster,
    backup: &BackupSpec,
    to: &str,
    retention: bool,
    repository: &str,
) -> Result<(Container, Vec<Volume>)> {
    let mut args = vec![
        "--log-format=json".to_string(),
        "backup".into(),
        format!("--endpoints={}", client_endpoint(ec)),
        format!("--to={to}"),
    ];
    args.extend(store_args(
        backup.s3_endpoint.as_deref(),
        backup.s3_region.as_deref(),
        backup.s3_virtual_hosted_style,
    ));
    if let (true, Some(keep)) = (retention, backup.retention.keep) {
        args.push(format!("--keep={keep}"));
    }
    if let (true, Some(age)) = (retention, &backup.retention.max_age) {
        crate::crd::parse_duration(age)
            .map_err(|e| Error::Invalid(format!("backup.retention.maxAge: {e}")))?;
        args.push(format!("--max-age={age}"));
    }
    let mut container = job_container(ec, "backup", args, repository);
    container.env_from = backup
        .credentials_secret
        .as_ref()
        .map(|name| vec![secret_env(name)]);
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
    Ok((container, volumes))
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
                spec: Some(job_spec(ec, container, volumes)),
            },
            ..CronJobSpec::default()
        }),
        status: None,
    }
}

/// A job's spec: the container with the cluster's credentials (root's password, the
/// operator's client certificate), as locked down as the members, retried twice.
fn job_spec(ec: &EtcdCluster, container: Container, mut volumes: Vec<Volume>) -> JobSpec {
    let template = &ec.spec.pod_template.clone().unwrap_or_default();
    let mut container = container;
    if let Some(auth) = &ec.spec.auth {
        // root, with the password from its Secret, through the environment.
        let secret = auth
            .root_secret_name
            .clone()
            .unwrap_or_else(|| format!("{}-root", ec.name_any()));
        container.env.get_or_insert_default().extend([
            EnvVar {
                name: "ETCDCTL_USER".into(),
                value: Some(crate::members::ROOT.into()),
                ..EnvVar::default()
            },
            EnvVar {
                name: "ETCDCTL_PASSWORD".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret,
                        key: "password".into(),
                        optional: Some(false),
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
        ]);
    }
    if let Some(secret) = crate::tls::client_identity_secret(ec) {
        // The operator's client certificate, as etcdctl's flags.
        let dir = "/etc/oxcd/tls/operator";
        let args = container.args.get_or_insert_default();
        args.push(format!("--cacert={dir}/{}", crate::tls::CA_CERT));
        args.push(format!("--cert={dir}/{}", crate::tls::CERT));
        args.push(format!("--key={dir}/{}", crate::tls::KEY));
        container
            .volume_mounts
            .get_or_insert_default()
            .push(VolumeMount {
                name: "operator-tls".into(),
                mount_path: dir.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        volumes.push(Volume {
            name: "operator-tls".into(),
            secret: Some(k8s_openapi::api::core::v1::SecretVolumeSource {
                secret_name: Some(secret),
                ..Default::default()
            }),
            ..Volume::default()
        });
    }
    JobSpec {
        backoff_limit: Some(2),
        template: PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                restart_policy: Some("OnFailure".into()),
                security_context: Some(resources::pod_security()),
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

/// Puts `oxcd-operator restore-member` before the member's other init steps, with the
/// credentials Secret as its environment and the backups' claim mounted if there is one.
pub fn add_restore_step(
    pod: &mut Pod,
    restore: &Restore,
    launch: &Launch,
    data_dir: &str,
    peer_url: &str,
) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let inits = spec.init_containers.get_or_insert_default();
    let Some(guard) = inits.first().cloned() else {
        return;
    };
    let mut mounts = guard.volume_mounts.clone().unwrap_or_default();
    if let Some(claim) = &restore.volume_claim_name {
        mounts.push(VolumeMount {
            name: "backups".into(),
            mount_path: BACKUP_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        spec.volumes.get_or_insert_default().push(Volume {
            name: "backups".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(true),
            }),
            ..Volume::default()
        });
    }
    let step = Container {
        name: "restore".into(),
        image: guard.image.clone(),
        command: Some(vec!["/usr/local/bin/oxcd-operator".into()]),
        args: Some(restore.member_args(launch, data_dir, peer_url)),
        env_from: restore
            .credentials_secret
            .as_ref()
            .map(|name| vec![secret_env(name)]),
        volume_mounts: Some(mounts),
        security_context: guard.security_context.clone(),
        ..Container::default()
    };
    inits.insert(0, step);
}

fn secret_env(name: &str) -> EnvFromSource {
    EnvFromSource {
        secret_ref: Some(SecretEnvSource {
            name: name.to_string(),
            optional: Some(false),
        }),
        ..EnvFromSource::default()
    }
}
