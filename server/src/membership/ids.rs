//! Cluster membership as etcd identifies it: member and cluster IDs derived from peer URLs
//! and the cluster token, exactly as etcd computes them, so IDs match etcd's for the same flags.

use sha1::{Digest, Sha1};

use crate::config::{Config, split_urls};
use crate::error::{Error, Result};
use crate::typ::MemberNode;

/// etcd's `computeMemberId`: SHA-1 of the sorted peer URLs and the cluster token.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(token.as_bytes());
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("sha1 is 20 bytes"))
}

/// etcd's MemberAdd id: like [`member_id`] with the time of the request mixed in, so a
/// member re-added at the same URLs gets a new id.
pub fn member_id_at(peer_urls: &[String], token: &str, unix_secs: u64) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(token.as_bytes());
    h.update(unix_secs.to_string().as_bytes());
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("sha1 is 20 bytes"))
}

/// etcd's `genID`: SHA-1 of the sorted member IDs.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("sha1 is 20 bytes"))
}

/// One member of the initial cluster.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: u64,
    pub node: MemberNode,
}

/// The cluster described by `--initial-cluster` and `--initial-cluster-token`.
#[derive(Debug, Clone)]
pub struct InitialCluster {
    pub members: Vec<Member>,
    pub cluster_id: u64,
}

impl InitialCluster {
    /// Parses `name=url,name=url,...`; a name given several times has several peer URLs.
    pub fn parse(initial_cluster: &str, token: &str) -> Result<InitialCluster> {
        let mut members: Vec<Member> = Vec::new();
        for part in initial_cluster
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (name, url) = part.split_once('=').ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "invalid --initial-cluster entry {part:?}: want name=url"
                ))
            })?;
            let url = url.trim_end_matches('/').to_string();
            match members.iter_mut().find(|m| m.node.name == name) {
                Some(m) => m.node.peer_urls.push(url),
                None => members.push(Member {
                    id: 0,
                    node: MemberNode {
                        name: name.to_string(),
                        peer_urls: vec![url],
                        ..MemberNode::default()
                    },
                }),
            }
        }
        for m in &mut members {
            m.id = member_id(&m.node.peer_urls, token);
        }
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        Ok(InitialCluster {
            cluster_id: cluster_id(&ids),
            members,
        })
    }

    /// The initial cluster of a configuration, with this member's client URLs filled in.
    pub fn from_config(cfg: &Config) -> Result<InitialCluster> {
        let mut cluster = InitialCluster::parse(
            &cfg.clustering.initial_cluster,
            &cfg.clustering.initial_cluster_token,
        )?;
        if let Some(me) = cluster
            .members
            .iter_mut()
            .find(|m| m.node.name == cfg.member.name)
        {
            me.node.client_urls = split_urls(&cfg.clustering.advertise_client_urls);
        }
        Ok(cluster)
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.node.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_order_independent() {
        let a = member_id(&["http://127.0.0.1:2380".into()], "etcd-cluster");
        assert_eq!(
            a,
            member_id(&["http://127.0.0.1:2380".into()], "etcd-cluster")
        );
        assert_ne!(a, member_id(&["http://127.0.0.1:2380".into()], "other"));
        let c = InitialCluster::parse("a=http://h1:2380,b=http://h2:2380,a=http://h1:2381", "t")
            .unwrap();
        assert_eq!(c.members.len(), 2);
        assert_eq!(c.members[0].node.peer_urls.len(), 2);
        let reversed =
            InitialCluster::parse("b=http://h2:2380,a=http://h1:2381,a=http://h1:2380", "t")
                .unwrap();
        assert_eq!(c.cluster_id, reversed.cluster_id);
        assert_eq!(c.member("a").unwrap().id, reversed.member("a").unwrap().id);
    }

    #[test]
    fn matches_etcd_for_default_single_member() {
        // etcd 3.4 started with no flags reports member id 8e9e05c52164694d, cluster id
        // cdf818194e3a8c32.
        let c = InitialCluster::parse("default=http://localhost:2380", "etcd-cluster").unwrap();
        assert_eq!(format!("{:x}", c.members[0].id), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", c.cluster_id), "cdf818194e3a8c32");
    }
}
