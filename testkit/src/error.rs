//! Why a member could not be started, stopped or waited for: the one error type of this crate.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("etcd client: {0}")]
    Client(#[from] etcd_client::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A condition the caller waited for did not come about in time.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout { what: String, waited: Duration },
    /// The server binary could not be found or built.
    #[error("oxcd binary: {0}")]
    Binary(String),
    /// A member is not in the state an action needs (not running, a signal refused).
    #[error("member: {0}")]
    Member(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
