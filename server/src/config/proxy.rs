//! etcd's "Proxy" flags: a process that holds no data and forwards the v2 HTTP API (and
//! whatever else arrives over HTTP/1.1) to a cluster's members. It runs with `--proxy on`
//! or `readonly`, or when `--discovery` finds the cluster full under
//! `--discovery-fallback proxy`.

use std::time::Duration;

use clap::{Args, ValueEnum};

/// The flags etcd's `--help` lists under "Proxy".
#[derive(Debug, Clone, Args)]
pub struct ProxyFlags {
    /// Proxy mode setting ('off', 'readonly' or 'on').
    #[arg(long = "proxy", env = "ETCD_PROXY", default_value = "off", value_enum)]
    pub proxy: ProxyMode,

    /// Time (in milliseconds) an endpoint will be held in a failed state.
    #[arg(
        long = "proxy-failure-wait",
        env = "ETCD_PROXY_FAILURE_WAIT",
        default_value = "5000"
    )]
    pub proxy_failure_wait: u64,

    /// Time (in milliseconds) of the endpoints refresh interval.
    #[arg(
        long = "proxy-refresh-interval",
        env = "ETCD_PROXY_REFRESH_INTERVAL",
        default_value = "30000"
    )]
    pub proxy_refresh_interval: u64,

    /// Time (in milliseconds) for a dial to timeout.
    #[arg(
        long = "proxy-dial-timeout",
        env = "ETCD_PROXY_DIAL_TIMEOUT",
        default_value = "1000"
    )]
    pub proxy_dial_timeout: u64,

    /// Time (in milliseconds) for a write to timeout.
    #[arg(
        long = "proxy-write-timeout",
        env = "ETCD_PROXY_WRITE_TIMEOUT",
        default_value = "5000"
    )]
    pub proxy_write_timeout: u64,

    /// Time (in milliseconds) for a read to timeout.
    #[arg(
        long = "proxy-read-timeout",
        env = "ETCD_PROXY_READ_TIMEOUT",
        default_value = "0"
    )]
    pub proxy_read_timeout: u64,
}

impl ProxyFlags {
    /// How long an endpoint that failed a request is left out (etcd's `--proxy-failure-wait`).
    pub fn failure_wait(&self) -> Duration {
        Duration::from_millis(self.proxy_failure_wait)
    }

    /// How often the members' client URLs are asked for again.
    pub fn refresh_interval(&self) -> Duration {
        Duration::from_millis(self.proxy_refresh_interval)
    }

    /// How long connecting to a member may take; 0: no limit.
    pub fn dial_timeout(&self) -> Option<Duration> {
        (self.proxy_dial_timeout > 0).then(|| Duration::from_millis(self.proxy_dial_timeout))
    }

    /// How long a member may take to answer (its headers); 0: no limit, as a long-poll
    /// (`wait=true`) may take as long as the watched key stays unchanged.
    pub fn read_timeout(&self) -> Option<Duration> {
        (self.proxy_read_timeout > 0).then(|| Duration::from_millis(self.proxy_read_timeout))
    }
}

/// `--proxy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyMode {
    /// A member, not a proxy.
    Off,
    /// A proxy that forwards GET requests only and answers 501 to the rest.
    Readonly,
    /// A proxy that forwards every request.
    On,
}
