//! etcd's "Logging" flags: logger, outputs and level.

use clap::{Args, ValueEnum};

/// The flags etcd's `--help` lists under "Logging".
#[derive(Debug, Clone, Args)]
pub struct LoggingFlags {
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
