//! Members talking over peer TLS: a cluster with client-certificate auth on the peer port
//! replicating through a leader's death, one on auto TLS (self-signed, unverified, as etcd
//! does), and `--peer-cert-allowed-cn` refusing a certificate that names another.

use std::path::Path;

use etcd_client::GetOptions;
use oxcd_testkit::{Cluster, Member, binary, wait_for};

use super::CONVERGE;
use super::certs::Ca;
use super::client;

fn https_peer(m: &Member) -> String {
    format!("https://127.0.0.1:{}", m.peer_port)
}

/// A new cluster of `n` members on https peer URLs, each also started with
/// `flags(member, cluster dir)`.
pub(super) fn peer_tls_cluster(n: usize, flags: impl Fn(&Member, &Path) -> Vec<String>) -> Cluster {
    let oxcd = binary::oxcd().unwrap_or_else(|e| panic!("{e}"));
    let mut cluster = Cluster::new(oxcd, n, &[]).expect("create the cluster dir");
    let initial_cluster = cluster
        .members
        .iter()
        .map(|m| format!("{}={}", m.name, https_peer(m)))
        .collect::<Vec<_>>()
        .join(",");
    let dir = cluster.dir().to_path_buf();
    for member in &mut cluster.members {
        let peer_url = https_peer(member);
        member.launch.initial_cluster = initial_cluster.clone();
        member.launch.extra_args = [
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
        ]
        .into_iter()
        .chain(flags(member, &dir))
        .collect();
    }
    cluster.spawn_all().expect("spawn the members");
    cluster
}

/// The files of a peer certificate for `member` with Common Name `cn`, from `ca`.
pub(super) fn peer_cert_flags(ca: &Ca, member: &Member, dir: &Path, cn: &str) -> Vec<String> {
    let files = ca.write(dir, &format!("{}-peer", member.name), &ca.server(cn));
    vec![
        format!("--peer-cert-file={}", files.cert()),
        format!("--peer-key-file={}", files.key()),
        format!("--peer-trusted-ca-file={}", files.ca()),
        "--peer-client-cert-auth".into(),
    ]
}

#[tokio::test]
async fn a_cluster_replicates_over_peer_tls_with_client_certificates_through_a_leader_loss() {
    let ca = Ca::new("oxcd peer CA");
    let mut cluster = peer_tls_cluster(3, |m, dir| peer_cert_flags(&ca, m, dir, &m.name));
    let leader = cluster.leader().await;
    let mut c = cluster.client(leader).await;
    c.put("replicated", "1", None).await.unwrap();
    for i in 0..3 {
        wait_local(&cluster, i, "replicated", "1").await;
    }

    // The peer port refuses a client without a certificate, and admits a member's.
    let peer_addr = format!("127.0.0.1:{}", cluster.members[0].peer_port);
    assert!(client::refused(&peer_addr, client::config(&ca.pem(), None)).await);
    let m1 = ca.server("m1");
    let as_member = client::config(&ca.pem(), Some((&m1.cert_pem, &m1.key_pem)));
    assert!(!client::refused(&peer_addr, as_member).await);

    cluster.members[leader].kill9();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let new_leader = cluster
        .leader_among(&survivors, CONVERGE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_tails(10)));
    let mut c = cluster.client(new_leader).await;
    c.put("after-failover", "2", None).await.unwrap();
    for &i in &survivors {
        wait_local(&cluster, i, "after-failover", "2").await;
    }
}

#[tokio::test]
async fn peer_auto_tls_members_replicate_without_verifying_each_other() {
    let mut cluster = peer_tls_cluster(3, |_, _| vec!["--peer-auto-tls".into()]);
    let leader = cluster.leader().await;
    let mut c = cluster.client(leader).await;
    c.put("auto", "peer", None).await.unwrap();
    for i in 0..3 {
        wait_local(&cluster, i, "auto", "peer").await;
    }
    let fixture = cluster.members[0].data_dir.join("fixtures/peer/cert.pem");
    assert!(fixture.exists(), "{}", fixture.display());
}

#[tokio::test]
async fn a_peer_certificate_without_the_allowed_cn_is_refused() {
    let ca = Ca::new("oxcd peer CA");
    // m0 and m1 carry the allowed CN; m2's certificate names someone else.
    let mut cluster = peer_tls_cluster(3, |m, dir| {
        let cn = if m.name == "m2" { "intruder" } else { "member" };
        let mut flags = peer_cert_flags(&ca, m, dir, cn);
        flags.push("--peer-cert-allowed-cn=member".into());
        flags
    });
    let leader = cluster.leader_among(&[0, 1], CONVERGE).await;
    let leader = leader.unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_tails(10)));
    // m2 is cut off both ways (its connections are refused, and m0 and m1 refuse its server
    // certificate when they dial it), so its campaigns reach no one; a write still gets a
    // few tries, as the leader is new.
    let c = cluster.client(leader).await;
    wait_for(CONVERGE, "a write to be accepted", || {
        let mut c = c.clone();
        async move { c.put("allowed", "yes", None).await.ok() }
    })
    .await;
    let refusing = [&cluster.members[0], &cluster.members[1]];
    wait_for(CONVERGE, "m0 or m1 to refuse m2's certificate", || async {
        refusing
            .iter()
            .any(|m| m.log().contains("not the allowed CN"))
            .then_some(())
    })
    .await;
    // Directly: a certificate from the same CA passes only with the allowed CN.
    let peer_addr = format!("127.0.0.1:{}", cluster.members[0].peer_port);
    let intruder = ca.server("intruder");
    let as_intruder = client::config(&ca.pem(), Some((&intruder.cert_pem, &intruder.key_pem)));
    assert!(client::refused(&peer_addr, as_intruder).await);
    let member = ca.server("member");
    let as_member = client::config(&ca.pem(), Some((&member.cert_pem, &member.key_pem)));
    assert!(!client::refused(&peer_addr, as_member).await);
}

/// Waits until member `i` holds `key` = `value`, read locally (serializable).
pub(super) async fn wait_local(cluster: &Cluster, i: usize, key: &str, value: &str) {
    wait_read(cluster, i, key, value, true).await;
}

/// Waits until a read of `key` through member `i` gives `value`: `serializable` (from
/// the member's own store) or linearizable (confirmed with the leader).
pub(super) async fn wait_read(
    cluster: &Cluster,
    i: usize,
    key: &str,
    value: &str,
    serializable: bool,
) {
    let endpoint = cluster.members[i].endpoint();
    let read = if serializable {
        "serializable"
    } else {
        "linearizable"
    };
    wait_for(
        CONVERGE,
        &format!("a {read} read through member {i} to give {key}={value}"),
        || {
            let endpoint = endpoint.clone();
            let options = match serializable {
                true => GetOptions::new().with_serializable(),
                false => GetOptions::new(),
            };
            async move {
                let mut c = oxcd_testkit::connect(&[endpoint]).await.ok()?;
                let got = c.get(key, Some(options)).await.ok()?;
                let kv = got.kvs().first()?;
                (kv.value() == value.as_bytes()).then_some(())
            }
        },
    )
    .await;
}
