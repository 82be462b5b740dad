//! One member: its lifecycle, and the etcd reference started the same way.

use std::time::Duration;

use oxcd_testkit::Member;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_keeps_its_data_across_kill9_pause_and_sigterm() {
    let mut m = Member::start_with(&["--snapshot-count", "100"]);
    let mut c = m.client().await;
    c.put("k", "v1", None).await.unwrap();
    assert!(m.is_running());

    m.kill9();
    assert!(!m.is_running());
    m.restart();
    let mut c = m.client().await;
    let got = c.get("k", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"v1");

    m.pause();
    assert!(m.is_paused() && m.is_running());
    m.resume();
    assert!(!m.is_paused());

    m.stop();
    assert!(!m.is_running());
    assert!(
        m.log().contains("m0"),
        "the log names the member:\n{}",
        m.log()
    );
    assert_eq!(m.data_dir, m.dir().join("m0.etcd"));
}

#[test]
fn a_member_that_exits_by_itself_is_seen_to() {
    // An unknown flag: the server refuses it at once.
    let mut m = Member::start_with(&["--no-such-flag"]);
    assert!(
        m.wait_exit(Duration::from_secs(20))
            .is_some_and(|code| code != 0)
    );
    assert!(!m.is_running());
}

#[tokio::test]
async fn etcd_starts_like_an_oxcd_member() {
    let etcd = Member::start_etcd();
    let mut c = etcd.client().await;
    c.put("k", "v", None).await.unwrap();
    let members = c.member_list().await.unwrap();
    assert_eq!(members.members()[0].name(), "m0");
}
