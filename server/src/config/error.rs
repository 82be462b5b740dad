//! Errors from loading or validating the configuration, with etcd's wording.

use std::path::PathBuf;

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
