//! The reconcile loop: for each EtcdCluster, apply the objects every cluster has (Services,
//! ConfigMap, PodDisruptionBudget), run one [`Actor`] pass, publish an Event per transition,
//! and requeue soon while work remains. Failures requeue with a growing delay per cluster;
//! nothing panics on the API server's answers.
//!
//! No finalizer: the pods, Services, ConfigMap and PDB carry the EtcdCluster as owner, so
//! Kubernetes' garbage collector removes them with it; volumes carry it only when
//! `retentionPolicy.whenDeleted` is Delete.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, Patch};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::act::{Actor, CrashPoints, Transition};
use crate::crd::EtcdCluster;
use crate::crd::{EtcdRestore, EtcdRestoreStatus, RecoveryPolicy, RestorePhase};
use crate::error::{Error, Result};
use crate::k8s::{KubeWorkloads, apply_params};
use crate::metrics::Metrics;
use crate::plan::{APPROVAL_ANNOTATION, Password, RecoveryWant, Step, Want};
use crate::resources;
use crate::{jobs, status};

/// What every reconcile pass shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub image_repository: String,
    /// Consecutive failures by cluster (namespace/name), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Metrics,
        image_repository: String,
        instance: Option<String>,
    ) -> Context {
        let reporter = Reporter {
            controller: "oxcd-operator".into(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            image_repository,
            failures: Mutex::default(),
        }
    }
}

fn key(ec: &EtcdCluster) -> String {
    format!("{}/{}", ec.namespace().unwrap_or_default(), ec.name_any())
}

pub fn want(ec: &EtcdCluster) -> Result<Want> {
    let replicas = usize::try_from(ec.spec.replicas)
        .ok()
        .filter(|r| *r >= 1)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "replicas must be at least 1, not {}",
                ec.spec.replicas
            ))
        })?;
    let after = crate::crd::parse_duration(&ec.spec.recovery.after)
        .map_err(|e| Error::Invalid(format!("recovery.after: {e}")))?;
    let recovery = RecoveryWant {
        automatic: ec.spec.recovery.policy == RecoveryPolicy::Automatic,
        after: SignedDuration::try_from(after)
            .map_err(|e| Error::Invalid(format!("recovery.after: {e}")))?,
        approved: ec.annotations().get(APPROVAL_ANNOTATION).cloned(),
        backup: jobs::latest_backup(ec),
    };
    Ok(Want {
        replicas,
        version: ec.spec.version.clone(),
        config: resources::config_digest(ec),
        ephemeral: ec.spec.storage.empty_dir.is_some(),
        when_scaled: ec.spec.storage.retention_policy.when_scaled,
        recovery,
        bootstrap_from: jobs::restore(ec),
        restore: None,
        auth: None,
    })
}

/// One reconcile pass over one EtcdCluster.
pub async fn reconcile(ec: Arc<EtcdCluster>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    if ec.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let result = pass(&ec, &ctx).await;
    ctx.metrics
        .duration
        .with_label_values::<&str>(&[])
        .observe(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciles.with_label_values(&[outcome]).inc();
    if result.is_ok() {
        ctx.failures.lock().unwrap().remove(&key(&ec));
    }
    result
}

async fn pass(ec: &EtcdCluster, ctx: &Context) -> Result<Action> {
    let namespace = ec.namespace().unwrap_or_default();
    let mut want = want(ec)?;
    if let Some(auth) = &ec.spec.auth {
        want.auth = Some(root_password(ctx, ec, auth, &namespace).await?);
    }
    apply(ctx, &namespace, &resources::peers_service(ec)).await?;
    apply(ctx, &namespace, &resources::client_service(ec)).await?;
    apply(ctx, &namespace, &resources::config_map(ec)).await?;
    let extra_conditions = sync_cron_jobs(ctx, ec, &namespace).await?;
    let restore = pending_restore(ctx, ec, &namespace).await?;
    if let Some(r) = &restore {
        want.restore = Some(r.name_any());
        want.bootstrap_from = Some(jobs::restore_from(&r.spec.backup));
    }
    let mut status = ec.status.clone().unwrap_or_default();
    let stored = status.clone();
    let tls = crate::tls::Tls::new(ctx.client.clone(), ec)
        .prepare(time::OffsetDateTime::now_utc(), &mut status)
        .await?;
    let tls_transitions = tls.transitions.clone();
    let mut extra_conditions = extra_conditions;
    extra_conditions.extend(tls.condition.clone());
    let workloads =
        KubeWorkloads::new(ctx.client.clone(), ec, ctx.image_repository.clone()).with_tls(tls);
    let crash = CrashPoints::disarmed();
    let status_changed = status.ca_rotation != stored.ca_rotation;
    status.selector = Some(resources::selector_string(ec));
    let mut actor = Actor {
        workloads: &workloads,
        cluster: ec.name_any(),
        token: resources::cluster_token(ec),
        want,
        status,
        crash: &crash,
        now: Timestamp::now(),
        generation: ec.meta().generation,
        extra_conditions,
        changed_before: status_changed,
    };
    let done = actor.pass().await?;
    let mut transitions = tls_transitions;
    transitions.extend(backup_transition(ec, &actor.status));
    transitions.extend(done.transitions.iter().cloned());
    for name in workloads.grow_volumes().await? {
        let size = ec.spec.storage.size.clone().unwrap_or_default();
        let note = format!("volume {name} asks for {size} now");
        transitions.push(Transition {
            reason: "VolumeResized",
            note,
        });
    }
    let voters = actor.status.replicas.max(1) as usize;
    let pdb_api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &namespace);
    if ec.spec.pod_disruption_budget.enabled {
        apply(
            ctx,
            &namespace,
            &resources::pod_disruption_budget(ec, voters),
        )
        .await?;
    } else if pdb_api.get_opt(&ec.name_any()).await?.is_some() {
        pdb_api.delete(&ec.name_any(), &Default::default()).await?;
    }
    if let Some(r) = &restore {
        report_restore(ctx, r, &actor.status, &namespace).await?;
    }
    let recovered = transitions
        .iter()
        .any(|t| t.reason == "QuorumRecovered" || t.reason == "Restored");
    if recovered && ec.annotations().contains_key(APPROVAL_ANNOTATION) {
        // An approval is for one recovery: left in place, it would approve the next one.
        let api: Api<EtcdCluster> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({"metadata": {"annotations": {APPROVAL_ANNOTATION: null}}});
        let params = kube::api::PatchParams {
            field_manager: Some(crate::k8s::FIELD_MANAGER.into()),
            ..Default::default()
        };
        api.patch(&ec.name_any(), &params, &Patch::Merge(&patch))
            .await?;
    }
    record_members(ctx, ec, &actor.status);
    publish(ctx, ec, &transitions).await;
    tracing::info!(cluster = %key(ec), step = ?done.step, "reconciled");
    Ok(match done.step {
        Step::InSync => Action::requeue(Duration::from_secs(60)),
        Step::Wait { .. } | Step::Refuse { .. } => Action::requeue(Duration::from_secs(5)),
        _ => Action::requeue(Duration::from_millis(500)),
    })
}

/// Root's password from `spec.auth`'s Secret, which is made with a random password if it
/// does not exist.
async fn root_password(
    ctx: &Context,
    ec: &EtcdCluster,
    auth: &crate::crd::AuthSpec,
    namespace: &str,
) -> Result<Password> {
    let name = auth
        .root_secret_name
        .clone()
        .unwrap_or_else(|| format!("{}-root", ec.name_any()));
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = match api.get_opt(&name).await? {
        Some(secret) => secret,
        None => {
            let mut bytes = [0u8; 24];
            std::io::Read::read_exact(
                &mut std::fs::File::open("/dev/urandom")
                    .map_err(|e| Error::Other(format!("/dev/urandom: {e}")))?,
                &mut bytes,
            )
            .map_err(|e| Error::Other(format!("/dev/urandom: {e}")))?;
            let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut secret = Secret {
                metadata: resources::meta(ec, name.clone()),
                string_data: Some([("password".to_string(), password)].into()),
                ..Secret::default()
            };
            secret.type_ = Some("Opaque".into());
            let params = kube::api::PostParams {
                field_manager: Some(crate::k8s::FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api.create(&params, &secret).await {
                Ok(created) => created,
                Err(kube::Error::Api(e)) if e.code == 409 => api.get(&name).await?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let password = crate::tls::field(&secret, "password")?;
    Ok(Password(password.trim_end_matches('\n').to_string()))
}

/// An Event when BackupReady turns: the scheduled backups started failing, or succeed again.
fn backup_transition(ec: &EtcdCluster, now: &crate::crd::EtcdClusterStatus) -> Option<Transition> {
    let ready = |s: &crate::crd::EtcdClusterStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "BackupReady")
            .map(|c| (c.status.clone(), c.message.clone()))
    };
    let before = ec.status.as_ref().and_then(ready).map(|(s, _)| s);
    let (after, message) = ready(now)?;
    if before.as_deref() == Some(after.as_str()) {
        return None;
    }
    match after.as_str() {
        "False" => Some(Transition {
            reason: "BackupFailed",
            note: message,
        }),
        "True" if before.is_some() => Some(Transition {
            reason: "BackupSucceeded",
            note: message,
        }),
        _ => None,
    }
}

/// The oldest EtcdRestore naming this cluster that has not completed.
async fn pending_restore(
    ctx: &Context,
    ec: &EtcdCluster,
    namespace: &str,
) -> Result<Option<EtcdRestore>> {
    let api: Api<EtcdRestore> = Api::namespaced(ctx.client.clone(), namespace);
    let mut pending: Vec<EtcdRestore> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| r.spec.cluster_name == ec.name_any())
        .filter(|r| r.status.as_ref().and_then(|s| s.phase) != Some(RestorePhase::Completed))
        .collect();
    pending.sort_by_key(|r| (r.creation_timestamp().map(|t| t.0), r.name_any()));
    Ok(pending.into_iter().next())
}

/// Copies the cluster's restore progress into the EtcdRestore's status.
async fn report_restore(
    ctx: &Context,
    restore: &EtcdRestore,
    status: &crate::crd::EtcdClusterStatus,
    namespace: &str,
) -> Result<()> {
    let Some(p) = status
        .restore
        .as_ref()
        .filter(|p| p.name == restore.name_any())
    else {
        return Ok(());
    };
    let next = EtcdRestoreStatus {
        phase: Some(p.phase),
        old_cluster_id: p.old_cluster_id.clone(),
        new_cluster_id: p.new_cluster_id.clone(),
        revision: p.revision,
        completed: p.completed.clone(),
    };
    if restore.status.as_ref() == Some(&next) {
        return Ok(());
    }
    let api: Api<EtcdRestore> = Api::namespaced(ctx.client.clone(), namespace);
    crate::k8s::apply_status(&api, &restore.name_any(), &next).await
}

/// Applies the CronJobs the spec asks for (scheduled backups, defragmentation) and deletes
/// those of ours it no longer asks for; BackupReady, from the backup CronJob's last runs.
async fn sync_cron_jobs(
    ctx: &Context,
    ec: &EtcdCluster,
    namespace: &str,
) -> Result<Vec<status::ExtraCondition>> {
    let wanted = jobs::wanted(ec, &ctx.image_repository)?;
    let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), namespace);
    let ours = format!(
        "{},{}=oxcd-operator",
        resources::selector_string(ec),
        resources::LABEL_MANAGED_BY
    );
    let existing = api.list(&ListParams::default().labels(&ours)).await?;
    for job in &existing {
        let name = job.name_any();
        if !wanted
            .iter()
            .any(|w| w.metadata.name.as_deref() == Some(name.as_str()))
        {
            api.delete(&name, &Default::default()).await?;
        }
    }
    for job in &wanted {
        apply(ctx, namespace, job).await?;
    }
    if ec.spec.backup.is_none() {
        return Ok(Vec::new());
    }
    let backup = existing
        .iter()
        .find(|j| j.name_any() == jobs::backup_job_name(ec));
    let (status, reason, message) = backup.map_or_else(
        || {
            let why = "no backup has been scheduled yet".to_string();
            ("Unknown".to_string(), "NoBackupYet", why)
        },
        jobs::backup_condition,
    );
    Ok(vec![("BackupReady", status, reason, message)])
}

async fn apply<K>(ctx: &Context, namespace: &str, object: &K) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(&name, &apply_params(), &Patch::Apply(object))
        .await?;
    Ok(())
}

fn record_members(ctx: &Context, ec: &EtcdCluster, status: &crate::crd::EtcdClusterStatus) {
    let namespace = ec.namespace().unwrap_or_default();
    let name = ec.name_any();
    let count = |f: &dyn Fn(&crate::crd::MemberStatus) -> bool| {
        status.members.iter().filter(|m| f(m)).count() as i64
    };
    for (state, n) in [
        ("voter", count(&|m| m.id.is_some() && !m.learner)),
        ("learner", count(&|m| m.learner)),
        ("healthy", count(&|m| m.healthy)),
        ("unhealthy", count(&|m| !m.healthy)),
    ] {
        ctx.metrics
            .members
            .with_label_values(&[namespace.as_str(), name.as_str(), state])
            .set(n);
    }
}

/// An Event on `object` per transition; failures (a reason ending in `Failed`) as warnings.
pub(crate) async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    transitions: &[Transition],
) {
    let reference = object.object_ref(&());
    for t in transitions {
        let event = Event {
            // Failures are warnings.
            type_: if t.reason.ends_with("Failed") {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: t.reason.to_string(),
            note: Some(t.note.clone()),
            action: t.reason.to_string(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            let name = object.meta().name.clone().unwrap_or_default();
            tracing::warn!(object = %name, error = %e, "could not publish an event");
        }
    }
}

/// A failed pass: requeued after 5 s, doubling with each consecutive failure up to 5 min.
pub fn error_policy(ec: Arc<EtcdCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    let kind = match error {
        Error::Kube(_) => "kube",
        Error::Etcd(_) | Error::Unreachable(_) => "cluster",
        _ => "other",
    };
    ctx.metrics.errors.with_label_values(&[kind]).inc();
    let mut failures = ctx.failures.lock().unwrap();
    let n = failures.entry(key(&ec)).or_default();
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    tracing::warn!(cluster = %key(&ec), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

pub fn backoff(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1 << failures.saturating_sub(1).min(6));
    Duration::from_secs(secs.min(300))
}

/// An API over one namespace, or all of them.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controllers of EtcdClusters and EtcdBackups until `shutdown` resolves: over one
/// namespace, or all of them. A change to a member pod, volume or Service the operator
/// made wakes its cluster's pass; a change to a backup's Job, the backup's.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let backups = Controller::new(
        scoped::<crate::crd::EtcdBackup>(&client, ns),
        watcher::Config::default(),
    )
    .owns(
        scoped::<k8s_openapi::api::batch::v1::Job>(&client, ns),
        watcher::Config::default().labels("app.kubernetes.io/managed-by=oxcd-operator"),
    )
    .graceful_shutdown_on(shutdown.clone())
    .run(
        crate::oneoff::reconcile,
        crate::oneoff::error_policy,
        ctx.clone(),
    )
    .for_each(|_| futures::future::ready(()));
    let ours = watcher::Config::default().labels("app.kubernetes.io/managed-by=oxcd-operator");
    let clusters = Controller::new(
        scoped::<EtcdCluster>(&client, ns),
        watcher::Config::default(),
    )
    .owns(scoped::<Pod>(&client, ns), ours.clone())
    .owns(scoped::<PersistentVolumeClaim>(&client, ns), ours.clone())
    .owns(scoped::<Service>(&client, ns), ours)
    .watches(
        scoped::<EtcdRestore>(&client, ns),
        watcher::Config::default(),
        |r| {
            let cluster = ObjectRef::new(&r.spec.cluster_name);
            Some(match r.namespace() {
                Some(ns) => cluster.within(&ns),
                None => cluster,
            })
        },
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|_| futures::future::ready(()));
    futures::future::join(clusters, backups).await;
}
