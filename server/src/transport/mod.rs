//! The listening side of both ports: binding, accepting (with TCP_NODELAY), one server per
//! port that answers gRPC, HTTP/2 and HTTP/1.1 on the same listener, and graceful shutdown
//! with one grace period. What a port serves is a [`Routes`] built by its API layer
//! ([`crate::grpc`] and [`crate::http`] for the client port, the peer service for the peer
//! port); TLS wraps accepted connections here ([`conn`]), for both ports alike.

pub mod conn;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::Routes;
use url::Url;

pub use conn::{ConnInfo, Listener, client_cert_cn};

use crate::error::{Error, Result};
use crate::tls::PortTls;

/// How long open connections get to finish after a shutdown signal, on either port. Clients
/// with open streams (watches, keep-alives) and other members (which keep their connections)
/// would otherwise hold graceful shutdown forever.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How one port serves its connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct PortOptions {
    /// Streams (calls in progress) one connection may have open at a time; `None`: h2's
    /// default.
    pub max_concurrent_streams: Option<u32>,
    /// Also answer HTTP/1.1 (the client port's HTTP endpoints); otherwise HTTP/2 only.
    pub accept_http1: bool,
}

/// A listener on each address, as etcd listens on every URL given.
pub async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>> {
    if addrs.is_empty() {
        return Err(Error::InvalidArgument("no TCP URL to listen on".into()));
    }
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Internal(format!("listen on {addr}: {e}")))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// `listeners` (bound for `urls`, in the same order) with `tls` on those whose URL is
/// https (or unixs), as etcd serves TLS only on its TLS URLs.
pub fn secure(
    listeners: Vec<TcpListener>,
    urls: &[Url],
    tls: Option<&Arc<PortTls>>,
) -> Vec<Listener> {
    listeners
        .into_iter()
        .zip(urls)
        .map(|(tcp, url)| Listener {
            tcp,
            tls: tls
                .filter(|_| matches!(url.scheme(), "https" | "unixs"))
                .cloned(),
        })
        .collect()
}

/// Serves `routes` on `listeners` until `shutdown` completes, then gives open connections
/// [`SHUTDOWN_GRACE`] to finish and closes what is left.
pub async fn serve(
    routes: Routes,
    listeners: Vec<Listener>,
    options: PortOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel();
    let serving = tonic::transport::Server::builder()
        .max_concurrent_streams(options.max_concurrent_streams)
        .accept_http1(options.accept_http1)
        .add_routes(routes.prepare())
        .serve_with_incoming_shutdown(conn::accept_all(listeners), async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        });
    tokio::select! {
        result = serving => result.map_err(Error::internal),
        _ = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    }
}
