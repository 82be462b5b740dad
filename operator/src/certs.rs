//! Certificates for `spec.tls` with `auto`: a CA per cluster, kept in a Secret as PEM, which
//! issues each member's certificate (server and client use, with the SANs a member is
//! reached by: its pod's DNS names under the peer Service, the client Service, localhost)
//! and the operator's own client certificate. Renewal is decided from a certificate's
//! expiry: the member's files are replaced in place, and oxcd re-reads them, so no member
//! restarts. A CA rotation runs in steps: trust a bundle of the old and new CAs, re-issue
//! every certificate from the new one, then trust the new one alone.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::error::{Error, Result};

/// A certificate and its key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate authority that can issue: its certificate and key, PEM.
#[derive(Debug, Clone)]
pub struct Authority {
    pub cert_pem: String,
    key_pem: String,
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::Other(format!("certificate: {e}"))
}

fn validity(params: &mut CertificateParams, valid_for: Duration) {
    let now = time::OffsetDateTime::now_utc();
    // A minute back: clocks of the members and the operator may differ a little.
    params.not_before = now - Duration::from_secs(60);
    params.not_after = now + valid_for;
}

impl Authority {
    /// A new self-signed CA named after the cluster.
    pub fn new(cluster: &str, valid_for: Duration) -> Result<Authority> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(invalid)?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{cluster} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, valid_for);
        let key = KeyPair::generate().map_err(invalid)?;
        let cert = params.self_signed(&key).map_err(invalid)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA kept in a Secret.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Authority> {
        let authority = Authority {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        };
        authority.issuer()?;
        Ok(authority)
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>> {
        let key = KeyPair::from_pem(&self.key_pem).map_err(invalid)?;
        Issuer::from_ca_cert_pem(&self.cert_pem, key).map_err(invalid)
    }

    /// A certificate for `common_name`, for servers and clients alike, naming `sans` (DNS
    /// names or IP addresses).
    pub fn issue(&self, common_name: &str, sans: &[String], valid_for: Duration) -> Result<Issued> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(invalid)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = sans
            .iter()
            .map(|s| match s.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => s.clone().try_into().map(SanType::DnsName).map_err(invalid),
            })
            .collect::<Result<_>>()?;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        validity(&mut params, valid_for);
        let key = KeyPair::generate().map_err(invalid)?;
        let cert = params.signed_by(&key, &self.issuer()?).map_err(invalid)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The names a member of `cluster` in `namespace` is reached by: its pod's name and DNS
/// names under the peer Service, the client Service's names, and localhost.
pub fn member_sans(cluster: &str, namespace: &str, member: &str) -> Vec<String> {
    let peers = format!("{cluster}-peers");
    let client = format!("{cluster}-client");
    let mut sans = vec![member.to_string()];
    for service in [format!("{member}.{peers}"), client] {
        sans.push(service.clone());
        sans.push(format!("{service}.{namespace}"));
        sans.push(format!("{service}.{namespace}.svc"));
        sans.push(format!("{service}.{namespace}.svc.cluster.local"));
    }
    sans.extend([
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ]);
    sans
}

/// When a certificate should be renewed: `renew_before` ahead of its expiry. `None` for
/// PEM that holds no certificate.
pub fn renew_at(cert_pem: &str, renew_before: Duration) -> Option<time::OffsetDateTime> {
    let pem = ::x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .ok()?
        .1;
    let cert = pem.parse_x509().ok()?;
    Some(cert.validity().not_after.to_datetime() - renew_before)
}

/// The trust bundle of a rotation's middle step: the old CA and the new.
pub fn bundle(old_ca_pem: &str, new_ca_pem: &str) -> String {
    format!("{}\n{}", old_ca_pem.trim_end(), new_ca_pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_kept_as_pem_issues_member_certificates_renewed_ahead_of_expiry() {
        let day = Duration::from_secs(86_400);
        let ca = Authority::new("demo", 365 * day).unwrap();
        let kept = Authority::from_pem(&ca.cert_pem, ca.key_pem()).unwrap();
        let sans = member_sans("demo", "prod", "demo-0");
        assert!(sans.contains(&"demo-0.demo-peers.prod.svc".to_string()));
        assert!(sans.contains(&"demo-client.prod.svc.cluster.local".to_string()));
        let leaf = kept.issue("demo-0", &sans, 30 * day).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let at = renew_at(&leaf.cert_pem, 10 * day).unwrap();
        assert!(at > now + 19 * day && at < now + 21 * day, "{at}");
        let pem = ::x509_parser::pem::parse_x509_pem(leaf.cert_pem.as_bytes())
            .unwrap()
            .1;
        let cert = pem.parse_x509().unwrap();
        let ca_pem = ::x509_parser::pem::parse_x509_pem(ca.cert_pem.as_bytes())
            .unwrap()
            .1;
        let ca_cert = ca_pem.parse_x509().unwrap();
        assert_eq!(cert.issuer(), ca_cert.subject());
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert!(renew_at("not a certificate", day).is_none());
        assert!(Authority::from_pem(&ca.cert_pem, "no key").is_err());
        assert_eq!(bundle("A\n", "B\n"), "A\nB\n");
    }
}
