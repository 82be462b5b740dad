//! The errors of the harness, traffic and scenario code: the one error type of this crate.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("etcd client: {0}")]
    Client(#[from] etcd_client::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A member process could not be started, signalled or waited for, or a condition the
    /// harness waited for did not come about in time (see oxcd-testkit).
    #[error(transparent)]
    Process(#[from] oxcd_testkit::Error),
    /// The cluster is not in a state the requested action needs.
    #[error("cluster: {0}")]
    Cluster(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
