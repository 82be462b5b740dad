//! TLS for the client and peer ports: rustls configurations built from etcd's security
//! flags, re-read when their files change, and the connector members dial each other with.
//!
//! # Layout
//! - [`settings`]: what the flags ask of a port (files, client-cert auth, versions, suites);
//! - [`build`]: PEM files into rustls server and client configurations;
//! - [`reload`]: the configurations in use, swapped when the files change on disk;
//! - [`auto`]: self-signed certificates for `--auto-tls` / `--peer-auto-tls`;
//! - [`identity`]: a certificate's CN and host names; the allowed-CN/host-name checks;
//! - [`stream`]: a connection that is TLS or plain; [`connector`]: dialing peers.

pub mod auto;
pub mod build;
pub mod connector;
pub mod identity;
pub mod reload;
pub mod settings;
pub mod stream;

use std::path::PathBuf;
use std::sync::Arc;

pub use reload::PortTls;
pub use settings::TlsSettings;

use crate::config::Config;
use crate::error::{Error, Result};

/// Makes ring the process's rustls provider. Only ring is linked today, but a dependency
/// that brings aws-lc-rs would otherwise make rustls refuse to pick one at the first
/// handshake. Harmless when a provider is already installed.
pub fn install_crypto_provider() {
    let _ = ring_provider().install_default();
}

/// rustls's ring provider. Deprecated since rustls 0.23.48 because ring has no
/// post-quantum key exchange; aws-lc-rs has, but needs a C toolchain and cmake, and the
/// peers and clients oxcd talks to (etcd 3.4, grpc-go) do not offer one either.
#[allow(deprecated)]
pub fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The TLS of both ports, `None` where the port is plaintext.
#[derive(Debug, Clone, Default)]
pub struct PortsTls {
    pub client: Option<Arc<PortTls>>,
    pub peer: Option<Arc<PortTls>>,
}

impl PortsTls {
    /// Builds both ports' TLS from the flags (making auto-TLS certificates first) and
    /// starts watching their files. Must run inside the tokio runtime.
    pub fn from_config(cfg: &Config) -> Result<PortsTls> {
        install_crypto_provider();
        let s = &cfg.security;
        let fixtures = PathBuf::from(&cfg.member.data_dir).join("fixtures");
        let years = s.self_signed_cert_validity;
        let client_auto = match s.auto_tls && s.cert_file.is_empty() {
            true => Some(auto::self_signed(
                &fixtures.join("client"),
                &hosts(
                    cfg.listen_client_url_list()
                        .map_err(|e| Error::InvalidArgument(e.to_string()))?,
                ),
                years,
            )?),
            false => None,
        };
        let peer_auto = match s.peer_auto_tls && s.peer_cert_file.is_empty() {
            true => Some(auto::self_signed(
                &fixtures.join("peer"),
                &hosts(
                    cfg.listen_peer_url_list()
                        .map_err(|e| Error::InvalidArgument(e.to_string()))?,
                ),
                years,
            )?),
            false => None,
        };
        let client = TlsSettings::client_port(cfg, client_auto)?
            .map(PortTls::load)
            .transpose()?;
        let peer = TlsSettings::peer_port(cfg, peer_auto)?
            .map(PortTls::load)
            .transpose()?;
        if let Some(t) = &client {
            t.spawn_watch("client");
        }
        if let Some(t) = &peer {
            t.spawn_watch("peer");
        }
        Ok(PortsTls { client, peer })
    }
}

fn hosts(urls: Vec<url::Url>) -> Vec<String> {
    let mut hosts: Vec<String> = urls
        .iter()
        .filter_map(|u| u.host_str().map(str::to_owned))
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}
