//! The connections a run shares among its clients: `--conns` gRPC connections to the
//! `--target` endpoints, handed out round-robin.

use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

use super::cli::{Common, Target};
use crate::error::Error;

/// How long to look for a leader before giving up (an election may be under way).
const LEADER_DEADLINE: Duration = Duration::from_secs(15);

/// `--conns` connections; each [`Client`] owns one HTTP/2 connection, and its clones share it.
pub struct Pool {
    clients: Vec<Client>,
    /// The endpoints the connections go to, for the summary.
    pub endpoints: Vec<String>,
}

impl Pool {
    pub async fn connect(common: &Common) -> Result<Pool, Error> {
        let endpoints = match common.target {
            Target::All => common.endpoints.clone(),
            Target::Leader => vec![find_leader(&common.endpoints).await?],
        };
        let mut clients = Vec::with_capacity(common.conns.max(1));
        for i in 0..common.conns.max(1) {
            clients.push(connect(&endpoints[i % endpoints.len()]).await?);
        }
        Ok(Pool { clients, endpoints })
    }

    /// The connection for client (or stream) `i`.
    pub fn client(&self, i: usize) -> Client {
        self.clients[i % self.clients.len()].clone()
    }

    pub fn conns(&self) -> usize {
        self.clients.len()
    }
}

async fn connect(endpoint: &str) -> Result<Client, Error> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10));
    Ok(Client::connect([endpoint], Some(options)).await?)
}

/// The endpoint whose member is the leader, asking each member for its status.
async fn find_leader(endpoints: &[String]) -> Result<String, Error> {
    let deadline = Instant::now() + LEADER_DEADLINE;
    loop {
        for endpoint in endpoints {
            let Ok(mut client) = connect(endpoint).await else {
                continue;
            };
            let Ok(status) = client.status().await else {
                continue;
            };
            let member = status.header().map(|h| h.member_id());
            if status.leader() != 0 && member == Some(status.leader()) {
                return Ok(endpoint.clone());
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Cluster(format!(
                "no member of {} reports itself as leader",
                endpoints.join(",")
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
