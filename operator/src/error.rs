//! The operator's one error type.

/// What can stop a reconcile pass. Each is retried with backoff; none ends the process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cluster API: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("no member of the cluster answers: {0}")]
    Unreachable(String),
    #[error("invalid EtcdCluster: {0}")]
    Invalid(String),
    /// A crash point armed by a test fired: the pass stops as if the process had died here.
    #[error("crash point after {0}")]
    Crash(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
