//! `spec.tls` and `spec.auth`, and the CA rotation status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

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
