//! Accepted connections: plain or TLS-wrapped, and what a request learns about the
//! connection it came on (addresses, the verified client certificate's Common Name).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::tls::PortTls;
use crate::tls::stream::MaybeTls;

/// A client that opens a TCP connection and says nothing is dropped after this long, so
/// half-open handshakes cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound listener and the TLS its connections are wrapped in (`None`: plaintext).
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<Arc<PortTls>>,
}

impl Listener {
    pub fn plain(tcp: TcpListener) -> Listener {
        Listener { tcp, tls: None }
    }
}

/// What tonic puts in every request's extensions for the connection it came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub local_addr: Option<SocketAddr>,
    pub remote_addr: Option<SocketAddr>,
    /// The Common Name of the client certificate the handshake verified.
    pub client_cert_cn: Option<String>,
}

/// The Common Name of the verified client certificate on the connection a request came
/// on, given the request's extensions (`http::Request::extensions`, or
/// `tonic::Request::extensions`). `None` over plaintext or without a client certificate.
/// Under `--client-cert-auth` etcd takes this as the user name when no token is given.
pub fn client_cert_cn(extensions: &http::Extensions) -> Option<String> {
    extensions.get::<ConnInfo>()?.client_cert_cn.clone()
}

impl Connected for MaybeTls {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        let tcp = self.tcp();
        let client_cert_cn = match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Tls(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(crate::tls::identity::common_name),
        };
        ConnInfo {
            local_addr: tcp.local_addr().ok(),
            remote_addr: tcp.peer_addr().ok(),
            client_cert_cn,
        }
    }
}

/// Connections accepted on every listener, TLS handshakes done. Each handshake runs in its
/// own task, so a slow or silent client holds up no other; one that fails (a plaintext
/// client on a TLS port, an untrusted certificate) closes only its own connection.
pub fn accept_all(listeners: Vec<Listener>) -> ReceiverStream<std::io::Result<MaybeTls>> {
    let (tx, rx) = mpsc::channel(64);
    for listener in listeners {
        tokio::spawn(accept_loop(listener, tx.clone()));
    }
    ReceiverStream::new(rx)
}

/// Accepts until the server drops its end of `tx` (shutdown), which also closes the
/// listening socket.
async fn accept_loop(listener: Listener, tx: mpsc::Sender<std::io::Result<MaybeTls>>) {
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.tcp.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, usually: back off rather than spin.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Nagle's algorithm off: a response larger than one segment would otherwise wait
        // for the client's delayed ACK (about 40 ms). tonic's own nodelay setting does not
        // reach connections from an incoming stream.
        let _ = tcp.set_nodelay(true);
        match &listener.tls {
            None => {
                if tx.send(Ok(MaybeTls::Plain(tcp))).await.is_err() {
                    return;
                }
            }
            Some(tls) => {
                tokio::spawn(handshake(tls.clone(), tcp, remote, tx.clone()));
            }
        }
    }
}

async fn handshake(
    tls: Arc<PortTls>,
    tcp: TcpStream,
    remote: SocketAddr,
    tx: mpsc::Sender<std::io::Result<MaybeTls>>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let _ = tx.send(Ok(MaybeTls::Tls(Box::new(stream.into())))).await;
        }
        // etcd logs a rejected connection as a warning too; rustls's message names the
        // failure (bad certificate, not TLS) and carries no key material.
        Ok(Err(e)) => tracing::warn!(%remote, "rejected connection: TLS handshake failed: {e}"),
        Err(_) => tracing::warn!(%remote, "rejected connection: TLS handshake timed out"),
    }
}
