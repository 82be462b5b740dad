//! etcd's "Profiling and Monitoring" flags: pprof, metrics detail and metrics listeners.

use clap::{ArgAction, Args, ValueEnum};

use super::go_syntax::parse_go_bool;

/// The flags etcd's `--help` lists under "Profiling and Monitoring".
#[derive(Debug, Clone, Args)]
pub struct MonitoringFlags {
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
}

/// `--metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricsLevel {
    Basic,
    Extensive,
}
