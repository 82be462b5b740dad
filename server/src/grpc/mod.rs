//! The client port: one tonic service per etcd gRPC service.

pub mod cluster;
pub mod guard;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod watch;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::error::{Error, Result};
use crate::proto::etcdserverpb::cluster_server::ClusterServer;
use crate::proto::etcdserverpb::kv_server::KvServer;
use crate::proto::etcdserverpb::lease_server::LeaseServer;
use crate::proto::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::proto::etcdserverpb::watch_server::WatchServer;
use crate::server::EtcdServer;

/// Room gRPC framing and headers take beyond the request payload (etcd's grpcOverheadBytes):
/// a request between max-request-bytes and this is refused by the server with
/// "etcdserver: request is too large", a larger one by the transport.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Connections accepted on every listener, with Nagle's algorithm off: a response larger
/// than one segment would otherwise wait for the client's delayed ACK (about 40 ms). tonic's
/// own nodelay setting does not reach connections from an incoming stream.
pub fn accept_nodelay(
    listeners: Vec<TcpListener>,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    futures::stream::select_all(listeners.into_iter().map(TcpListenerStream::new)).map(|conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    })
}

/// How long open client connections get to finish after a shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The `version` etcd clients see in Status: the etcd API level oxcd implements.
pub const ETCD_API_VERSION: &str = "3.5.0";

/// Serves every gRPC service on `listeners` until `shutdown` completes.
pub async fn serve(
    server: Arc<EtcdServer>,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let max = server.limits.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let kv = KvServer::new(kv::KvService {
        server: server.clone(),
    })
    .max_decoding_message_size(max);
    let watch = WatchServer::new(watch::WatchService {
        server: server.clone(),
    })
    .max_decoding_message_size(max);
    let lease =
        LeaseServer::new(lease::LeaseService::new(server.clone())).max_decoding_message_size(max);
    let maintenance = MaintenanceServer::new(maintenance::MaintenanceService {
        server: server.clone(),
    })
    .max_decoding_message_size(max);
    let cluster = ClusterServer::new(cluster::ClusterService {
        server: server.clone(),
    })
    .max_decoding_message_size(max);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel();
    let serving = tonic::transport::Server::builder()
        .max_concurrent_streams(server.limits.max_concurrent_streams)
        .layer(guard::ClientGuardLayer {
            server: server.clone(),
        })
        .add_service(kv)
        .add_service(watch)
        .add_service(lease)
        .add_service(maintenance)
        .add_service(cluster)
        .serve_with_incoming_shutdown(accept_nodelay(listeners), async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        });
    // Graceful shutdown waits for every client connection to close; clients with open
    // streams (watches, keep-alives) would hold the server forever. Like etcd, give them a
    // moment, then close what is left.
    tokio::select! {
        result = serving => result.map_err(Error::internal),
        _ = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    }
}
