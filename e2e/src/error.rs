//! The errors of the harness, traffic and scenario code: the one error type of this crate.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("etcd client: {0}")]
    Client(#[from] etcd_client::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A condition the harness waited for did not come about in time.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout { what: String, waited: Duration },
    /// The server binary could not be found or built.
    #[error("oxcd binary: {0}")]
    Binary(String),
    /// The cluster is not in a state the requested action needs.
    #[error("cluster: {0}")]
    Cluster(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
