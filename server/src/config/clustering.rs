//! etcd's "Clustering" flags: how this member bootstraps or joins its cluster, what it
//! advertises, and cluster-wide policies (reconfiguration checks, pre-vote, auto compaction).

use clap::{ArgAction, Args, ValueEnum};

use super::go_syntax::parse_go_bool;

/// Where the v2 API keeps its keys when `--experimental-enable-v2v3` names no prefix.
pub const DEFAULT_V2_PREFIX: &str = "/_oxcd/v2";

/// etcd's default `--initial-cluster` value.
pub const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";

/// The flags etcd's `--help` lists under "Clustering".
#[derive(Debug, Clone, Args)]
pub struct ClusteringFlags {
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(
        long = "initial-advertise-peer-urls",
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,

    /// Initial cluster configuration for bootstrapping ("name=peer-url,...").
    #[arg(long = "initial-cluster", env = "ETCD_INITIAL_CLUSTER", default_value = DEFAULT_INITIAL_CLUSTER)]
    pub initial_cluster: String,

    /// Initial cluster state ('new' or 'existing').
    #[arg(
        long = "initial-cluster-state",
        env = "ETCD_INITIAL_CLUSTER_STATE",
        default_value = "new",
        value_enum
    )]
    pub initial_cluster_state: ClusterState,

    /// Initial cluster token for the etcd cluster during bootstrap.
    #[arg(
        long = "initial-cluster-token",
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,

    /// Discovery URL used to bootstrap the cluster.
    #[arg(long = "discovery", env = "ETCD_DISCOVERY", default_value = "")]
    pub discovery: String,

    /// Expected behavior ('exit' or 'proxy') when discovery services fails.
    #[arg(
        long = "discovery-fallback",
        env = "ETCD_DISCOVERY_FALLBACK",
        default_value = "proxy",
        value_parser = ["exit", "proxy"]
    )]
    pub discovery_fallback: String,

    /// HTTP proxy to use for traffic to discovery service.
    #[arg(
        long = "discovery-proxy",
        env = "ETCD_DISCOVERY_PROXY",
        default_value = ""
    )]
    pub discovery_proxy: String,

    /// List of this member's client URLs to advertise to the public.
    #[arg(
        long = "advertise-client-urls",
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,

    /// Reject reconfiguration requests that would cause quorum loss.
    #[arg(long = "strict-reconfig-check", env = "ETCD_STRICT_RECONFIG_CHECK", default_value = "true",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub strict_reconfig_check: bool,

    /// Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned away rejoins the cluster.
    #[arg(long = "pre-vote", env = "ETCD_PRE_VOTE", default_value = "true",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub pre_vote: bool,

    /// Auto compaction retention length. 0 means disable auto compaction.
    #[arg(
        long = "auto-compaction-retention",
        env = "ETCD_AUTO_COMPACTION_RETENTION",
        default_value = "0"
    )]
    pub auto_compaction_retention: String,

    /// Interpret 'auto-compaction-retention' one of: periodic|revision.
    #[arg(
        long = "auto-compaction-mode",
        env = "ETCD_AUTO_COMPACTION_MODE",
        default_value = "periodic",
        value_enum
    )]
    pub auto_compaction_mode: AutoCompactionMode,

    /// Accept etcd V2 client requests.
    #[arg(long = "enable-v2", env = "ETCD_ENABLE_V2", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub enable_v2: bool,

    /// Serve the v2 API from the v3 key space under this prefix (with --enable-v2).
    #[arg(
        long = "experimental-enable-v2v3",
        alias = "enable-v2v3",
        env = "ETCD_EXPERIMENTAL_ENABLE_V2V3",
        default_value = ""
    )]
    pub experimental_enable_v2v3: String,
}

impl ClusteringFlags {
    /// Where the v2 API keeps its keys: `--experimental-enable-v2v3`'s prefix, or oxcd's
    /// reserved one.
    pub fn v2_prefix(&self) -> String {
        match self.experimental_enable_v2v3.trim_end_matches('/') {
            "" => DEFAULT_V2_PREFIX.to_string(),
            p => p.to_string(),
        }
    }
}

/// `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterState {
    /// Bootstrap a new cluster.
    New,
    /// Join an existing cluster.
    Existing,
}

impl ClusterState {
    /// The flag value ("new" or "existing").
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterState::New => "new",
            ClusterState::Existing => "existing",
        }
    }
}

impl PartialEq<&str> for ClusterState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--auto-compaction-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AutoCompactionMode {
    /// Retention is a time window.
    Periodic,
    /// Retention is a number of revisions.
    Revision,
}
