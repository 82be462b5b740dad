//! How a member starts: what it listens on, and what it refuses before it listens.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_port, wait_for};

/// Runs the server with `args` until it exits (at most 20 s); its exit code and stderr.
fn run_until_exit(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxcd"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, std::fs::read_to_string(log).unwrap())
}

/// TLS is not in this build: a member asked for it must not serve plaintext instead.
#[test]
fn tls_is_refused_rather_than_served_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, "not read").unwrap();
    std::fs::write(&key, "not read").unwrap();
    let url = format!("https://127.0.0.1:{}", free_port());
    let files = [
        "--cert-file",
        cert.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ];
    let cases: Vec<Vec<&str>> = vec![
        [
            &files[..],
            &[
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ],
        ]
        .concat(),
        vec!["--auto-tls"],
    ];
    for args in cases {
        let (code, stderr) = run_until_exit(&args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("TLS (--cert-file, --peer-cert-file, --auto-tls, https URLs) is not supported by this oxcd build yet"),
            "{args:?}: {stderr}"
        );
    }
}

/// Like etcd, a member serves clients on every URL of `--listen-client-urls` (kubeadm lists
/// the loopback address and the host's own).
#[tokio::test]
async fn every_listen_client_url_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<String> = (0..2)
        .map(|_| format!("http://127.0.0.1:{}", free_port()))
        .collect();
    let peer = format!("http://127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxcd"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &urls.join(",")])
        .args(["--advertise-client-urls", &urls[0]])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("default={peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
    child.kill().unwrap();
    child.wait().unwrap();
}
