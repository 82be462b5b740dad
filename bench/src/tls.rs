//! TLS to https endpoints (`--cacert`, `--cert`, `--key`, as etcd's benchmark tool names
//! them): rustls with the ring provider, so both servers are measured with the same TLS
//! client.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::cli::Common;
use crate::error::Error;

/// A connection, plain or TLS, as the HTTP/2 client takes it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The client configuration for https endpoints; `None` without `--cacert`.
pub fn client_config(common: &Common) -> Result<Option<Arc<ClientConfig>>, Error> {
    let Some(cacert) = &common.cacert else {
        return Ok(None);
    };
    let bad = |what: &str, e: &dyn std::fmt::Display| Error::Cluster(format!("{what}: {e}"));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cacert).map_err(|e| bad(cacert, &e))? {
        let cert = cert.map_err(|e| bad(cacert, &e))?;
        roots.add(cert).map_err(|e| bad(cacert, &e))?;
    }
    let builder = ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS", &e))?
        .with_root_certificates(roots);
    let mut config = match (&common.cert, &common.key) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(cert, &e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| bad("client certificate", &e))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// rustls's ring provider; deprecated since rustls 0.23.48 for lacking post-quantum key
/// exchange, which etcd 3.4 does not offer either.
#[allow(deprecated)]
fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS session over `tcp` with the server named `host`.
pub async fn handshake(
    config: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(std::io::Error::other)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}
