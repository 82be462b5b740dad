//! Builders of a cluster's Kubernetes objects: the headless peer Service (stable DNS names),
//! the client Service, the ConfigMap with the generated config file, the PodDisruptionBudget
//! sized from the voters, and each member's PersistentVolumeClaim and Pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, Probe, SeccompProfile,
    SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::act::Launch;
use crate::crd::{CompactionMode, EtcdCluster, Retention};

pub const CLIENT_PORT: i32 = 2379;
pub const PEER_PORT: i32 = 2380;
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The uid of the EtcdCluster a pod or volume belongs to: a volume without ours is never used.
pub const LABEL_CLUSTER_UID: &str = "oxcd.io/cluster-uid";
pub const LABEL_MEMBER: &str = "oxcd.io/member";
pub const ANNOTATION_VERSION: &str = "oxcd.io/version";
pub const ANNOTATION_CONFIG: &str = "oxcd.io/config-hash";
pub const ANNOTATION_MEMBER_ID: &str = "oxcd.io/member-id";
/// The member container's flag that makes its member the only one (quorum recovery).
pub const FORCE_NEW_CLUSTER: &str = "--force-new-cluster";
const VOLUME_DIR: &str = "/var/lib/oxcd";
const DATA_DIR: &str = "/var/lib/oxcd/data";
const CONFIG_DIR: &str = "/etc/oxcd";
const CONFIG_FILE: &str = "oxcd.yaml";

pub fn peers_service_name(ec: &EtcdCluster) -> String {
    format!("{}-peers", ec.name_any())
}

pub fn client_service_name(ec: &EtcdCluster) -> String {
    format!("{}-client", ec.name_any())
}

fn config_map_name(ec: &EtcdCluster) -> String {
    format!("{}-config", ec.name_any())
}

/// The stable DNS name of a member, through the headless Service.
pub fn member_host(ec: &EtcdCluster, member: &str) -> String {
    format!(
        "{member}.{}.{}.svc",
        peers_service_name(ec),
        ec.namespace().unwrap_or_default()
    )
}

/// `--initial-cluster-token`: unique to this EtcdCluster object, so that members of two
/// clusters can never join each other.
pub fn cluster_token(ec: &EtcdCluster) -> String {
    format!(
        "{}-{}-{}",
        ec.namespace().unwrap_or_default(),
        ec.name_any(),
        ec.uid().unwrap_or_default()
    )
}

/// Labels every member pod carries; the Services and the PDB select on them.
pub fn selector_labels(ec: &EtcdCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), "oxcd".to_string()),
        (LABEL_INSTANCE.to_string(), ec.name_any()),
    ])
}

pub fn selector_string(ec: &EtcdCluster) -> String {
    selector_labels(ec)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn labels(ec: &EtcdCluster) -> BTreeMap<String, String> {
    let mut labels = selector_labels(ec);
    labels.insert(LABEL_MANAGED_BY.into(), "oxcd-operator".into());
    labels.insert(LABEL_CLUSTER_UID.into(), ec.uid().unwrap_or_default());
    labels
}

fn owner(ec: &EtcdCluster) -> Vec<OwnerReference> {
    ec.controller_owner_ref(&()).into_iter().collect()
}

pub(crate) fn meta(ec: &EtcdCluster, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: ec.namespace(),
        labels: Some(labels(ec)),
        owner_references: Some(owner(ec)),
        ..ObjectMeta::default()
    }
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        ..ServicePort::default()
    }
}

/// Headless, and publishing members before they are ready: a learner must be reachable by
/// name to catch up before it can answer a readiness probe.
pub fn peers_service(ec: &EtcdCluster) -> Service {
    Service {
        metadata: meta(ec, peers_service_name(ec)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(ec)),
            ports: Some(vec![port("client", CLIENT_PORT), port("peer", PEER_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub fn client_service(ec: &EtcdCluster) -> Service {
    let mut metadata = meta(ec, client_service_name(ec));
    if !ec.spec.service.annotations.is_empty() {
        metadata.annotations = Some(ec.spec.service.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(ec.spec.service.type_.clone()),
            selector: Some(selector_labels(ec)),
            ports: Some(vec![port("client", CLIENT_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The config file in etcd's YAML, from the typed options; flags on the command line (the
/// member's own identity and URLs, then `extraArgs`) take precedence over it.
pub fn config_file(ec: &EtcdCluster) -> String {
    let o = &ec.spec.options;
    let mut lines = Vec::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            lines.push(format!("{key}: {v}"));
        }
    };
    put(
        "quota-backend-bytes",
        o.quota_backend_bytes.map(|v| v.to_string()),
    );
    put(
        "auto-compaction-mode",
        o.auto_compaction_mode.map(|m| match m {
            CompactionMode::Periodic => "periodic".to_string(),
            CompactionMode::Revision => "revision".to_string(),
        }),
    );
    put(
        "auto-compaction-retention",
        o.auto_compaction_retention
            .as_ref()
            .map(|r| format!("{r:?}")),
    );
    put("snapshot-count", o.snapshot_count.map(|v| v.to_string()));
    put(
        "heartbeat-interval",
        o.heartbeat_interval.map(|v| v.to_string()),
    );
    put(
        "election-timeout",
        o.election_timeout.map(|v| v.to_string()),
    );
    put(
        "max-request-bytes",
        o.max_request_bytes.map(|v| v.to_string()),
    );
    lines.push(String::new());
    lines.join("\n")
}

/// A digest of everything that a member reads at start besides its identity: a pod with
/// another one is restarted. FNV-1a, so that it stays the same across builds.
pub fn config_digest(ec: &EtcdCluster) -> String {
    let mut text = config_file(ec);
    for arg in &ec.spec.extra_args {
        text.push('\0');
        text.push_str(arg);
    }
    let hash = text.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    format!("{hash:016x}")
}

pub fn config_map(ec: &EtcdCluster) -> ConfigMap {
    ConfigMap {
        metadata: meta(ec, config_map_name(ec)),
        data: Some(BTreeMap::from([(CONFIG_FILE.to_string(), config_file(ec))])),
        ..ConfigMap::default()
    }
}

/// Voluntary disruptions may take the members the cluster can lose and keep its quorum:
/// voters − quorum, which is 0 for one or two voters.
pub fn pod_disruption_budget(ec: &EtcdCluster, voters: usize) -> PodDisruptionBudget {
    let quorum = voters / 2 + 1;
    PodDisruptionBudget {
        metadata: meta(ec, ec.name_any()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(voters.saturating_sub(quorum) as i32)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(ec)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// A member's volume. It is owned by the EtcdCluster (and so goes with it) only when the
/// policy on deletion is Delete; with Retain it carries no owner, so it outlives the cluster.
pub fn volume_claim(ec: &EtcdCluster, member: &str) -> PersistentVolumeClaim {
    let storage = &ec.spec.storage;
    let mut metadata = meta(ec, member.to_string());
    metadata
        .labels
        .get_or_insert_default()
        .insert(LABEL_MEMBER.into(), member.into());
    if storage.retention_policy.when_deleted == Retention::Retain {
        metadata.owner_references = None;
    }
    let size = storage.size.clone().unwrap_or_else(|| "1Gi".into());
    PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// A quantity ("10Gi", "500M", "1.5Ti") in bytes; `None` when it is not one.
pub fn quantity_bytes(quantity: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, scale) = SUFFIXES
        .iter()
        .find_map(|(suffix, scale)| Some((quantity.strip_suffix(suffix)?, *scale)))
        .unwrap_or((quantity, 1.0));
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .map(|n| n * scale)
}

/// The image members run.
pub fn image(ec: &EtcdCluster, repository: &str) -> String {
    ec.spec
        .image
        .clone()
        .unwrap_or_else(|| format!("{repository}:{}", ec.spec.version))
}

/// The user of the runtime image (distroless `nonroot`).
pub(crate) const NON_ROOT: i64 = 65532;

/// The pods' user: the image's non-root user, fsGroup making volumes writable by it, the
/// runtime's default seccomp profile.
pub(crate) fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NON_ROOT),
        run_as_group: Some(NON_ROOT),
        fs_group: Some(NON_ROOT),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// What a member's containers may do: no privilege escalation, no capabilities, a
/// read-only root filesystem (they write only to their volume).
pub(crate) fn locked_down() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// A member's pod: the init step (`oxcd member-guard`), then `oxcd` with the member's
/// identity and URLs as flags and the shared config file.
pub fn member_pod(ec: &EtcdCluster, launch: &Launch, repository: &str) -> Pod {
    let host = member_host(ec, &launch.member);
    let client = crate::tls::scheme(ec, crate::tls::Port::Client);
    let peer = crate::tls::scheme(ec, crate::tls::Port::Peer);
    let initial_cluster: Vec<String> = launch
        .initial_cluster
        .iter()
        .map(|(name, url)| format!("{name}={url}"))
        .collect();
    let mut args: Vec<String> = [
        ("--name", launch.member.clone()),
        ("--data-dir", DATA_DIR.into()),
        (
            "--listen-client-urls",
            format!("{client}://0.0.0.0:{CLIENT_PORT}"),
        ),
        (
            "--advertise-client-urls",
            format!("{client}://{host}:{CLIENT_PORT}"),
        ),
        (
            "--listen-peer-urls",
            format!("{peer}://0.0.0.0:{PEER_PORT}"),
        ),
        (
            "--initial-advertise-peer-urls",
            format!("{peer}://{host}:{PEER_PORT}"),
        ),
        ("--initial-cluster", initial_cluster.join(",")),
        (
            "--initial-cluster-state",
            if launch.new_cluster {
                "new"
            } else {
                "existing"
            }
            .into(),
        ),
        ("--initial-cluster-token", launch.token.clone()),
        ("--config-file", format!("{CONFIG_DIR}/{CONFIG_FILE}")),
    ]
    .into_iter()
    .map(|(flag, value)| format!("{flag}={value}"))
    .collect();
    if launch.force_new_cluster {
        args.push(FORCE_NEW_CLUSTER.into());
    }
    args.extend(ec.spec.extra_args.iter().cloned());
    let template = ec.spec.pod_template.clone().unwrap_or_default();
    let mut metadata = meta(ec, launch.member.clone());
    let labels = metadata.labels.get_or_insert_default();
    labels.insert(LABEL_MEMBER.into(), launch.member.clone());
    labels.extend(template.labels.clone());
    let mut annotations = template.annotations.clone();
    annotations.insert(ANNOTATION_VERSION.into(), launch.version.clone());
    annotations.insert(ANNOTATION_CONFIG.into(), launch.config.clone());
    if let Some(id) = launch.guard.member_id {
        annotations.insert(ANNOTATION_MEMBER_ID.into(), format!("{id:x}"));
    }
    metadata.annotations = Some(annotations);
    let image = image(ec, repository);
    let mounts = vec![
        VolumeMount {
            name: "data".into(),
            mount_path: VOLUME_DIR.into(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    ];
    let probe = |path: &str, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(CLIENT_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let data = match &ec.spec.storage.empty_dir {
        Some(dir) => Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: dir.size_limit.clone(),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
        None => Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: launch.member.clone(),
                read_only: None,
            }),
            ..Volume::default()
        },
    };
    let mut pod = Pod {
        metadata,
        spec: Some(PodSpec {
            hostname: Some(launch.member.clone()),
            subdomain: Some(peers_service_name(ec)),
            // A member that dies is restarted in place by the kubelet; the operator decides
            // everything else (a new pod, a replacement).
            restart_policy: Some("Always".into()),
            // The image's non-root user; fsGroup makes the volume writable by it.
            security_context: Some(pod_security()),
            init_containers: Some(vec![Container {
                name: "member-guard".into(),
                image: Some(image.clone()),
                command: Some(vec!["/usr/local/bin/oxcd".into()]),
                args: Some(launch.guard.args(DATA_DIR)),
                volume_mounts: Some(mounts[..1].to_vec()),
                security_context: Some(locked_down()),
                ..Container::default()
            }]),
            containers: vec![Container {
                name: "oxcd".into(),
                image: Some(image),
                command: Some(vec!["/usr/local/bin/oxcd".into()]),
                args: Some(args),
                ports: Some(vec![
                    ContainerPort {
                        name: Some("client".into()),
                        container_port: CLIENT_PORT,
                        ..ContainerPort::default()
                    },
                    ContainerPort {
                        name: Some("peer".into()),
                        container_port: PEER_PORT,
                        ..ContainerPort::default()
                    },
                ]),
                liveness_probe: Some(probe("/livez", 6)),
                readiness_probe: Some(probe("/readyz", 3)),
                resources: ec.spec.resources.clone(),
                volume_mounts: Some(mounts),
                security_context: Some(locked_down()),
                ..Container::default()
            }],
            volumes: Some(vec![
                data,
                Volume {
                    name: "config".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: config_map_name(ec),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
            ]),
            node_selector: (!template.node_selector.is_empty()).then_some(template.node_selector),
            tolerations: (!template.tolerations.is_empty()).then_some(template.tolerations),
            affinity: template.affinity,
            topology_spread_constraints: (!template.topology_spread_constraints.is_empty())
                .then_some(template.topology_spread_constraints),
            priority_class_name: template.priority_class_name,
            image_pull_secrets: (!template.image_pull_secrets.is_empty())
                .then_some(template.image_pull_secrets),
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    crate::tls::add_to_pod(&mut pod, ec, &launch.member);
    if let Some(restore) = &launch.restore {
        let peer_url = format!("{peer}://{host}:{PEER_PORT}");
        crate::jobs::add_restore_step(&mut pod, restore, launch, DATA_DIR, &peer_url);
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::quantity_bytes;

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(quantity_bytes("1Gi"), Some(1073741824.0));
        assert_eq!(quantity_bytes("1.5Ki"), Some(1536.0));
        assert_eq!(quantity_bytes("500M"), Some(5e8));
        assert_eq!(quantity_bytes("1024"), Some(1024.0));
        assert!(quantity_bytes("2Gi") > quantity_bytes("1500Mi"));
        assert_eq!(quantity_bytes("lots"), None);
    }
}
