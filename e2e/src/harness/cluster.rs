//! A cluster of `oxcd` processes whose peer links all run through proxies the harness
//! controls, and the cluster-level faults and checks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use etcd_client::Client;
use oxcd_testkit::client::timed;
use oxcd_testkit::cluster::initial_cluster;
use oxcd_testkit::{Member, binary, wait_until};

use crate::error::{Error, Result};
use crate::harness::proxy::{LinkMode, LinkProxy};

/// The variable the server reads its peer routes from (see `oxcd::raft::network`).
const PEER_ROUTES_VAR: &str = "OXCD_PEER_ROUTES";

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
    /// The member processes, their data dirs and logs (oxcd-testkit).
    processes: oxcd_testkit::Cluster,
    /// `(from, to)` → the proxy `from` dials `to` through.
    links: BTreeMap<(usize, usize), LinkProxy>,
}

impl Cluster {
    /// Starts `options.size` members as a new cluster and waits for a leader.
    pub async fn start(options: ClusterOptions) -> Result<Cluster> {
        let binary = tokio::task::spawn_blocking(binary::oxcd_failpoints)
            .await
            .map_err(|e| Error::Cluster(format!("build task failed: {e}")))??;
        let mut processes = oxcd_testkit::Cluster::new(binary, options.size, &options.extra_args)?;
        let peer_url = |i: usize| processes.members[i].peer_url();
        let mut links = BTreeMap::new();
        for from in 0..options.size {
            for to in (0..options.size).filter(|&to| to != from) {
                let target = SocketAddr::from(([127, 0, 0, 1], processes.members[to].peer_port));
                links.insert((from, to), LinkProxy::start(target).await?);
            }
        }
        let routes: Vec<String> = (0..options.size)
            .map(|i| {
                (0..options.size)
                    .filter(|&to| to != i)
                    .map(|to| format!("{}={}", peer_url(to), links[&(i, to)].url()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        for (i, (member, routes)) in processes.members.iter_mut().zip(routes).enumerate() {
            member.launch.env.insert(PEER_ROUTES_VAR.to_owned(), routes);
            member.launch.failpoints = options.failpoints.get(&i).cloned();
        }
        processes.spawn_all()?;
        let mut cluster = Cluster { processes, links };
        cluster.wait_ready(options.ready_timeout).await?;
        Ok(cluster)
    }

    /// Where the members' data dirs and logs are.
    pub fn dir(&self) -> &Path {
        self.processes.dir()
    }

    pub fn size(&self) -> usize {
        self.processes.size()
    }

    /// Member `i`: its process, ports, data dir and log.
    pub fn member(&mut self, i: usize) -> &mut Member {
        &mut self.processes.members[i]
    }

    /// Every member's client URL, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.processes
            .members
            .iter()
            .map(Member::endpoint)
            .collect()
    }

    /// The indices of members that run and are not paused.
    pub fn live(&mut self) -> Vec<usize> {
        self.processes.live()
    }

    /// Every member's log, by name.
    pub fn logs(&self) -> Vec<(String, String)> {
        self.processes.logs()
    }

    /// A client of the given members only.
    pub async fn client_of(&self, members: &[usize]) -> Result<Client> {
        Ok(self.processes.client_of(members).await?)
    }

    /// Member `i`'s ID and the leader it knows of (0 for none).
    pub async fn status(&self, i: usize) -> Result<(u64, u64)> {
        Ok(self.processes.status(i).await?)
    }

    /// The leader every live member agrees on, once they do.
    pub async fn leader(&mut self, timeout: Duration) -> Result<usize> {
        let live = self.live();
        self.leader_among(&live, timeout).await
    }

    /// The leader the given members agree on, once they do; it must be one of them.
    pub async fn leader_among(&self, members: &[usize], timeout: Duration) -> Result<usize> {
        Ok(self.processes.leader_among(members, timeout).await?)
    }

    /// Waits until the live members agree on a leader and each serves a linearizable read.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<usize> {
        let leader = match self.leader(timeout).await {
            Ok(leader) => leader,
            Err(e) => return Err(self.with_logs(e)),
        };
        let live = self.live();
        let this = &*self;
        let served = wait_until(timeout, "every live member to serve reads", || async {
            for &i in &live {
                let mut client = this.client_of(&[i]).await.ok()?;
                timed(client.get("health", None)).await.ok()?;
            }
            Some(())
        })
        .await;
        served.map_err(|e| self.with_logs(e.into()))?;
        Ok(leader)
    }

    /// Adds the members' log tails to a harness error, for the report.
    fn with_logs(&mut self, error: Error) -> Error {
        Error::Cluster(format!("{error}\n{}", self.processes.log_tails(15)))
    }

    // Processes.

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        self.member(i).kill9();
    }

    /// Starts a member that is not running, with its data as it is.
    pub fn start_member(&mut self, i: usize) -> Result<()> {
        Ok(self.member(i).spawn()?)
    }

    /// kill -9 and start again.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.start_member(i)
    }

    /// kill -9, then start with `FAILPOINTS` set to `failpoints` (for this start only).
    pub fn restart_with_failpoints(&mut self, i: usize, failpoints: &str) -> Result<()> {
        self.kill(i);
        self.member(i).launch.failpoints = Some(failpoints.to_owned());
        self.start_member(i)
    }

    /// SIGSTOP.
    pub fn pause(&mut self, i: usize) -> Result<()> {
        Ok(self.member(i).set_paused(true)?)
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) -> Result<()> {
        Ok(self.member(i).set_paused(false)?)
    }

    /// Resumes paused members and starts stopped ones.
    pub fn revive_all(&mut self) -> Result<()> {
        for i in 0..self.size() {
            if self.member(i).is_paused() {
                self.resume(i)?;
            }
            if !self.member(i).is_running() {
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
        let peer_url = self.member(i).peer_url();
        let client = self.client_of(&others).await?;
        let id = member_id_by_peer_url(&client, &peer_url).await?;
        remove_member(&client, id).await?;
        // A removed member stops by itself; one that missed its removal is killed.
        if self.member(i).is_running() {
            let stopped = self.member(i).exited_within(Duration::from_secs(5)).await;
            if stopped.is_none() {
                self.kill(i);
            }
        }
        self.member(i).wipe_data()?;
        add_member(&client, &peer_url).await?;
        let initial_cluster = initial_cluster(&self.processes.members);
        let member = self.member(i);
        member.launch.initial_state = "existing";
        member.launch.initial_cluster = initial_cluster;
        self.start_member(i)?;
        let this = &*self;
        let served = wait_until(
            Duration::from_secs(30),
            "the re-added member to serve",
            || async { this.status(i).await.ok().filter(|(_, leader)| *leader != 0) },
        )
        .await;
        served.map_err(|e| self.with_logs(e.into()))?;
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
            hashes.insert(self.processes.members[i].name.clone(), hash.hash());
        }
        if hashes.values().collect::<BTreeSet<_>>().len() > 1 {
            return Err(Error::Cluster(format!(
                "members diverged: HashKV at revision {revision}: {hashes:?}"
            )));
        }
        Ok(revision)
    }
}

async fn member_id_by_peer_url(client: &Client, peer_url: &str) -> oxcd_testkit::Result<u64> {
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
async fn remove_member(client: &Client, id: u64) -> oxcd_testkit::Result<()> {
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
async fn add_member(client: &Client, peer_url: &str) -> oxcd_testkit::Result<()> {
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
