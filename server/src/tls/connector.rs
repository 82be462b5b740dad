//! Dialing over TLS through tonic's custom-connector hook: members dial each other (and
//! each other's client URLs) with the peer port's configuration current at that moment, so
//! renewed certificates apply to new connections; tests and tools dial with a fixed one.
//!
//! The channel's URL is given to tonic as `http://`, the connector alone deciding on TLS:
//! a tonic built with one of its own TLS features (which a dev-dependency may turn on)
//! refuses an https URL dialed through a custom connector.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::transport::Endpoint;

use super::reload::PortTls;
use super::stream::MaybeTls;

/// Where a connection's TLS configuration comes from.
#[derive(Clone, Debug)]
enum Source {
    Plain,
    Fixed(Arc<ClientConfig>),
    Port(Arc<PortTls>),
}

#[derive(Clone, Debug)]
pub struct TlsConnector {
    source: Source,
}

impl TlsConnector {
    /// Plain TCP.
    pub fn plain() -> TlsConnector {
        TlsConnector {
            source: Source::Plain,
        }
    }

    /// TLS with `config`.
    pub fn fixed(config: Arc<ClientConfig>) -> TlsConnector {
        TlsConnector {
            source: Source::Fixed(config),
        }
    }

    /// TLS with the port's client configuration as of each connection.
    pub fn port(tls: Arc<PortTls>) -> TlsConnector {
        TlsConnector {
            source: Source::Port(tls),
        }
    }
}

/// An endpoint for `url` and the connector to dial it with: TLS when `url` is https, with
/// `tls` (an https URL without it is an error).
pub fn endpoint(url: &str, tls: Option<TlsConnector>) -> Result<(Endpoint, TlsConnector), String> {
    let (plain_url, connector) = match url.strip_prefix("https://") {
        Some(rest) => {
            let connector = tls.ok_or_else(|| {
                format!("{url} is an https URL, but no TLS is configured to dial it with")
            })?;
            (format!("http://{rest}"), connector)
        }
        None => (url.to_owned(), TlsConnector::plain()),
    };
    let endpoint = Endpoint::from_shared(plain_url).map_err(|e| format!("bad URL {url}: {e}"))?;
    Ok((endpoint, connector))
}

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<MaybeTls>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<TokioIo<MaybeTls>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = match &self.source {
            Source::Plain => None,
            Source::Fixed(c) => Some(c.clone()),
            Source::Port(p) => Some(p.client_config()),
        };
        async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::other(format!("no host in {uri}")))?
                .trim_matches(['[', ']'])
                .to_owned();
            let port = uri.port_u16().unwrap_or(80);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            // As on accepted connections: a reply larger than a segment must not wait for
            // a delayed ACK.
            tcp.set_nodelay(true)?;
            let Some(config) = config else {
                return Ok(TokioIo::new(MaybeTls::Plain(tcp)));
            };
            let name = ServerName::try_from(host).map_err(io::Error::other)?;
            let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
            let stream = tokio::time::timeout(Duration::from_secs(10), handshake)
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
            Ok(TokioIo::new(MaybeTls::Tls(Box::new(stream.into()))))
        }
        .boxed()
    }
}
