//! `--quota-backend-bytes` and the NOSPACE alarm, as etcd has them: once the database is over
//! the quota, writes that would grow it fail and the alarm goes up; reads, deletes and
//! compaction still work; the alarm survives a restart and only `alarm disarm` clears it.

use etcd_client::{AlarmAction, AlarmType, CompactionOptions, DeleteOptions};
use oxcd_testkit::{Cluster, Member};
use tonic::Code;

use crate::calls::{http_get, status};
use crate::etcdctl_cluster::etcdctl;

const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";

/// Debian's etcdctl v3 against `endpoint`: its standard output; it must succeed.
async fn etcdctl_ok(endpoint: String, args: &[&str]) -> String {
    etcdctl(&[endpoint], args).await.ok(&format!("{args:?}"))
}

/// `oxcdctl --endpoints=<endpoint> <args>`: its standard output; it must succeed.
fn oxcdctl(endpoint: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(oxcd_testkit::binary::oxcdctl().unwrap())
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oxcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The size of the values that fill the quota.
const VALUE_BYTES: usize = 64 * 1024;

/// Puts keys `k0000`, `k0001`, ... until one is refused; how many were written, and the
/// refusal.
async fn fill_until_refused(c: &mut etcd_client::Client) -> (i64, etcd_client::Error) {
    let value = "x".repeat(VALUE_BYTES);
    let mut written = 0;
    loop {
        assert!(written < 1000, "the quota was never enforced");
        match c.put(format!("k{written:04}"), value.as_str(), None).await {
            Ok(_) => written += 1,
            Err(e) => return (written, e),
        }
    }
}

#[tokio::test]
async fn over_the_quota_writes_fail_until_the_alarm_is_disarmed() {
    let mut member = Member::start_with(&["--quota-backend-bytes", "2097152"]);
    let mut c = member.client().await;
    let member_id = c.status().await.unwrap().header().unwrap().member_id();
    // 2 MiB of 64 KiB values fill the quota within a few dozen puts.
    let (written, refused) = fill_until_refused(&mut c).await;
    assert_eq!(status(refused), (Code::ResourceExhausted, NOSPACE.into()));
    let alarms = c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    assert_eq!(alarms.alarms().len(), 1);
    assert_eq!(alarms.alarms()[0].member_id(), member_id);
    assert_eq!(alarms.alarms()[0].alarm(), AlarmType::Nospace);
    // etcdctl prints the alarm as its protobuf text, with a space at the end.
    let listed = format!("memberID:{member_id} alarm:NOSPACE \n");
    assert_eq!(
        etcdctl_ok(member.endpoint(), &["alarm", "list"]).await,
        listed
    );
    let health = http_get(&member.endpoint(), "/health");
    assert_eq!(
        health,
        (
            503,
            "{\"health\":\"false\",\"reason\":\"ALARM NOSPACE\"}\n".into()
        )
    );
    assert_eq!(
        http_get(&member.endpoint(), "/health?exclude=NOSPACE").0,
        200
    );

    // Reads, deletes and compaction are served; a lease grant is refused like a put.
    let got = c.get("k0000", None).await.unwrap();
    assert_eq!(got.kvs()[0].value().len(), VALUE_BYTES);
    let deleted = c
        .delete("k", Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(deleted.deleted(), written);
    let revision = deleted.header().unwrap().revision();
    c.compact(revision, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    let grant = c.lease_grant(60, None).await.unwrap_err();
    assert_eq!(status(grant), (Code::ResourceExhausted, NOSPACE.into()));

    // The alarm is replicated state: it survives a crash and restart, and keeps refusing
    // writes though the space is free again.
    member.kill9();
    member.restart();
    let mut c = member.client().await;
    assert_eq!(
        etcdctl_ok(member.endpoint(), &["alarm", "list"]).await,
        listed
    );
    let refused = c.put("after-restart", "v", None).await.unwrap_err();
    assert_eq!(status(refused), (Code::ResourceExhausted, NOSPACE.into()));

    c.defragment().await.unwrap();
    assert_eq!(
        etcdctl_ok(member.endpoint(), &["alarm", "disarm"]).await,
        listed
    );
    assert_eq!(etcdctl_ok(member.endpoint(), &["alarm", "list"]).await, "");
    c.put("after-disarm", "v", None).await.unwrap();
    // Disarming an alarm no member has (an unknown member) answers no alarm, as etcd does.
    let mut unknown = etcd_client::AlarmOptions::new();
    unknown.with_member(0x1234);
    let none = c
        .alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(unknown))
        .await
        .unwrap();
    assert!(none.alarms().is_empty());
    assert_eq!(http_get(&member.endpoint(), "/health").0, 200);
}

#[tokio::test]
async fn one_members_nospace_alarm_stops_writes_through_every_member() {
    let mut cluster = Cluster::start_with(3, &["--quota-backend-bytes", "2097152"]);
    let leader = cluster.leader().await;
    let other = (leader + 1) % 3;
    let mut c = cluster.client(leader).await;
    let (_, refused) = fill_until_refused(&mut c).await;
    assert_eq!(status(refused), (Code::ResourceExhausted, NOSPACE.into()));

    let mut through_other = cluster.client(other).await;
    let refused = through_other.put("small", "v", None).await.unwrap_err();
    assert_eq!(status(refused), (Code::ResourceExhausted, NOSPACE.into()));
    let alarms = through_other
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    assert!(
        alarms
            .alarms()
            .iter()
            .all(|a| a.alarm() == AlarmType::Nospace),
        "{alarms:?}"
    );

    // Freed (delete, compact, defragment) and disarmed through another member, the whole
    // cluster writes again.
    let deleted = through_other
        .delete("k", Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    let revision = deleted.header().unwrap().revision();
    through_other
        .compact(revision, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    for i in 0..3 {
        let mut ci = cluster.client(i).await;
        // A linearizable read first: the member has applied the compaction when it answers.
        ci.get("k0000", None).await.unwrap();
        ci.defragment().await.unwrap();
    }
    // oxcdctl lists and disarms as etcdctl does.
    let endpoint = cluster.members[other].endpoint();
    let listed = etcdctl_ok(endpoint.clone(), &["alarm", "list"]).await;
    assert!(listed.contains("alarm:NOSPACE"), "{listed}");
    assert_eq!(oxcdctl(&endpoint, &["alarm", "list"]), listed);
    assert_eq!(oxcdctl(&endpoint, &["alarm", "disarm"]), listed);
    assert_eq!(oxcdctl(&endpoint, &["alarm", "list"]), "");
    for i in 0..3 {
        cluster
            .client(i)
            .await
            .put("after", "v", None)
            .await
            .unwrap();
    }
}
