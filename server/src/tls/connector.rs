//! Dialing another member (or another member's client URL): plain TCP for http URLs, TLS
//! with this member's peer certificate for https URLs, through tonic's custom-connector
//! hook so that every new connection takes the peer configuration current at that moment.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::reload::PortTls;
use super::stream::MaybeTls;

#[derive(Clone, Debug)]
pub struct PeerConnector {
    tls: Option<Arc<PortTls>>,
}

impl PeerConnector {
    pub fn new(tls: Option<Arc<PortTls>>) -> PeerConnector {
        PeerConnector { tls }
    }
}

impl tower::Service<Uri> for PeerConnector {
    type Response = TokioIo<MaybeTls>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<TokioIo<MaybeTls>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        async move {
            let https = uri.scheme_str() == Some("https");
            let host = uri
                .host()
                .ok_or_else(|| io::Error::other(format!("no host in {uri}")))?
                .trim_matches(['[', ']'])
                .to_owned();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            // As on accepted connections: a reply larger than a segment must not wait
            // for a delayed ACK.
            tcp.set_nodelay(true)?;
            if !https {
                return Ok(TokioIo::new(MaybeTls::Plain(tcp)));
            }
            let tls = tls.ok_or_else(|| {
                io::Error::other(format!(
                    "{uri} is an https URL, but this member has no peer TLS (--peer-cert-file or --peer-auto-tls)"
                ))
            })?;
            let name = ServerName::try_from(host).map_err(io::Error::other)?;
            let stream = tokio_rustls::TlsConnector::from(tls.client_config())
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(MaybeTls::Tls(Box::new(stream.into()))))
        }
        .boxed()
    }
}
