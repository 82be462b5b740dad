//! A cluster of real `oxcd` processes on loopback for robustness runs, with the faults
//! the harness can inject into it.
//!
//! # Layout
//!
//! - [`binary`]: which server binary runs, and building it with fail points.
//! - [`member`]: one process: launch flags, kill -9, SIGSTOP/SIGCONT, restart.
//! - [`proxy`]: the TCP proxy of one directed peer link: pass, drop, blackhole, delay.
//! - [`cluster`]: members plus a proxy per directed link (each member dials its peers
//!   through them, see `OXCD_PEER_ROUTES` in the server's `raft::network`), and the
//!   cluster-level actions: isolate, partition, heal, wipe a member, move the leader,
//!   wait for a leader, check that members converged.

pub mod binary;
pub mod cluster;
pub mod member;
pub mod proxy;

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

pub use cluster::{Cluster, ClusterOptions};
pub use member::Member;
pub use proxy::{LinkMode, LinkProxy};

/// How often conditions are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `probe` until it yields a value or `timeout` passes.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(value)) = tokio::time::timeout_at(deadline, probe()).await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                waited: timeout,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Loopback ports held open until dropped, so that nothing else in this process (the
/// proxies) takes them before the members bind them. Another process still could.
pub struct PortReservation {
    listeners: Vec<std::net::TcpListener>,
}

impl PortReservation {
    pub fn new(count: usize) -> Result<Self> {
        let listeners = (0..count)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(PortReservation { listeners })
    }

    pub fn ports(&self) -> Result<Vec<u16>> {
        self.listeners
            .iter()
            .map(|listener| Ok(listener.local_addr()?.port()))
            .collect()
    }
}
