//! [`Workloads`] on the Kubernetes API: member pods and PersistentVolumeClaims in the
//! cluster's namespace, written by server-side apply with the field manager `oxcd-operator`,
//! and the status subresource.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use std::sync::Mutex;

use crate::act::{Launch, Workload, Workloads};
use crate::crd::{EtcdCluster, EtcdClusterStatus};
use crate::error::Result;
use crate::plan::{self, Volume};
use crate::resources::{self, ANNOTATION_CONFIG, ANNOTATION_VERSION, LABEL_CLUSTER_UID};
use crate::tls;

pub const FIELD_MANAGER: &str = "oxcd-operator";

pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Writes `status` to the status subresource of the `oxcd.io` object `name` of `K`, by
/// server-side apply.
pub async fn apply_status<K>(api: &Api<K>, name: &str, status: &impl serde::Serialize) -> Result<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(name, &apply_params(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// One EtcdCluster's members on Kubernetes.
pub struct KubeWorkloads<'a> {
    client: Client,
    cluster: &'a EtcdCluster,
    /// The repository of the image members run (`<repository>:<version>`).
    image_repository: String,
    /// Our claims that ask for less storage than the spec, as the last look found them.
    /// A std Mutex: never held across an await.
    undersized: Mutex<Vec<String>>,
    /// How to reach the members, and the CA of `auto` TLS.
    tls: tls::Prepared,
}

impl<'a> KubeWorkloads<'a> {
    pub fn new(client: Client, cluster: &'a EtcdCluster, image_repository: String) -> Self {
        KubeWorkloads {
            client,
            cluster,
            image_repository,
            undersized: Mutex::default(),
            tls: tls::Prepared::default(),
        }
    }

    /// With the cluster's TLS as [`tls::Tls::prepare`] left it.
    pub fn with_tls(mut self, prepared: tls::Prepared) -> Self {
        self.tls = prepared;
        self
    }

    /// Grows the claims the last look found smaller than `storage.size` (the storage class
    /// must allow expansion; the CEL rules already refuse a shrink). The names grown.
    pub async fn grow_volumes(&self) -> Result<Vec<String>> {
        let names = std::mem::take(&mut *self.undersized.lock().unwrap());
        for name in &names {
            let claim = resources::volume_claim(self.cluster, name);
            self.claims()
                .patch(name, &apply_params(), &Patch::Apply(&claim))
                .await?;
        }
        Ok(names)
    }

    fn namespace(&self) -> String {
        self.cluster.namespace().unwrap_or_default()
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace())
    }

    fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), &self.namespace())
    }
}

/// Whether a claim requests less storage than the spec's size.
fn undersized(claim: &PersistentVolumeClaim, ec: &EtcdCluster) -> bool {
    let requested = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref()?.requests.as_ref()?.get("storage"))
        .and_then(|q| resources::quantity_bytes(&q.0));
    let wanted = ec
        .spec
        .storage
        .size
        .as_deref()
        .and_then(resources::quantity_bytes);
    matches!((requested, wanted), (Some(r), Some(w)) if r < w)
}

/// Whether the init step refused the data dir: its container ended with a failure.
fn guard_refused(pod: &Pod) -> bool {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref());
    statuses.into_iter().flatten().any(|s| {
        let ended = [s.state.as_ref(), s.last_state.as_ref()];
        ended
            .into_iter()
            .flatten()
            .any(|state| state.terminated.as_ref().is_some_and(|t| t.exit_code == 1))
            && !s.ready
    })
}

/// Whether the member container runs with `--force-new-cluster`.
fn forced(pod: &Pod) -> bool {
    let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
    containers
        .flat_map(|c| c.args.iter().flatten())
        .any(|a| a == resources::FORCE_NEW_CLUSTER)
}

/// Whether the pod's Ready condition is True.
fn ready(pod: &Pod) -> bool {
    let conditions = pod
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten());
    conditions
        .into_iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Why a container of the pod cannot run, from its waiting state.
fn failing(pod: &Pod) -> Option<String> {
    const STUCK: [&str; 5] = [
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
    ];
    let status = pod.status.as_ref()?;
    let containers = [
        status.init_container_statuses.as_ref(),
        status.container_statuses.as_ref(),
    ];
    containers.into_iter().flatten().flatten().find_map(|c| {
        let waiting = c.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref().filter(|r| STUCK.contains(r))?;
        let message = waiting.message.as_deref().unwrap_or_default();
        Some(format!("{}: {reason}: {message}", c.name))
    })
}

impl Workloads for KubeWorkloads<'_> {
    fn peer_url(&self, member: &str) -> String {
        format!(
            "{}://{}:{}",
            tls::scheme(self.cluster, tls::Port::Peer),
            resources::member_host(self.cluster, member),
            resources::PEER_PORT
        )
    }

    fn access(&self) -> crate::members::Access {
        self.tls.access.clone()
    }

    fn client_url(&self, member: &str) -> String {
        format!(
            "{}://{}:{}",
            tls::scheme(self.cluster, tls::Port::Client),
            resources::member_host(self.cluster, member),
            resources::CLIENT_PORT
        )
    }

    async fn observe(&self) -> Result<Vec<Workload>> {
        let selector = ListParams::default().labels(&resources::selector_string(self.cluster));
        let uid = self.cluster.uid().unwrap_or_default();
        let mut found: Vec<Workload> = Vec::new();
        for pod in self.pods().list(&selector).await? {
            let annotations = pod.annotations();
            found.push(Workload {
                name: pod.name_any(),
                pod: Some(plan::Pod {
                    version: annotations
                        .get(ANNOTATION_VERSION)
                        .cloned()
                        .unwrap_or_default(),
                    config: annotations
                        .get(ANNOTATION_CONFIG)
                        .cloned()
                        .unwrap_or_default(),
                    guard_refused: guard_refused(&pod),
                    failing: failing(&pod),
                    forced: forced(&pod),
                    ready: ready(&pod),
                }),
                volume: Volume::Missing,
            });
        }
        if self.cluster.spec.storage.empty_dir.is_none() {
            for claim in self.claims().list(&selector).await? {
                let owner = claim
                    .labels()
                    .get(LABEL_CLUSTER_UID)
                    .cloned()
                    .unwrap_or_default();
                if owner == uid && undersized(&claim, self.cluster) {
                    self.undersized.lock().unwrap().push(claim.name_any());
                }
                let volume = if owner == uid {
                    Volume::Ours
                } else {
                    Volume::Foreign { owner }
                };
                match found.iter_mut().find(|w| w.name == claim.name_any()) {
                    Some(w) => w.volume = volume,
                    None => found.push(Workload {
                        name: claim.name_any(),
                        pod: None,
                        volume,
                    }),
                }
            }
        }
        Ok(found)
    }

    async fn start_member(&self, launch: &Launch) -> Result<()> {
        if self.cluster.spec.storage.empty_dir.is_none() {
            let claim = resources::volume_claim(self.cluster, &launch.member);
            // Created once: a claim's spec is immutable but for its size, and an existing
            // claim keeps its data whatever this pass thinks.
            if self.claims().get_opt(&launch.member).await?.is_none() {
                self.claims()
                    .patch(&launch.member, &apply_params(), &Patch::Apply(&claim))
                    .await?;
            }
        }
        if let Some(authority) = &self.tls.authority {
            tls::Tls::new(self.client.clone(), self.cluster)
                .ensure_member(authority, &self.tls.trust, &launch.member)
                .await?;
        }
        let pod = resources::member_pod(self.cluster, launch, &self.image_repository);
        if self.pods().get_opt(&launch.member).await?.is_none() {
            self.pods()
                .patch(&launch.member, &apply_params(), &Patch::Apply(&pod))
                .await?;
        }
        Ok(())
    }

    async fn delete_pod(&self, member: &str) -> Result<()> {
        match self.pods().delete(member, &DeleteParams::default()).await {
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    async fn delete_volume(&self, member: &str) -> Result<()> {
        match self.claims().delete(member, &DeleteParams::default()).await {
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    async fn save_status(&self, status: &EtcdClusterStatus) -> Result<()> {
        let api: Api<EtcdCluster> = Api::namespaced(self.client.clone(), &self.namespace());
        apply_status(&api, &self.cluster.name_any(), status).await
    }
}
