//! A cluster's TLS on Kubernetes (`spec.tls`): where each port's certificates come from, the
//! Secrets the operator keeps for `auto` (the CA, one per member, its own client
//! certificate), their renewal before expiry, the cert-manager Certificates it writes for
//! `certManager` (through the dynamic API, no cert-manager types), and how the operator
//! reaches the members.
//!
//! Renewal replaces a Secret's data in place: the kubelet updates the files the pod
//! mounts, and oxcd reads changed certificate files on its next handshake, so no member
//! restarts. The CA is made once and never replaced by a pass.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ContainerPort, Pod, Secret, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PostParams};
use kube::{Client, ResourceExt};

use crate::act::Transition;
use crate::certs::{self, Authority};
use crate::crd::{EtcdCluster, EtcdClusterStatus, TlsSource, TlsSpec};
use crate::status::ExtraCondition;

mod rotation;

use crate::error::{Error, Result};
use crate::k8s::apply_params;
use crate::members::{Access, ClientTls};
use crate::resources::{self, meta};
pub use rotation::{PROPAGATION, ROTATE_ANNOTATION};

/// How long the CA `auto` makes is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Labels a member certificate Secret of ours, for renewal.
const LABEL_TLS: &str = "oxcd.io/tls";

pub const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
/// The CA Secret's keys for the next CA, during a rotation.
const NEXT_CERT: &str = "next.crt";
const NEXT_KEY: &str = "next.key";
pub const CERT: &str = "tls.crt";
pub const KEY: &str = "tls.key";

/// A member's two ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Client,
    Peer,
}

impl Port {
    fn name(self) -> &'static str {
        match self {
            Port::Client => "client",
            Port::Peer => "peer",
        }
    }

    pub fn source(self, tls: &TlsSpec) -> Option<&TlsSource> {
        match self {
            Port::Client => tls.client.as_ref(),
            Port::Peer => tls.peer.as_ref(),
        }
    }
}

/// The Secret whose certificate the operator (and its jobs) present to the client port,
/// and whose `ca.crt` they trust: the operator's own with `auto`, else the members' shared
/// one. `None` when the client port is plain.
pub fn client_identity_secret(ec: &EtcdCluster) -> Option<String> {
    let source = Port::Client.source(ec.spec.tls.as_ref()?)?;
    if source.auto.is_some() {
        Some(operator_secret_name(ec))
    } else {
        secret_for(ec, Port::Client, "")
    }
}

/// Whether `port` serves TLS.
pub fn enabled(ec: &EtcdCluster, port: Port) -> bool {
    ec.spec.tls.as_ref().and_then(|t| port.source(t)).is_some()
}

pub fn scheme(ec: &EtcdCluster, port: Port) -> &'static str {
    if enabled(ec, port) { "https" } else { "http" }
}

pub fn ca_secret_name(ec: &EtcdCluster) -> String {
    format!("{}-ca", ec.name_any())
}

pub fn member_secret_name(member: &str) -> String {
    format!("{member}-tls")
}

pub fn operator_secret_name(ec: &EtcdCluster) -> String {
    format!("{}-operator-tls", ec.name_any())
}

fn cert_manager_name(ec: &EtcdCluster, port: Port) -> String {
    format!("{}-{}-tls", ec.name_any(), port.name())
}

/// The Secret `member` mounts for `port`, if the port serves TLS.
pub fn secret_for(ec: &EtcdCluster, port: Port, member: &str) -> Option<String> {
    let source = port.source(ec.spec.tls.as_ref()?)?;
    Some(if source.auto.is_some() {
        member_secret_name(member)
    } else if let Some(name) = &source.secret_name {
        name.clone()
    } else {
        cert_manager_name(ec, port)
    })
}

fn uses_auto(ec: &EtcdCluster) -> bool {
    let Some(tls) = &ec.spec.tls else {
        return false;
    };
    [Port::Client, Port::Peer]
        .iter()
        .any(|p| p.source(tls).is_some_and(|s| s.auto.is_some()))
}

fn durations(tls: &TlsSpec) -> Result<(Duration, Duration)> {
    let parse = |what: &str, s: &str| {
        crate::crd::parse_duration(s).map_err(|e| Error::Invalid(format!("tls.{what}: {e}")))
    };
    Ok((
        parse("validity", &tls.validity)?,
        parse("renewBefore", &tls.renew_before)?,
    ))
}

/// `key` of `secret`, as text: from `data`, or from `stringData`, which a Secret just
/// created may still answer with.
pub(crate) fn field(secret: &Secret, key: &str) -> Result<String> {
    let name = secret.name_any();
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(bytes.0.clone())
            .map_err(|_| Error::Invalid(format!("Secret {name}: {key} is not UTF-8")));
    }
    let text = secret.string_data.as_ref().and_then(|d| d.get(key));
    text.cloned()
        .ok_or_else(|| Error::Invalid(format!("Secret {name} has no {key}")))
}

fn tls_secret(ec: &EtcdCluster, name: String, files: &[(&str, &str)], member: bool) -> Secret {
    let mut metadata = meta(ec, name);
    if member {
        let labels = metadata.labels.get_or_insert_default();
        labels.insert(LABEL_TLS.into(), "member".into());
    }
    Secret {
        metadata,
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            files
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

/// What a pass needs of the cluster's TLS.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// The CA `auto` issues from.
    pub authority: Option<Authority>,
    /// The `ca.crt` members and the operator hold: the CA, or both during a rotation.
    pub trust: String,
    pub access: Access,
    pub transitions: Vec<Transition>,
    /// CARotation, with `auto`.
    pub condition: Option<ExtraCondition>,
}

/// The CAs of `auto`: the one in force, and the next one during a rotation.
#[derive(Debug, Clone)]
pub struct Cas {
    pub current: Authority,
    pub next: Option<Authority>,
}

/// The member a member certificate Secret (`<member>-tls`) is for.
fn member_of(secret: &Secret) -> Option<String> {
    secret.name_any().strip_suffix("-tls").map(String::from)
}

/// One cluster's TLS objects.
pub struct Tls<'a> {
    client: Client,
    ec: &'a EtcdCluster,
}

impl<'a> Tls<'a> {
    pub fn new(client: Client, ec: &'a EtcdCluster) -> Tls<'a> {
        Tls { client, ec }
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(
            self.client.clone(),
            &self.ec.namespace().unwrap_or_default(),
        )
    }

    /// The CA (made once), the operator's client certificate, renewals, cert-manager
    /// Certificates, and how to reach the members. A Secret the cluster needs that does
    /// not exist yet (cert-manager has not issued it) fails the pass, to be tried again.
    ///
    /// With `auto`, a CA rotation's next step is taken here and recorded in `status`.
    pub async fn prepare(
        &self,
        now: time::OffsetDateTime,
        status: &mut EtcdClusterStatus,
    ) -> Result<Prepared> {
        let Some(spec) = &self.ec.spec.tls else {
            return Ok(Prepared::default());
        };
        let mut prepared = Prepared::default();
        // The operator's own certificate Secret as it now stands, once `auto` has read or
        // issued it.
        let mut identity: Option<Secret> = None;
        for port in [Port::Client, Port::Peer] {
            if let Some(issuer) = port.source(spec).and_then(|s| s.cert_manager.as_ref()) {
                self.apply_certificate(port, &issuer.issuer_ref).await?;
            }
        }
        if uses_auto(self.ec) {
            let (validity, renew_before) = durations(spec)?;
            let mut cas = self.cas().await?;
            let rotated =
                rotation::step(self, &mut cas, status, now, validity, renew_before).await?;
            prepared.transitions.extend(rotated);
            let (issuing, trust) = rotation::in_force(&cas, status.ca_rotation.as_ref());
            let due = |s: &Secret| {
                field(s, CERT)
                    .ok()
                    .and_then(|c| certs::renew_at(&c, renew_before))
                    .is_none_or(|at| at <= now)
            };
            let operator = self
                .secrets()
                .get_opt(&operator_secret_name(self.ec))
                .await?;
            identity = match operator {
                Some(secret) if !due(&secret) => Some(secret),
                _ => Some(self.issue_operator(&issuing, &trust, validity).await?),
            };
            for secret in self.member_secrets().await?.iter().filter(|s| due(s)) {
                let Some(member) = member_of(secret) else {
                    continue;
                };
                self.issue_member(&issuing, &trust, &member, validity)
                    .await?;
                prepared.transitions.push(Transition {
                    reason: "CertificateRenewed",
                    note: format!("member {member}'s certificate issued again before expiry"),
                });
            }
            prepared.condition = rotation::condition(status.ca_rotation.as_ref());
            prepared.authority = Some(issuing);
            prepared.trust = trust;
        }
        if let Some(name) = client_identity_secret(self.ec) {
            let secret = match identity.filter(|s| s.name_any() == name) {
                Some(secret) => secret,
                None => self.secrets().get_opt(&name).await?.ok_or_else(|| {
                    Error::Other(format!(
                        "waiting for the Secret {name} (the client certificate)"
                    ))
                })?,
            };
            prepared.access = Access::tls(ClientTls {
                ca_pem: field(&secret, CA_CERT)?,
                cert_pem: field(&secret, CERT)?,
                key_pem: field(&secret, KEY)?,
            });
        }
        Ok(prepared)
    }

    /// The CA in `<cluster>-ca` (and the next one, during a rotation), made and stored the
    /// first time. Created, never applied: a pass never overwrites a CA another pass made.
    async fn cas(&self) -> Result<Cas> {
        let name = ca_secret_name(self.ec);
        let read = |s: &Secret| -> Result<Cas> {
            let next = match (field(s, NEXT_CERT), field(s, NEXT_KEY)) {
                (Ok(cert), Ok(key)) => Some(Authority::from_pem(&cert, &key)?),
                _ => None,
            };
            Ok(Cas {
                current: Authority::from_pem(&field(s, CA_CERT)?, &field(s, CA_KEY)?)?,
                next,
            })
        };
        if let Some(secret) = self.secrets().get_opt(&name).await? {
            return read(&secret);
        }
        let made = Authority::new(&self.ec.name_any(), CA_VALIDITY)?;
        let secret = self.ca_secret(&made, None);
        let create = PostParams {
            field_manager: Some(crate::k8s::FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match self.secrets().create(&create, &secret).await {
            Ok(_) => Ok(Cas {
                current: made,
                next: None,
            }),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let secret = self.secrets().get(&name).await?;
                read(&secret)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The CA Secret holding `current`, and `next` during a rotation.
    fn ca_secret(&self, current: &Authority, next: Option<&Authority>) -> Secret {
        let mut files = vec![
            (CA_CERT, current.cert_pem.as_str()),
            (CA_KEY, current.key_pem()),
        ];
        if let Some(next) = next {
            files.extend([
                (NEXT_CERT, next.cert_pem.as_str()),
                (NEXT_KEY, next.key_pem()),
            ]);
        }
        let mut secret = tls_secret(self.ec, ca_secret_name(self.ec), &files, false);
        secret.type_ = Some("Opaque".into());
        secret
    }

    async fn member_secrets(&self) -> Result<Vec<Secret>> {
        let selector = format!("{},{LABEL_TLS}=member", resources::selector_string(self.ec));
        let listed = self
            .secrets()
            .list(&kube::api::ListParams::default().labels(&selector))
            .await?;
        Ok(listed.items)
    }

    async fn issue_operator(
        &self,
        issuing: &Authority,
        trust: &str,
        validity: Duration,
    ) -> Result<Secret> {
        let issued = issuing.issue("oxcd-operator", &[], validity)?;
        let files = [
            (CA_CERT, trust),
            (CERT, issued.cert_pem.as_str()),
            (KEY, issued.key_pem.as_str()),
        ];
        let secret = tls_secret(self.ec, operator_secret_name(self.ec), &files, false);
        self.apply(&secret).await
    }

    /// `member`'s certificate Secret, unless it exists.
    pub async fn ensure_member(
        &self,
        authority: &Authority,
        trust: &str,
        member: &str,
    ) -> Result<()> {
        if self
            .secrets()
            .get_opt(&member_secret_name(member))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let spec = self.ec.spec.tls.as_ref().expect("auto TLS");
        self.issue_member(authority, trust, member, durations(spec)?.0)
            .await
    }

    async fn issue_member(
        &self,
        authority: &Authority,
        trust: &str,
        member: &str,
        validity: Duration,
    ) -> Result<()> {
        let namespace = self.ec.namespace().unwrap_or_default();
        let sans = certs::member_sans(&self.ec.name_any(), &namespace, member);
        let issued = authority.issue(member, &sans, validity)?;
        let files = [
            (CA_CERT, trust),
            (CERT, issued.cert_pem.as_str()),
            (KEY, issued.key_pem.as_str()),
        ];
        let secret = tls_secret(self.ec, member_secret_name(member), &files, true);
        self.apply(&secret).await.map(drop)
    }

    /// Applies `secret`; the Secret as stored.
    async fn apply(&self, secret: &Secret) -> Result<Secret> {
        let name = secret.name_any();
        Ok(self
            .secrets()
            .patch(&name, &apply_params(), &Patch::Apply(secret))
            .await?)
    }

    /// The cert-manager Certificate of `port`: one certificate for every member (a wildcard
    /// on the peer Service's names), the client Service and localhost, for server and
    /// client use.
    async fn apply_certificate(&self, port: Port, issuer: &crate::crd::IssuerRef) -> Result<()> {
        let gvk = GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate");
        let resource = ApiResource::from_gvk(&gvk);
        let namespace = self.ec.namespace().unwrap_or_default();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &namespace, &resource);
        let name = cert_manager_name(self.ec, port);
        let mut dns = Vec::new();
        for service in [
            format!("*.{}", resources::peers_service_name(self.ec)),
            resources::client_service_name(self.ec),
        ] {
            dns.push(format!("{service}.{namespace}.svc"));
            dns.push(format!("{service}.{namespace}.svc.cluster.local"));
        }
        dns.push("localhost".into());
        let mut object = DynamicObject::new(&name, &resource).within(&namespace);
        object.metadata = meta(self.ec, name.clone());
        object.data = serde_json::json!({
            "spec": {
                "secretName": name,
                "commonName": format!("{}.{namespace}", self.ec.name_any()),
                "dnsNames": dns,
                "ipAddresses": ["127.0.0.1"],
                "usages": ["server auth", "client auth", "digital signature", "key encipherment"],
                "issuerRef": {"name": issuer.name, "kind": issuer.kind, "group": issuer.group},
            }
        });
        api.patch(&name, &apply_params(), &Patch::Apply(&object))
            .await?;
        Ok(())
    }
}

/// Where a port's certificate Secret is mounted in a member's container.
fn mount_dir(port: Port) -> String {
    format!("/etc/oxcd/tls/{}", port.name())
}

/// The port of the plain HTTP listener for health and metrics when the client port checks
/// client certificates (the kubelet's probes present none).
pub const METRICS_PORT: i32 = 2381;

/// A member pod's TLS: each port's Secret mounted, oxcd's flags for it (client
/// certificates checked), and, with TLS on the client port, the probes moved to a plain
/// health and metrics listener.
pub fn add_to_pod(pod: &mut Pod, ec: &EtcdCluster, member: &str) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let Some(container) = spec.containers.first_mut() else {
        return;
    };
    let args = container.args.get_or_insert_default();
    let mounts = container.volume_mounts.get_or_insert_default();
    let volumes = spec.volumes.get_or_insert_default();
    for port in [Port::Client, Port::Peer] {
        let Some(secret) = secret_for(ec, port, member) else {
            continue;
        };
        let dir = mount_dir(port);
        let prefix = match port {
            Port::Client => "--",
            Port::Peer => "--peer-",
        };
        args.extend([
            format!("{prefix}cert-file={dir}/{CERT}"),
            format!("{prefix}key-file={dir}/{KEY}"),
            format!("{prefix}trusted-ca-file={dir}/{CA_CERT}"),
            format!("{prefix}client-cert-auth"),
        ]);
        let volume = format!("tls-{}", port.name());
        mounts.push(VolumeMount {
            name: volume.clone(),
            mount_path: dir,
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: volume,
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    if enabled(ec, Port::Client) {
        args.push(format!(
            "--listen-metrics-urls=http://0.0.0.0:{METRICS_PORT}"
        ));
        container.ports.get_or_insert_default().push(ContainerPort {
            name: Some("metrics".into()),
            container_port: METRICS_PORT,
            ..ContainerPort::default()
        });
        for probe in [
            &mut container.liveness_probe,
            &mut container.readiness_probe,
        ] {
            if let Some(get) = probe.as_mut().and_then(|p| p.http_get.as_mut()) {
                get.port = IntOrString::Int(METRICS_PORT);
            }
        }
    }
}
