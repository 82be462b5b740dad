//! Start-up wiring, the top of the module graph: opens storage, establishes this member's
//! identity, builds the raft node, spawns the background loops, and serves the client and
//! peer ports until shutdown. Nothing else in the crate imports it; the binaries call
//! [`start`] and [`serve`].

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::SnapshotPolicy;

use crate::auth::TokenKind;
use crate::config::{ClusterState, Config, ProxyMode};
use crate::error::{Error, Result};
use crate::membership::identity::{self, Identity};
use crate::membership::ids::InitialCluster;
use crate::proxy::Proxy;
use crate::raft::Raft;
use crate::raft::log_store::LogStore;
use crate::raft::network::PeerNetwork;
use crate::raft::peer_activity::PeerActivity;
use crate::raft::state_machine::StateMachine;
use crate::server::{AuthSettings, EtcdServer, Limits, Settings};
use crate::state::StateStore;
use crate::storage::SledBackend;
use crate::tls::PortsTls;
use crate::transport::{self, Listener, PortOptions};
use crate::typ::MemberNode;
use crate::v2::discovery;

/// What [`open_storage`] opens in a data dir.
struct Storage {
    member_dir: PathBuf,
    /// The raft metadata's database (vote, purge point), `member/db`.
    raft_db: sled::Db,
    log_store: LogStore,
    state: Arc<StateStore>,
}

/// Both ports' TLS from the flags, its files watched for renewals; members dial each other
/// with the peer port's. Call before [`start`]: a joining member dials its peers there.
pub fn tls(cfg: &Config) -> Result<PortsTls> {
    let tls = PortsTls::from_config(cfg)?;
    crate::raft::network::use_peer_tls(tls.peer.clone());
    Ok(tls)
}

/// Opens the data dir and starts raft, then the member's background loops. A brand-new
/// member of a new cluster bootstraps it.
/// Give it the configuration [`role`] answered.
pub async fn start(cfg: &Config) -> Result<Arc<EtcdServer>> {
    let storage = open_storage(cfg)?;
    let cluster = InitialCluster::from_config(cfg)?;
    let identity = identity::establish(cfg, &storage.member_dir, &cluster).await?;
    if cfg.unsafe_features.force_new_cluster && storage.log_store.has_state()? {
        crate::membership::force::force_new_cluster(
            &storage.log_store,
            &storage.state,
            identity.member_id,
        )?;
    }
    // A silence of an election timeout breaks a peer's run of answers: raft itself gives up
    // on a leader it has not heard from for that long.
    let activity = Arc::new(PeerActivity::new(Duration::from_millis(
        cfg.member.election_timeout,
    )));
    let network = PeerNetwork {
        activity: activity.clone(),
    };
    storage
        .state
        .simple_tokens
        .set_ttl(Duration::from_secs(cfg.auth.auth_token_ttl));
    let raft = build_raft(cfg, &identity, &storage, network).await?;
    if !storage.log_store.has_state()? && cfg.clustering.initial_cluster_state == ClusterState::New
    {
        let nodes: BTreeMap<u64, MemberNode> = cluster
            .members
            .iter()
            .map(|m| (m.id, m.node.clone()))
            .collect();
        raft.initialize(nodes).await.map_err(Error::internal)?;
    }
    let server = Arc::new(EtcdServer::new(
        settings(cfg, &identity)?,
        raft,
        storage.state,
        storage.raft_db,
        activity,
    ));
    spawn_tasks(&server, cfg)?;
    if cfg.experimental.experimental_initial_corrupt_check {
        server.initial_corruption_check().await?;
    }
    Ok(server)
}

/// Serves the client and peer ports until `shutdown` completes (or this member is removed
/// from its cluster), then stops raft and flushes the applied state.
pub async fn serve(
    server: &Arc<EtcdServer>,
    client: Vec<Listener>,
    peer: Vec<Listener>,
    metrics: Vec<Listener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_port = tokio::spawn(transport::serve(
        crate::http::metrics_routes(server.clone()),
        metrics,
        PortOptions {
            accept_http1: true,
            ..PortOptions::default()
        },
        async move {
            let _ = metrics_stopped.await;
        },
    ));
    let (stop_peers, peers_stopped) = tokio::sync::oneshot::channel::<()>();
    // HTTP/1.1 too: tools (and etcd's v2 proxy) read `/members` there.
    let peer_port = tokio::spawn(transport::serve(
        crate::grpc::peer::routes(server.clone()),
        peer,
        PortOptions {
            accept_http1: true,
            ..PortOptions::default()
        },
        async move {
            let _ = peers_stopped.await;
        },
    ));
    let watched = server.clone();
    let stop = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = watched.removed() => {}
            fatal = watched.storage_failed() => {
                tracing::error!("storage failed: {fatal}; stopping so that the member restarts from what is durable");
            }
        }
    };
    let client_port = PortOptions {
        max_concurrent_streams: Some(server.limits.max_concurrent_streams),
        accept_http1: true,
    };
    let result = transport::serve(
        crate::grpc::routes(server.clone()),
        client,
        client_port,
        stop,
    )
    .await;
    if let Some(fatal) = server.storage_failure() {
        return Err(Error::Internal(format!("storage failed: {fatal}")));
    }
    // The peer port outlives the client port until raft has stopped: other members may be
    // in the middle of replicating to this one.
    server.raft.shutdown().await.map_err(Error::internal)?;
    let _ = stop_peers.send(());
    let _ = peer_port.await;
    let _ = stop_metrics.send(());
    let _ = metrics_port.await;
    server.state.flush()?;
    if server.is_removed() {
        return Err(Error::MemberRemoved);
    }
    result
}

fn open_storage(cfg: &Config) -> Result<Storage> {
    let member_dir = PathBuf::from(&cfg.member.data_dir).join("member");
    std::fs::create_dir_all(&member_dir)?;
    let raft_db = SledBackend::open_db(&member_dir.join("db"))?;
    let wal_dir = cfg.wal_dir_path().unwrap_or_else(|| member_dir.join("wal"));
    let log_store = LogStore::open(&raft_db, &wal_dir)?;
    let state = StateStore::open(
        &member_dir.join("state"),
        &member_dir.join("snap"),
        min_lease_ttl(cfg.member.heartbeat_interval, cfg.member.election_timeout),
    )?;
    Ok(Storage {
        member_dir,
        raft_db,
        log_store,
        state,
    })
}

async fn build_raft(
    cfg: &Config,
    identity: &Identity,
    storage: &Storage,
    network: PeerNetwork,
) -> Result<Raft> {
    let raft_config = openraft::Config {
        cluster_name: cfg.clustering.initial_cluster_token.clone(),
        heartbeat_interval: cfg.member.heartbeat_interval,
        election_timeout_min: cfg.member.election_timeout,
        election_timeout_max: cfg.member.election_timeout * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.member.snapshot_count.max(1)),
        max_in_snapshot_log_to_keep: cfg.experimental.experimental_snapshot_catchup_entries,
        ..openraft::Config::default()
    }
    .validate()
    .map_err(Error::internal)?;
    Raft::new(
        identity.member_id,
        Arc::new(raft_config),
        network,
        storage.log_store.clone(),
        StateMachine {
            store: storage.state.clone(),
        },
    )
    .await
    .map_err(Error::internal)
}

/// The member's background loops: lease expiry, membership (publish, promote, removal),
/// auto compaction, database size, leader monitoring and the corruption check. Each ends
/// when the server stops.
fn spawn_tasks(server: &Arc<EtcdServer>, cfg: &Config) -> Result<()> {
    use crate::membership::tasks;
    tokio::spawn(crate::server::lease::run_expiry(server.clone()));
    tokio::spawn(tasks::run_publish(server.clone()));
    tokio::spawn(tasks::run_promoter(server.clone()));
    tokio::spawn(crate::membership::removal::run_removal_watch(
        server.clone(),
    ));
    let auto_compaction = cfg.auto_compaction().map_err(Error::internal)?;
    tokio::spawn(crate::compactor::run(server.clone(), auto_compaction));
    server.refresh_db_size();
    tokio::spawn(crate::server::track_db_size(server.clone()));
    tokio::spawn(crate::server::leader::monitor_leader(server.clone()));
    if let Some(v2) = crate::v2::V2Store::of(server) {
        tokio::spawn(crate::v2::expiry::run(v2));
    }
    tokio::spawn(crate::server::leader::count_leader_changes(server.clone()));
    let member_dir = PathBuf::from(&cfg.member.data_dir).join("member");
    let disks = std::iter::once(member_dir)
        .chain(cfg.wal_dir_path())
        .collect();
    tokio::spawn(crate::server::disk::watch_disk(server.clone(), disks));
    crate::metrics::set_extensive(cfg.monitoring.metrics == crate::config::MetricsLevel::Extensive);
    tokio::spawn(crate::server::corruption::run_corruption_check(
        server.clone(),
        cfg.experimental.experimental_corrupt_check_time,
    ));
    Ok(())
}

/// What this process is to be, decided before its data dir is opened.
pub enum Role {
    /// A member, with its configuration: the initial cluster is the discovery service's
    /// when `--discovery` found it.
    Member(Box<Config>),
    /// etcd's v2 proxy, not yet serving.
    Proxy(Arc<Proxy>),
}

/// A data dir that holds a member stays a member, whatever the flags. Otherwise, as in
/// etcd, the process is a proxy when `--proxy` asks for one, when the data dir is a
/// proxy's, or when `--discovery` finds the cluster full under `--discovery-fallback
/// proxy`; else a member.
pub async fn role(cfg: &Config) -> Result<Role> {
    let member_dir = PathBuf::from(&cfg.member.data_dir).join("member");
    let member = identity::load(&member_dir)?.is_some();
    let wants_proxy = cfg.proxy.proxy != ProxyMode::Off || crate::proxy::is_proxy_dir(cfg);
    if member && cfg.proxy.proxy != ProxyMode::Off {
        tracing::warn!("the data dir is a member's: starting as a member, not as a proxy");
    }
    if wants_proxy && !member {
        return proxy_role(cfg, None).await;
    }
    match discover_cluster(cfg, member).await {
        Ok(Some(discovered)) => Ok(Role::Member(Box::new(discovered))),
        Ok(None) => Ok(Role::Member(Box::new(cfg.clone()))),
        Err(e)
            if e.to_string().contains(discovery::ERR_FULL_CLUSTER)
                && cfg.clustering.discovery_fallback == "proxy" =>
        {
            tracing::warn!("{e}; falling back to proxy (--discovery-fallback=proxy)");
            proxy_role(cfg, Some(e)).await
        }
        Err(e) => Err(e),
    }
}

/// The proxy: its peer URLs come from its cluster file, else the discovery service (whose
/// cluster, `full`, it found full), else `--initial-cluster`.
async fn proxy_role(cfg: &Config, full: Option<Error>) -> Result<Role> {
    let initial = if crate::proxy::is_proxy_dir(cfg) {
        Vec::new()
    } else if !cfg.clustering.discovery.is_empty() {
        let cluster =
            discovery::get_cluster(&cfg.clustering.discovery, &cfg.clustering.discovery_proxy)
                .await
                .map_err(|e| full.unwrap_or(e))?;
        peer_urls_of(&cluster)?
    } else {
        peer_urls_of(&cfg.clustering.initial_cluster)?
    };
    Ok(Role::Proxy(Proxy::new(cfg, initial)?))
}

fn peer_urls_of(initial_cluster: &str) -> Result<Vec<String>> {
    let members = crate::config::parse_initial_cluster(initial_cluster)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    Ok(members
        .into_iter()
        .map(|(_, url)| url.as_str().trim_end_matches('/').to_string())
        .collect())
}

/// Serves the proxy on the client listeners until `shutdown` completes.
pub async fn serve_proxy(
    proxy: Arc<Proxy>,
    client: Vec<Listener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let refresh = tokio::spawn(proxy.clone().refresh_forever());
    let served = transport::serve(
        proxy.routes(),
        client,
        PortOptions {
            accept_http1: true,
            ..PortOptions::default()
        },
        shutdown,
    )
    .await;
    refresh.abort();
    served
}

/// With `--discovery`, a member that has no data yet (`member` false) learns its initial
/// cluster from the discovery service (the URL is then the cluster token, as in etcd):
/// answers the configuration with both set. Otherwise (or on a restart) `None`.
async fn discover_cluster(cfg: &Config, member: bool) -> Result<Option<Config>> {
    let url = &cfg.clustering.discovery;
    if url.is_empty() || member || cfg.clustering.initial_cluster_state != ClusterState::New {
        return Ok(None);
    }
    let me = crate::config::initial_cluster_from_name(
        &cfg.member.name,
        &cfg.clustering.initial_advertise_peer_urls,
    );
    let my_id = InitialCluster::parse(&me, url)?
        .member(&cfg.member.name)
        .map(|m| m.id)
        .ok_or_else(|| Error::internal("no id for this member"))?;
    let cluster = discovery::join_cluster(url, &cfg.clustering.discovery_proxy, my_id, &me).await?;
    tracing::info!("discovery: the initial cluster is {cluster}");
    let mut resolved = cfg.clone();
    resolved.clustering.initial_cluster = cluster;
    resolved.clustering.initial_cluster_token = url.clone();
    Ok(Some(resolved))
}

fn settings(cfg: &Config, identity: &Identity) -> Result<Settings> {
    let tokens = TokenKind::parse(&cfg.auth.auth_token).map_err(Error::InvalidArgument)?;
    Ok(Settings {
        name: cfg.member.name.clone(),
        member_id: identity.member_id,
        cluster_id: identity.cluster_id,
        cluster_token: cfg.clustering.initial_cluster_token.clone(),
        data_dir: PathBuf::from(&cfg.member.data_dir),
        client_urls: crate::config::split_urls(&cfg.clustering.advertise_client_urls),
        peer_urls: crate::config::split_urls(&cfg.clustering.initial_advertise_peer_urls),
        limits: Limits {
            max_request_bytes: cfg.member.max_request_bytes as usize,
            max_txn_ops: cfg.member.max_txn_ops as usize,
            max_concurrent_streams: cfg.member.max_concurrent_streams,
        },
        request_timeout: Duration::from_secs(5)
            + Duration::from_millis(2 * cfg.member.election_timeout),
        progress_notify_interval: cfg.progress_notify_interval(),
        quota_bytes: cfg.backend_quota_bytes(),
        election_timeout: Duration::from_millis(cfg.member.election_timeout),
        strict_reconfig_check: cfg.clustering.strict_reconfig_check,
        cors: crate::config::split_urls(&cfg.security.cors),
        v2_prefix: cfg.clustering.enable_v2.then(|| cfg.clustering.v2_prefix()),
        auth: AuthSettings {
            tokens: Arc::new(tokens),
            bcrypt_cost: cfg.auth.bcrypt_cost,
            client_cert_auth: cfg.security.client_cert_auth,
        },
    })
}

/// etcd's minimum lease TTL: 1.5 election timeouts, rounded up to whole seconds.
fn min_lease_ttl(heartbeat_ms: u64, election_ms: u64) -> i64 {
    let ticks = (election_ms / heartbeat_ms.max(1)).max(1);
    let min_ms = (3 * ticks / 2) * heartbeat_ms;
    min_ms.div_ceil(1000) as i64
}
