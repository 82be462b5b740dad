//! Server configuration: etcd's flags, ETCD_* environment variables and YAML config file.
//!
//! The flag names, environment variable names and defaults follow etcd 3.5, so
//! existing manifests and scripts run unchanged:
//!
//! * every flag `--foo-bar` may also be given as `-foo-bar` (Go's `flag` package
//!   accepts both), as `--foo-bar value` or `--foo-bar=value`;
//! * boolean flags accept `--flag`, `--flag=true` and `--flag=false` (and Go's
//!   other spellings: `1`, `t`, `T`, `TRUE`, `True`, `0`, `f`, ...);
//! * every flag can be set through the environment as `ETCD_FOO_BAR`; empty
//!   environment values are ignored, like etcd;
//! * `--config-file` (or `ETCD_CONFIG_FILE`) names a YAML file in etcd's format:
//!   keys are the flag names without the leading dashes, TLS settings are nested
//!   under `client-transport-security` / `peer-transport-security`, and durations
//!   are either Go duration strings (`"5s"`) or integer nanoseconds (what etcd's
//!   JSON-based YAML decoding expects). Unknown keys are ignored, like etcd.
//!
//! **Deliberate difference from etcd:** when `--config-file` is given, etcd
//! ignores all other flags and environment variables. We instead merge the three
//! sources with the precedence *flags > environment > config file > defaults*:
//! a value from the file is used only when the flag was set neither on the
//! command line nor through its `ETCD_*` variable.
//!
//! Use [`Config::load`] (parse, merge the file, fill derived defaults and
//! [`Config::validate`]) from `main`, and [`ConfigError::exit`] to report errors
//! (it prints clap's help/version output with exit code 0).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use url::Url;

/// etcd's default member name.
pub const DEFAULT_NAME: &str = "default";
/// etcd's default `--initial-cluster` value.
pub const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";
/// Backend quota used when `--quota-backend-bytes` is 0 (etcd's 2 GiB default).
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// etcd's upper bound for `--election-timeout`, in milliseconds.
pub const MAX_ELECTION_MS: u64 = 50_000;
/// URL schemes accepted for client URLs.
pub const CLIENT_URL_SCHEMES: &[&str] = &["http", "https", "unix", "unixs"];
/// URL schemes accepted for peer URLs.
pub const PEER_URL_SCHEMES: &[&str] = &["http", "https"];

/// Duration-valued flags: in the YAML file an integer value means nanoseconds.
const DURATION_FLAGS: &[&str] = &[
    "grpc-keepalive-min-time",
    "grpc-keepalive-interval",
    "grpc-keepalive-timeout",
    "experimental-watch-progress-notify-interval",
    "experimental-corrupt-check-time",
];

/// Errors from loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Command-line / environment parsing failed, or `--help` / `--version`
    /// was requested (see [`ConfigError::exit`]).
    #[error("{0}")]
    Args(#[from] clap::Error),
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid YAML or has a value of the wrong shape.
    #[error("cannot parse config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    /// A flag value is malformed (etcd: `invalid value "x" for flag -f: reason`).
    #[error("invalid value {value:?} for flag --{flag}: {reason}")]
    InvalidFlag {
        flag: String,
        value: String,
        reason: String,
    },
    /// A consistency check failed; the message follows etcd's wording.
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// Print the error (or the help/version text) and exit the process the way
    /// clap does: code 0 for `--help`/`--version`, 2 for usage errors, 1 otherwise.
    pub fn exit(&self) -> ! {
        match self {
            ConfigError::Args(e) => e.exit(),
            other => {
                eprintln!("oxcd: {other}");
                std::process::exit(1)
            }
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

/// `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "lower")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Dpanic,
    Panic,
    Fatal,
}

impl LogLevel {
    /// Matching `tracing` filter directive (`dpanic`/`panic`/`fatal` map to `error`).
    pub fn as_tracing_directive(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error | LogLevel::Dpanic | LogLevel::Panic | LogLevel::Fatal => "error",
        }
    }
}

/// `--metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricsLevel {
    Basic,
    Extensive,
}

/// Resolved `--auto-compaction-mode` + `--auto-compaction-retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Retention 0: auto compaction is off.
    Disabled,
    /// Keep this much history (periodic mode).
    Periodic(Duration),
    /// Keep this many revisions (revision mode).
    Revision(u64),
}

/// The server configuration (etcd 3.5 flags).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "oxcd",
    version,
    // Go's flag package, which etcd uses: a flag given twice takes its last value.
    args_override_self = true,
    about = "oxcd: a key-value store server compatible with etcd's v3 API and flags"
)]
pub struct Config {
    // ---- member ----
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

    /// Disables fsync, unsafe, will cause data loss.
    #[arg(long = "unsafe-no-fsync", env = "ETCD_UNSAFE_NO_FSYNC", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub unsafe_no_fsync: bool,

    // ---- clustering ----
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

    /// Enable gRPC gateway.
    #[arg(long = "enable-grpc-gateway", env = "ETCD_ENABLE_GRPC_GATEWAY", default_value = "true",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub enable_grpc_gateway: bool,

    /// Accept etcd V2 client requests.
    #[arg(long = "enable-v2", env = "ETCD_ENABLE_V2", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub enable_v2: bool,

    /// Comma-separated white list of origins for CORS, or cross-origin resource sharing.
    #[arg(long = "cors", env = "ETCD_CORS", default_value = "")]
    pub cors: String,

    /// Comma-separated acceptable hostnames from HTTP client requests, if server is not secure.
    #[arg(
        long = "host-whitelist",
        env = "ETCD_HOST_WHITELIST",
        default_value = "*"
    )]
    pub host_whitelist: String,

    // ---- security ----
    /// Path to the client server TLS cert file.
    #[arg(long = "cert-file", env = "ETCD_CERT_FILE", default_value = "")]
    pub cert_file: String,

    /// Path to the client server TLS key file.
    #[arg(long = "key-file", env = "ETCD_KEY_FILE", default_value = "")]
    pub key_file: String,

    /// Enable client cert authentication.
    #[arg(long = "client-cert-auth", env = "ETCD_CLIENT_CERT_AUTH", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub client_cert_auth: bool,

    /// Path to the client certificate revocation list file.
    #[arg(
        long = "client-crl-file",
        env = "ETCD_CLIENT_CRL_FILE",
        default_value = ""
    )]
    pub client_crl_file: String,

    /// Path to the client server TLS trusted CA cert file.
    #[arg(
        long = "trusted-ca-file",
        env = "ETCD_TRUSTED_CA_FILE",
        default_value = ""
    )]
    pub trusted_ca_file: String,

    /// Client TLS using generated certificates.
    #[arg(long = "auto-tls", env = "ETCD_AUTO_TLS", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub auto_tls: bool,

    /// Path to the peer server TLS cert file.
    #[arg(
        long = "peer-cert-file",
        env = "ETCD_PEER_CERT_FILE",
        default_value = ""
    )]
    pub peer_cert_file: String,

    /// Path to the peer server TLS key file.
    #[arg(long = "peer-key-file", env = "ETCD_PEER_KEY_FILE", default_value = "")]
    pub peer_key_file: String,

    /// Enable peer client cert authentication.
    #[arg(long = "peer-client-cert-auth", env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub peer_client_cert_auth: bool,

    /// Path to the peer server TLS trusted CA file.
    #[arg(
        long = "peer-trusted-ca-file",
        env = "ETCD_PEER_TRUSTED_CA_FILE",
        default_value = ""
    )]
    pub peer_trusted_ca_file: String,

    /// Allowed CN for inter peer authentication.
    #[arg(
        long = "peer-cert-allowed-cn",
        env = "ETCD_PEER_CERT_ALLOWED_CN",
        default_value = ""
    )]
    pub peer_cert_allowed_cn: String,

    /// Path to the peer certificate revocation list file.
    #[arg(long = "peer-crl-file", env = "ETCD_PEER_CRL_FILE", default_value = "")]
    pub peer_crl_file: String,

    /// Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.
    #[arg(long = "peer-auto-tls", env = "ETCD_PEER_AUTO_TLS", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub peer_auto_tls: bool,

    /// Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).
    #[arg(
        long = "cipher-suites",
        env = "ETCD_CIPHER_SUITES",
        value_delimiter = ','
    )]
    pub cipher_suites: Vec<String>,

    /// Minimum TLS version supported by etcd (TLS1.2 or TLS1.3).
    #[arg(long = "tls-min-version", env = "ETCD_TLS_MIN_VERSION", default_value = "TLS1.2",
          value_parser = ["TLS1.2", "TLS1.3"])]
    pub tls_min_version: String,

    // ---- auth ----
    /// Specify auth token specific options ('simple' or 'jwt,...').
    #[arg(long = "auth-token", env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,

    /// Specify bcrypt algorithm cost factor for auth password hashing.
    #[arg(long = "bcrypt-cost", env = "ETCD_BCRYPT_COST", default_value = "10")]
    pub bcrypt_cost: u32,

    /// The TTL (in seconds) of the simple auth token.
    #[arg(
        long = "auth-token-ttl",
        env = "ETCD_AUTH_TOKEN_TTL",
        default_value = "300"
    )]
    pub auth_token_ttl: u64,

    // ---- logging / profiling / metrics ----
    /// Currently only supports 'zap' for structured logging.
    #[arg(long = "logger", env = "ETCD_LOGGER", default_value = "zap")]
    pub logger: String,

    /// Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.
    #[arg(
        long = "log-outputs",
        env = "ETCD_LOG_OUTPUTS",
        default_value = "default",
        value_delimiter = ','
    )]
    pub log_outputs: Vec<String>,

    /// Configures log level. Only supports debug, info, warn, error, panic, or fatal.
    #[arg(
        long = "log-level",
        env = "ETCD_LOG_LEVEL",
        default_value = "info",
        value_enum,
        ignore_case = true
    )]
    pub log_level: LogLevel,

    /// Enable runtime profiling data via HTTP server.
    #[arg(long = "enable-pprof", env = "ETCD_ENABLE_PPROF", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub enable_pprof: bool,

    /// Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics.
    #[arg(
        long = "metrics",
        env = "ETCD_METRICS",
        default_value = "basic",
        value_enum
    )]
    pub metrics: MetricsLevel,

    /// List of URLs to listen on for the metrics and health endpoints.
    #[arg(
        long = "listen-metrics-urls",
        env = "ETCD_LISTEN_METRICS_URLS",
        default_value = ""
    )]
    pub listen_metrics_urls: String,

    // ---- unsafe / experimental ----
    /// Force to create a new one member cluster.
    #[arg(long = "force-new-cluster", env = "ETCD_FORCE_NEW_CLUSTER", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub force_new_cluster: bool,

    /// Duration of periodic watch progress notifications.
    #[arg(long = "experimental-watch-progress-notify-interval",
          env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m",
          value_parser = parse_go_duration)]
    pub experimental_watch_progress_notify_interval: Duration,

    /// Enable leader to send regular checkpoints to other members to prevent reset of remaining TTL on leader change.
    #[arg(long = "experimental-enable-lease-checkpoint", env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT",
          default_value = "false", num_args = 0..=1, default_missing_value = "true",
          action = ArgAction::Set, value_parser = parse_go_bool)]
    pub experimental_enable_lease_checkpoint: bool,

    /// Enable to check data corruption before serving any client/peer traffic.
    #[arg(long = "experimental-initial-corrupt-check", env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK",
          default_value = "false", num_args = 0..=1, default_missing_value = "true",
          action = ArgAction::Set, value_parser = parse_go_bool)]
    pub experimental_initial_corrupt_check: bool,

    /// Duration of time between cluster corruption check passes (0s disables).
    #[arg(long = "experimental-corrupt-check-time", env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME",
          default_value = "0s", value_parser = parse_go_duration)]
    pub experimental_corrupt_check_time: Duration,

    /// Enable leader to periodically check followers compaction hashes.
    #[arg(long = "experimental-compact-hash-check-enabled",
          env = "ETCD_EXPERIMENTAL_COMPACT_HASH_CHECK_ENABLED", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub experimental_compact_hash_check_enabled: bool,

    /// Number of entries for a slow follower to catch up after compacting the raft storage entries.
    #[arg(
        long = "experimental-snapshot-catchup-entries",
        env = "ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES",
        default_value = "5000"
    )]
    pub experimental_snapshot_catchup_entries: u64,

    /// Path to the server configuration file (YAML). Values from flags and ETCD_* variables take precedence over it.
    #[arg(long = "config-file", env = "ETCD_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// Set by [`Config::load`] when `--listen-client-urls` was given explicitly
    /// (flag or env) but `--advertise-client-urls` was not given anywhere;
    /// etcd then refuses to start.
    #[arg(skip)]
    advertise_client_urls_missing: bool,
}

impl Default for Config {
    /// etcd's defaults, ignoring the process environment (derived defaults such
    /// as the data dir are filled by [`Config::validate`]).
    fn default() -> Self {
        let no_env: EnvLookup<'_> = &|_: &str| -> Option<OsString> { None };
        Config::load_unvalidated(["oxcd"], Some(no_env)).expect("default configuration parses")
    }
}

type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

impl Config {
    /// Parse `args` (including the program name, as from `std::env::args_os()`),
    /// taking `ETCD_*` variables from the process environment, merge the
    /// `--config-file` (flags > env > file), fill derived defaults and validate.
    pub fn load<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut cfg = Config::load_unvalidated(args, None)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Like [`Config::load`], but reads `ETCD_*` variables through `env`
    /// instead of the process environment (deterministic for tests/embedding).
    pub fn load_with_env<I, T, F>(args: I, env: F) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
        F: Fn(&str) -> Option<OsString>,
    {
        let env: EnvLookup<'_> = &env;
        let mut cfg = Config::load_unvalidated(args, Some(env))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn load_unvalidated<I, T>(args: I, env: Option<EnvLookup<'_>>) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let base = Config::command();
        // long flag name -> arg id, and the set of boolean flags.
        let mut long_to_id: HashMap<String, String> = HashMap::new();
        let mut bool_flags: HashSet<String> = HashSet::new();
        let mut env_names: Vec<(String, String)> = Vec::new(); // (id, ETCD_*)
        for arg in base.get_arguments() {
            if let Some(long) = arg.get_long() {
                long_to_id.insert(long.to_owned(), arg.get_id().to_string());
                if arg.get_num_args().is_some_and(|r| r.min_values() == 0) {
                    bool_flags.insert(long.to_owned());
                }
            }
            if let Some(name) = arg.get_env() {
                env_names.push((
                    arg.get_id().to_string(),
                    name.to_string_lossy().into_owned(),
                ));
            }
        }

        let mut args = normalize_go_flags(args.into_iter().map(Into::into).collect(), &long_to_id);

        let cmd = match env {
            // Injected environment: clap must not read the process environment.
            Some(_) => base.mut_args(|a| a.env(None::<&'static str>)),
            // Process environment: like etcd, empty variables count as unset.
            None => base.mut_args(|a| {
                let empty = a
                    .get_env()
                    .and_then(std::env::var_os)
                    .is_some_and(|v| v.is_empty());
                if empty {
                    a.env(None::<&'static str>)
                } else {
                    a
                }
            }),
        };

        let mut matches = cmd.clone().try_get_matches_from(&args)?;

        if let Some(env) = env {
            let mut added = false;
            for (id, var) in &env_names {
                if is_explicit(&matches, id) {
                    continue;
                }
                if let Some(val) = env(var).filter(|v| !v.is_empty()) {
                    let long = long_of(&long_to_id, id);
                    let mut a = OsString::from(format!("--{long}="));
                    a.push(val);
                    args.push(a);
                    added = true;
                }
            }
            if added {
                matches = cmd.clone().try_get_matches_from(&args)?;
            }
        }

        // Flags set on the command line or via the environment, before the file.
        let listen_client_explicit = is_explicit(&matches, "listen_client_urls");
        let mut advertise_client_explicit = is_explicit(&matches, "advertise_client_urls");

        if let Some(path) = matches.get_one::<PathBuf>("config_file").cloned() {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::ReadFile {
                path: path.clone(),
                source,
            })?;
            let entries = yaml_to_flag_values(&path, &text, &long_to_id, &bool_flags)?;
            let mut added = false;
            for (long, value) in entries {
                let id = &long_to_id[&long];
                if is_explicit(&matches, id) {
                    continue;
                }
                if long == "advertise-client-urls" {
                    advertise_client_explicit = true;
                }
                args.push(OsString::from(format!("--{long}={value}")));
                added = true;
            }
            if added {
                matches = cmd.clone().try_get_matches_from(&args).map_err(|e| {
                    ConfigError::ParseFile {
                        path: path.clone(),
                        message: e.render().to_string().trim().to_owned(),
                    }
                })?;
            }
        }

        let mut cfg = Config::from_arg_matches(&matches)?;
        cfg.advertise_client_urls_missing = listen_client_explicit && !advertise_client_explicit;
        Ok(cfg)
    }

    /// Fill derived defaults (etcd's behaviour) and check the configuration.
    ///
    /// * `data_dir` "" becomes `"<name>.etcd"`;
    /// * `initial_cluster` "" (or etcd's default while `--name` is not
    ///   "default") becomes `"<name>=<url>"` for each initial advertise peer URL.
    ///
    /// Idempotent; [`Config::load`] already calls it.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        if self.data_dir.is_empty() {
            self.data_dir = format!("{}.etcd", self.name);
        }
        let apurls = self.initial_advertise_peer_url_list()?;
        if self.initial_cluster.is_empty()
            || (self.name != DEFAULT_NAME && self.initial_cluster == DEFAULT_INITIAL_CLUSTER)
        {
            self.initial_cluster =
                initial_cluster_from_name(&self.name, &self.initial_advertise_peer_urls);
        }

        // Bind URLs must be IP literals or localhost.
        socket_addrs(&self.listen_peer_url_list()?)?;
        check_bind_urls(&self.listen_client_url_list()?)?;
        check_bind_urls(&self.listen_metrics_url_list()?)?;
        check_host_urls(&apurls)?;
        check_host_urls(&self.advertise_client_url_list()?)?;

        if self.heartbeat_interval == 0 {
            return Err(ConfigError::Invalid(format!(
                "--heartbeat-interval must be >0 (set to {}ms)",
                self.heartbeat_interval
            )));
        }
        if self.election_timeout == 0 {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout must be >0 (set to {}ms)",
                self.election_timeout
            )));
        }
        if 5 * self.heartbeat_interval > self.election_timeout {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout, self.heartbeat_interval
            )));
        }
        if self.election_timeout > MAX_ELECTION_MS {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{}ms] is too long, and should be set less than {}ms",
                self.election_timeout, MAX_ELECTION_MS
            )));
        }
        if self.advertise_client_urls_missing {
            return Err(ConfigError::Invalid(
                "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                    .into(),
            ));
        }
        self.auto_compaction()?;
        if self.max_request_bytes == 0 {
            return Err(ConfigError::Invalid(format!(
                "--max-request-bytes must be >0 (set to {})",
                self.max_request_bytes
            )));
        }
        if self.max_txn_ops == 0 {
            return Err(ConfigError::Invalid(format!(
                "--max-txn-ops must be >0 (set to {})",
                self.max_txn_ops
            )));
        }
        match self.logger.as_str() {
            "zap" => {}
            "capnslog" => {
                return Err(ConfigError::Invalid(
                    "--logger=capnslog is removed in v3.5".into(),
                ));
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "unknown logger option {other:?}"
                )));
            }
        }
        self.check_tls()?;
        // Like etcd, the initial cluster only matters to a member that has no data yet.
        if !self
            .data_dir_path()
            .join("member")
            .join("identity")
            .exists()
        {
            self.verify_initial_cluster()?;
        }
        Ok(())
    }

    /// etcd's bootstrap checks on `--initial-cluster` (`VerifyBootstrap` /
    /// `VerifyJoinExisting`): the local name must be present, a new member's
    /// URLs must match `--initial-advertise-peer-urls`, and no URL may appear
    /// twice. (etcd skips these when the member restarts from an existing WAL.)
    pub fn verify_initial_cluster(&self) -> Result<(), ConfigError> {
        let members = parse_initial_cluster(&self.initial_cluster)?;
        let cluster_str = urls_map_string(&members);
        if cluster_str.is_empty() {
            return Err(ConfigError::Invalid(
                "initial cluster unset and no discovery URL found".into(),
            ));
        }
        let local: Vec<Url> = members
            .iter()
            .filter(|(n, _)| *n == self.name)
            .map(|(_, u)| u.clone())
            .collect();
        if local.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                self.name
            )));
        }
        if self.initial_cluster_state == ClusterState::New {
            let apurls = self.initial_advertise_peer_url_list()?;
            advertise_matches_cluster(&self.name, &apurls, &local)?;
        }
        let mut seen = HashSet::new();
        for (_, u) in &members {
            if !seen.insert(u.as_str().to_owned()) {
                return Err(ConfigError::Invalid(format!(
                    "initial cluster {cluster_str} has duplicate url"
                )));
            }
        }
        Ok(())
    }

    fn check_tls(&self) -> Result<(), ConfigError> {
        for (cert, key) in [
            (&self.cert_file, &self.key_file),
            (&self.peer_cert_file, &self.peer_key_file),
        ] {
            if cert.is_empty() != key.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "KeyFile and CertFile must both be present[key: {key}, cert: {cert}]"
                )));
            }
        }
        let client_tls = !self.cert_file.is_empty() || self.auto_tls;
        for u in self.listen_client_url_list()? {
            if matches!(u.scheme(), "https" | "unixs") && !client_tls {
                return Err(ConfigError::Invalid(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme",
                    url_display(&u)
                )));
            }
        }
        let peer_tls = !self.peer_cert_file.is_empty() || self.peer_auto_tls;
        for u in self.listen_peer_url_list()? {
            if u.scheme() == "https" && !peer_tls {
                return Err(ConfigError::Invalid(format!(
                    "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url {} with HTTPS scheme",
                    url_display(&u)
                )));
            }
        }
        Ok(())
    }

    /// Whether any flag asks for TLS: certificates, auto TLS, or a listen or advertise URL
    /// with a TLS scheme.
    pub fn tls_requested(&self) -> Result<bool, ConfigError> {
        let urls = [
            self.listen_client_url_list()?,
            self.advertise_client_url_list()?,
            self.listen_peer_url_list()?,
            self.initial_advertise_peer_url_list()?,
        ];
        Ok(!self.cert_file.is_empty()
            || !self.peer_cert_file.is_empty()
            || self.auto_tls
            || self.peer_auto_tls
            || urls
                .iter()
                .flatten()
                .any(|u| matches!(u.scheme(), "https" | "unixs")))
    }

    /// `--listen-client-urls`, parsed (schemes http/https/unix/unixs).
    pub fn listen_client_url_list(&self) -> Result<Vec<Url>, ConfigError> {
        parse_urls(
            "listen-client-urls",
            &self.listen_client_urls,
            CLIENT_URL_SCHEMES,
            true,
        )
    }

    /// `--advertise-client-urls`, parsed (schemes http/https/unix/unixs).
    pub fn advertise_client_url_list(&self) -> Result<Vec<Url>, ConfigError> {
        parse_urls(
            "advertise-client-urls",
            &self.advertise_client_urls,
            CLIENT_URL_SCHEMES,
            true,
        )
    }

    /// `--listen-peer-urls`, parsed (schemes http/https).
    pub fn listen_peer_url_list(&self) -> Result<Vec<Url>, ConfigError> {
        parse_urls(
            "listen-peer-urls",
            &self.listen_peer_urls,
            PEER_URL_SCHEMES,
            true,
        )
    }

    /// `--initial-advertise-peer-urls`, parsed (schemes http/https).
    pub fn initial_advertise_peer_url_list(&self) -> Result<Vec<Url>, ConfigError> {
        parse_urls(
            "initial-advertise-peer-urls",
            &self.initial_advertise_peer_urls,
            PEER_URL_SCHEMES,
            true,
        )
    }

    /// `--listen-metrics-urls`, parsed (empty list when unset).
    pub fn listen_metrics_url_list(&self) -> Result<Vec<Url>, ConfigError> {
        parse_urls(
            "listen-metrics-urls",
            &self.listen_metrics_urls,
            PEER_URL_SCHEMES,
            false,
        )
    }

    /// Socket addresses for `--listen-client-urls` (TCP URLs only).
    pub fn listen_client_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        socket_addrs(&self.listen_client_url_list()?)
    }

    /// Socket addresses for `--listen-peer-urls`.
    pub fn listen_peer_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        socket_addrs(&self.listen_peer_url_list()?)
    }

    /// `--initial-cluster`, parsed as `(name, peer URL)` pairs in order.
    pub fn initial_cluster_members(&self) -> Result<Vec<(String, Url)>, ConfigError> {
        parse_initial_cluster(&self.initial_cluster)
    }

    /// Data directory (after [`Config::validate`], never empty).
    pub fn data_dir_path(&self) -> PathBuf {
        if self.data_dir.is_empty() {
            PathBuf::from(format!("{}.etcd", self.name))
        } else {
            PathBuf::from(&self.data_dir)
        }
    }

    /// Dedicated WAL directory, if `--wal-dir` was set.
    pub fn wal_dir_path(&self) -> Option<PathBuf> {
        (!self.wal_dir.is_empty()).then(|| PathBuf::from(&self.wal_dir))
    }

    /// Heartbeat interval as a duration.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval)
    }

    /// Election timeout as a duration.
    pub fn election(&self) -> Duration {
        Duration::from_millis(self.election_timeout)
    }

    /// `--experimental-watch-progress-notify-interval`.
    pub fn progress_notify_interval(&self) -> Duration {
        self.experimental_watch_progress_notify_interval
    }

    /// Effective backend quota in bytes: `None` when disabled (negative value),
    /// 2 GiB when `--quota-backend-bytes` is 0.
    pub fn backend_quota_bytes(&self) -> Option<u64> {
        match self.quota_backend_bytes {
            q if q < 0 => None,
            0 => Some(DEFAULT_QUOTA_BACKEND_BYTES),
            q => Some(q as u64),
        }
    }

    /// Resolved auto compaction settings.
    pub fn auto_compaction(&self) -> Result<AutoCompaction, ConfigError> {
        parse_compaction_retention(self.auto_compaction_mode, &self.auto_compaction_retention)
    }
}

fn is_explicit(m: &ArgMatches, id: &str) -> bool {
    matches!(
        m.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

fn long_of<'a>(long_to_id: &'a HashMap<String, String>, id: &str) -> &'a str {
    long_to_id
        .iter()
        .find(|(_, v)| v.as_str() == id)
        .map(|(k, _)| k.as_str())
        .expect("every env-backed arg has a long name")
}

/// Rewrite Go-style single-dash long flags (`-name x`, `-name=x`) to `--name`.
fn normalize_go_flags(args: Vec<OsString>, long_to_id: &HashMap<String, String>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut done = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || done {
            out.push(a);
            continue;
        }
        let Some(s) = a.to_str() else {
            out.push(a);
            continue;
        };
        if s == "--" {
            done = true;
            out.push(a);
            continue;
        }
        if let Some(rest) = s.strip_prefix('-').filter(|r| !r.starts_with('-')) {
            let name = rest.split_once('=').map_or(rest, |(n, _)| n);
            if long_to_id.contains_key(name) || name == "help" || name == "version" {
                out.push(OsString::from(format!("-{s}")));
                continue;
            }
        }
        out.push(a);
    }
    out
}

/// Flatten etcd's YAML config into `(flag-name, value)` pairs understood by
/// the command-line parser.
fn yaml_to_flag_values(
    path: &Path,
    text: &str,
    long_to_id: &HashMap<String, String>,
    bool_flags: &HashSet<String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let perr = |message: String| ConfigError::ParseFile {
        path: path.to_owned(),
        message,
    };
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| perr(e.to_string()))?;
    let map = match doc {
        serde_yaml::Value::Null => return Ok(Vec::new()),
        serde_yaml::Value::Mapping(m) => m,
        _ => return Err(perr("top level must be a mapping".into())),
    };
    let mut out = Vec::new();
    let mut push = |flag: &str, v: &serde_yaml::Value| -> Result<(), ConfigError> {
        if let Some(s) = yaml_scalar(flag, v, bool_flags.contains(flag)).map_err(&perr)? {
            out.push((flag.to_owned(), s));
        }
        Ok(())
    };
    for (k, v) in &map {
        let Some(key) = k.as_str() else {
            return Err(perr(format!("non-string key {k:?}")));
        };
        match key {
            "client-transport-security" | "peer-transport-security" => {
                let peer = key == "peer-transport-security";
                let sub = match v {
                    serde_yaml::Value::Null => continue,
                    serde_yaml::Value::Mapping(m) => m,
                    _ => return Err(perr(format!("{key} must be a mapping"))),
                };
                for (k2, v2) in sub {
                    let Some(k2) = k2.as_str() else { continue };
                    let flag = match (peer, k2) {
                        (false, "cert-file") => "cert-file",
                        (false, "key-file") => "key-file",
                        (false, "client-cert-auth") => "client-cert-auth",
                        (false, "trusted-ca-file") => "trusted-ca-file",
                        (false, "auto-tls") => "auto-tls",
                        (false, "crl-file") => "client-crl-file",
                        (true, "cert-file") => "peer-cert-file",
                        (true, "key-file") => "peer-key-file",
                        (true, "client-cert-auth") => "peer-client-cert-auth",
                        (true, "trusted-ca-file") => "peer-trusted-ca-file",
                        (true, "auto-tls") => "peer-auto-tls",
                        (true, "crl-file") => "peer-crl-file",
                        (true, "allowed-cn") => "peer-cert-allowed-cn",
                        _ => continue, // unknown keys are ignored, like etcd
                    };
                    push(flag, v2)?;
                }
            }
            "config-file" => {}
            k if long_to_id.contains_key(k) => push(k, v)?,
            _ => {} // unknown keys are ignored, like etcd
        }
    }
    Ok(out)
}

fn yaml_scalar(flag: &str, v: &serde_yaml::Value, is_bool: bool) -> Result<Option<String>, String> {
    use serde_yaml::Value;
    Ok(match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => {
            if DURATION_FLAGS.contains(&flag) && (n.is_i64() || n.is_u64()) {
                Some(format!("{n}ns"))
            } else {
                Some(n.to_string())
            }
        }
        Value::String(s) => {
            // YAML 1.1 booleans, as accepted by etcd's YAML decoder.
            let s = if is_bool {
                match s.as_str() {
                    "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => "true".to_owned(),
                    "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" => "false".to_owned(),
                    _ => s.clone(),
                }
            } else {
                s.clone()
            };
            Some(s)
        }
        Value::Sequence(seq) => {
            let mut parts = Vec::new();
            for item in seq {
                if let Some(s) = yaml_scalar(flag, item, is_bool)? {
                    parts.push(s);
                }
            }
            Some(parts.join(","))
        }
        Value::Mapping(_) => return Err(format!("{flag} must be a scalar or a list")),
        Value::Tagged(t) => return yaml_scalar(flag, &t.value, is_bool),
    })
}

/// Go's `strconv.ParseBool`: `1 t T TRUE true True 0 f F FALSE false False`.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("parse error: invalid boolean {s:?}")),
    }
}

/// Parse a Go duration string (`"100ms"`, `"1h30m"`, `"1.5s"`, `"0"`).
/// Units: ns, us (µs, μs), ms, s, m, h. Negative durations are rejected.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let mut rest = s;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, r) = rest.split_at(int_len);
        rest = r;
        let mut frac_part = "";
        if let Some(r) = rest.strip_prefix('.') {
            let frac_len = r.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &r[..frac_len];
            rest = &r[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let (unit, r) = rest.split_at(unit_len);
        rest = r;
        let unit_ns: u128 = match unit {
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            other => return Err(format!("time: unknown unit {other:?} in duration {s:?}")),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = int.checked_mul(unit_ns).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            // Keep at most 18 fractional digits; finer precision is below 1ns anyway.
            let digits = &frac_part[..frac_part.len().min(18)];
            let frac: u128 = digits.parse().map_err(|_| invalid())?;
            value += frac * unit_ns / 10u128.pow(digits.len() as u32);
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i64::MAX as u128 {
            return Err(invalid());
        }
    }
    if negative && total != 0 {
        return Err(format!("negative duration {s:?} is not allowed"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// etcd's `parseCompactionRetention`: a bare non-negative integer means hours
/// (periodic) or revisions (revision); otherwise a Go duration (periodic only).
pub fn parse_compaction_retention(
    mode: AutoCompactionMode,
    retention: &str,
) -> Result<AutoCompaction, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidFlag {
        flag: "auto-compaction-retention".into(),
        value: retention.into(),
        reason,
    };
    if let Ok(n) = retention.parse::<u64>() {
        return Ok(match (n, mode) {
            (0, _) => AutoCompaction::Disabled,
            (n, AutoCompactionMode::Revision) => AutoCompaction::Revision(n),
            (n, AutoCompactionMode::Periodic) => AutoCompaction::Periodic(Duration::from_secs(
                n.checked_mul(3600)
                    .ok_or_else(|| invalid("too large".into()))?,
            )),
        });
    }
    match mode {
        AutoCompactionMode::Revision => Err(invalid(
            "revision mode expects a non-negative integer number of revisions".into(),
        )),
        AutoCompactionMode::Periodic => {
            let d = parse_go_duration(retention)
                .map_err(|e| invalid(format!("error parsing CompactionRetention: {e}")))?;
            Ok(if d.is_zero() {
                AutoCompaction::Disabled
            } else {
                AutoCompaction::Periodic(d)
            })
        }
    }
}

/// Parse one URL with etcd's `types.NewURLs` rules.
fn parse_one_url(flag: &str, raw: &str, schemes: &[&str]) -> Result<Url, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidFlag {
        flag: flag.into(),
        value: raw.into(),
        reason,
    };
    let u = Url::parse(raw).map_err(|e| invalid(format!("{e}: {raw}")))?;
    if !schemes.contains(&u.scheme()) {
        let list = match schemes.len() {
            1 => schemes[0].to_owned(),
            n => format!("{}, or {}", schemes[..n - 1].join(", "), schemes[n - 1]),
        };
        return Err(invalid(format!("URL scheme must be {list}: {raw}")));
    }
    if matches!(u.scheme(), "http" | "https") {
        let after = raw.split_once("://").map_or("", |(_, r)| r);
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let authority = &after[..end];
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let port = if hostport.starts_with('[') {
            hostport.split_once("]:").map(|(_, p)| p)
        } else {
            hostport.rsplit_once(':').map(|(_, p)| p)
        };
        if !port.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            return Err(invalid(format!(
                "URL address does not have the form \"host:port\": {raw}"
            )));
        }
        let path_end = after[end..]
            .find(['?', '#'])
            .map_or(after.len(), |i| end + i);
        if !after[end..path_end].is_empty() {
            return Err(invalid(format!("URL must not contain a path: {raw}")));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(invalid(format!("unexpected empty host ({raw})")));
        }
    }
    Ok(u)
}

/// A comma-separated URL list as members report it: entries trimmed, empty ones dropped,
/// without a trailing slash.
pub fn split_urls(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| u.trim_end_matches('/').to_string())
        .collect()
}

/// Parse a comma-separated URL list for `flag` (used in error messages),
/// allowing only `schemes`. An empty list is an error when `required`.
pub fn parse_urls(
    flag: &str,
    value: &str,
    schemes: &[&str],
    required: bool,
) -> Result<Vec<Url>, ConfigError> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return if required {
            Err(ConfigError::InvalidFlag {
                flag: flag.into(),
                value: value.into(),
                reason: "no valid URLs given".into(),
            })
        } else {
            Ok(Vec::new())
        };
    }
    items
        .into_iter()
        .map(|s| parse_one_url(flag, s, schemes))
        .collect()
}

/// Map TCP URLs to socket addresses: "localhost" is 127.0.0.1, IP literals are
/// used as they are; other host names are rejected like etcd does for bind
/// URLs ("expected IP in URL for binding"). unix/unixs URLs are rejected.
pub fn socket_addrs(urls: &[Url]) -> Result<Vec<SocketAddr>, ConfigError> {
    urls.iter()
        .map(|u| {
            if matches!(u.scheme(), "unix" | "unixs") {
                return Err(ConfigError::Invalid(format!(
                    "unix socket URL {} has no TCP socket address",
                    url_display(u)
                )));
            }
            let ip = match u.host() {
                Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
                Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
                Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                }
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "expected IP in URL for binding ({})",
                        url_display(u)
                    )));
                }
            };
            let port = u.port_or_known_default().ok_or_else(|| {
                ConfigError::Invalid(format!("missing port in URL ({})", url_display(u)))
            })?;
            Ok(SocketAddr::new(ip, port))
        })
        .collect()
}

fn check_bind_urls(urls: &[Url]) -> Result<(), ConfigError> {
    let tcp: Vec<Url> = urls
        .iter()
        .filter(|u| !matches!(u.scheme(), "unix" | "unixs"))
        .cloned()
        .collect();
    socket_addrs(&tcp).map(|_| ())
}

fn check_host_urls(urls: &[Url]) -> Result<(), ConfigError> {
    for u in urls {
        if matches!(u.scheme(), "http" | "https") && u.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::Invalid(format!(
                "unexpected empty host ({})",
                url_display(u)
            )));
        }
    }
    Ok(())
}

/// Parse `--initial-cluster` ("n1=http://a:2380,n2=http://b:2380") into
/// `(name, URL)` pairs in order; a name may appear several times (one entry per
/// peer URL), like etcd's `types.NewURLsMap`.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, Url)>, ConfigError> {
    let mut out = Vec::new();
    for entry in s.split(',') {
        if entry.is_empty() {
            continue;
        }
        let Some((name, url)) = entry.split_once('=') else {
            return Err(ConfigError::InvalidFlag {
                flag: "initial-cluster".into(),
                value: s.into(),
                reason: format!("entry {entry:?} is not of the form name=peer-url"),
            });
        };
        let url = parse_one_url("initial-cluster", url.trim(), PEER_URL_SCHEMES)?;
        out.push((name.to_owned(), url));
    }
    Ok(out)
}

/// etcd's `InitialClusterFromName`: "<name>=<url>" for each advertise peer URL.
fn initial_cluster_from_name(name: &str, apurls: &str) -> String {
    let n = if name.is_empty() { DEFAULT_NAME } else { name };
    apurls
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|u| format!("{n}={u}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A URL as etcd prints it (no trailing "/" for an empty path).
fn url_display(u: &Url) -> String {
    let s = u.as_str();
    if u.path() == "/" && u.query().is_none() && u.fragment().is_none() {
        s.trim_end_matches('/').to_owned()
    } else {
        s.to_owned()
    }
}

/// etcd's `URLsMap.String()`: sorted "name=url" pairs.
fn urls_map_string(members: &[(String, Url)]) -> String {
    let mut pairs: Vec<String> = members
        .iter()
        .map(|(n, u)| format!("{n}={}", url_display(u)))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// etcd's `advertiseMatchesCluster`.
fn advertise_matches_cluster(name: &str, apurls: &[Url], local: &[Url]) -> Result<(), ConfigError> {
    let set = |us: &[Url]| -> Vec<String> {
        let mut v: Vec<String> = us.iter().map(url_display).collect();
        v.sort();
        v.dedup();
        v
    };
    let (ap, init) = (set(apurls), set(local));
    if ap == init {
        return Ok(());
    }
    // Fall back to comparing resolved addresses (localhost == 127.0.0.1).
    let resolved = |us: &[Url]| -> Option<Vec<(String, SocketAddr)>> {
        let addrs = socket_addrs(us).ok()?;
        let mut v: Vec<(String, SocketAddr)> = us
            .iter()
            .map(|u| u.scheme().to_owned())
            .zip(addrs)
            .collect();
        v.sort();
        v.dedup();
        Some(v)
    };
    if let (Some(a), Some(b)) = (resolved(apurls), resolved(local))
        && a == b
    {
        return Ok(());
    }
    let ap_str = ap.join(",");
    let missing: Vec<String> = init
        .iter()
        .filter(|u| !ap.contains(u))
        .map(|u| format!("{name}={u}"))
        .collect();
    if !missing.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "--initial-cluster has {} but missing from --initial-advertise-peer-urls={ap_str}",
            missing.join(",")
        )));
    }
    let umap = ap
        .iter()
        .map(|u| format!("{name}={u}"))
        .collect::<Vec<_>>()
        .join(",");
    let missing: Vec<String> = ap.iter().filter(|u| !init.contains(u)).cloned().collect();
    if !missing.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "--initial-advertise-peer-urls has {} but missing from --initial-cluster={umap}",
            missing.join(",")
        )));
    }
    Err(ConfigError::Invalid(format!(
        "failed to resolve {ap_str} to match --initial-cluster={umap}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn load(args: &[&str]) -> Result<Config, ConfigError> {
        let mut v = vec!["oxcd"];
        v.extend_from_slice(args);
        Config::load_with_env(v, no_env)
    }

    fn load_env(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut v = vec!["oxcd"];
        v.extend_from_slice(args);
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(v, move |k| env.get(k).map(OsString::from))
    }

    fn err(args: &[&str]) -> String {
        load(args).unwrap_err().to_string()
    }

    fn yaml_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_match_etcd() {
        let c = load(&[]).unwrap();
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir, "default.etcd");
        assert_eq!(c.data_dir_path(), PathBuf::from("default.etcd"));
        assert_eq!(c.wal_dir_path(), None);
        assert_eq!(c.initial_cluster, "default=http://localhost:2380");
        assert_eq!(c.initial_cluster_state, ClusterState::New);
        assert_eq!(c.initial_cluster_token, "etcd-cluster");
        assert_eq!(
            c.listen_client_addrs().unwrap(),
            vec!["127.0.0.1:2379".parse().unwrap()]
        );
        assert_eq!(
            c.listen_peer_addrs().unwrap(),
            vec!["127.0.0.1:2380".parse().unwrap()]
        );
        assert_eq!(
            c.advertise_client_url_list().unwrap()[0].as_str(),
            "http://localhost:2379/"
        );
        assert_eq!(c.max_request_bytes, 1_572_864);
        assert_eq!(c.quota_backend_bytes, 0);
        assert_eq!(c.backend_quota_bytes(), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(c.auto_compaction_mode, AutoCompactionMode::Periodic);
        assert_eq!(c.auto_compaction().unwrap(), AutoCompaction::Disabled);
        assert_eq!(c.heartbeat(), Duration::from_millis(100));
        assert_eq!(c.election(), Duration::from_millis(1000));
        assert_eq!(c.snapshot_count, 100_000);
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.logger, "zap");
        assert_eq!(c.log_outputs, vec!["default"]);
        assert_eq!(c.listen_metrics_url_list().unwrap(), vec![]);
        assert_eq!(c.max_txn_ops, 128);
        assert_eq!(c.grpc_keepalive_min_time, Duration::from_secs(5));
        assert_eq!(c.grpc_keepalive_interval, Duration::from_secs(7200));
        assert_eq!(c.grpc_keepalive_timeout, Duration::from_secs(20));
        assert!(!c.enable_v2 && !c.auto_tls && !c.client_cert_auth && !c.force_new_cluster);
        assert!(c.strict_reconfig_check && c.pre_vote);
        assert_eq!(c.metrics, MetricsLevel::Basic);
        assert_eq!(
            c.experimental_watch_progress_notify_interval,
            Duration::from_secs(600)
        );
        assert_eq!((c.max_snapshots, c.max_wals), (5, 5));
        assert!(c.cipher_suites.is_empty());
        assert_eq!(c.config_file, None);
        let d = Config::default();
        assert_eq!(d.name, "default");
        assert_eq!(d.data_dir, "");
    }

    #[test]
    fn a_flag_given_twice_takes_its_last_value() {
        let c = load(&["--name", "a", "--name", "b"]).unwrap();
        assert_eq!(c.name, "b");
        let c = load(&["--snapshot-count", "5", "--snapshot-count=7"]).unwrap();
        assert_eq!(c.snapshot_count, 7);
        let c = load(&["--enable-v2=false", "--enable-v2"]).unwrap();
        assert!(c.enable_v2);
    }

    #[test]
    fn env_names_follow_etcd() {
        for arg in Config::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" || long == "version" {
                continue;
            }
            let expected = format!("ETCD_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(
                arg.get_env().map(|e| e.to_string_lossy().into_owned()),
                Some(expected),
                "{long}"
            );
        }
    }

    #[test]
    fn name_derives_data_dir_and_initial_cluster() {
        let c = load(&[
            "--name",
            "n1",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:12380",
        ])
        .unwrap();
        assert_eq!(c.data_dir, "n1.etcd");
        assert_eq!(c.initial_cluster, "n1=http://127.0.0.1:12380");
        let m = c.initial_cluster_members().unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, "n1");

        let c = load(&["--initial-cluster="]).unwrap();
        assert_eq!(c.initial_cluster, "default=http://localhost:2380");
    }

    #[test]
    fn flags_override_env() {
        let env = [
            ("ETCD_NAME", "from-env"),
            ("ETCD_DATA_DIR", "/env/dir"),
            ("ETCD_SNAPSHOT_COUNT", "42"),
            ("ETCD_ENABLE_V2", "true"),
            ("ETCD_LOG_LEVEL", "debug"),
            ("ETCD_WAL_DIR", ""), // empty: ignored, like etcd
        ];
        let c = load_env(&["--name=from-flag", "--log-level", "warn"], &env).unwrap();
        assert_eq!(c.name, "from-flag");
        assert_eq!(c.data_dir, "/env/dir");
        assert_eq!(c.snapshot_count, 42);
        assert!(c.enable_v2);
        assert_eq!(c.log_level, LogLevel::Warn);
        assert_eq!(c.wal_dir, "");
        // from-flag name with default initial cluster → derived.
        assert_eq!(c.initial_cluster, "from-flag=http://localhost:2380");

        let e = load_env(&[], &[("ETCD_HEARTBEAT_INTERVAL", "abc")]).unwrap_err();
        assert!(matches!(e, ConfigError::Args(_)), "{e}");
    }

    #[test]
    fn go_style_single_dash_flags() {
        let c = load(&["-name", "x", "-data-dir=/tmp/x", "-enable-v2"]).unwrap();
        assert_eq!(c.name, "x");
        assert_eq!(c.data_dir, "/tmp/x");
        assert!(c.enable_v2);
        assert!(load(&["-bogus-flag"]).is_err());
        assert!(load(&["--bogus-flag=1"]).is_err());
    }

    #[test]
    fn bool_forms() {
        assert!(load(&["--enable-v2"]).unwrap().enable_v2);
        assert!(load(&["--enable-v2=true"]).unwrap().enable_v2);
        assert!(!load(&["--enable-v2=false"]).unwrap().enable_v2);
        assert!(load(&["--enable-v2=1"]).unwrap().enable_v2);
        assert!(!load(&["--pre-vote=false"]).unwrap().pre_vote);
        assert!(
            !load(&["--strict-reconfig-check=F"])
                .unwrap()
                .strict_reconfig_check
        );
        let c = load(&["--force-new-cluster", "--name", "a"]).unwrap();
        assert!(c.force_new_cluster);
        assert_eq!(c.name, "a");
        assert!(load(&["--enable-v2=maybe"]).is_err());
        assert!(
            load_env(&[], &[("ETCD_ENABLE_V2", "true")])
                .unwrap()
                .enable_v2
        );
        assert!(
            !load_env(&[], &[("ETCD_PRE_VOTE", "false")])
                .unwrap()
                .pre_vote
        );
        assert!(
            !load_env(&["--enable-v2=false"], &[("ETCD_ENABLE_V2", "true")])
                .unwrap()
                .enable_v2
        );
    }

    #[test]
    fn durations() {
        let d = |s| parse_go_duration(s).unwrap();
        assert_eq!(d("100ms"), Duration::from_millis(100));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("5s"), Duration::from_secs(5));
        assert_eq!(d("10m"), Duration::from_secs(600));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d(".5s"), Duration::from_millis(500));
        assert_eq!(
            d("2h45m30.5s"),
            Duration::from_millis((2 * 3600 + 45 * 60 + 30) * 1000 + 500)
        );
        assert_eq!(d("10us"), Duration::from_micros(10));
        assert_eq!(d("10µs"), Duration::from_micros(10));
        assert_eq!(d("7ns"), Duration::from_nanos(7));
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(d("+3s"), Duration::from_secs(3));
        for bad in ["", "5", "1x", "s", "-1s", ".s", "1.2.3s", "100000000h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
        let c = load(&[
            "--grpc-keepalive-min-time=1s",
            "--experimental-watch-progress-notify-interval",
            "5s",
        ])
        .unwrap();
        assert_eq!(c.grpc_keepalive_min_time, Duration::from_secs(1));
        assert_eq!(
            c.experimental_watch_progress_notify_interval,
            Duration::from_secs(5)
        );
        assert!(load(&["--grpc-keepalive-timeout=20"]).is_err());
    }

    #[test]
    fn compaction_retention() {
        use AutoCompactionMode::*;
        let p = |m, s| parse_compaction_retention(m, s).unwrap();
        assert_eq!(p(Periodic, "0"), AutoCompaction::Disabled);
        assert_eq!(
            p(Periodic, "1"),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert_eq!(
            p(Periodic, "30m"),
            AutoCompaction::Periodic(Duration::from_secs(1800))
        );
        assert_eq!(
            p(Periodic, "1h"),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert_eq!(p(Revision, "1000"), AutoCompaction::Revision(1000));
        assert_eq!(p(Revision, "0"), AutoCompaction::Disabled);
        assert!(parse_compaction_retention(Revision, "1h").is_err());
        assert!(parse_compaction_retention(Periodic, "abc").is_err());
        let c = load(&[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=5",
        ])
        .unwrap();
        assert_eq!(c.auto_compaction().unwrap(), AutoCompaction::Revision(5));
        assert!(load(&["--auto-compaction-mode=hourly"]).is_err());
        assert!(err(&["--auto-compaction-retention=xyz"]).contains("auto-compaction-retention"));
    }

    #[test]
    fn initial_cluster_parsing() {
        let m =
            parse_initial_cluster("n1=http://a:2380,n2=http://b:2380,n1=http://c:2381").unwrap();
        let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["n1", "n2", "n1"]);
        assert_eq!(m[0].1.host_str(), Some("a"));
        assert_eq!(m[2].1.port(), Some(2381));
        assert!(parse_initial_cluster("").unwrap().is_empty());
        assert!(parse_initial_cluster("n1").is_err());
        assert!(parse_initial_cluster("n1=unix://x:1").is_err());
        assert!(parse_initial_cluster("n1=http://a").is_err());
        assert!(parse_initial_cluster("n1=http://a:2380/path").is_err());
    }

    #[test]
    fn url_validation_and_socket_addrs() {
        let u = parse_urls(
            "x",
            "http://127.0.0.1:1, https://[::1]:2,unix://localhost:3",
            CLIENT_URL_SCHEMES,
            true,
        )
        .unwrap();
        assert_eq!(u.len(), 3);
        assert_eq!(
            socket_addrs(&u[..2]).unwrap(),
            vec!["127.0.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap()]
        );
        assert!(socket_addrs(&u[2..]).is_err());
        let e = parse_urls("listen-peer-urls", "unix://a:1", PEER_URL_SCHEMES, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value \"unix://a:1\" for flag --listen-peer-urls: URL scheme must be http, or https: unix://a:1"
        );
        let e =
            parse_urls("listen-client-urls", "ftp://a:1", CLIENT_URL_SCHEMES, true).unwrap_err();
        assert!(
            e.to_string()
                .contains("URL scheme must be http, https, unix, or unixs"),
            "{e}"
        );
        assert!(
            parse_urls("x", "http://a", PEER_URL_SCHEMES, true)
                .unwrap_err()
                .to_string()
                .contains("does not have the form \"host:port\"")
        );
        assert!(parse_urls("x", "http://a:80", PEER_URL_SCHEMES, true).is_ok());
        assert!(parse_urls("x", "", PEER_URL_SCHEMES, true).is_err());
        let hosts = parse_urls("x", "http://example.com:1", PEER_URL_SCHEMES, true).unwrap();
        assert_eq!(
            socket_addrs(&hosts).unwrap_err().to_string(),
            "expected IP in URL for binding (http://example.com:1)"
        );
        assert_eq!(
            err(&[
                "--listen-client-urls=http://example.com:2379",
                "--advertise-client-urls=http://x:2379"
            ]),
            "expected IP in URL for binding (http://example.com:2379)"
        );
        assert_eq!(
            load(&[
                "--listen-client-urls=http://0.0.0.0:2379",
                "--advertise-client-urls=http://x:2379"
            ])
            .unwrap()
            .listen_client_addrs()
            .unwrap(),
            vec!["0.0.0.0:2379".parse().unwrap()]
        );
    }

    #[test]
    fn validation_messages() {
        assert_eq!(
            err(&["--election-timeout=400"]),
            "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]"
        );
        assert_eq!(
            err(&["--election-timeout=60000", "--heartbeat-interval=1000"]),
            "--election-timeout[60000ms] is too long, and should be set less than 50000ms"
        );
        assert_eq!(
            err(&["--heartbeat-interval=0"]),
            "--heartbeat-interval must be >0 (set to 0ms)"
        );
        assert!(load(&["--election-timeout=500"]).is_ok());
        assert_eq!(
            err(&[
                "--name",
                "x",
                "--initial-cluster",
                "y=http://localhost:2380"
            ]),
            "couldn't find local name \"x\" in the initial cluster configuration"
        );
        assert_eq!(
            err(&["--initial-cluster", "default=http://10.0.0.1:2380"]),
            "--initial-cluster has default=http://10.0.0.1:2380 but missing from --initial-advertise-peer-urls=http://localhost:2380"
        );
        assert_eq!(
            err(&["--initial-advertise-peer-urls=http://localhost:2380,http://10.0.0.2:2380",]),
            "--initial-advertise-peer-urls has http://10.0.0.2:2380 but missing from --initial-cluster=default=http://10.0.0.2:2380,default=http://localhost:2380"
        );
        // localhost and 127.0.0.1 match after resolution.
        assert!(load(&["--initial-cluster=default=http://127.0.0.1:2380"]).is_ok());
        // Joining an existing cluster does not require advertise URLs to match.
        assert!(
            load(&[
                "--initial-cluster-state=existing",
                "--initial-cluster=default=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
            ])
            .is_ok()
        );
        assert_eq!(
            err(&["--initial-cluster=default=http://localhost:2380,b=http://localhost:2380"]),
            "initial cluster b=http://localhost:2380,default=http://localhost:2380 has duplicate url"
        );
        assert!(Config::default().initial_cluster_state == "new");
        assert_eq!(ClusterState::Existing.to_string(), "existing");
        let e = err(&["--initial-cluster-state=bogus"]);
        assert!(e.contains("possible values: new, existing"), "{e}");
        let e = err(&["--log-level=verbose"]);
        assert!(e.contains("possible values"), "{e}");
        assert!(load(&["--log-level=DEBUG"]).is_ok());
        assert_eq!(
            err(&["--logger=capnslog"]),
            "--logger=capnslog is removed in v3.5"
        );
        assert_eq!(err(&["--logger=foo"]), "unknown logger option \"foo\"");
        assert_eq!(
            err(&["--max-request-bytes=0"]),
            "--max-request-bytes must be >0 (set to 0)"
        );
        assert_eq!(
            err(&["--listen-client-urls=http://127.0.0.1:2379"]),
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
        );
        assert!(load_env(&[], &[("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:2379")]).is_err());
        assert_eq!(
            err(&[
                "--listen-client-urls=https://127.0.0.1:2379",
                "--advertise-client-urls=https://127.0.0.1:2379"
            ]),
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"
        );
        assert!(
            load(&[
                "--listen-client-urls=https://127.0.0.1:2379",
                "--advertise-client-urls=https://127.0.0.1:2379",
                "--auto-tls"
            ])
            .is_ok()
        );
        assert_eq!(
            err(&["--cert-file=a.pem"]),
            "KeyFile and CertFile must both be present[key: , cert: a.pem]"
        );
        // Validation of a hand-built config is idempotent.
        let mut c = Config::default();
        c.validate().unwrap();
        c.validate().unwrap();
        assert_eq!(c.data_dir, "default.etcd");
    }

    #[test]
    fn config_file_fills_unset_values_only() {
        let f = yaml_file(
            r#"
name: 'file-name'
data-dir: /file/data
wal-dir: /file/wal
snapshot-count: 777
heartbeat-interval: 50
election-timeout: 500
listen-client-urls: http://127.0.0.1:3379
advertise-client-urls: http://127.0.0.1:3379
listen-peer-urls: http://127.0.0.1:3380
initial-advertise-peer-urls: http://127.0.0.1:3380
initial-cluster: file-name=http://127.0.0.1:3381,flag-name=http://127.0.0.1:3380
initial-cluster-state: 'existing'
initial-cluster-token: 'file-token'
auto-compaction-mode: periodic
auto-compaction-retention: "1"
enable-v2: true
log-level: debug
log-outputs: [stderr]
cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]
grpc-keepalive-min-time: 3000000000
experimental-watch-progress-notify-interval: 7s
strict-reconfig-check: false
unknown-key: ignored
client-transport-security:
  cert-file: /c.pem
  key-file: /k.pem
  client-cert-auth: true
  trusted-ca-file: /ca.pem
  auto-tls: false
peer-transport-security:
  cert-file: /pc.pem
  key-file: /pk.pem
  client-cert-auth: yes
  trusted-ca-file: /pca.pem
  auto-tls: false
"#,
        );
        let path = f.path().to_str().unwrap().to_owned();
        let c = load_env(
            &[
                "--config-file",
                &path,
                "--name=flag-name",
                "--snapshot-count=5",
            ],
            &[("ETCD_INITIAL_CLUSTER_TOKEN", "env-token")],
        )
        .unwrap();
        // flags win
        assert_eq!(c.name, "flag-name");
        assert_eq!(c.snapshot_count, 5);
        // env wins over file
        assert_eq!(c.initial_cluster_token, "env-token");
        // file fills the rest
        assert_eq!(c.data_dir, "/file/data");
        assert_eq!(c.wal_dir_path(), Some(PathBuf::from("/file/wal")));
        assert_eq!((c.heartbeat_interval, c.election_timeout), (50, 500));
        assert_eq!(
            c.listen_client_addrs().unwrap(),
            vec!["127.0.0.1:3379".parse().unwrap()]
        );
        assert_eq!(c.initial_cluster_state, ClusterState::Existing);
        assert_eq!(
            c.auto_compaction().unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert!(c.enable_v2);
        assert!(!c.strict_reconfig_check);
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.log_outputs, vec!["stderr"]);
        assert_eq!(c.cipher_suites.len(), 2);
        assert_eq!(c.grpc_keepalive_min_time, Duration::from_secs(3));
        assert_eq!(
            c.experimental_watch_progress_notify_interval,
            Duration::from_secs(7)
        );
        assert_eq!(
            (c.cert_file.as_str(), c.key_file.as_str()),
            ("/c.pem", "/k.pem")
        );
        assert!(c.client_cert_auth);
        assert_eq!(c.trusted_ca_file, "/ca.pem");
        assert_eq!(
            (c.peer_cert_file.as_str(), c.peer_key_file.as_str()),
            ("/pc.pem", "/pk.pem")
        );
        assert!(c.peer_client_cert_auth);
        assert_eq!(c.peer_trusted_ca_file, "/pca.pem");
        assert_eq!(c.config_file.as_deref(), Some(Path::new(&path)));

        // Env-provided config file path works too, and a flag still wins.
        let c = load_env(&["--heartbeat-interval=10"], &[("ETCD_CONFIG_FILE", &path)]).unwrap();
        assert_eq!(c.name, "file-name");
        assert_eq!(c.heartbeat_interval, 10);

        // listen-client-urls from the file does not require advertise (etcd file mode).
        let g = yaml_file("listen-client-urls: http://127.0.0.1:4379\n");
        let c = load(&["--config-file", g.path().to_str().unwrap()]).unwrap();
        assert_eq!(c.advertise_client_urls, "http://localhost:2379");
        // advertise from the file satisfies a listen flag.
        let g = yaml_file("advertise-client-urls: http://10.1.1.1:2379\n");
        assert!(
            load(&[
                "--config-file",
                g.path().to_str().unwrap(),
                "--listen-client-urls=http://0.0.0.0:2379"
            ])
            .is_ok()
        );
    }

    #[test]
    fn config_file_errors() {
        let e = load(&["--config-file", "/nonexistent/oxcd.yaml"]).unwrap_err();
        assert!(matches!(e, ConfigError::ReadFile { .. }), "{e}");
        let f = yaml_file("name: [unterminated\n");
        let e = load(&["--config-file", f.path().to_str().unwrap()]).unwrap_err();
        assert!(matches!(e, ConfigError::ParseFile { .. }), "{e}");
        let f = yaml_file("heartbeat-interval: fast\n");
        let e = load(&["--config-file", f.path().to_str().unwrap()]).unwrap_err();
        assert!(matches!(e, ConfigError::ParseFile { .. }), "{e}");
        assert!(e.to_string().contains("heartbeat-interval"), "{e}");
        let f = yaml_file("");
        assert!(load(&["--config-file", f.path().to_str().unwrap()]).is_ok());
    }

    #[test]
    fn help_and_version_are_clap_errors() {
        let e = load(&["--help"]).unwrap_err();
        let ConfigError::Args(e) = e else { panic!() };
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(e.to_string().contains("--initial-cluster-state"));
        let ConfigError::Args(e) = load(&["-version"]).unwrap_err() else {
            panic!()
        };
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);
    }
}
