//! How a member starts: what it listens on, and what it refuses before it listens.

use std::time::Duration;

use oxcd_testkit::{Member, free_port, wait_for};

/// A member whose TLS files are unusable must not start (and never serve plaintext
/// instead), as etcd refuses them.
#[test]
fn unusable_tls_files_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let url = format!("https://127.0.0.1:{}", free_port());
    // The harness's own URL flags come first; these, later, win.
    let mut m = Member::start_with(&[
        "--cert-file",
        cert.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--listen-client-urls",
        &url,
        "--advertise-client-urls",
        &url,
    ]);
    let code = m.wait_exit(Duration::from_secs(20));
    let log = m.log();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("cert file: no certificate"), "{log}");
}

/// Like etcd, a member serves clients on every URL of `--listen-client-urls` (kubeadm lists
/// the loopback address and the host's own).
#[tokio::test]
async fn every_listen_client_url_is_served() {
    let urls: Vec<String> = (0..2)
        .map(|_| format!("http://127.0.0.1:{}", free_port()))
        .collect();
    // In place of the harness's one client URL (a flag given twice takes its last value).
    let _m = Member::start_with(&[
        "--listen-client-urls",
        &urls.join(","),
        "--advertise-client-urls",
        &urls[0],
    ]);
    let mut clients = Vec::new();
    for url in &urls {
        clients.push(
            wait_for(
                Duration::from_secs(20),
                &format!("a client on {url}"),
                || {
                    let url = url.clone();
                    async move {
                        let mut c = etcd_client::Client::connect([url], None).await.ok()?;
                        c.status().await.ok()?;
                        Some(c)
                    }
                },
            )
            .await,
        );
    }
    clients[0]
        .put("k", "through the first", None)
        .await
        .unwrap();
    let got = clients[1].get("k", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"through the first");
}
