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
//!
//! # Layout
//! - one file per group of etcd's `--help`, each a struct flattened into [`Config`]:
//!   `member`, `clustering`, `security`, `auth`, `logging`, `monitoring` (etcd's
//!   "Profiling and Monitoring"), `proxy`, `unsafe_features` and `experimental`;
//! - `load`: command line and `ETCD_*` variables, and the merge with the config file;
//! - `file`: the YAML config file, read into flag values;
//! - `go_syntax`: bools, durations and compaction retention as Go's flag package reads them;
//! - `urls`: URL lists, bind addresses and `--initial-cluster`;
//! - `validate`: derived defaults and etcd's consistency checks;
//! - `error`: [`ConfigError`];
//! - `tests`: helpers for every file's tests, and tests of the flag set as a whole.

mod auth;
mod clustering;
mod error;
mod experimental;
mod file;
mod go_syntax;
mod load;
mod logging;
mod member;
mod monitoring;
mod proxy;
mod security;
mod unsafe_features;
mod urls;
mod validate;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

pub use auth::AuthFlags;
pub use clustering::{AutoCompactionMode, ClusterState, ClusteringFlags, DEFAULT_INITIAL_CLUSTER};
pub use error::ConfigError;
pub use experimental::ExperimentalFlags;
pub use go_syntax::{AutoCompaction, parse_compaction_retention, parse_go_bool, parse_go_duration};
pub use logging::{LogLevel, LoggingFlags};
pub use member::{DEFAULT_NAME, DEFAULT_QUOTA_BACKEND_BYTES, MemberFlags};
pub use monitoring::{MetricsLevel, MonitoringFlags};
pub use proxy::{ProxyFlags, ProxyMode};
pub use security::SecurityFlags;
pub use unsafe_features::UnsafeFlags;
pub use urls::{
    CLIENT_URL_SCHEMES, PEER_URL_SCHEMES, initial_cluster_from_name, parse_initial_cluster,
    parse_urls, socket_addrs, split_urls,
};
pub use validate::MAX_ELECTION_MS;

/// The server configuration (etcd 3.5 flags).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "oxcd",
    version,
    // Go's flag package, which etcd uses: a flag given twice takes its last value.
    args_override_self = true,
    about = "oxcd: a key-value store server compatible with etcd's v3 API and flags"
)]
// The groups are flattened: every flag keeps its own name, `ETCD_*` variable and arg id
// (the field name), so the command line, the environment and the config file address a
// flag without knowing its group. Their order is the order of `--help`.
pub struct Config {
    #[command(flatten)]
    pub member: MemberFlags,
    #[command(flatten)]
    pub clustering: ClusteringFlags,
    #[command(flatten)]
    pub proxy: ProxyFlags,
    #[command(flatten)]
    pub security: SecurityFlags,
    #[command(flatten)]
    pub auth: AuthFlags,
    #[command(flatten)]
    pub logging: LoggingFlags,
    #[command(flatten)]
    pub monitoring: MonitoringFlags,
    #[command(flatten)]
    pub unsafe_features: UnsafeFlags,
    #[command(flatten)]
    pub experimental: ExperimentalFlags,

    /// Path to the server configuration file (YAML). Values from flags and ETCD_* variables take precedence over it.
    #[arg(long = "config-file", env = "ETCD_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// Set by [`Config::load`] when `--listen-client-urls` was given explicitly
    /// (flag or env) but `--advertise-client-urls` was not given anywhere;
    /// etcd then refuses to start.
    #[arg(skip)]
    advertise_client_urls_missing: bool,
}

impl Config {
    /// Data directory (after [`Config::validate`], never empty).
    pub fn data_dir_path(&self) -> PathBuf {
        if self.member.data_dir.is_empty() {
            PathBuf::from(format!("{}.etcd", self.member.name))
        } else {
            PathBuf::from(&self.member.data_dir)
        }
    }

    /// Dedicated WAL directory, if `--wal-dir` was set.
    pub fn wal_dir_path(&self) -> Option<PathBuf> {
        (!self.member.wal_dir.is_empty()).then(|| PathBuf::from(&self.member.wal_dir))
    }

    /// Heartbeat interval as a duration.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.member.heartbeat_interval)
    }

    /// Election timeout as a duration.
    pub fn election(&self) -> Duration {
        Duration::from_millis(self.member.election_timeout)
    }

    /// `--experimental-watch-progress-notify-interval`.
    pub fn progress_notify_interval(&self) -> Duration {
        self.experimental
            .experimental_watch_progress_notify_interval
    }

    /// Effective backend quota in bytes: `None` when disabled (negative value),
    /// 2 GiB when `--quota-backend-bytes` is 0.
    pub fn backend_quota_bytes(&self) -> Option<u64> {
        match self.member.quota_backend_bytes {
            q if q < 0 => None,
            0 => Some(DEFAULT_QUOTA_BACKEND_BYTES),
            q => Some(q as u64),
        }
    }

    /// Resolved auto compaction settings.
    pub fn auto_compaction(&self) -> Result<AutoCompaction, ConfigError> {
        parse_compaction_retention(
            self.clustering.auto_compaction_mode,
            &self.clustering.auto_compaction_retention,
        )
    }
}
