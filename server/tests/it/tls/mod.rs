//! TLS on the client and peer ports with certificates made by rcgen: mutual TLS with
//! etcd-client and Debian's etcdctl 3.4, refused clients (no certificate, another CA's,
//! plaintext) that leave the server serving, a three-member cluster replicating over
//! peer TLS with client-certificate auth through a leader's death, certificate files
//! replaced on disk taking effect for new connections while open streams carry on, and a
//! peer CA rotated in two steps under a running cluster.

mod certs;
mod client;
mod discovery;
mod identity;
mod peer;
mod rotation;

use std::path::Path;
use std::time::Duration;

use oxcd_testkit::{Launch, Member, binary, wait_for};

use certs::{Ca, replace};

/// Deadline for a member to serve or a cluster to converge; generous for a loaded machine.
const CONVERGE: Duration = Duration::from_secs(30);

/// A one-member oxcd in `dir` whose client URL is https, started with `flags(member)`
/// after the URLs.
fn https_member(dir: &Path, flags: &[String]) -> Member {
    let oxcd = binary::oxcd().unwrap_or_else(|e| panic!("{e}"));
    let mut member = Member::new("m0", dir, Launch::new(oxcd, &[]));
    member.launch.initial_cluster = format!("m0={}", member.peer_url());
    let url = https_url(&member);
    member.launch.extra_args = [
        "--listen-client-urls",
        &url,
        "--advertise-client-urls",
        &url,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(flags.iter().cloned())
    .collect();
    member.spawn().expect("spawn the member");
    member
}

fn https_url(member: &Member) -> String {
    format!("https://127.0.0.1:{}", member.client_port)
}

#[tokio::test]
async fn mutual_tls_admits_only_clients_with_a_trusted_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("oxcd test CA");
    let server = ca.write(dir.path(), "server", &ca.server("m0"));
    let alice = ca.write(dir.path(), "alice", &ca.client("alice"));
    let other_ca = Ca::new("another CA");
    let mallory = other_ca.client("mallory");
    let member = https_member(
        dir.path(),
        &[
            format!("--cert-file={}", server.cert()),
            format!("--key-file={}", server.key()),
            format!("--trusted-ca-file={}", server.ca()),
            "--client-cert-auth".into(),
        ],
    );
    let url = https_url(&member);
    let alice_pem = (
        std::fs::read_to_string(&alice.cert).unwrap(),
        std::fs::read_to_string(&alice.key).unwrap(),
    );
    let trusted = client::config(&ca.pem(), Some((&alice_pem.0, &alice_pem.1)));
    let got = wait_for(
        CONVERGE,
        &format!("{url} to serve\n{}", member.log()),
        || {
            let (url, trusted) = (url.clone(), trusted.clone());
            async move { client::put_get(&url, trusted, "k1").await.ok() }
        },
    )
    .await;
    assert_eq!(got, "v");

    // Refused: no certificate, and a certificate from a CA the server does not trust.
    let addr = format!("127.0.0.1:{}", member.client_port);
    assert!(!client::refused(&addr, trusted.clone()).await);
    let anonymous = client::config(&ca.pem(), None);
    assert!(client::refused(&addr, anonymous.clone()).await);
    client::put_get(&url, anonymous, "k2").await.unwrap_err();
    let foreign = client::config(&ca.pem(), Some((&mallory.cert_pem, &mallory.key_pem)));
    assert!(client::refused(&addr, foreign.clone()).await);
    client::put_get(&url, foreign, "k2").await.unwrap_err();

    // Plaintext on the TLS port fails, and only that connection.
    let plain = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(2));
    let plain_url = format!("http://127.0.0.1:{}", member.client_port);
    let plaintext = async {
        let mut c = etcd_client::Client::connect([plain_url], Some(plain)).await?;
        c.put("k2", "v", None).await
    };
    assert!(
        plaintext.await.is_err(),
        "a plaintext put succeeded on the TLS port"
    );
    assert_eq!(
        client::put_get(&url, trusted.clone(), "k3").await.unwrap(),
        "v"
    );
    assert!(
        member.log().contains("TLS handshake failed"),
        "refused handshakes are logged\n{}",
        member.log()
    );

    // Debian's etcdctl (grpc-go) as the client: with the certificate it works, without it
    // the handshake is refused.
    let tls_args = [
        format!("--cacert={}", alice.ca()),
        format!("--cert={}", alice.cert()),
        format!("--key={}", alice.key()),
    ];
    let mut args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
    args.extend(["put", "from-etcdctl", "yes"]);
    let (ok, out, err) = client::etcdctl(&url, &args).await;
    assert!(ok, "etcdctl put over mTLS: {out}{err}");
    let mut args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
    args.extend(["get", "from-etcdctl", "--print-value-only"]);
    let (ok, out, err) = client::etcdctl(&url, &args).await;
    assert!(
        ok && out.trim() == "yes",
        "etcdctl get over mTLS: {out}{err}"
    );
    let (ok, out, err) = client::etcdctl(&url, &[&tls_args[0], "get", "from-etcdctl"]).await;
    assert!(
        !ok,
        "etcdctl without a client certificate succeeded: {out}{err}"
    );
}

#[tokio::test]
async fn a_revoked_client_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("oxcd test CA");
    let server = ca.write(dir.path(), "server", &ca.server("m0"));
    let (alice, bob) = (ca.client("alice"), ca.client("bob"));
    let crl = dir.path().join("crl.pem");
    std::fs::write(&crl, ca.crl_revoking(certs::serial(&bob))).unwrap();
    let member = https_member(
        dir.path(),
        &[
            format!("--cert-file={}", server.cert()),
            format!("--key-file={}", server.key()),
            format!("--trusted-ca-file={}", server.ca()),
            "--client-cert-auth".into(),
            format!("--client-crl-file={}", crl.display()),
        ],
    );
    let url = https_url(&member);
    let alice = client::config(&ca.pem(), Some((&alice.cert_pem, &alice.key_pem)));
    wait_for(CONVERGE, &format!("{url} to serve"), || {
        let (url, alice) = (url.clone(), alice.clone());
        async move { client::put_get(&url, alice, "k").await.ok() }
    })
    .await;
    let addr = format!("127.0.0.1:{}", member.client_port);
    let bob = client::config(&ca.pem(), Some((&bob.cert_pem, &bob.key_pem)));
    assert!(client::refused(&addr, bob).await, "{}", member.log());
}

#[tokio::test]
async fn auto_tls_serves_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let member = https_member(dir.path(), &["--auto-tls".into()]);
    let url = https_url(&member);
    let out = wait_for(
        CONVERGE,
        &format!("{url} to serve\n{}", member.log()),
        || {
            let url = url.clone();
            async move {
                // etcdctl 3.4 applies the skip only with transport security on.
                let put = [
                    "--insecure-transport=false",
                    "--insecure-skip-tls-verify",
                    "put",
                    "auto",
                    "tls",
                ];
                let (ok, out, _) = client::etcdctl(&url, &put).await;
                ok.then_some(out)
            }
        },
    )
    .await;
    assert!(out.contains("OK"), "{out}");
    assert!(member.data_dir.join("fixtures/client/cert.pem").exists());
    let skip = [("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true")];
    let (ok, out, err) = client::oxcdctl(&url, &["get", "auto", "--print-value-only"], &skip).await;
    assert!(
        ok && out.trim() == "tls",
        "oxcdctl skipping verification: {out}{err}"
    );
    let (ok, out, err) = client::oxcdctl(&url, &["get", "auto"], &[]).await;
    assert!(
        !ok,
        "oxcdctl verified a self-signed certificate: {out}{err}"
    );
}

#[tokio::test]
async fn an_unknown_cipher_suite_stops_the_start_with_etcds_words() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("oxcd test CA");
    let server = ca.write(dir.path(), "server", &ca.server("m0"));
    let mut member = https_member(
        dir.path(),
        &[
            format!("--cert-file={}", server.cert()),
            format!("--key-file={}", server.key()),
            "--cipher-suites=TLS_RSA_WITH_RC4_128_SHA".into(),
        ],
    );
    assert!(member.wait_exit(CONVERGE).is_some_and(|code| code != 0));
    assert!(
        member
            .log()
            .contains("unexpected TLS cipher suite \"TLS_RSA_WITH_RC4_128_SHA\""),
        "{}",
        member.log()
    );
}

#[tokio::test]
async fn replaced_certificate_files_apply_to_new_connections_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("oxcd test CA");
    let first = ca.server("first");
    let server = ca.write(dir.path(), "server", &first);
    let mut member = https_member(
        dir.path(),
        &[
            format!("--cert-file={}", server.cert()),
            format!("--key-file={}", server.key()),
        ],
    );
    let url = https_url(&member);
    let addr = format!("127.0.0.1:{}", member.client_port);
    let trust = client::config(&ca.pem(), None);
    wait_for(
        CONVERGE,
        &format!("{url} to serve\n{}", member.log()),
        || {
            let (url, trust) = (url.clone(), trust.clone());
            async move { client::put_get(&url, trust, "before").await.ok() }
        },
    )
    .await;
    assert_eq!(
        client::served_certificate(&addr, trust.clone()).await,
        Some(first.der.clone())
    );

    // A watch opened on the first certificate's connection.
    let mut watcher = client::connect(&url, trust.clone()).await.unwrap();
    let mut events = watcher.watch("rotated", None).await.unwrap();

    let second = ca.server("second");
    replace(&server.key, &second.key_pem);
    replace(&server.cert, &second.cert_pem);
    wait_for(
        Duration::from_secs(20),
        &format!("the new certificate to be served\n{}", member.log()),
        || {
            let (addr, trust) = (addr.clone(), trust.clone());
            let want = second.der.clone();
            async move { (client::served_certificate(&addr, trust).await? == want).then_some(()) }
        },
    )
    .await;

    // A new connection works with the new certificate; the old watch still delivers.
    client::put_get(&url, trust.clone(), "rotated")
        .await
        .unwrap();
    let keys = tokio::time::timeout(CONVERGE, async {
        // The first response only confirms the watch was created.
        loop {
            let response = events
                .message()
                .await
                .unwrap()
                .expect("the watch stream is open");
            let keys: Vec<Vec<u8>> = response
                .events()
                .iter()
                .filter_map(|e| e.kv())
                .map(|kv| kv.key().to_vec())
                .collect();
            if !keys.is_empty() {
                return keys;
            }
        }
    })
    .await
    .expect("the watch delivers within the deadline");
    assert_eq!(keys, [b"rotated".to_vec()]);
    assert!(member.is_running(), "the member kept running (no restart)");

    // Files that make no configuration (a key that is not the certificate's) are not taken.
    let third = ca.server("third");
    replace(&server.cert, &third.cert_pem);
    wait_for(CONVERGE, "the unusable files to be reported", || async {
        member.log().contains("not usable").then_some(())
    })
    .await;
    assert_eq!(
        client::served_certificate(&addr, trust.clone()).await,
        Some(second.der.clone())
    );
}

/// With `--client-cert-auth` and auth on, a request without a token is from the user its
/// verified client certificate names, as in etcd: `alice` (no password, a prefix reader)
/// reads her prefix only, a certificate naming no user gets nothing, `root`'s may do all.
#[tokio::test]
async fn the_client_certificates_common_name_is_the_user_under_auth() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("oxcd test CA");
    let server = ca.write(dir.path(), "server", &ca.server("m0"));
    let member = https_member(
        dir.path(),
        &[
            format!("--cert-file={}", server.cert()),
            format!("--key-file={}", server.key()),
            format!("--trusted-ca-file={}", server.ca()),
            "--client-cert-auth".into(),
        ],
    );
    let url = https_url(&member);
    let config_for = |cn: &str| {
        let leaf = ca.client(cn);
        client::config(&ca.pem(), Some((&leaf.cert_pem, &leaf.key_pem)))
    };
    let (root, alice, bob) = (config_for("root"), config_for("alice"), config_for("bob"));
    let mut admin = wait_for(
        CONVERGE,
        &format!("{url} to serve\n{}", member.log()),
        || {
            let (url, root) = (url.clone(), root.clone());
            async move {
                let mut c = client::connect(&url, root).await.ok()?;
                c.get("probe", None).await.ok()?;
                Some(c)
            }
        },
    )
    .await;
    admin.user_add("root", "rootpw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    let no_password = etcd_client::UserAddOptions::new().with_no_pwd();
    admin
        .user_add("alice", "", Some(no_password))
        .await
        .unwrap();
    admin.role_add("reader").await.unwrap();
    let prefix = etcd_client::Permission::read("/a/").with_prefix();
    admin.role_grant_permission("reader", prefix).await.unwrap();
    admin.user_grant_role("alice", "reader").await.unwrap();
    admin.put("/a/x", "1", None).await.unwrap();
    admin.auth_enable().await.unwrap();

    let denied = |e: etcd_client::Error| match e {
        etcd_client::Error::GRpcStatus(s) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC status, got {other:?}"),
    };
    let permission_denied = (
        tonic::Code::PermissionDenied,
        "etcdserver: permission denied".to_string(),
    );
    let mut as_alice = client::connect(&url, alice).await.unwrap();
    let got = as_alice.get("/a/x", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"1");
    assert_eq!(
        denied(as_alice.put("/a/x", "2", None).await.unwrap_err()),
        permission_denied
    );
    assert_eq!(
        denied(as_alice.get("/b", None).await.unwrap_err()),
        permission_denied
    );
    // A certificate naming no user.
    let mut as_bob = client::connect(&url, bob).await.unwrap();
    assert_eq!(
        denied(as_bob.get("/a/x", None).await.unwrap_err()),
        permission_denied
    );
    let users = admin.user_list().await.unwrap();
    assert_eq!(users.users(), ["alice", "root"]);
    admin.put("/b", "by root", None).await.unwrap();
}

/// An https `--listen-metrics-urls` is served with the client port's certificate.
#[tokio::test]
async fn https_metrics_urls_are_served_with_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("oxcd test CA");
    let server = ca.write(dir.path(), "server", &ca.server("m0"));
    let metrics = format!("https://127.0.0.1:{}", oxcd_testkit::free_port());
    let member = https_member(
        dir.path(),
        &[
            format!("--cert-file={}", server.cert()),
            format!("--key-file={}", server.key()),
            format!("--listen-metrics-urls={metrics}"),
        ],
    );
    let scrape = |secure: bool| {
        let mut curl = std::process::Command::new("curl");
        curl.args(["-s", "--max-time", "5"]);
        if secure {
            curl.args(["--cacert", server.ca()]);
        }
        let out = curl
            .arg(format!("{metrics}/metrics"))
            .output()
            .expect("curl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let body = wait_for(
        CONVERGE,
        &format!("{metrics} to serve\n{}", member.log()),
        || async {
            let (ok, body) = scrape(true);
            ok.then_some(body)
        },
    )
    .await;
    assert!(body.contains("etcd_server_has_leader"), "{body}");
    let plain = format!("http://{}/metrics", metrics.trim_start_matches("https://"));
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "5", &plain])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("etcd_server_has_leader"),
        "plaintext answered on a TLS port"
    );
}
