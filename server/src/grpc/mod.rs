//! The client port's gRPC services: thin adapters that take the request context the
//! [`context`] layer attached, call the v3 core ([`crate::v3`]) and turn its errors into gRPC
//! statuses (`From<Error> for Status`, the one table in `error.rs`). The peer port's service
//! ([`peer`]) sits here too: it is an API other members call, not consensus.
//!
//! # Layout
//! - [`context`]: the layer that builds the request context and makes the pre-RPC checks;
//! - [`kv`], [`watch`], [`lease`], [`cluster`], [`maintenance`], [`auth`], [`lock`], [`election`]: one
//!   file per etcd service;
//! - [`peer`]: raft messages, snapshots and forwarded requests from other members.

pub mod auth;
pub mod cluster;
pub mod context;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod metrics;
pub mod peer;
pub mod watch;

use std::sync::Arc;

use tonic::service::Routes;

use crate::proto::etcdserverpb::auth_server::AuthServer;
use crate::proto::etcdserverpb::cluster_server::ClusterServer;
use crate::proto::etcdserverpb::kv_server::KvServer;
use crate::proto::etcdserverpb::lease_server::LeaseServer;
use crate::proto::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::proto::etcdserverpb::watch_server::WatchServer;
use crate::proto::v3electionpb::election_server::ElectionServer;
use crate::proto::v3lockpb::lock_server::LockServer;
use crate::server::EtcdServer;
use crate::v3::{Core, max_message_bytes};

/// A unary RPC: the context and message of `request`, passed to the core method, its answer
/// or error sent back.
macro_rules! unary {
    ($core:ident . $core_field:ident . $method:ident ($request:ident)) => {
        $crate::grpc::unary!($core.$core_field.$method($request), tonic::Status::from)
    };
    ($core:ident . $core_field:ident . $method:ident ($request:ident), $to_status:path) => {{
        let (ctx, message) = $crate::grpc::context::split($request);
        match $core.$core_field.$method(&ctx, message).await {
            Ok(response) => Ok(tonic::Response::new(response)),
            Err(e) => Err($to_status(e)),
        }
    }};
}
pub(crate) use unary;

/// Every client gRPC service of `server`, behind the context layer, with the client port's
/// HTTP endpoints beside them.
pub fn routes(server: Arc<EtcdServer>) -> Routes {
    let core = Arc::new(Core::new(server.clone()));
    let v2 = crate::v2::V2Store::of(&server);
    let max = max_message_bytes(&server.limits);
    let grpc = Routes::new(
        KvServer::new(kv::KvService { core: core.clone() }).max_decoding_message_size(max),
    )
    .add_service(
        WatchServer::new(watch::WatchService { core: core.clone() }).max_decoding_message_size(max),
    )
    .add_service(
        LeaseServer::new(lease::LeaseService { core: core.clone() }).max_decoding_message_size(max),
    )
    .add_service(
        MaintenanceServer::new(maintenance::MaintenanceService { core: core.clone() })
            .max_decoding_message_size(max),
    )
    .add_service(
        ClusterServer::new(cluster::ClusterService { core: core.clone() })
            .max_decoding_message_size(max),
    )
    .add_service(
        AuthServer::new(auth::AuthService { core: core.clone() }).max_decoding_message_size(max),
    )
    .add_service(
        LockServer::new(lock::LockService { core: core.clone() }).max_decoding_message_size(max),
    )
    .add_service(
        ElectionServer::new(election::ElectionService { core: core.clone() })
            .max_decoding_message_size(max),
    )
    .into_axum_router()
    .layer(context::ContextLayer { server });
    let client_port = grpc
        .merge(crate::http::router(core, v2))
        .fallback(crate::http::unknown_path)
        .layer(metrics::MetricsLayer);
    Routes::from(client_port)
}
