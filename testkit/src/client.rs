//! Clients of members, and admin requests with a timeout.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use crate::error::{Error, Result};

/// How long one admin request (Status, MemberList, ...) may take before it counts as failed.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects lazily to `endpoints`, with HTTP/2 keep-alives that notice a frozen member.
pub async fn connect(endpoints: &[String]) -> Result<Client> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    Ok(Client::connect(endpoints, Some(options)).await?)
}

/// Runs an admin request, failing it after [`ADMIN_TIMEOUT`].
pub async fn timed<T>(request: impl Future<Output = Result<T, etcd_client::Error>>) -> Result<T> {
    match tokio::time::timeout(ADMIN_TIMEOUT, request).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Error::Timeout {
            what: "an admin request".into(),
            waited: ADMIN_TIMEOUT,
        }),
    }
}
