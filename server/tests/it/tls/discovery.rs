//! `--discovery` with an https URL: the member trusts the system's CAs (`SSL_CERT_FILE`
//! names the test CA, as it would for etcd), and a service whose certificate no trusted CA
//! issued is never taken for a discovery service.

use std::process::Command;

use oxcd_testkit::{Launch, Member, binary, wait_for};

use super::certs::Ca;
use super::{CONVERGE, https_member, https_url};

#[tokio::test]
async fn a_member_bootstraps_through_an_https_discovery_service() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("discovery test CA");
    let server = ca.write(dir.path(), "server", &ca.server("disco"));
    let service = https_member(
        dir.path(),
        &[
            format!("--cert-file={}", server.cert()),
            format!("--key-file={}", server.key()),
            "--enable-v2".into(),
        ],
    );
    let token = format!("{}/v2/keys/_etcd/registry/tls-token", https_url(&service));
    let size = wait_for(CONVERGE, "the https discovery service", || {
        let out = Command::new("curl")
            .args(["-s", "--cacert", server.ca(), "-X", "PUT"])
            .arg(format!("{token}/_config/size"))
            .args(["-d", "value=1"])
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        async move { body.contains("\"action\":\"set\"").then_some(body) }
    })
    .await;
    assert!(size.contains("\"value\":\"1\""), "{size}");

    let oxcd = binary::oxcd().unwrap();
    let flags = ["--discovery", &token].map(String::from);
    // Trusting another CA only, the service's certificate is not accepted.
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, Ca::new("another CA").pem()).unwrap();
    let mut untrusting = Member::new("u0", dir.path(), Launch::new(oxcd.clone(), &flags));
    untrusting
        .launch
        .env
        .insert("SSL_CERT_FILE".into(), other_ca.display().to_string());
    untrusting.spawn().unwrap();
    let mut trusting = Member::new("t0", dir.path(), Launch::new(oxcd, &flags));
    trusting
        .launch
        .env
        .insert("SSL_CERT_FILE".into(), server.ca().to_string());
    trusting.spawn().unwrap();
    let mut client = trusting.client().await;
    let list = client.member_list().await.unwrap();
    let names: Vec<&str> = list.members().iter().map(|m| m.name()).collect();
    assert_eq!(names, ["t0"]);

    let refused = wait_for(CONVERGE, "the untrusting member's refusal", || {
        let log = untrusting.log();
        async move { log.contains("UnknownIssuer").then_some(log) }
    })
    .await;
    assert!(refused.contains("unreachable"), "{refused}");
    assert!(!refused.contains("serving client requests"), "{refused}");
}
