//! From files on disk to rustls configurations: PEM certificates, keys and CRLs, the
//! server side (with client-certificate verification) and the dialing side of a port.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use super::identity::{AllowedPeerVerifier, AllowedServerVerifier};
use super::settings::TlsSettings;
use crate::error::{Error, Result};

/// ALPN: gRPC clients (grpc-go) insist on `h2`; browsers and curl may take HTTP/1.1 for the
/// client port's HTTP endpoints.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The files' contents, read once so that what is built and what is compared for changes
/// are the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    cert: Vec<u8>,
    key: Vec<u8>,
    trusted_ca: Option<Vec<u8>>,
    crl: Option<Vec<u8>>,
}

impl Files {
    pub fn read(settings: &TlsSettings) -> Result<Files> {
        let read = |p: &Path| {
            std::fs::read(p)
                .map_err(|e| Error::InvalidArgument(format!("read {}: {e}", p.display())))
        };
        Ok(Files {
            cert: read(&settings.cert_file)?,
            key: read(&settings.key_file)?,
            trusted_ca: settings.trusted_ca_file.as_deref().map(read).transpose()?,
            crl: settings.crl_file.as_deref().map(read).transpose()?,
        })
    }
}

fn provider(settings: &TlsSettings) -> Arc<CryptoProvider> {
    let mut provider = super::ring_provider();
    if !settings.cipher_suites.is_empty() {
        provider.cipher_suites.retain(|s| s.tls13().is_some());
        provider
            .cipher_suites
            .extend(settings.cipher_suites.iter().copied());
    }
    Arc::new(provider)
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(Error::InvalidArgument(format!("{what}: no certificate")));
    }
    Ok(certs)
}

fn key(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| Error::InvalidArgument(format!("key file: {e}")))
}

fn roots(pem: &[u8]) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in certs(pem, "trusted CA file")? {
        roots
            .add(cert)
            .map_err(|e| Error::InvalidArgument(format!("trusted CA file: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// The system's trusted CAs.
fn system_roots() -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(Error::InvalidArgument(format!(
            "no trusted CA file given and no system CA certificates found ({:?})",
            found.errors
        )));
    }
    Ok(Arc::new(roots))
}

fn crls(pem: Option<&[u8]>) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let Some(pem) = pem else {
        return Ok(Vec::new());
    };
    CertificateRevocationListDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidArgument(format!("CRL file: {e}")))
}

/// The configuration the port accepts connections with.
pub fn server_config(settings: &TlsSettings, files: &Files) -> Result<ServerConfig> {
    let provider = provider(settings);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&settings.versions)
        .map_err(|e| Error::InvalidArgument(format!("TLS versions: {e}")))?;
    // Client certificates chain to the trusted CA file; with --client-cert-auth and no CA
    // file, to the system's CAs, as Go's (etcd's) TLS does.
    let client_roots = match (&files.trusted_ca, settings.client_cert_auth) {
        (Some(ca), _) => Some(roots(ca)?),
        (None, true) => Some(system_roots()?),
        (None, false) => None,
    };
    let builder = match client_roots {
        Some(client_roots) => {
            // A certificate no CRL speaks for is accepted, as Go's (etcd's) check only
            // refuses serials a CRL lists.
            let mut verifier = WebPkiClientVerifier::builder_with_provider(client_roots, provider)
                .with_crls(crls(files.crl.as_deref())?)
                .allow_unknown_revocation_status();
            // With a CA but without client-cert auth, a certificate is verified when one is
            // shown (so its CN can name the user) and not required.
            if !settings.client_cert_auth {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| Error::InvalidArgument(format!("client certificate verifier: {e}")))?;
            let verifier = AllowedPeerVerifier::wrap(
                verifier,
                settings.allowed_cn.clone(),
                settings.allowed_hostname.clone(),
            );
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs(&files.cert, "cert file")?, key(&files.key)?)
        .map_err(|e| Error::InvalidArgument(format!("cert/key: {e}")))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The configuration this member dials other members with: its certificate as the client
/// certificate, the peer CA as the roots (or no verification with auto TLS).
pub fn client_config(settings: &TlsSettings, files: &Files) -> Result<ClientConfig> {
    let provider = provider(settings);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&settings.versions)
        .map_err(|e| Error::InvalidArgument(format!("TLS versions: {e}")))?;
    let server_roots = match (&files.trusted_ca, settings.self_signed) {
        (Some(ca), false) => Some(roots(ca)?),
        // Without a CA file, the system's CAs, as Go's (etcd's) TLS does.
        (None, false) => Some(system_roots()?),
        (_, true) => None,
    };
    let builder = match server_roots {
        Some(server_roots) => {
            let verifier =
                WebPkiServerVerifier::builder_with_provider(server_roots, provider.clone())
                    .build()
                    .map_err(|e| {
                        Error::InvalidArgument(format!("server certificate verifier: {e}"))
                    })?;
            let verifier = AllowedServerVerifier::wrap(
                verifier,
                settings.allowed_cn.clone(),
                settings.allowed_hostname.clone(),
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
        }
        // With auto TLS every member's certificate is its own, so there is nothing to
        // verify against: etcd dials with InsecureSkipVerify.
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipServerVerification(provider))),
    };
    let mut config = builder
        .with_client_auth_cert(certs(&files.cert, "cert file")?, key(&files.key)?)
        .map_err(|e| Error::InvalidArgument(format!("cert/key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The configuration for an https service outside the cluster (a discovery service): the
/// system's trusted CAs (`SSL_CERT_FILE` / `SSL_CERT_DIR` name others, as for Go), no client
/// certificate, HTTP/1.1.
pub fn public_client_config() -> Result<ClientConfig> {
    let provider = Arc::new(super::ring_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidArgument(format!("TLS versions: {e}")))?
        .with_root_certificates(system_roots()?)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts any server certificate (signatures still checked): `InsecureSkipVerify`.
#[derive(Debug)]
pub struct SkipServerVerification(pub Arc<CryptoProvider>);

impl ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
