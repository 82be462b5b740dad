//! Wiring: opens storage, starts raft, and exposes [`EtcdServer`], the handle every service
//! uses to propose commands, wait for linearizable reads and build response headers.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::proto::oxcdpb::peer_client::PeerClient;
use openraft::SnapshotPolicy;
use openraft::async_runtime::WatchReceiver;
use tokio::net::TcpListener;
use tonic::transport::Channel;

use crate::config::{Config, split_urls};
use crate::error::{Error, Result};
use crate::members;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::proto::oxcdpb::internal_request;
use crate::raft::log_store::LogStore;
use crate::raft::network::PeerNetwork;
use crate::raft::state_machine::StateMachine;
use crate::raft::{MemberNode, Raft};
use crate::state::StateStore;
use crate::storage::SledBackend;

/// Request limits, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    /// Streams (calls in progress) one client connection may have open at a time.
    pub max_concurrent_streams: u32,
}

/// One running member.
pub struct EtcdServer {
    pub name: String,
    pub member_id: u64,
    /// `--initial-cluster-token`, mixed into the ids of members added later.
    pub cluster_token: String,
    pub cluster_id: u64,
    pub raft: Raft,
    pub state: Arc<StateStore>,
    pub limits: Limits,
    pub data_dir: PathBuf,
    pub client_urls: Vec<String>,
    pub peer_urls: Vec<String>,
    /// How long a proposal or read may wait before failing with "request timed out"
    /// (etcd: 5s + 2 × election timeout).
    pub request_timeout: Duration,
    /// Interval of progress notifications for watchers that asked for them.
    pub progress_notify_interval: Duration,
    /// `--quota-backend-bytes`; `None` when disabled.
    pub quota_bytes: Option<u64>,
    /// The database size last measured (measuring walks the files, so not per request).
    db_size: AtomicU64,
    /// Clients for other members' peer ports, by peer URL. A std Mutex: never held across
    /// an await.
    pub(crate) peers: Mutex<HashMap<String, PeerClient<Channel>>>,
    /// Set once this member learns it was removed from the cluster; serving then stops.
    removed: tokio::sync::watch::Sender<bool>,
    /// Set while this member has known no leader for three election timeouts; streams that
    /// required a leader end then (etcd's monitorLeader).
    leader_lost: tokio::sync::watch::Sender<bool>,
    election_timeout: Duration,
    /// `--strict-reconfig-check`: refuse membership changes that risk the quorum.
    pub strict_reconfig_check: bool,
    db: sled::Db,
}

/// etcd's minimum lease TTL: 1.5 election timeouts, rounded up to whole seconds.
fn min_lease_ttl(heartbeat_ms: u64, election_ms: u64) -> i64 {
    let ticks = (election_ms / heartbeat_ms.max(1)).max(1);
    let min_ms = (3 * ticks / 2) * heartbeat_ms;
    min_ms.div_ceil(1000) as i64
}

impl EtcdServer {
    /// Opens the data dir and starts raft. A brand-new single member bootstraps its cluster.
    pub async fn start(cfg: &Config) -> Result<Arc<EtcdServer>> {
        let data_dir = PathBuf::from(&cfg.member.data_dir);
        let member_dir = data_dir.join("member");
        std::fs::create_dir_all(&member_dir)?;
        let db = SledBackend::open_db(&member_dir.join("db"))?;
        let wal_dir = cfg.wal_dir_path().unwrap_or_else(|| member_dir.join("wal"));
        let log_store = LogStore::open(&db, &wal_dir)?;
        let state = StateStore::open(
            &member_dir.join("state"),
            &member_dir.join("snap"),
            min_lease_ttl(cfg.member.heartbeat_interval, cfg.member.election_timeout),
        )?;

        let cluster = members::InitialCluster::from_config(cfg)?;
        let identity = crate::identity::establish(cfg, &member_dir, &cluster).await?;
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
        let raft = Raft::new(
            identity.member_id,
            Arc::new(raft_config),
            PeerNetwork,
            log_store.clone(),
            StateMachine {
                store: state.clone(),
            },
        )
        .await
        .map_err(Error::internal)?;
        let fresh = !log_store.has_state()?;
        if fresh && cfg.clustering.initial_cluster_state == crate::config::ClusterState::New {
            let nodes: BTreeMap<u64, MemberNode> = cluster
                .members
                .iter()
                .map(|m| (m.id, m.node.clone()))
                .collect();
            raft.initialize(nodes).await.map_err(Error::internal)?;
        }
        let server = Arc::new(EtcdServer {
            name: cfg.member.name.clone(),
            cluster_token: cfg.clustering.initial_cluster_token.clone(),
            member_id: identity.member_id,
            cluster_id: identity.cluster_id,
            raft,
            state,
            limits: Limits {
                max_request_bytes: cfg.member.max_request_bytes as usize,
                max_txn_ops: cfg.member.max_txn_ops as usize,
                max_concurrent_streams: cfg.member.max_concurrent_streams,
            },
            data_dir,
            client_urls: split_urls(&cfg.clustering.advertise_client_urls),
            peer_urls: split_urls(&cfg.clustering.initial_advertise_peer_urls),
            request_timeout: Duration::from_secs(5)
                + Duration::from_millis(2 * cfg.member.election_timeout),
            progress_notify_interval: cfg.progress_notify_interval(),
            quota_bytes: cfg.backend_quota_bytes(),
            db_size: AtomicU64::new(0),
            peers: Mutex::new(HashMap::new()),
            removed: tokio::sync::watch::channel(false).0,
            leader_lost: tokio::sync::watch::channel(false).0,
            election_timeout: Duration::from_millis(cfg.member.election_timeout),
            strict_reconfig_check: cfg.clustering.strict_reconfig_check,
            db,
        });
        tokio::spawn(crate::lease::run_expiry(server.clone()));
        tokio::spawn(crate::membership::run_publish(server.clone()));
        tokio::spawn(crate::membership::run_promoter(server.clone()));
        tokio::spawn(crate::membership::run_removal_watch(server.clone()));
        tokio::spawn(crate::compactor::run(
            server.clone(),
            cfg.auto_compaction().map_err(Error::internal)?,
        ));
        server.refresh_db_size();
        tokio::spawn(track_db_size(server.clone()));
        tokio::spawn(monitor_leader(server.clone()));
        Ok(server)
    }

    /// Serves the client and peer ports until `shutdown` completes, then stops raft and
    /// flushes.
    pub async fn serve(
        self: &Arc<Self>,
        client: Vec<TcpListener>,
        peer: Vec<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let (stop_peers, stopped) = tokio::sync::watch::channel(false);
        let peer_task = tokio::spawn(crate::raft::peer_service::serve(
            self.clone(),
            peer,
            async move {
                let mut stopped = stopped;
                let _ = stopped.wait_for(|s| *s).await;
            },
        ));
        let mut removed = self.removed.subscribe();
        let stop = async move {
            tokio::select! {
                _ = shutdown => {}
                _ = removed.wait_for(|r| *r) => {}
            }
        };
        let result = crate::grpc::serve(self.clone(), client, stop).await;
        self.raft.shutdown().await.map_err(Error::internal)?;
        let _ = stop_peers.send(true);
        let _ = peer_task.await;
        self.state.flush()?;
        if self.is_removed() {
            return Err(Error::MemberRemoved);
        }
        result
    }

    /// Stops serving because this member was removed from the cluster.
    pub(crate) fn stop_removed(&self) {
        self.removed.send_replace(true);
    }

    pub fn is_removed(&self) -> bool {
        *self.removed.borrow()
    }

    pub fn raft_term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// Whether this member knows a working leader, as etcd's `Leader() != None` with
    /// CheckQuorum: a leader that has heard from no quorum for an election timeout would
    /// have stepped down in etcd, so it does not count (openraft keeps it leading).
    pub fn has_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        match m.current_leader {
            None => false,
            Some(id) if id == self.member_id => {
                m.membership_config.membership().voter_ids().count() == 1
                    || m.last_quorum_acked.as_ref().is_some_and(|at| {
                        openraft::Instant::elapsed(&**at) <= self.election_timeout
                    })
            }
            Some(_) => true,
        }
    }

    /// Whether this member has known no leader for three election timeouts.
    pub fn leader_lost(&self) -> tokio::sync::watch::Receiver<bool> {
        self.leader_lost.subscribe()
    }

    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_term(),
        }
    }

    /// Completes a header produced by apply (which carries only the revision).
    pub fn fill_header(&self, header: Option<ResponseHeader>) -> Option<ResponseHeader> {
        Some(self.header(header.map(|h| h.revision).unwrap_or_default()))
    }

    /// Measures the databases on disk (the state's and the raft metadata's) for the quota
    /// check and Status.
    pub(crate) fn refresh_db_size(&self) {
        let size = self.state.size_on_disk() + self.db.size_on_disk().unwrap_or(0);
        self.db_size.store(size, Ordering::Relaxed);
    }

    /// Bytes the databases occupy on disk (measured at most a second ago).
    pub fn db_size(&self) -> i64 {
        self.db_size.load(Ordering::Relaxed) as i64
    }

    pub(crate) fn over_quota(&self) -> bool {
        self.quota_bytes
            .is_some_and(|q| self.db_size.load(Ordering::Relaxed) > q)
    }
}

/// Requests etcd refuses once the space quota is exceeded (deletes and compaction still work,
/// so an operator can free space).
pub(crate) fn grows_database(request: &internal_request::Request) -> bool {
    use internal_request::Request as R;
    match request {
        R::Put(_) | R::LeaseGrant(_) => true,
        R::Txn(t) => t.success.iter().chain(&t.failure).any(|op| {
            matches!(
                op.request,
                Some(crate::proto::etcdserverpb::request_op::Request::RequestPut(
                    _
                )) | Some(crate::proto::etcdserverpb::request_op::Request::RequestTxn(
                    _
                ))
            )
        }),
        _ => false,
    }
}

/// Re-measures the database size every second for the quota check and Status.
async fn track_db_size(server: Arc<EtcdServer>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while Arc::strong_count(&server) > 1 {
        tick.tick().await;
        let measured = server.clone();
        let _ = tokio::task::spawn_blocking(move || measured.refresh_db_size()).await;
    }
}

/// Election timeouts without a leader before streams that required one end (etcd's
/// maxNoLeaderCnt: reconnecting streams costs more than refusing new requests).
const MAX_NO_LEADER_CHECKS: u32 = 3;

/// Checks once an election timeout whether the member knows a leader, like etcd's
/// monitorLeader.
async fn monitor_leader(server: Arc<EtcdServer>) {
    let weak = Arc::downgrade(&server);
    let period = server.election_timeout;
    drop(server);
    let mut without = 0;
    loop {
        tokio::time::sleep(period).await;
        let Some(server) = weak.upgrade() else { return };
        without = if !server.has_leader() { without + 1 } else { 0 };
        server.leader_lost.send_if_modified(|lost| {
            let now = without >= MAX_NO_LEADER_CHECKS;
            std::mem::replace(lost, now) != now
        });
    }
}
