//! `EtcdBackup`: a one-off backup. Its reconcile makes a Job from the cluster's backup
//! settings (the same pod as the scheduled CronJob's, without retention), follows it, and
//! copies the outcome into the EtcdBackup's status: the record the backup printed (read
//! from the Job's pod log) on success, the Job's reason on failure, with an Event either way.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::act::Transition;
use crate::controller::Context;
use crate::crd::{BackupPhase, BackupRecord, EtcdBackup, EtcdBackupStatus, EtcdCluster};
use crate::error::{Error, Result};
use crate::k8s::FIELD_MANAGER;
use crate::{jobs, resources};

/// The Job of an EtcdBackup.
pub fn job_name(backup: &EtcdBackup) -> String {
    format!("{}-etcdbackup", backup.name_any())
}

/// One pass over one EtcdBackup.
pub async fn reconcile(backup: Arc<EtcdBackup>, ctx: Arc<Context>) -> Result<Action> {
    let phase = backup.status.as_ref().and_then(|s| s.phase);
    if matches!(phase, Some(BackupPhase::Succeeded | BackupPhase::Failed)) {
        return Ok(Action::await_change());
    }
    let namespace = backup.namespace().unwrap_or_default();
    let clusters: Api<EtcdCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let cluster_name = &backup.spec.cluster_name;
    let Some(ec) = clusters.get_opt(cluster_name).await? else {
        let why = format!("no EtcdCluster {cluster_name} in namespace {namespace}");
        return finish(&ctx, &backup, failed(why)).await;
    };
    let Some(settings) = &ec.spec.backup else {
        let why = format!("EtcdCluster {cluster_name} has no spec.backup: nowhere to back up to");
        return finish(&ctx, &backup, failed(why)).await;
    };
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = job_name(&backup);
    let Some(job) = jobs_api.get_opt(&name).await? else {
        let to = backup.spec.to.as_deref().unwrap_or(&settings.to);
        let spec = jobs::one_off_backup(&ec, settings, to, &ctx.image_repository)?;
        let mut metadata = resources::meta(&ec, name.clone());
        metadata.owner_references = backup.controller_owner_ref(&()).map(|o| vec![o]);
        let job = Job {
            metadata,
            spec: Some(spec),
            status: None,
        };
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match jobs_api.create(&params, &job).await {
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            other => {
                other?;
            }
        }
        let status = EtcdBackupStatus {
            phase: Some(BackupPhase::Running),
            job_name: Some(name),
            ..EtcdBackupStatus::default()
        };
        save(&ctx, &backup, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(10)));
    };
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let done = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if done("Complete").is_some() {
        let record = record_from_logs(&ctx, &namespace, &name).await?;
        let status = EtcdBackupStatus {
            phase: Some(BackupPhase::Succeeded),
            job_name: Some(name),
            record,
            ..EtcdBackupStatus::default()
        };
        return finish(&ctx, &backup, status).await;
    }
    if let Some(c) = done("Failed") {
        let why = format!(
            "the Job {name} failed: {}",
            c.message.clone().or(c.reason.clone()).unwrap_or_default()
        );
        let mut status = failed(why);
        status.job_name = Some(name);
        return finish(&ctx, &backup, status).await;
    }
    Ok(Action::requeue(Duration::from_secs(10)))
}

fn failed(message: String) -> EtcdBackupStatus {
    EtcdBackupStatus {
        phase: Some(BackupPhase::Failed),
        message: Some(message),
        ..EtcdBackupStatus::default()
    }
}

/// The record the backup command printed: the last line of the Job's pod logs that reads
/// as one.
async fn record_from_logs(
    ctx: &Context,
    namespace: &str,
    job: &str,
) -> Result<Option<BackupRecord>> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await?;
    let mut found = None;
    for pod in listed.items {
        let log = pods.logs(&pod.name_any(), &LogParams::default()).await?;
        for line in log.lines() {
            if let Ok(record) = serde_json::from_str::<crate::backup::Record>(line) {
                found = Some(BackupRecord {
                    name: record.name,
                    location: record.location,
                    revision: record.revision,
                    size: i64::try_from(record.size).unwrap_or(i64::MAX),
                    sha256: record.sha256,
                    taken_at: record.taken_at.to_rfc3339(),
                });
            }
        }
    }
    Ok(found)
}

async fn save(ctx: &Context, backup: &EtcdBackup, status: &EtcdBackupStatus) -> Result<()> {
    let api: Api<EtcdBackup> =
        Api::namespaced(ctx.client.clone(), &backup.namespace().unwrap_or_default());
    crate::k8s::apply_status(&api, &backup.name_any(), status).await
}

/// Records the outcome and publishes it as an Event.
async fn finish(ctx: &Context, backup: &EtcdBackup, status: EtcdBackupStatus) -> Result<Action> {
    save(ctx, backup, &status).await?;
    let (reason, note) = match (&status.phase, &status.record) {
        (Some(BackupPhase::Succeeded), Some(r)) => (
            "BackupSucceeded",
            format!(
                "{} at revision {} ({} bytes)",
                r.location, r.revision, r.size
            ),
        ),
        (Some(BackupPhase::Succeeded), None) => (
            "BackupSucceeded",
            "the Job completed; its record was not found in its log".into(),
        ),
        _ => ("BackupFailed", status.message.clone().unwrap_or_default()),
    };
    crate::controller::publish(ctx, backup, &[Transition { reason, note }]).await;
    Ok(Action::await_change())
}

/// A failed pass over an EtcdBackup: looked at again in 30 s.
pub fn error_policy(backup: Arc<EtcdBackup>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(backup = %backup.name_any(), error = %error, "backup reconcile failed");
    Action::requeue(Duration::from_secs(30))
}
