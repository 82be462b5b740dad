//! What a member refuses at start, before it listens.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::free_port;

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
