//! Why a run could not start or finish: the one error type of the load generator. Failed
//! requests are not errors here; they are counted in the run's summary.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("etcd client: {0}")]
    Client(#[from] etcd_client::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// No HTTP/2 connection could be opened to an endpoint.
    #[error("connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    /// The cluster is not in a state the run needs (no leader, a watch refused).
    #[error("cluster: {0}")]
    Cluster(String),
}
