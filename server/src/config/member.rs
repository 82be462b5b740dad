//! etcd's "Member" flags: this member's name and directories, raft timing, listeners, and
//! the limits and keepalives of its client connections.

use std::time::Duration;

use clap::{ArgAction, Args};

use super::go_syntax::{parse_go_bool, parse_go_duration};

/// etcd's default member name.
pub const DEFAULT_NAME: &str = "default";
/// Backend quota used when `--quota-backend-bytes` is 0 (etcd's 2 GiB default).
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The flags etcd's `--help` lists under "Member".
#[derive(Debug, Clone, Args)]
pub struct MemberFlags {
    /// Human-readable name for this member.
    #[arg(long = "name", env = "ETCD_NAME", default_value = "default")]
    pub name: String,

    /// Path to the data directory (default: "<name>.etcd").
    #[arg(long = "data-dir", env = "ETCD_DATA_DIR", default_value = "")]
    pub data_dir: String,

    /// Path to the dedicated wal directory.
    #[arg(long = "wal-dir", env = "ETCD_WAL_DIR", default_value = "")]
    pub wal_dir: String,

    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(
        long = "snapshot-count",
        env = "ETCD_SNAPSHOT_COUNT",
        default_value = "100000"
    )]
    pub snapshot_count: u64,

    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(
        long = "heartbeat-interval",
        env = "ETCD_HEARTBEAT_INTERVAL",
        default_value = "100"
    )]
    pub heartbeat_interval: u64,

    /// Time (in milliseconds) for an election to timeout.
    #[arg(
        long = "election-timeout",
        env = "ETCD_ELECTION_TIMEOUT",
        default_value = "1000"
    )]
    pub election_timeout: u64,

    /// Whether to fast-forward initial election ticks on boot for faster election.
    #[arg(long = "initial-election-tick-advance", env = "ETCD_INITIAL_ELECTION_TICK_ADVANCE",
          default_value = "true", num_args = 0..=1, default_missing_value = "true",
          action = ArgAction::Set, value_parser = parse_go_bool)]
    pub initial_election_tick_advance: bool,

    /// List of URLs to listen on for peer traffic.
    #[arg(
        long = "listen-peer-urls",
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub listen_peer_urls: String,

    /// List of URLs to listen on for client traffic.
    #[arg(
        long = "listen-client-urls",
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub listen_client_urls: String,

    /// Maximum number of snapshot files to retain (0 is unlimited).
    #[arg(
        long = "max-snapshots",
        env = "ETCD_MAX_SNAPSHOTS",
        default_value = "5"
    )]
    pub max_snapshots: u64,

    /// Maximum number of wal files to retain (0 is unlimited).
    #[arg(long = "max-wals", env = "ETCD_MAX_WALS", default_value = "5")]
    pub max_wals: u64,

    /// Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB, negative disables).
    #[arg(
        long = "quota-backend-bytes",
        env = "ETCD_QUOTA_BACKEND_BYTES",
        default_value = "0",
        allow_negative_numbers = true
    )]
    pub quota_backend_bytes: i64,

    /// Maximum number of operations permitted in a transaction.
    #[arg(long = "max-txn-ops", env = "ETCD_MAX_TXN_OPS", default_value = "128")]
    pub max_txn_ops: u64,

    /// Maximum client request size in bytes the server will accept.
    #[arg(
        long = "max-request-bytes",
        env = "ETCD_MAX_REQUEST_BYTES",
        default_value = "1572864"
    )]
    pub max_request_bytes: u64,

    /// Maximum concurrent streams that each client can open at a time.
    #[arg(
        long = "max-concurrent-streams",
        env = "ETCD_MAX_CONCURRENT_STREAMS",
        default_value = "4294967295"
    )]
    pub max_concurrent_streams: u32,

    /// Enable gRPC gateway.
    #[arg(long = "enable-grpc-gateway", env = "ETCD_ENABLE_GRPC_GATEWAY", default_value = "true",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub enable_grpc_gateway: bool,

    /// Minimum duration interval that a client should wait before pinging server.
    #[arg(long = "grpc-keepalive-min-time", env = "ETCD_GRPC_KEEPALIVE_MIN_TIME", default_value = "5s",
          value_parser = parse_go_duration)]
    pub grpc_keepalive_min_time: Duration,

    /// Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).
    #[arg(long = "grpc-keepalive-interval", env = "ETCD_GRPC_KEEPALIVE_INTERVAL", default_value = "2h",
          value_parser = parse_go_duration)]
    pub grpc_keepalive_interval: Duration,

    /// Additional duration of wait before closing a non-responsive connection (0 to disable).
    #[arg(long = "grpc-keepalive-timeout", env = "ETCD_GRPC_KEEPALIVE_TIMEOUT", default_value = "20s",
          value_parser = parse_go_duration)]
    pub grpc_keepalive_timeout: Duration,

    /// Enable to set socket option SO_REUSEPORT on listeners.
    #[arg(long = "socket-reuse-port", env = "ETCD_SOCKET_REUSE_PORT", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub socket_reuse_port: bool,

    /// Enable to set socket option SO_REUSEADDR on listeners.
    #[arg(long = "socket-reuse-address", env = "ETCD_SOCKET_REUSE_ADDRESS", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub socket_reuse_address: bool,
}
