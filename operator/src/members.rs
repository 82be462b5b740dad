//! The cluster's own API, over the etcd-client crate: who the members are, how each one is
//! doing, and the membership calls the operator makes (add a learner, promote, remove, move
//! the leader).

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, MemberAddOptions, TlsOptions,
};

use crate::error::{Error, Result};

/// A request that takes longer than this counts as unanswered: a member that cannot answer
/// within it is not one to build on.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The key the read barrier before a member list counts (nothing is read).
const BARRIER_KEY: &[u8] = b"\0";

/// One entry of the member list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedMember {
    pub id: u64,
    /// Empty until the member has started and published it.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub learner: bool,
}

/// A member's answer to Status.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberHealth {
    pub member_id: u64,
    pub leader_id: u64,
    pub applied_index: u64,
    pub version: String,
    pub db_size: i64,
    /// The revision of its store.
    pub revision: i64,
    /// Alarms or errors the member reports (`errors` of the Status response).
    pub errors: Vec<String>,
}

/// The cluster as seen through its API in one look.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub cluster_id: Option<u64>,
    pub members: Vec<ListedMember>,
    /// The list came after a linearizable read on the member that gave it: it holds every
    /// committed change. A list without that (no quorum) may be stale, and is only good for
    /// restarting members, never for removing anything.
    pub confirmed: bool,
    /// By client URL: the members that answered Status.
    pub health: BTreeMap<String, MemberHealth>,
}

/// How the operator reaches members: plain, or over TLS with the CA it trusts and the
/// client certificate it presents (members that check client certificates admit it).
#[derive(Debug, Clone, Default)]
pub struct Access {
    tls: Option<ClientTls>,
    /// A user and password, used once the cluster has auth enabled.
    credentials: Option<(String, String)>,
}

/// PEM: the CA (or bundle) that signs the members' certificates, and a client identity.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Access {
    pub fn plain() -> Access {
        Access::default()
    }

    pub fn tls(tls: ClientTls) -> Access {
        Access {
            tls: Some(tls),
            credentials: None,
        }
    }

    /// Authenticates as `user` where the cluster has auth enabled.
    pub fn with_credentials(mut self, user: &str, password: &str) -> Access {
        self.credentials = Some((user.to_string(), password.to_string()));
        self
    }

    /// A client over `endpoints`, each request bounded by `timeout`: authenticated with
    /// the credentials if there are any and the cluster has auth enabled.
    pub async fn connect(&self, endpoints: &[String], timeout: Duration) -> Result<Client> {
        let Some((user, password)) = &self.credentials else {
            return Ok(Client::connect(endpoints, Some(self.options(timeout))).await?);
        };
        let options = self.options(timeout).with_user(user, password);
        match Client::connect(endpoints, Some(options)).await {
            // Before auth is enabled, or on a learner (which authenticates no one but
            // answers Status to anyone): no user.
            Err(e)
                if ["authentication is not enabled", "not supported for learner"]
                    .iter()
                    .any(|why| e.to_string().contains(why)) =>
            {
                Ok(Client::connect(endpoints, Some(self.options(timeout))).await?)
            }
            other => Ok(other?),
        }
    }

    fn options(&self, timeout: Duration) -> ConnectOptions {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(timeout);
        if let Some(tls) = &self.tls {
            let identity = Identity::from_pem(&tls.cert_pem, &tls.key_pem);
            options = options.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                    .identity(identity),
            );
        }
        options
    }
}

/// The user auth is enabled with.
pub const ROOT: &str = "root";

/// Enables auth with the user `root` (role `root`) and `password`: etcdctl's `user add` and
/// `auth enable`. Each step that was already done is taken as done.
pub async fn enable_auth(access: &Access, endpoints: &[String], password: &str) -> Result<()> {
    let mut client = connect(access, endpoints).await?;
    let done = |e: &etcd_client::Error| {
        let text = e.to_string();
        text.contains("already exists") || text.contains("already granted")
    };
    if let Err(e) = client.user_add(ROOT, password, None).await
        && !done(&e)
    {
        return Err(e.into());
    }
    if let Err(e) = client.role_add(ROOT).await
        && !done(&e)
    {
        return Err(e.into());
    }
    if let Err(e) = client.user_grant_role(ROOT, ROOT).await
        && !done(&e)
    {
        return Err(e.into());
    }
    client.auth_enable().await?;
    Ok(())
}

async fn connect(access: &Access, endpoints: &[String]) -> Result<Client> {
    access.connect(endpoints, REQUEST_TIMEOUT).await
}

/// Looks at the cluster through `endpoints` (member client URLs): the member list from the
/// first that answers, then Status from every endpoint and every listed client URL. What no
/// member answers is missing from the view.
pub async fn observe(access: &Access, endpoints: &[String]) -> ClusterView {
    let mut view = ClusterView::default();
    // A member that has just restarted lists the members it had applied, which may miss
    // later changes until it hears from the leader; a member listed as gone would have its
    // pod and volume deleted. A linearizable read first brings the member up to the leader's
    // commit (etcd-client cannot ask for etcd 3.5's linearizable MemberList). Without a
    // quorum no member can, and the list any member gives is kept as unconfirmed.
    for confirm in [true, false] {
        for endpoint in endpoints {
            if let Some(list) = member_list(access, endpoint, confirm).await {
                view.cluster_id = list.header().map(|h| h.cluster_id());
                view.members = list
                    .members()
                    .iter()
                    .map(|m| ListedMember {
                        id: m.id(),
                        name: m.name().to_string(),
                        peer_urls: m.peer_urls().to_vec(),
                        client_urls: m.client_urls().to_vec(),
                        learner: m.is_learner(),
                    })
                    .collect();
                view.confirmed = confirm;
                break;
            }
        }
        if !view.members.is_empty() {
            break;
        }
    }
    let mut urls: Vec<String> = endpoints.to_vec();
    urls.extend(
        view.members
            .iter()
            .flat_map(|m| m.client_urls.iter().cloned()),
    );
    urls.sort();
    urls.dedup();
    let answers = futures::future::join_all(urls.iter().map(|u| status(access, u))).await;
    for (url, answer) in urls.into_iter().zip(answers) {
        if let Ok(health) = answer {
            view.health.insert(url, health);
        }
    }
    view
}

/// The member list of the member at `endpoint`, after a linearizable read there if `confirm`.
async fn member_list(
    access: &Access,
    endpoint: &str,
    confirm: bool,
) -> Option<etcd_client::MemberListResponse> {
    let mut client = connect(access, &[endpoint.to_string()]).await.ok()?;
    if confirm {
        let barrier = GetOptions::new().with_count_only();
        client.get(BARRIER_KEY, Some(barrier)).await.ok()?;
    }
    client.member_list().await.ok()
}

/// Every member's client URLs, from the member list of the first of `endpoints` that
/// answers (etcdctl's `--cluster`). A member that has not published any yet (not started,
/// or its publication not yet applied where the list came from) is an error: every member
/// is wanted.
pub async fn client_urls(access: &Access, endpoints: &[String]) -> Result<Vec<String>> {
    let list = connect(access, endpoints).await?.member_list().await?;
    if let Some(m) = list.members().iter().find(|m| m.client_urls().is_empty()) {
        return Err(Error::Unreachable(format!(
            "member {:x} has published no client URL yet",
            m.id()
        )));
    }
    let mut urls: Vec<String> = list
        .members()
        .iter()
        .flat_map(|m| m.client_urls().iter().cloned())
        .collect();
    urls.sort();
    urls.dedup();
    if urls.is_empty() {
        return Err(Error::Unreachable(
            "the member list names no client URL".into(),
        ));
    }
    Ok(urls)
}

/// The Status of the member at `endpoint`.
pub async fn status(access: &Access, endpoint: &str) -> Result<MemberHealth> {
    let mut client = connect(access, &[endpoint.to_string()]).await?;
    let status = client.status().await?;
    Ok(MemberHealth {
        member_id: status.header().map_or(0, |h| h.member_id()),
        leader_id: status.leader(),
        applied_index: status.raft_index(),
        version: status.version().to_string(),
        db_size: status.db_size(),
        revision: status.header().map_or(0, |h| h.revision()),
        errors: status.errors().to_vec(),
    })
}

/// MemberAdd as a learner: the new member's id.
pub async fn add_learner(access: &Access, endpoints: &[String], peer_url: &str) -> Result<u64> {
    let mut client = connect(access, endpoints).await?;
    let options = MemberAddOptions::new().with_is_learner();
    let added = client
        .member_add([peer_url.to_string()], Some(options))
        .await?;
    added
        .member()
        .map(|m| m.id())
        .ok_or_else(|| Error::Other("MemberAdd answered without the member".into()))
}

pub async fn promote(access: &Access, endpoints: &[String], id: u64) -> Result<()> {
    connect(access, endpoints).await?.member_promote(id).await?;
    Ok(())
}

pub async fn remove(access: &Access, endpoints: &[String], id: u64) -> Result<()> {
    connect(access, endpoints).await?.member_remove(id).await?;
    Ok(())
}

/// MoveLeader, sent to the leader's own client URL (only the leader can hand leadership on).
pub async fn move_leader(access: &Access, leader_endpoint: &str, to: u64) -> Result<()> {
    connect(access, &[leader_endpoint.to_string()])
        .await?
        .move_leader(to)
        .await?;
    Ok(())
}
