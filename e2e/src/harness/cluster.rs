//! A cluster of `oxcd` processes whose peer links all run through proxies the harness
//! controls, and the cluster-level faults and checks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use crate::error::{Error, Result};
use crate::harness::member::{Launch, Member};
use crate::harness::proxy::{LinkMode, LinkProxy};
use crate::harness::{PortReservation, binary, wait_until};

/// The variable the server reads its peer routes from (see `oxcd::raft::network`).
const PEER_ROUTES_VAR: &str = "OXCD_PEER_ROUTES";

/// How long one admin request may take before the harness counts it as failed.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);

/// How a cluster starts.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub size: usize,
    /// Server flags for every member.
    pub extra_args: Vec<String>,
    /// `FAILPOINTS` for some members' first start, by member index.
    pub failpoints: BTreeMap<usize, String>,
    /// How long to wait for the members to agree on a leader at start.
    pub ready_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            size: 3,
            extra_args: [
                "--experimental-watch-progress-notify-interval",
                "1s",
                // A snapshot every 50 entries and a log kept only 20 entries behind it:
                // members that were down a second or two catch up from a snapshot.
                "--snapshot-count",
                "50",
                "--experimental-snapshot-catchup-entries",
                "20",
            ]
            .map(String::from)
            .to_vec(),
            failpoints: BTreeMap::new(),
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// Members plus the proxy of every directed link between them.
pub struct Cluster {
    binary: PathBuf,
    pub members: Vec<Member>,
    /// `(from, to)` → the proxy `from` dials `to` through.
    links: BTreeMap<(usize, usize), LinkProxy>,
    /// Declared last: the members' data dirs go after the processes are killed.
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `options.size` members as a new cluster and waits for a leader.
    pub async fn start(options: ClusterOptions) -> Result<Cluster> {
        let binary = binary::server_binary().await?;
        let dir = tempfile::Builder::new().prefix("oxcd-cluster-").tempdir()?;
        let reservation = PortReservation::new(2 * options.size)?;
        let ports = reservation.ports()?;
        let peer_url = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
        let mut links = BTreeMap::new();
        for from in 0..options.size {
            for to in (0..options.size).filter(|&to| to != from) {
                let target = SocketAddr::from(([127, 0, 0, 1], ports[2 * to + 1]));
                links.insert((from, to), LinkProxy::start(target).await?);
            }
        }
        let initial_cluster = (0..options.size)
            .map(|i| format!("m{i}={}", peer_url(i)))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for i in 0..options.size {
            let routes = (0..options.size)
                .filter(|&to| to != i)
                .map(|to| format!("{}={}", peer_url(to), links[&(i, to)].url()))
                .collect::<Vec<_>>()
                .join(",");
            let launch = Launch {
                initial_cluster: initial_cluster.clone(),
                initial_state: "new",
                extra_args: options.extra_args.clone(),
                env: BTreeMap::from([(PEER_ROUTES_VAR.to_owned(), routes)]),
                failpoints: options.failpoints.get(&i).cloned(),
            };
            members.push(Member::new(
                i,
                dir.path(),
                ports[2 * i],
                ports[2 * i + 1],
                launch,
            ));
        }
        drop(reservation);
        let mut cluster = Cluster {
            binary,
            members,
            links,
            dir,
        };
        for member in &mut cluster.members {
            member.start(&cluster.binary)?;
        }
        cluster.wait_ready(options.ready_timeout).await?;
        Ok(cluster)
    }

    /// Where the members' data dirs and logs are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Every member's client URL, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// The indices of members that run and are not paused.
    pub fn live(&mut self) -> Vec<usize> {
        self.members
            .iter_mut()
            .filter_map(|m| (m.is_running() && !m.is_paused()).then_some(m.index))
            .collect()
    }

    /// Every member's log, by name.
    pub fn logs(&self) -> Vec<(String, String)> {
        self.members
            .iter()
            .map(|m| (m.name.clone(), m.log()))
            .collect()
    }

    /// A client of the given members only.
    pub async fn client_of(&self, members: &[usize]) -> Result<Client> {
        let endpoints: Vec<String> = members
            .iter()
            .map(|&i| self.members[i].endpoint())
            .collect();
        connect(&endpoints).await
    }

    /// Member `i`'s ID and the leader it knows of (0 for none).
    pub async fn status(&self, i: usize) -> Result<(u64, u64)> {
        let mut client = self.client_of(&[i]).await?;
        let status = timed(client.status()).await?;
        let id = status.header().map_or(0, |h| h.member_id());
        Ok((id, status.leader()))
    }

    /// The leader every live member agrees on, once they do.
    pub async fn leader(&mut self, timeout: Duration) -> Result<usize> {
        let live = self.live();
        self.leader_among(&live, timeout).await
    }

    /// The leader the given members agree on, once they do; it must be one of them.
    pub async fn leader_among(&self, members: &[usize], timeout: Duration) -> Result<usize> {
        wait_until(timeout, "members to agree on a leader", || {
            self.agreed_leader(members)
        })
        .await
    }

    async fn agreed_leader(&self, members: &[usize]) -> Option<usize> {
        let mut leaders = BTreeSet::new();
        let mut ids = BTreeMap::new();
        for &i in members {
            let (id, leader) = self.status(i).await.ok()?;
            ids.insert(id, i);
            leaders.insert(leader);
        }
        let leader = leaders.pop_first().filter(|_| leaders.is_empty())?;
        ids.get(&leader).copied()
    }

    /// Waits until the live members agree on a leader and each serves a linearizable read.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<usize> {
        let leader = match self.leader(timeout).await {
            Ok(leader) => leader,
            Err(e) => return Err(self.with_logs(e)),
        };
        let live = self.live();
        let this = &*self;
        wait_until(timeout, "every live member to serve reads", || async {
            for &i in &live {
                let mut client = this.client_of(&[i]).await.ok()?;
                timed(client.get("health", None)).await.ok()?;
            }
            Some(())
        })
        .await
        .map_err(|e| self.with_logs(e))?;
        Ok(leader)
    }

    /// Adds the members' log tails to a harness error, for the report.
    fn with_logs(&self, error: Error) -> Error {
        let tails: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                let log = m.log();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {} ---\n{}", m.name, tail.join("\n"))
            })
            .collect();
        Error::Cluster(format!("{error}\n{}", tails.join("\n")))
    }

    // Processes.

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts a member that is not running, with its data as it is.
    pub fn start_member(&mut self, i: usize) -> Result<()> {
        self.members[i].start(&self.binary)
    }

    /// kill -9 and start again.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.start_member(i)
    }

    /// kill -9, then start with `FAILPOINTS` set to `failpoints` (for this start only).
    pub fn restart_with_failpoints(&mut self, i: usize, failpoints: &str) -> Result<()> {
        self.kill(i);
        self.members[i].launch.failpoints = Some(failpoints.to_owned());
        self.start_member(i)
    }

    /// SIGSTOP.
    pub fn pause(&mut self, i: usize) -> Result<()> {
        self.members[i].pause(true)
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) -> Result<()> {
        self.members[i].pause(false)
    }

    /// Resumes paused members and starts stopped ones.
    pub fn revive_all(&mut self) -> Result<()> {
        for i in 0..self.size() {
            if self.members[i].is_paused() {
                self.resume(i)?;
            }
            if !self.members[i].is_running() {
                self.start_member(i)?;
            }
        }
        Ok(())
    }

    /// Replaces member `i` by a new member with an empty data dir at the same URLs:
    /// MemberRemove, delete its data, MemberAdd, start with `--initial-cluster-state
    /// existing`. Needs a quorum among the other members.
    pub async fn wipe(&mut self, i: usize) -> Result<()> {
        let others: Vec<usize> = self.live().into_iter().filter(|&j| j != i).collect();
        if others.is_empty() {
            return Err(Error::Cluster(format!("no member besides m{i} runs")));
        }
        let peer_url = self.members[i].peer_url();
        let client = self.client_of(&others).await?;
        let id = member_id_by_peer_url(&client, &peer_url).await?;
        remove_member(&client, id).await?;
        // A removed member stops by itself; one that missed its removal is killed.
        if self.members[i].is_running() {
            let stopped = self.members[i].wait_exit(Duration::from_secs(5)).await;
            if stopped.is_err() {
                self.kill(i);
            }
        }
        self.members[i].wipe_data()?;
        add_member(&client, &peer_url).await?;
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let member = &mut self.members[i];
        member.launch.initial_state = "existing";
        member.launch.initial_cluster = initial_cluster;
        self.start_member(i)?;
        let this = &*self;
        wait_until(
            Duration::from_secs(30),
            "the re-added member to serve",
            || async { this.status(i).await.ok().filter(|(_, leader)| *leader != 0) },
        )
        .await
        .map_err(|e| self.with_logs(e))?;
        Ok(())
    }

    /// Hands leadership to member `to` (Maintenance MoveLeader, sent to the leader).
    pub async fn move_leader(&mut self, to: usize) -> Result<()> {
        let leader = self.leader(Duration::from_secs(10)).await?;
        if leader == to {
            return Ok(());
        }
        let (target, _) = self.status(to).await?;
        let mut client = self.client_of(&[leader]).await?;
        timed(client.move_leader(target)).await?;
        Ok(())
    }

    /// Maintenance Defragment on member `i`.
    pub async fn defragment(&self, i: usize) -> Result<()> {
        let mut client = self.client_of(&[i]).await?;
        timed(client.defragment()).await?;
        Ok(())
    }

    // The network between members.

    /// Sets what the link `from` → `to` does.
    pub fn set_link(&self, from: usize, to: usize, mode: LinkMode) {
        if let Some(link) = self.links.get(&(from, to)) {
            link.set(mode);
        }
    }

    /// Cuts every link to and from member `i`.
    pub fn isolate(&self, i: usize, mode: LinkMode) {
        let rest: Vec<usize> = (0..self.size()).filter(|&j| j != i).collect();
        self.partition(&[i], &rest, mode);
    }

    /// Cuts every link between the two sets, both ways.
    pub fn partition(&self, a: &[usize], b: &[usize], mode: LinkMode) {
        for &x in a {
            for &y in b {
                self.set_link(x, y, mode);
                self.set_link(y, x, mode);
            }
        }
    }

    /// Every link passes again.
    pub fn heal(&self) {
        for link in self.links.values() {
            link.set(LinkMode::Pass);
        }
    }

    /// Waits until every member has applied the same revision and their key spaces hash
    /// alike (HashKV at that revision); returns the revision.
    pub async fn wait_converged(&mut self, timeout: Duration) -> Result<i64> {
        let all: Vec<usize> = (0..self.size()).collect();
        let this = &*self;
        let revision = wait_until(timeout, "every member to reach one revision", || async {
            let mut revisions = BTreeSet::new();
            for &i in &all {
                let mut client = this.client_of(&[i]).await.ok()?;
                let status = timed(client.status()).await.ok()?;
                revisions.insert(status.header()?.revision());
            }
            revisions.pop_first().filter(|_| revisions.is_empty())
        })
        .await?;
        let mut hashes = BTreeMap::new();
        for i in all {
            let mut client = self.client_of(&[i]).await?;
            let hash = timed(client.hash_kv(revision)).await?;
            hashes.insert(self.members[i].name.clone(), hash.hash());
        }
        if hashes.values().collect::<BTreeSet<_>>().len() > 1 {
            return Err(Error::Cluster(format!(
                "members diverged: HashKV at revision {revision}: {hashes:?}"
            )));
        }
        Ok(revision)
    }
}

/// Connects lazily to `endpoints`, with HTTP/2 keep-alives that notice a frozen member.
pub async fn connect(endpoints: &[String]) -> Result<Client> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    Ok(Client::connect(endpoints, Some(options)).await?)
}

/// Runs an admin request with the harness's timeout.
async fn timed<T>(
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(ADMIN_TIMEOUT, request).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Error::Timeout {
            what: "an admin request".into(),
            waited: ADMIN_TIMEOUT,
        }),
    }
}

async fn member_id_by_peer_url(client: &Client, peer_url: &str) -> Result<u64> {
    let what = format!("the member ID of {peer_url}");
    wait_until(Duration::from_secs(15), &what, || async {
        let members = timed(client.clone().member_list()).await.ok()?;
        members
            .members()
            .iter()
            .find(|m| m.peer_urls().iter().any(|u| u == peer_url))
            .map(|m| m.id())
    })
    .await
}

/// MemberRemove, retried until it succeeds or the member is gone.
async fn remove_member(client: &Client, id: u64) -> Result<()> {
    wait_until(Duration::from_secs(30), "MemberRemove", || async {
        match timed(client.clone().member_remove(id)).await {
            Ok(_) => Some(()),
            Err(_) => {
                let members = timed(client.clone().member_list()).await.ok()?;
                members.members().iter().all(|m| m.id() != id).then_some(())
            }
        }
    })
    .await
}

/// MemberAdd of a voter, retried until it succeeds or the URL is a member.
async fn add_member(client: &Client, peer_url: &str) -> Result<()> {
    wait_until(Duration::from_secs(30), "MemberAdd", || async {
        match timed(client.clone().member_add([peer_url], None)).await {
            Ok(_) => Some(()),
            Err(_) => {
                let members = timed(client.clone().member_list()).await.ok()?;
                let added = members
                    .members()
                    .iter()
                    .any(|m| m.peer_urls().iter().any(|u| u == peer_url));
                added.then_some(())
            }
        }
    })
    .await
}
