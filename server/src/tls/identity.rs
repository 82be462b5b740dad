//! Who a certificate names: its Common Name (etcd's user name under client-cert auth) and
//! its DNS and IP names, and the peer port's `--peer-cert-allowed-cn` /
//! `--peer-cert-allowed-hostname` checks made on them during the handshake.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The first Common Name of `cert`'s subject.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// The DNS names and IP addresses (as text) in `cert`'s subject alternative names.
pub fn host_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A client-certificate verifier that, after the chain is verified, also requires the
/// allowed CN or host name (etcd checks these in its `ClientConfig.VerifyPeerCertificate`).
#[derive(Debug)]
pub struct AllowedPeerVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: AllowedNames,
}

impl AllowedPeerVerifier {
    /// `inner` itself when nothing is restricted.
    pub fn wrap(
        inner: Arc<dyn ClientCertVerifier>,
        allowed_cn: Option<String>,
        allowed_hostname: Option<String>,
    ) -> Arc<dyn ClientCertVerifier> {
        match AllowedNames::new(allowed_cn, allowed_hostname) {
            Some(allowed) => Arc::new(AllowedPeerVerifier { inner, allowed }),
            None => inner,
        }
    }
}

impl ClientCertVerifier for AllowedPeerVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.allowed.check(end_entity, "certificate")?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The server-certificate side of the same checks: etcd's `VerifyPeerCertificate` sits in the
/// base TLS configuration of both the peer listener and the peer dialer, so a member also
/// refuses to talk to a peer whose server certificate lacks the allowed CN or host name (its
/// answers would otherwise reach the cluster over the dialer's own connections).
#[derive(Debug)]
pub struct AllowedServerVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    allowed: AllowedNames,
}

/// `--peer-cert-allowed-cn` and `--peer-cert-allowed-hostname`.
#[derive(Debug, Clone)]
struct AllowedNames {
    cn: Option<String>,
    hostname: Option<String>,
}

impl AllowedNames {
    /// `None` when nothing is restricted.
    fn new(cn: Option<String>, hostname: Option<String>) -> Option<AllowedNames> {
        (cn.is_some() || hostname.is_some()).then_some(AllowedNames { cn, hostname })
    }

    /// Refuses `cert` (a peer's `what`) unless it carries the allowed CN and host name.
    fn check(&self, cert: &CertificateDer<'_>, what: &str) -> Result<(), rustls::Error> {
        if self.allows(cert) {
            return Ok(());
        }
        tracing::warn!(
            allowed_cn = ?self.cn,
            allowed_hostname = ?self.hostname,
            "refused a peer's {what}: not the allowed CN or host name"
        );
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn allows(&self, cert: &CertificateDer<'_>) -> bool {
        let cn_ok = self
            .cn
            .as_ref()
            .is_none_or(|cn| common_name(cert).as_deref() == Some(cn.as_str()));
        let host_ok = self.hostname.as_ref().is_none_or(|host| {
            host_names(cert)
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host))
        });
        cn_ok && host_ok
    }
}

impl AllowedServerVerifier {
    /// `inner` itself when nothing is restricted.
    pub fn wrap(
        inner: Arc<dyn ServerCertVerifier>,
        allowed_cn: Option<String>,
        allowed_hostname: Option<String>,
    ) -> Arc<dyn ServerCertVerifier> {
        match AllowedNames::new(allowed_cn, allowed_hostname) {
            Some(allowed) => Arc::new(AllowedServerVerifier { inner, allowed }),
            None => inner,
        }
    }
}

impl ServerCertVerifier for AllowedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        self.allowed.check(end_entity, "server certificate")?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
