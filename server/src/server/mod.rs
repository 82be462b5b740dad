//! The member handle, [`EtcdServer`]: what every service holds to propose commands, wait for
//! linearizable reads, route lease requests to the leader and build response headers. It sits
//! low in the module graph (above raft and the applied state, below every service); the
//! start-up wiring that creates it is [`crate::app`].
//!
//! # Layout
//! - [`propose`]: proposals and read indexes, answered by the leader (forwarded from
//!   followers over the peer port);
//! - [`lease`]: lease keep-alives and remaining time on the leader's clock, and the leader's
//!   expiry loop;
//! - [`leader`]: whether this member knows a working leader, and the monitor that ends
//!   leader-requiring streams when it stays lost;
//! - [`hash`]: Hash and HashKV of the applied state; [`corruption`]: the leader's periodic
//!   comparison of every member's HashKV, which raises the CORRUPT alarm.

pub mod corruption;
pub mod disk;
pub mod hash;
pub mod leader;
pub mod lease;
pub mod propose;
pub mod v2;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use tonic::transport::Channel;

use crate::auth::TokenKind;
use crate::proto::etcdserverpb::{AlarmType, ResponseHeader};
use crate::proto::oxcdpb::peer_client::PeerClient;
use crate::raft::Raft;
use crate::raft::peer_activity::PeerActivity;
use crate::state::StateStore;

/// Request limits, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    /// Streams (calls in progress) one client connection may have open at a time.
    pub max_concurrent_streams: u32,
}

/// What a member is told at start: who it is and how it serves. Derived from the
/// configuration and the member's identity by [`crate::app`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub member_id: u64,
    pub cluster_id: u64,
    /// `--initial-cluster-token`, mixed into the ids of members added later.
    pub cluster_token: String,
    pub data_dir: PathBuf,
    pub client_urls: Vec<String>,
    pub peer_urls: Vec<String>,
    pub limits: Limits,
    /// How long a proposal or read may wait before failing with "request timed out"
    /// (etcd: 5s + 2 × election timeout).
    pub request_timeout: Duration,
    /// Interval of progress notifications for watchers that asked for them.
    pub progress_notify_interval: Duration,
    /// `--quota-backend-bytes`; `None` when disabled.
    pub quota_bytes: Option<u64>,
    pub election_timeout: Duration,
    /// `--strict-reconfig-check`: refuse membership changes that risk the quorum.
    pub strict_reconfig_check: bool,
    pub auth: AuthSettings,
    /// `--cors`: the origins the JSON gateway answers cross-origin requests for; empty or
    /// `*` means any.
    pub cors: Vec<String>,
    /// Where the v2 keys API lives in the key space, when `--enable-v2` serves it.
    pub v2_prefix: Option<String>,
}

/// How this member authenticates clients.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `--auth-token`.
    pub tokens: Arc<TokenKind>,
    /// `--bcrypt-cost`.
    pub bcrypt_cost: u32,
    /// `--client-cert-auth`: a verified client certificate's common name is the user name
    /// of a request without a token.
    pub client_cert_auth: bool,
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
    /// How long a proposal or read may wait before failing with "request timed out".
    pub request_timeout: Duration,
    /// Interval of progress notifications for watchers that asked for them.
    pub progress_notify_interval: Duration,
    /// `--quota-backend-bytes`; `None` when disabled.
    pub quota_bytes: Option<u64>,
    /// The database size last measured (measuring walks the files, so not per request).
    db_size: AtomicU64,
    /// Clients for other members' peer ports, by peer URL. A std Mutex: never held across
    /// an await.
    peers: Mutex<HashMap<String, PeerClient<Channel>>>,
    /// Set once this member learns it was removed from the cluster; serving then stops.
    removed: tokio::sync::watch::Sender<bool>,
    /// Set while this member has known no leader for three election timeouts; streams that
    /// required a leader end then (etcd's monitorLeader).
    leader_lost: tokio::sync::watch::Sender<bool>,
    pub(crate) election_timeout: Duration,
    /// `--strict-reconfig-check`: refuse membership changes that risk the quorum.
    pub strict_reconfig_check: bool,
    pub auth: AuthSettings,
    /// `--cors` (see [`Settings::cors`]).
    pub cors: Vec<String>,
    /// The v2 API's place and counters, when `--enable-v2` serves it.
    pub v2: Option<Arc<v2::Shared>>,
    /// The raft metadata's database, measured with the state's for the quota and Status.
    raft_db: sled::Db,
    /// Since when each peer has answered this member without a break (the leader's view
    /// judges membership changes, see [`crate::membership::reconfig_check`]).
    pub(crate) peer_activity: Arc<PeerActivity>,
    /// See [`disk`].
    disk_low: std::sync::atomic::AtomicBool,
    disk_free: AtomicU64,
    /// The directories whose filesystems [`disk`] watches.
    disk_dirs: std::sync::OnceLock<Vec<PathBuf>>,
}

impl EtcdServer {
    /// The handle on a member whose raft node and applied state are open.
    pub fn new(
        settings: Settings,
        raft: Raft,
        state: Arc<StateStore>,
        raft_db: sled::Db,
        peer_activity: Arc<PeerActivity>,
    ) -> EtcdServer {
        let Settings {
            name,
            member_id,
            cluster_id,
            cluster_token,
            data_dir,
            client_urls,
            peer_urls,
            limits,
            request_timeout,
            progress_notify_interval,
            quota_bytes,
            election_timeout,
            strict_reconfig_check,
            auth,
            cors,
            v2_prefix,
        } = settings;
        EtcdServer {
            name,
            member_id,
            cluster_token,
            cluster_id,
            raft,
            state,
            limits,
            data_dir,
            client_urls,
            peer_urls,
            request_timeout,
            progress_notify_interval,
            quota_bytes,
            db_size: AtomicU64::new(0),
            peers: Mutex::new(HashMap::new()),
            removed: tokio::sync::watch::channel(false).0,
            leader_lost: tokio::sync::watch::channel(false).0,
            election_timeout,
            strict_reconfig_check,
            auth,
            cors,
            v2: v2_prefix.map(|p| Arc::new(v2::Shared::new(&p))),
            raft_db,
            peer_activity,
            disk_low: std::sync::atomic::AtomicBool::new(false),
            disk_free: AtomicU64::new(u64::MAX),
            disk_dirs: std::sync::OnceLock::new(),
        }
    }

    /// Stops serving because this member was removed from the cluster.
    pub(crate) fn stop_removed(&self) {
        self.removed.send_replace(true);
    }

    pub fn is_removed(&self) -> bool {
        *self.removed.borrow()
    }

    /// Why this member cannot go on, once it cannot: its raft core stopped on a fatal error (a
    /// failed write or fsync of the log, the vote or the state it applies), or its applied
    /// state can no longer be made durable. A member in that state must not stay up answering
    /// nothing: the server stops and exits non-zero, and its supervisor restarts it from what
    /// is durable.
    pub fn storage_failure(&self) -> Option<String> {
        let fatal = self
            .raft
            .metrics()
            .borrow_watched()
            .running_state
            .clone()
            .err();
        fatal
            .map(|f| f.to_string())
            .or_else(|| self.state.failure())
    }

    /// Resolves with [`EtcdServer::storage_failure`] once there is one; never otherwise.
    /// Polled, not watched: raft's metrics change at every commit and quorum ack, and a task
    /// woken by each change slows the request path.
    pub async fn storage_failed(&self) -> String {
        loop {
            if let Some(failure) = self.storage_failure() {
                return failure;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Resolves once this member has been removed from the cluster.
    pub async fn removed(&self) {
        let mut removed = self.removed.subscribe();
        let _ = removed.wait_for(|r| *r).await;
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

    /// A header at the current revision of the applied state.
    pub fn current_header(&self) -> ResponseHeader {
        self.header(self.state.read().kv.mvcc.current_rev())
    }

    /// Completes a header produced by apply (which carries only the revision).
    pub fn fill_header(&self, header: Option<ResponseHeader>) -> Option<ResponseHeader> {
        Some(self.header(header.map(|h| h.revision).unwrap_or_default()))
    }

    /// Measures the databases on disk (the state's and the raft metadata's) for the quota
    /// check and Status.
    pub(crate) fn refresh_db_size(&self) {
        let size = self.state.size_on_disk() + self.raft_db.size_on_disk().unwrap_or(0);
        self.db_size.store(size, Ordering::Relaxed);
    }

    /// Bytes the databases occupy on disk (measured at most a second ago).
    pub fn db_size(&self) -> i64 {
        self.db_size.load(Ordering::Relaxed) as i64
    }

    /// Every active alarm: the member it is raised for, and etcd's name for it.
    pub(crate) fn active_alarms(&self) -> Vec<(u64, &'static str)> {
        let alarms = self.state.read().kv.alarms.list(AlarmType::None as i32);
        alarms
            .iter()
            .map(|a| {
                let name = AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
                (a.member_id, name)
            })
            .collect()
    }

    pub(crate) fn over_quota(&self) -> bool {
        self.quota_bytes
            .is_some_and(|q| self.db_size.load(Ordering::Relaxed) > q)
    }
}

/// Re-measures the database size every second for the quota check and Status.
pub async fn track_db_size(server: Arc<EtcdServer>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while Arc::strong_count(&server) > 1 {
        tick.tick().await;
        let measured = server.clone();
        let _ = tokio::task::spawn_blocking(move || measured.refresh_db_size()).await;
    }
}
