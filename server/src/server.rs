//! Wiring: opens storage, starts raft, and exposes [`EtcdServer`], the handle every service
//! uses to propose commands, wait for linearizable reads and build response headers.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{ReadPolicy, SnapshotPolicy};
use prost::Message;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::members;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::proto::oxcdpb::{InternalRequest, internal_request, internal_response};
use crate::raft::log_store::LogStore;
use crate::raft::network::PeerNetwork;
use crate::raft::state_machine::StateMachine;
use crate::raft::{Command, MemberNode, Raft, typ};
use crate::state::StateStore;
use crate::storage::SledBackend;

/// Request limits, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
}

/// One running member.
pub struct EtcdServer {
    pub name: String,
    pub member_id: u64,
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
        let data_dir = PathBuf::from(&cfg.data_dir);
        let member_dir = data_dir.join("member");
        std::fs::create_dir_all(&member_dir)?;
        let db = SledBackend::open_db(&member_dir.join("db"))?;
        let log_store = LogStore::open(&db)?;
        let state = StateStore::open(
            &db,
            &member_dir.join("snap"),
            min_lease_ttl(cfg.heartbeat_interval, cfg.election_timeout),
        )?;

        let cluster = members::InitialCluster::from_config(cfg)?;
        let me = cluster.member(&cfg.name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                cfg.name
            ))
        })?;
        let raft_config = openraft::Config {
            cluster_name: cfg.initial_cluster_token.clone(),
            heartbeat_interval: cfg.heartbeat_interval,
            election_timeout_min: cfg.election_timeout,
            election_timeout_max: cfg.election_timeout * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_count.max(1)),
            max_in_snapshot_log_to_keep: 5000,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(Error::internal)?;
        let raft = Raft::new(
            me.id,
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
        if fresh && cfg.initial_cluster_state == crate::config::ClusterState::New {
            let nodes: BTreeMap<u64, MemberNode> = cluster
                .members
                .iter()
                .map(|m| (m.id, m.node.clone()))
                .collect();
            raft.initialize(nodes).await.map_err(Error::internal)?;
        }
        let server = Arc::new(EtcdServer {
            name: cfg.name.clone(),
            member_id: me.id,
            cluster_id: cluster.cluster_id,
            raft,
            state,
            limits: Limits {
                max_request_bytes: cfg.max_request_bytes as usize,
                max_txn_ops: cfg.max_txn_ops as usize,
            },
            data_dir,
            client_urls: me.node.client_urls.clone(),
            peer_urls: me.node.peer_urls.clone(),
            request_timeout: Duration::from_secs(5)
                + Duration::from_millis(2 * cfg.election_timeout),
            progress_notify_interval: cfg.progress_notify_interval(),
            db,
        });
        tokio::spawn(crate::lease::run_expiry(server.clone()));
        Ok(server)
    }

    /// Serves the client port until `shutdown` completes, then stops raft and flushes.
    pub async fn serve(
        self: &Arc<Self>,
        client: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let result = crate::grpc::serve(self.clone(), client, shutdown).await;
        self.raft.shutdown().await.map_err(Error::internal)?;
        self.db.flush()?;
        result
    }

    /// Replicates a command and returns what applying it produced.
    pub async fn propose(
        &self,
        request: internal_request::Request,
    ) -> Result<internal_response::Response> {
        let cmd = InternalRequest {
            request: Some(request),
        };
        if cmd.encoded_len() > self.limits.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let write = self.raft.client_write(Command(cmd));
        let resp = match tokio::time::timeout(self.request_timeout, write).await {
            Err(_) => return Err(Error::Timeout),
            Ok(Err(e)) => return Err(write_error(e)),
            Ok(Ok(resp)) => resp.data.0,
        };
        if resp.error != 0 {
            return Err(Error::from_apply_code(resp.error));
        }
        resp.response
            .ok_or_else(|| Error::internal("empty apply response"))
    }

    /// Waits until this member has applied everything committed before the call (ReadIndex).
    pub async fn read_index(&self) -> Result<()> {
        let read = self.raft.ensure_linearizable(ReadPolicy::ReadIndex);
        match tokio::time::timeout(self.request_timeout, read).await {
            Err(_) => Err(Error::Timeout),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(match e.api_error() {
                Some(openraft::error::LinearizableReadError::ForwardToLeader(f)) => {
                    leader_error(f.leader_id)
                }
                Some(_) => Error::Timeout,
                None => Error::Stopped,
            }),
        }
    }

    pub fn raft_term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().current_leader
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

    /// Bytes the database occupies on disk.
    pub fn db_size(&self) -> i64 {
        self.db.size_on_disk().unwrap_or(0) as i64
    }
}

fn leader_error(leader: Option<u64>) -> Error {
    if leader.is_some() {
        Error::NotLeader
    } else {
        Error::NoLeader
    }
}

fn write_error(e: typ::RaftError<typ::ClientWriteError>) -> Error {
    match e.api_error() {
        Some(typ::ClientWriteError::ForwardToLeader(f)) => leader_error(f.leader_id),
        Some(other) => Error::internal(other),
        None => Error::Stopped,
    }
}
