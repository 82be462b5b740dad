//! A peer CA rotated while the members run, in the two steps operators use: trust the old
//! and the new CA, move every member to a certificate from the new one, then drop the old.
//! The members are never restarted: each step is files replaced on disk, which the members
//! pick up for new connections, while raft keeps replicating over the ones it has.

use std::path::Path;
use std::time::Duration;

use oxcd_testkit::{Cluster, Member, wait_for};

use super::CONVERGE;
use super::certs::{Ca, Files, Leaf, replace};
use super::client;
use super::peer::{peer_cert_flags, peer_tls_cluster, wait_read};

/// Deadline for every member to show a step's files; several poll periods on a loaded
/// machine.
const ROTATE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn peers_keep_replicating_through_a_two_step_ca_rotation_without_a_restart() {
    let (old, new) = (Ca::new("old peer CA"), Ca::new("new peer CA"));
    let mut cluster = peer_tls_cluster(3, |m, dir| peer_cert_flags(&old, m, dir, &m.name));
    let files: Vec<Files> = cluster
        .members
        .iter()
        .map(|m| files_of(m, cluster.dir()))
        .collect();
    let old_leaves: Vec<Vec<u8>> = files.iter().map(cert_der).collect();
    // Certificates a client of the peer port (another member, or this test) shows.
    let (old_client, new_client) = (old.server("probe"), new.server("probe"));
    let all: Vec<usize> = (0..3).collect();

    cluster.leader().await;
    replicated(&cluster, 0, &all, "before").await;
    peer_ports(&cluster, &old, &old_client, &old_leaves).await;
    all_refuse(&cluster, &old, &new_client).await;

    // 1. Trust both CAs. The old certificates are still served; the new CA's are admitted.
    for f in &files {
        replace(&f.ca, &(old.pem() + &new.pem()));
    }
    peer_ports(&cluster, &old, &new_client, &old_leaves).await;
    peer_ports(&cluster, &old, &old_client, &old_leaves).await;
    replicated(&cluster, 1, &all, "bundle").await;

    // 2. A certificate from the new CA for every member, with the same names.
    let mut new_leaves = Vec::new();
    for (m, f) in cluster.members.iter().zip(&files) {
        let leaf = new.server(&m.name);
        // Key first: until the certificate follows, the pair does not match and the
        // member keeps its last good files.
        replace(&f.key, &leaf.key_pem);
        replace(&f.cert, &leaf.cert_pem);
        new_leaves.push(leaf.der);
    }
    peer_ports(&cluster, &new, &new_client, &new_leaves).await;
    peer_ports(&cluster, &new, &old_client, &new_leaves).await;
    replicated(&cluster, 2, &all, "new-cert").await;

    // 3. Trust the new CA only: a certificate from the old one is refused.
    for f in &files {
        replace(&f.ca, &new.pem());
    }
    all_refuse(&cluster, &new, &old_client).await;
    peer_ports(&cluster, &new, &new_client, &new_leaves).await;
    replicated(&cluster, 0, &all, "new-ca").await;
    // The same processes throughout: a member's process is only ever replaced by a spawn,
    // which this test never calls.
    for m in &mut cluster.members {
        assert!(m.is_running(), "{} stopped during the rotation", m.name);
    }

    survivors_replicate_after_the_leader_dies(&mut cluster).await;
}

/// Connections made after the rotation: the leader's death makes the survivors vote and
/// replicate with clients openraft creates anew, dialed with the files now on disk.
async fn survivors_replicate_after_the_leader_dies(cluster: &mut Cluster) {
    let leader = cluster.leader().await;
    cluster.members[leader].kill9();
    let survivors: Vec<usize> = (0..cluster.size()).filter(|&i| i != leader).collect();
    let new_leader = cluster
        .leader_among(&survivors, ROTATE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_tails(20)));
    replicated(cluster, new_leader, &survivors, "after-failover").await;
    let follower = survivors
        .iter()
        .copied()
        .find(|&i| i != new_leader)
        .unwrap();
    replicated(cluster, follower, &survivors, "through-follower").await;
    for &i in &survivors {
        assert!(cluster.members[i].is_running(), "member {i} stopped");
    }
}

/// The files [`peer_cert_flags`] wrote for `member` under `dir`.
fn files_of(member: &Member, dir: &Path) -> Files {
    let name = format!("{}-peer", member.name);
    Files {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}-key.pem")),
        ca: dir.join(format!("{name}-ca.pem")),
    }
}

/// The DER of the certificate in `files`.
fn cert_der(files: &Files) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(&files.cert)
        .unwrap()
        .as_ref()
        .to_vec()
}

/// A put of `key` through member `via`, then reads of it, linearizable and serializable,
/// through each of `members`.
async fn replicated(cluster: &Cluster, via: usize, members: &[usize], key: &str) {
    let endpoint = cluster.members[via].endpoint();
    wait_for(
        CONVERGE,
        &format!("a put of {key} through member {via}"),
        || {
            let endpoint = endpoint.clone();
            async move {
                let mut c = oxcd_testkit::connect(&[endpoint]).await.ok()?;
                c.put(key, "v", None).await.ok()
            }
        },
    )
    .await;
    for &i in members {
        wait_read(cluster, i, key, "v", false).await;
        wait_read(cluster, i, key, "v", true).await;
    }
}

/// Waits until every member's peer port, dialed afresh trusting `server_ca`, serves
/// `leaves[i]` and admits `client_leaf` as a client.
async fn peer_ports(cluster: &Cluster, server_ca: &Ca, client_leaf: &Leaf, leaves: &[Vec<u8>]) {
    let config = client::config(
        &server_ca.pem(),
        Some((&client_leaf.cert_pem, &client_leaf.key_pem)),
    );
    for (m, want) in cluster.members.iter().zip(leaves) {
        let addr = format!("127.0.0.1:{}", m.peer_port);
        let what = format!("{}'s peer port to serve its certificate and admit", m.name);
        wait_for(ROTATE, &what, || {
            let (addr, config) = (addr.clone(), config.clone());
            async move {
                let served = client::served_certificate(&addr, config.clone()).await?;
                (served == *want && !client::refused(&addr, config).await).then_some(())
            }
        })
        .await;
    }
}

/// Waits until every member's peer port refuses `client_leaf`, dialed trusting
/// `server_ca` (so the refusal is the member's, not this client's).
async fn all_refuse(cluster: &Cluster, server_ca: &Ca, client_leaf: &Leaf) {
    let config = client::config(
        &server_ca.pem(),
        Some((&client_leaf.cert_pem, &client_leaf.key_pem)),
    );
    for m in &cluster.members {
        let addr = format!("127.0.0.1:{}", m.peer_port);
        let what = format!("{}'s peer port to refuse the certificate", m.name);
        wait_for(ROTATE, &what, || {
            let (addr, config) = (addr.clone(), config.clone());
            async move { client::refused(&addr, config).await.then_some(()) }
        })
        .await;
    }
}
