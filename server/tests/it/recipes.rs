//! The Lock and Election services, driven the same way against oxcd and Debian's etcd 3.4:
//! what the clients see must be the same on both (lease ids are written as A, B, ...).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::{Client, LockOptions, ProclaimOptions, ResignOptions};
use oxcd_testkit::Member;

/// How long a step may take before the scenario is stuck.
const STEP: Duration = Duration::from_secs(20);

/// A transcript line for a failed call: its gRPC code and message.
fn failure(what: &str, e: etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => format!("{what}: {:?} {}", s.code(), s.message()),
        other => format!("{what}: {other}"),
    }
}

/// `text` with every lease id written as its letter.
fn named(text: String, leases: &[(i64, &str)]) -> String {
    leases
        .iter()
        .fold(text, |t, (id, name)| t.replace(&format!("{id:x}"), name))
}

async fn step<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, call)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {STEP:?}"))
}

/// Campaigns, proclaims, observes and resigns on election `e`, and what each answered.
async fn election_transcript(mut c: Client) -> Vec<String> {
    let mut lines = Vec::new();
    let a = c.lease_grant(60, None).await.unwrap().id();
    let b = c.lease_grant(60, None).await.unwrap().id();
    let leases = [(a, "A"), (b, "B")];
    let mut say = |line: String| lines.push(named(line, &leases));

    say(failure(
        "leader of nobody",
        c.leader("e").await.unwrap_err(),
    ));
    let won = step("campaign a", c.campaign("e", "a", a)).await.unwrap();
    let leader_a = won.leader().unwrap().clone();
    say(format!(
        "campaign a: key {} lease {:x} rev == header {}",
        String::from_utf8_lossy(leader_a.key()),
        leader_a.lease(),
        leader_a.rev() == won.header().unwrap().revision()
    ));
    let mut observed = c.observe("e").await.unwrap();
    let mut next_observed = async || {
        let leader = step("observe", observed.message()).await.unwrap().unwrap();
        let kv = leader.kv().unwrap();
        format!(
            "observed {} = {}",
            kv.key_str().unwrap(),
            kv.value_str().unwrap()
        )
    };
    say(next_observed().await);

    let mut contender = c.clone();
    let waiting_b = tokio::spawn(async move { contender.campaign("e", "b", b).await });
    let proclaim = ProclaimOptions::new().with_leader(leader_a.clone());
    step("proclaim", c.proclaim("a2", Some(proclaim)))
        .await
        .unwrap();
    say(next_observed().await);
    let leader = c.leader("e").await.unwrap();
    say(format!(
        "leader value {}",
        leader.kv().unwrap().value_str().unwrap()
    ));

    let resign = ResignOptions::new().with_leader(leader_a.clone());
    step("resign a", c.resign(Some(resign))).await.unwrap();
    let won = step("campaign b", waiting_b).await.unwrap().unwrap();
    say(format!(
        "campaign b: key {}",
        String::from_utf8_lossy(won.leader().unwrap().key())
    ));
    say(next_observed().await);

    let stale = ProclaimOptions::new().with_leader(leader_a);
    say(failure(
        "stale proclaim",
        c.proclaim("x", Some(stale)).await.unwrap_err(),
    ));
    say(failure(
        "resign without a leader",
        c.resign(None).await.unwrap_err(),
    ));
    lines
}

/// Locks, contends and unlocks `l`, and what each call answered.
async fn lock_transcript(mut c: Client) -> Vec<String> {
    let mut lines = Vec::new();
    let a = c.lease_grant(60, None).await.unwrap().id();
    let b = c.lease_grant(60, None).await.unwrap().id();
    let leases = [(a, "A"), (b, "B")];
    let mut say = |line: String| lines.push(named(line, &leases));

    let held = step(
        "lock a",
        c.lock("l", Some(LockOptions::new().with_lease(a))),
    )
    .await
    .unwrap();
    say(format!(
        "lock a: key {}",
        String::from_utf8_lossy(held.key())
    ));
    let unlocked = Arc::new(AtomicBool::new(false));
    let (mut contender, seen) = (c.clone(), unlocked.clone());
    let waiting_b = tokio::spawn(async move {
        let got = contender
            .lock("l", Some(LockOptions::new().with_lease(b)))
            .await;
        (got, seen.load(Ordering::SeqCst))
    });
    // The second contender is queued (its key exists) before the holder lets go.
    let key_b = format!("l/{b:x}");
    step("b to queue", async {
        while c.get(key_b.as_str(), None).await.unwrap().kvs().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    unlocked.store(true, Ordering::SeqCst);
    c.unlock(held.key()).await.unwrap();
    let (got, after_unlock) = step("lock b", waiting_b).await.unwrap();
    say(format!(
        "lock b: key {} after the unlock: {after_unlock}",
        String::from_utf8_lossy(got.unwrap().key())
    ));

    let sessionless = step("lock without a lease", c.lock("l0", None))
        .await
        .unwrap();
    let key = String::from_utf8_lossy(sessionless.key()).into_owned();
    let lease = i64::from_str_radix(key.trim_start_matches("l0/"), 16).unwrap();
    let ttl = c.lease_time_to_live(lease, None).await.unwrap();
    say(format!(
        "lock without a lease: granted ttl {}",
        ttl.granted_ttl()
    ));
    let unknown = LockOptions::new().with_lease(0x1234);
    say(failure(
        "lock on an unknown lease",
        c.lock("l1", Some(unknown)).await.unwrap_err(),
    ));
    lines
}

#[tokio::test]
async fn elections_answer_as_etcds_do() {
    let (member, etcd) = (Member::start(), Member::start_etcd());
    let ours = election_transcript(member.client().await).await;
    let theirs = election_transcript(etcd.client().await).await;
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 9, "{ours:#?}");
}

#[tokio::test]
async fn locks_answer_as_etcds_do() {
    let (member, etcd) = (Member::start(), Member::start_etcd());
    let ours = lock_transcript(member.client().await).await;
    let theirs = lock_transcript(etcd.client().await).await;
    assert_eq!(ours, theirs);
    assert!(ours[1].ends_with("after the unlock: true"), "{ours:#?}");
}

/// A holder whose lease expires (no keep-alives) loses the lock to the next in line.
async fn expiry_transcript(mut c: Client) -> Vec<String> {
    let short = c.lease_grant(2, None).await.unwrap().id();
    let long = c.lease_grant(60, None).await.unwrap().id();
    let leases = [(short, "A"), (long, "B")];
    let held = step(
        "lock a",
        c.lock("x", Some(LockOptions::new().with_lease(short))),
    )
    .await
    .unwrap();
    let got = step(
        "lock b after a's lease expires",
        c.lock("x", Some(LockOptions::new().with_lease(long))),
    )
    .await
    .unwrap();
    let holder_gone = c.get(held.key(), None).await.unwrap().kvs().is_empty();
    vec![named(
        format!(
            "a held {}; b got {}; a's key gone: {holder_gone}",
            String::from_utf8_lossy(held.key()),
            String::from_utf8_lossy(got.key())
        ),
        &leases,
    )]
}

#[tokio::test]
async fn a_lock_passes_on_when_its_holders_lease_expires_as_in_etcd() {
    let (member, etcd) = (Member::start(), Member::start_etcd());
    let ours = expiry_transcript(member.client().await).await;
    let theirs = expiry_transcript(etcd.client().await).await;
    assert_eq!(ours, theirs);
    assert_eq!(ours, ["a held x/A; b got x/B; a's key gone: true"]);
}
