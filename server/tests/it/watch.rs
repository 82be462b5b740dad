//! The Watch service against a real member: event contents, key ranges, several watchers
//! per stream, history replay, filters, ids, cancel, progress, fragments, compaction,
//! txn atomicity and slow readers. etcd 3.5 is the reference for every expectation.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use etcd_client::{
    Client, DeleteOptions, EventType, Txn, TxnOp, WatchFilterType, WatchOptions, WatchResponse,
    WatchStream,
};
use oxcd::proto::etcdserverpb as pb;
use oxcd_testkit::Member;
use prost::Message;

use crate::calls::{put, text};

/// How long any single expected response may take.
const TIMEOUT: Duration = Duration::from_secs(15);
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
const EMPTY_RANGE: &str = "mvcc: watcher range is empty";

/// An event reduced to what the tests compare exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev {
    put: bool,
    key: String,
    value: String,
    create: i64,
    modr: i64,
    version: i64,
    /// The previous version's value and mod revision, when the watcher asked for it.
    prev: Option<(String, i64)>,
}

fn put_ev(key: &str, value: &str, create: i64, modr: i64, version: i64) -> Ev {
    Ev {
        put: true,
        key: key.into(),
        value: value.into(),
        create,
        modr,
        version,
        prev: None,
    }
}

/// A delete event: etcd sends the key with only the deletion's mod revision set.
fn del_ev(key: &str, modr: i64) -> Ev {
    Ev {
        put: false,
        key: key.into(),
        value: String::new(),
        create: 0,
        modr,
        version: 0,
        prev: None,
    }
}

impl Ev {
    fn with_prev(mut self, value: &str, modr: i64) -> Ev {
        self.prev = Some((value.into(), modr));
        self
    }
}

fn evs(resp: &WatchResponse) -> Vec<Ev> {
    resp.events()
        .iter()
        .map(|e| {
            let kv = e.kv().expect("event has a kv");
            Ev {
                put: e.event_type() == EventType::Put,
                key: text(kv.key()),
                value: text(kv.value()),
                create: kv.create_revision(),
                modr: kv.mod_revision(),
                version: kv.version(),
                prev: e.prev_kv().map(|p| (text(p.value()), p.mod_revision())),
            }
        })
        .collect()
}

fn rev_of(resp: &WatchResponse) -> i64 {
    resp.header()
        .expect("watch response has a header")
        .revision()
}

/// The next response on the stream; fails the test if none arrives in time.
async fn next(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(TIMEOUT, stream.message())
        .await
        .expect("a watch response in time")
        .expect("the watch stream did not fail")
        .expect("the watch stream is open")
}

/// Reads the creation response and returns the new watcher's id.
async fn created(stream: &mut WatchStream) -> i64 {
    let resp = next(stream).await;
    assert!(resp.created(), "expected a created response, got {resp:?}");
    assert!(!resp.canceled(), "watch creation refused: {resp:?}");
    assert!(resp.events().is_empty());
    resp.watch_id()
}

/// Reads responses until `done` says the collection is complete; returns them all.
async fn read_until(
    stream: &mut WatchStream,
    mut done: impl FnMut(&[WatchResponse]) -> bool,
) -> Vec<WatchResponse> {
    let mut got = Vec::new();
    while !done(&got) {
        got.push(next(stream).await);
    }
    got
}

/// Events per watch id, in arrival order.
fn by_watcher(resps: &[WatchResponse]) -> BTreeMap<i64, Vec<Ev>> {
    let mut out: BTreeMap<i64, Vec<Ev>> = BTreeMap::new();
    for r in resps {
        out.entry(r.watch_id()).or_default().extend(evs(r));
    }
    out
}

fn saw_key(resps: &[WatchResponse], watch_id: i64, key: &str) -> bool {
    resps
        .iter()
        .any(|r| r.watch_id() == watch_id && evs(r).iter().any(|e| e.key == key))
}

/// Reads responses until one carries an event of revision `last` or later.
async fn read_through(stream: &mut WatchStream, last: i64) -> Vec<WatchResponse> {
    read_until(stream, |got| {
        got.last()
            .and_then(|r| evs(r).last().map(|e| e.modr))
            .is_some_and(|r| r >= last)
    })
    .await
}

/// Puts `writes` in order from another task; it returns `first` followed by each put's
/// revision.
fn spawn_writes(
    mut writer: Client,
    first: i64,
    writes: impl Iterator<Item = (String, String)> + Send + 'static,
) -> tokio::task::JoinHandle<Vec<i64>> {
    tokio::spawn(async move {
        let mut revs = vec![first];
        for (key, value) in writes {
            revs.push(put(&mut writer, &key, &value).await);
        }
        revs
    })
}

/// Waits until `more` revisions were written since now, or the writer finished.
async fn await_more_writes<T>(c: &mut Client, writer: &tokio::task::JoinHandle<T>, more: i64) {
    let seen = current_rev(c).await;
    oxcd_testkit::wait_for(TIMEOUT, "more writes", || {
        let mut c = c.clone();
        let done = writer.is_finished();
        async move { (done || current_rev(&mut c).await > seen + more).then_some(()) }
    })
    .await;
}

async fn current_rev(c: &mut Client) -> i64 {
    let resp = c.get("any", None).await.expect("get");
    resp.header().expect("header").revision()
}

#[tokio::test]
async fn single_key_watch_sees_puts_and_deletes_in_order() {
    let m = Member::start();
    let mut c = m.client().await;
    let r0 = put(&mut c, "unrelated", "x").await;

    let mut w = c.watch("k", None).await.unwrap();
    let created_resp = next(&mut w).await;
    assert!(created_resp.created() && !created_resp.canceled());
    assert_eq!(created_resp.watch_id(), 0);
    assert_eq!(
        rev_of(&created_resp),
        r0,
        "created header is the current revision"
    );
    let put_header = c.put("unrelated", "y", None).await.unwrap();
    let put_header = put_header.header().unwrap();
    let header = created_resp.header().unwrap();
    assert_eq!(header.cluster_id(), put_header.cluster_id());
    assert_eq!(header.member_id(), put_header.member_id());

    let r1 = put(&mut c, "k", "v1").await;
    let r2 = put(&mut c, "k", "v2").await;
    put(&mut c, "k2", "not watched").await;
    put(&mut c, "j", "not watched").await;
    let r3 = c
        .delete("k", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let r4 = put(&mut c, "k", "v3").await;
    assert_eq!((r1, r2, r3, r4), (r0 + 2, r0 + 3, r0 + 6, r0 + 7));

    let expected = [
        put_ev("k", "v1", r1, r1, 1),
        put_ev("k", "v2", r1, r2, 2),
        del_ev("k", r3),
        put_ev("k", "v3", r4, r4, 1),
    ];
    for want in expected {
        let resp = next(&mut w).await;
        assert_eq!(resp.watch_id(), 0);
        assert!(!resp.created() && !resp.canceled());
        assert_eq!(resp.compact_revision(), 0);
        assert_eq!(evs(&resp), vec![want.clone()]);
        assert_eq!(
            rev_of(&resp),
            want.modr,
            "live event header is its revision"
        );
    }
}

#[tokio::test]
async fn watch_ranges_select_exactly_their_keys() {
    let m = Member::start();
    let mut c = m.client().await;
    // (name, key, options, keys the watcher must see, in write order)
    let cases: Vec<(&str, &str, WatchOptions, Vec<&str>)> = vec![
        ("single key", "b", WatchOptions::new(), vec!["b"]),
        (
            "prefix",
            "p/",
            WatchOptions::new().with_prefix(),
            vec!["p/1", "p/2"],
        ),
        (
            "range b..d",
            "b",
            WatchOptions::new().with_range("d"),
            vec!["b", "b/x", "c", "cc"],
        ),
        (
            "from key c",
            "c",
            WatchOptions::new().with_from_key(),
            vec!["c", "cc", "d", "p", "p/1", "p/2", "q"],
        ),
        (
            "explicit \\0 range end",
            "p",
            WatchOptions::new().with_range(vec![0u8]),
            vec!["p", "p/1", "p/2", "q"],
        ),
        (
            "all keys",
            "",
            WatchOptions::new().with_all_keys(),
            vec![
                "a", "b", "b/x", "c", "cc", "d", "p", "p/1", "p/2", "q", "0mark",
            ],
        ),
        (
            "empty prefix",
            "",
            WatchOptions::new().with_prefix(),
            vec![
                "a", "b", "b/x", "c", "cc", "d", "p", "p/1", "p/2", "q", "0mark",
            ],
        ),
    ];
    // Every stream also watches the marker key, written last, so its arrival proves the
    // stream has delivered everything before it.
    let mut streams = Vec::new();
    for (name, key, opts, _) in &cases {
        let mut s = c.watch(*key, Some(opts.clone())).await.unwrap();
        assert_eq!(created(&mut s).await, 0, "{name}");
        s.watch("0mark", None).await.unwrap();
        assert_eq!(created(&mut s).await, 1, "{name}");
        streams.push(s);
    }
    let mut revs = HashMap::new();
    for key in [
        "a", "b", "b/x", "c", "cc", "d", "p", "p/1", "p/2", "q", "0mark",
    ] {
        revs.insert(key, put(&mut c, key, &format!("{key}-value")).await);
    }
    for ((name, _, _, want), mut s) in cases.into_iter().zip(streams) {
        let marker_in_range = want.contains(&"0mark");
        let resps = read_until(&mut s, |got| {
            saw_key(got, 1, "0mark") && (!marker_in_range || saw_key(got, 0, "0mark"))
        })
        .await;
        let got = by_watcher(&resps);
        let want: Vec<Ev> = want
            .iter()
            .map(|k| put_ev(k, &format!("{k}-value"), revs[k], revs[k], 1))
            .collect();
        assert_eq!(got.get(&0).cloned().unwrap_or_default(), want, "{name}");
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            vec![0, 1],
            "{name}"
        );
    }
}

#[tokio::test]
async fn watchers_on_one_stream_get_only_their_events() {
    let m = Member::start();
    let mut c = m.client().await;
    let mut s = c.watch("x", None).await.unwrap();
    assert_eq!(created(&mut s).await, 0);
    s.watch("y", None).await.unwrap();
    assert_eq!(created(&mut s).await, 1);
    s.watch("", Some(WatchOptions::new().with_all_keys()))
        .await
        .unwrap();
    assert_eq!(created(&mut s).await, 2);

    let rx = put(&mut c, "x", "1").await;
    let ry = put(&mut c, "y", "2").await;
    let rz = put(&mut c, "z", "3").await;
    let resps = read_until(&mut s, |got| saw_key(got, 2, "z")).await;
    for r in &resps {
        let events = evs(r);
        assert_eq!(events.len(), 1, "one event per response: {r:?}");
        assert_eq!(rev_of(r), events[0].modr);
    }
    let got = by_watcher(&resps);
    assert_eq!(got[&0], vec![put_ev("x", "1", rx, rx, 1)]);
    assert_eq!(got[&1], vec![put_ev("y", "2", ry, ry, 1)]);
    assert_eq!(
        got[&2],
        vec![
            put_ev("x", "1", rx, rx, 1),
            put_ev("y", "2", ry, ry, 1),
            put_ev("z", "3", rz, rz, 1),
        ]
    );

    // Automatic ids are never reused on a stream, even after a cancel (etcd's nextID).
    s.cancel(0).await.unwrap();
    let resp = next(&mut s).await;
    assert!(resp.canceled() && resp.watch_id() == 0);
    s.watch("x", None).await.unwrap();
    assert_eq!(created(&mut s).await, 3);
    s.watch("x", None).await.unwrap();
    assert_eq!(created(&mut s).await, 4);
    s.cancel(4).await.unwrap();
    assert!(next(&mut s).await.canceled());
    s.watch("w", None).await.unwrap();
    assert_eq!(created(&mut s).await, 5, "automatic ids are never reused");
    let rx2 = put(&mut c, "x", "again").await;
    let resps = read_until(&mut s, |got| saw_key(got, 3, "x") && saw_key(got, 2, "x")).await;
    let got = by_watcher(&resps);
    assert_eq!(got[&3], vec![put_ev("x", "again", rx, rx2, 2)]);
    assert!(
        !got.contains_key(&0),
        "canceled watcher got events: {got:?}"
    );

    // Ids belong to a stream: another stream starts again at 0.
    let mut other = c.watch("x", None).await.unwrap();
    assert_eq!(created(&mut other).await, 0);
}

#[tokio::test]
async fn start_revision_replays_history_then_continues_live() {
    let m = Member::start();
    let mut c = m.client().await;
    let r1 = put(&mut c, "h/k", "v1").await;
    let r2 = put(&mut c, "h/k", "v2").await;
    let r3 = put(&mut c, "h/other", "o1").await;
    let r4 = c
        .delete("h/k", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let r5 = put(&mut c, "h/k", "v3").await;
    let r6 = put(&mut c, "outside", "x").await;

    let mut w = c
        .watch(
            "h/",
            Some(WatchOptions::new().with_prefix().with_start_revision(r2)),
        )
        .await
        .unwrap();
    let resp = next(&mut w).await;
    assert!(resp.created());
    assert_eq!(rev_of(&resp), r6);
    let replayed = read_until(&mut w, |got| {
        got.iter().map(|r| r.events().len()).sum::<usize>() == 4
    })
    .await;
    // The replay ends at the store revision it read, past the last watched event (etcd
    // reports its current revision in a synced watcher's response).
    assert_eq!(rev_of(replayed.last().unwrap()), r6);
    let r7 = put(&mut c, "h/k", "v4").await;
    let live = next(&mut w).await;
    assert_eq!(rev_of(&live), r7);

    let all: Vec<Ev> = replayed.iter().chain([&live]).flat_map(evs).collect();
    assert_eq!(
        all,
        vec![
            put_ev("h/k", "v2", r1, r2, 2),
            put_ev("h/other", "o1", r3, r3, 1),
            del_ev("h/k", r4),
            put_ev("h/k", "v3", r5, r5, 1),
            put_ev("h/k", "v4", r5, r7, 2),
        ]
    );

    // A start revision in the future: nothing before it, then everything from it.
    let cur = current_rev(&mut c).await;
    let mut f = c
        .watch("f", Some(WatchOptions::new().with_start_revision(cur + 3)))
        .await
        .unwrap();
    created(&mut f).await;
    put(&mut c, "f", "1").await;
    put(&mut c, "f", "2").await;
    let a = put(&mut c, "f", "3").await;
    let b = put(&mut c, "f", "4").await;
    assert_eq!(a, cur + 3);
    assert_eq!(
        evs(&next(&mut f).await),
        vec![put_ev("f", "3", cur + 1, a, 3)]
    );
    assert_eq!(
        evs(&next(&mut f).await),
        vec![put_ev("f", "4", cur + 1, b, 4)]
    );
}

/// Watches created while another client writes must see every revision from their start
/// exactly once: the switch from replayed history to live events has no gap and no overlap.
#[tokio::test]
async fn replay_to_live_handover_under_concurrent_writes() {
    let m = Member::start();
    let mut c = m.client().await;
    let first = put(&mut c, "c/start", "0").await;
    const WRITES: usize = 400;
    let writes = spawn_writes(
        m.client().await,
        first,
        (0..WRITES).map(|i| (format!("c/{i}"), i.to_string())),
    );
    // Start watchers at different moments of the write burst, all from `first`.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut s = c
            .watch(
                "c/",
                Some(WatchOptions::new().with_prefix().with_start_revision(first)),
            )
            .await
            .unwrap();
        created(&mut s).await;
        streams.push(s);
        await_more_writes(&mut c, &writes, 40).await;
    }
    let revs = writes.await.unwrap();
    assert_eq!(revs.len(), WRITES + 1);
    let last = *revs.last().unwrap();
    assert_eq!(
        last - first,
        WRITES as i64,
        "writes got consecutive revisions"
    );
    for (n, mut s) in streams.into_iter().enumerate() {
        let resps = read_through(&mut s, last).await;
        let got: Vec<i64> = resps.iter().flat_map(evs).map(|e| e.modr).collect();
        assert_eq!(got, revs, "stream {n}: every revision once, in order");
        for r in &resps {
            let max = evs(r).iter().map(|e| e.modr).max().unwrap();
            assert!(rev_of(r) >= max, "header below its events: {r:?}");
        }
    }
}

#[tokio::test]
async fn prev_kv_and_filters() {
    let m = Member::start();
    let mut c = m.client().await;
    let mut s = c
        .watch("k", Some(WatchOptions::new().with_prev_key()))
        .await
        .unwrap();
    let watchers = [
        (
            "noput",
            WatchOptions::new().with_filters([WatchFilterType::NoPut]),
        ),
        (
            "nodelete",
            WatchOptions::new().with_filters([WatchFilterType::NoDelete]),
        ),
        ("plain", WatchOptions::new()),
        (
            "noput+nodelete",
            WatchOptions::new().with_filters([WatchFilterType::NoPut, WatchFilterType::NoDelete]),
        ),
        (
            "nodelete+prev_kv",
            WatchOptions::new()
                .with_filters([WatchFilterType::NoDelete])
                .with_prev_key(),
        ),
    ];
    assert_eq!(created(&mut s).await, 0);
    for (i, (_, opts)) in watchers.iter().enumerate() {
        s.watch("k", Some(opts.clone())).await.unwrap();
        assert_eq!(created(&mut s).await, i as i64 + 1);
    }
    s.watch("marker", None).await.unwrap();
    assert_eq!(created(&mut s).await, 6);

    let r1 = put(&mut c, "k", "v1").await;
    let r2 = put(&mut c, "k", "v2").await;
    let r3 = c
        .delete("k", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let r4 = put(&mut c, "k", "v3").await;
    put(&mut c, "marker", "m").await;
    let resps = read_until(&mut s, |got| saw_key(got, 6, "marker")).await;
    let got = by_watcher(&resps);

    let p1 = put_ev("k", "v1", r1, r1, 1);
    let p2 = put_ev("k", "v2", r1, r2, 2);
    let d3 = del_ev("k", r3);
    let p4 = put_ev("k", "v3", r4, r4, 1);
    let with_prev = vec![
        p1.clone(),
        p2.clone().with_prev("v1", r1),
        d3.clone().with_prev("v2", r2),
        p4.clone(),
    ];
    let want: [(i64, Vec<Ev>); 6] = [
        (0, with_prev.clone()),
        (1, vec![d3.clone()]),
        (2, vec![p1.clone(), p2.clone(), p4.clone()]),
        (3, vec![p1.clone(), p2.clone(), d3.clone(), p4.clone()]),
        (4, vec![]),
        (
            5,
            vec![p1.clone(), p2.clone().with_prev("v1", r1), p4.clone()],
        ),
    ];
    for (id, events) in want {
        assert_eq!(
            got.get(&id).cloned().unwrap_or_default(),
            events,
            "watcher {id}"
        );
    }

    // Replayed history carries the same previous versions as live events did.
    let mut replay = c
        .watch(
            "k",
            Some(WatchOptions::new().with_prev_key().with_start_revision(r1)),
        )
        .await
        .unwrap();
    created(&mut replay).await;
    let resps = read_until(&mut replay, |got| {
        got.iter().map(|r| r.events().len()).sum::<usize>() == 4
    })
    .await;
    assert_eq!(resps.iter().flat_map(evs).collect::<Vec<_>>(), with_prev);
}

/// Puts read the version they replace only while a watcher wants `prev_kv`; watchers that
/// ask for it while writes run, after others asked and left, still get it on every event.
#[tokio::test]
async fn prev_kv_watchers_coming_and_going_during_writes_get_every_previous_value() {
    let m = Member::start();
    let mut c = m.client().await;
    let first = put(&mut c, "p", "0").await;
    const WRITES: usize = 300;
    let writes = spawn_writes(
        m.client().await,
        first,
        (1..=WRITES).map(|i| ("p".to_string(), i.to_string())),
    );
    let mut kept = Vec::new();
    for n in 0..8 {
        let mut s = c
            .watch("p", Some(WatchOptions::new().with_prev_key()))
            .await
            .unwrap();
        created(&mut s).await;
        // Every other stream closes again, the first one among them, so the interest in
        // previous values comes and goes while puts are applied and the kept streams
        // register after that.
        if n % 2 == 1 {
            kept.push(s);
        }
        await_more_writes(&mut c, &writes, 20).await;
    }
    let revs = writes.await.unwrap();
    let last = *revs.last().unwrap();
    let mut checked = 0;
    for (n, mut s) in kept.into_iter().enumerate() {
        let resps = read_through(&mut s, last).await;
        for e in resps.iter().flat_map(evs) {
            let i: usize = e.value.parse().unwrap();
            assert_eq!(e.modr, revs[i], "stream {n}: event of put {i}");
            assert_eq!(
                e.prev,
                Some(((i - 1).to_string(), revs[i - 1])),
                "stream {n}: put {i} carries the version it replaced"
            );
            checked += 1;
        }
    }
    assert!(checked >= WRITES, "the kept watchers saw the writes");
}

#[tokio::test]
async fn client_chosen_ids_and_refused_creates() {
    let m = Member::start();
    let mut c = m.client().await;
    let rev = put(&mut c, "seed", "x").await;
    let mut s = c
        .watch("a", Some(WatchOptions::new().with_watch_id(7)))
        .await
        .unwrap();
    assert_eq!(created(&mut s).await, 7);

    // (what, key, options, cancel reason) — etcd answers created+canceled with watch id -1.
    let refusals = [
        (
            "duplicate id",
            "b",
            WatchOptions::new().with_watch_id(7),
            DUPLICATE_ID,
        ),
        (
            "end before key",
            "b",
            WatchOptions::new().with_range("a"),
            EMPTY_RANGE,
        ),
        (
            "end equals key",
            "b",
            WatchOptions::new().with_range("b"),
            EMPTY_RANGE,
        ),
    ];
    for (what, key, opts, reason) in refusals {
        s.watch(key, Some(opts)).await.unwrap();
        let resp = next(&mut s).await;
        assert!(resp.created(), "{what}: {resp:?}");
        assert!(resp.canceled(), "{what}: {resp:?}");
        assert_eq!(resp.watch_id(), -1, "{what}");
        assert_eq!(resp.cancel_reason(), reason, "{what}");
        assert_eq!(rev_of(&resp), rev, "{what}");
        assert!(resp.events().is_empty());
    }

    // Automatic ids skip the ones clients chose.
    s.watch("b", None).await.unwrap();
    assert_eq!(created(&mut s).await, 0);
    s.watch("c", Some(WatchOptions::new().with_watch_id(1)))
        .await
        .unwrap();
    assert_eq!(created(&mut s).await, 1);
    s.watch("d", None).await.unwrap();
    assert_eq!(created(&mut s).await, 2);

    let ra = put(&mut c, "a", "1").await;
    let rb = put(&mut c, "b", "2").await;
    let rc = put(&mut c, "c", "3").await;
    let rd = put(&mut c, "d", "4").await;
    let resps = read_until(&mut s, |got| saw_key(got, 2, "d")).await;
    let got = by_watcher(&resps);
    assert_eq!(got[&7], vec![put_ev("a", "1", ra, ra, 1)]);
    assert_eq!(got[&0], vec![put_ev("b", "2", rb, rb, 1)]);
    assert_eq!(got[&1], vec![put_ev("c", "3", rc, rc, 1)]);
    assert_eq!(got[&2], vec![put_ev("d", "4", rd, rd, 1)]);
    assert_eq!(got.len(), 4, "the refused creates got nothing: {got:?}");

    // A canceled id may be chosen again; another stream has its own ids.
    s.cancel(7).await.unwrap();
    assert!(next(&mut s).await.canceled());
    s.watch("a", Some(WatchOptions::new().with_watch_id(7)))
        .await
        .unwrap();
    assert_eq!(created(&mut s).await, 7);
    let mut other = c
        .watch("a", Some(WatchOptions::new().with_watch_id(7)))
        .await
        .unwrap();
    assert_eq!(created(&mut other).await, 7);
}

#[tokio::test]
async fn cancel_stops_events() {
    let m = Member::start();
    let mut c = m.client().await;
    let mut s = c.watch("a", None).await.unwrap();
    assert_eq!(created(&mut s).await, 0);
    s.watch("b", None).await.unwrap();
    assert_eq!(created(&mut s).await, 1);
    let ra = put(&mut c, "a", "1").await;
    assert_eq!(evs(&next(&mut s).await), vec![put_ev("a", "1", ra, ra, 1)]);

    s.cancel(0).await.unwrap();
    let resp = next(&mut s).await;
    assert!(resp.canceled() && !resp.created(), "{resp:?}");
    assert_eq!(resp.watch_id(), 0);
    assert_eq!(rev_of(&resp), ra);
    assert!(resp.events().is_empty());
    assert_eq!(resp.cancel_reason(), "");

    // The write to "a" precedes the one to "b": had the canceled watcher been sent it, it
    // would arrive first.
    put(&mut c, "a", "2").await;
    let rb = put(&mut c, "b", "1").await;
    let resp = next(&mut s).await;
    assert_eq!(resp.watch_id(), 1);
    assert_eq!(evs(&resp), vec![put_ev("b", "1", rb, rb, 1)]);

    // Canceling an unknown id gets no answer (etcd 3.5), and the stream goes on.
    s.cancel(42).await.unwrap();
    let rb2 = put(&mut c, "b", "2").await;
    let resp = next(&mut s).await;
    assert_eq!(resp.watch_id(), 1, "{resp:?}");
    assert_eq!(evs(&resp), vec![put_ev("b", "2", rb, rb2, 2)]);

    // With no watchers left the stream still answers progress requests.
    s.cancel(1).await.unwrap();
    assert!(next(&mut s).await.canceled());
    put(&mut c, "b", "3").await;
    s.request_progress().await.unwrap();
    let resp = next(&mut s).await;
    assert_eq!(resp.watch_id(), -1, "{resp:?}");
    assert!(resp.events().is_empty());
}

#[tokio::test]
async fn progress_request_reports_a_synced_revision() {
    let m = Member::start();
    let mut c = m.client().await;
    let mut s = c.watch("p", None).await.unwrap();
    created(&mut s).await;
    put(&mut c, "other", "1").await;
    let r = put(&mut c, "other", "2").await;
    s.request_progress().await.unwrap();
    let resp = next(&mut s).await;
    assert_eq!(resp.watch_id(), -1);
    assert!(!resp.created() && !resp.canceled());
    assert!(resp.events().is_empty());
    assert_eq!(rev_of(&resp), r, "progress reports the current revision");

    let rp = put(&mut c, "p", "x").await;
    s.request_progress().await.unwrap();
    let resps = read_until(&mut s, |got| got.last().is_some_and(|r| r.watch_id() == -1)).await;
    assert_eq!(resps.len(), 2, "{resps:?}");
    assert_eq!(evs(&resps[0]), vec![put_ev("p", "x", rp, rp, 1)]);
    assert_eq!(rev_of(&resps[1]), rp);

    // While another client writes: a progress revision is never below an event already
    // sent, and every event after it is newer (the progress promised the rest was sent).
    // Several writers, so revisions get published while a progress request is answered.
    let mut writers = Vec::new();
    for w in 0..6 {
        let mut writer = m.client().await;
        writers.push(tokio::spawn(async move {
            let mut last = 0;
            for i in 0..60 {
                last = put(&mut writer, &format!("p/{w}/{i}"), "v").await;
            }
            last
        }));
    }
    let writes = tokio::spawn(async move {
        let mut last = 0;
        for w in writers {
            last = last.max(w.await.unwrap());
        }
        last
    });
    let mut w = c
        .watch("p/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    let mut seen = rev_of(&next(&mut w).await);
    let mut progress = seen;
    let mut progress_count = 0;
    loop {
        // Once the writer is done, the next progress must cover all its writes.
        let finished = writes.is_finished();
        w.request_progress().await.unwrap();
        progress_count += 1;
        let resps = read_until(&mut w, |got| got.last().is_some_and(|r| r.watch_id() == -1)).await;
        for r in &resps {
            if r.watch_id() == -1 {
                assert!(
                    rev_of(r) >= seen,
                    "progress {} below event {seen}",
                    rev_of(r)
                );
                assert!(rev_of(r) >= progress, "progress went back");
                progress = rev_of(r);
            } else {
                assert_eq!(r.watch_id(), 0);
                for e in evs(r) {
                    assert_eq!(e.modr, seen + 1, "events in order, no gap, no duplicate");
                    assert!(
                        e.modr > progress,
                        "event {} at or below progress {progress}",
                        e.modr
                    );
                    seen = e.modr;
                }
            }
        }
        if finished {
            break;
        }
    }
    let last_written = writes.await.unwrap();
    assert_eq!(seen, last_written);
    assert_eq!(progress, last_written);
    assert!(progress_count > 1);
}

#[tokio::test]
async fn periodic_progress_notifications() {
    let m = Member::start_with(&["--experimental-watch-progress-notify-interval", "1s"]);
    let mut c = m.client().await;
    let rj = put(&mut c, "j", "1").await;
    let mut s = c
        .watch("k", Some(WatchOptions::new().with_progress_notify()))
        .await
        .unwrap();
    assert_eq!(created(&mut s).await, 0);
    s.watch("j", None).await.unwrap();
    assert_eq!(created(&mut s).await, 1);

    // Two ticks' worth: only the watcher that asked is notified, at the current revision.
    let resps = read_until(&mut s, |got| got.len() == 2).await;
    for r in &resps {
        assert_eq!(r.watch_id(), 0, "{r:?}");
        assert!(!r.created() && !r.canceled());
        assert!(r.events().is_empty());
        assert_eq!(rev_of(r), rj);
    }

    // A notification after an event reports at least its revision (one may come before).
    let rk = put(&mut c, "k", "1").await;
    let resps = read_until(&mut s, |got| {
        got.iter()
            .position(|r| !r.events().is_empty())
            .is_some_and(|i| got[i + 1..].iter().any(|r| r.events().is_empty()))
    })
    .await;
    let mut seen_event = false;
    for r in &resps {
        assert_eq!(r.watch_id(), 0, "{r:?}");
        if r.events().is_empty() {
            assert_eq!(rev_of(r), if seen_event { rk } else { rj });
        } else {
            assert_eq!(evs(r), vec![put_ev("k", "1", rk, rk, 1)]);
            seen_event = true;
        }
    }

    // A tick after events went out sends no notification: with a write every 100 ms for
    // 5 s (five ticks) there is at most one, and only if the writes stalled for a second.
    const WRITES: usize = 50;
    let mut writer = c.clone();
    let writes = tokio::spawn(async move {
        for i in 0..WRITES {
            put(&mut writer, "k", &format!("w{i}")).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let last = format!("w{}", WRITES - 1);
    let resps = read_until(&mut s, |got| {
        got.last()
            .is_some_and(|r| evs(r).iter().any(|e| e.value == last))
    })
    .await;
    writes.await.unwrap();
    let notifications = resps.iter().filter(|r| r.events().is_empty()).count();
    assert_eq!(resps.len() - notifications, WRITES);
    assert!(
        notifications <= 1,
        "{notifications} progress notifications while events flowed"
    );
}

/// A raw watch stream (the etcd-client crate hides the `fragment` flag).
struct RawWatch {
    tx: tokio::sync::mpsc::Sender<pb::WatchRequest>,
    rx: tonic::Streaming<pb::WatchResponse>,
}

fn create_request(req: pb::WatchCreateRequest) -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(req)),
    }
}

impl RawWatch {
    /// Opens a stream with its first watcher; returns the stream and the watcher's id.
    async fn open(m: &Member, first: pb::WatchCreateRequest) -> (RawWatch, i64) {
        let channel = tonic::transport::Endpoint::from_shared(m.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap();
        RawWatch::open_on(channel, first).await
    }

    /// Like [`RawWatch::open`], on a channel the caller configured.
    async fn open_on(
        channel: tonic::transport::Channel,
        first: pb::WatchCreateRequest,
    ) -> (RawWatch, i64) {
        let mut client =
            pb::watch_client::WatchClient::new(channel).max_decoding_message_size(64 << 20);
        // Queue the create before the call: a server may send the response headers only
        // with its first message (etcd's Go gRPC does).
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tx.send(create_request(first)).await.unwrap();
        let rx = client
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let mut raw = RawWatch { tx, rx };
        let id = raw.created().await;
        (raw, id)
    }

    async fn create(&mut self, req: pb::WatchCreateRequest) -> i64 {
        self.tx.send(create_request(req)).await.unwrap();
        self.created().await
    }

    async fn created(&mut self) -> i64 {
        let resp = self.next().await;
        assert!(resp.created && !resp.canceled, "{resp:?}");
        resp.watch_id
    }

    async fn next(&mut self) -> pb::WatchResponse {
        tokio::time::timeout(TIMEOUT, self.rx.message())
            .await
            .expect("a watch response in time")
            .unwrap()
            .expect("stream open")
    }

    /// Reads until watcher `id` has a complete (non-fragment) response; returns its
    /// responses and the other watchers' responses.
    async fn read_whole(&mut self, id: i64) -> (Vec<pb::WatchResponse>, Vec<pb::WatchResponse>) {
        let (mut mine, mut others) = (Vec::new(), Vec::new());
        loop {
            let resp = self.next().await;
            if resp.watch_id != id {
                others.push(resp);
                continue;
            }
            let last = !resp.fragment;
            mine.push(resp);
            if last {
                return (mine, others);
            }
        }
    }
}

#[tokio::test]
async fn large_revisions_arrive_fragmented_when_asked() {
    const MAX_REQUEST: usize = 10240;
    // etcd's limit for one watch response: --max-request-bytes plus 512 KiB of gRPC slack.
    const LIMIT: usize = MAX_REQUEST + 512 * 1024;
    const KEYS: usize = 64;
    let m = Member::start_with(&["--max-request-bytes", &MAX_REQUEST.to_string()]);
    let mut c = m.client().await;
    let mut puts = Vec::new();
    for i in 0..KEYS {
        let value = format!("{i:02}").repeat(4500);
        let rev = put(&mut c, &format!("frag/{i:02}"), &value).await;
        puts.push((format!("frag/{i:02}"), value, rev));
    }

    let prefix = pb::WatchCreateRequest {
        key: b"frag/".to_vec(),
        range_end: b"frag0".to_vec(),
        prev_kv: true,
        ..Default::default()
    };
    let fragment = pb::WatchCreateRequest {
        fragment: true,
        ..prefix.clone()
    };
    let (mut raw, fragmented) = RawWatch::open(&m, fragment).await;
    let whole = raw.create(prefix.clone()).await;

    // One DeleteRange: one revision whose events (with previous values) exceed the limit.
    let del = c
        .delete("frag/", Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(del.deleted(), KEYS as i64);
    let rd = del.header().unwrap().revision();
    let (parts, mut others) = raw.read_whole(fragmented).await;
    if !others.iter().any(|r| r.watch_id == whole) {
        others.extend(raw.read_whole(whole).await.0);
    }
    assert!(
        parts.len() >= 2,
        "expected fragments, got {} response(s)",
        parts.len()
    );
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p.fragment, i + 1 < parts.len(), "fragment flag of part {i}");
        assert_eq!(p.header.as_ref().unwrap().revision, rd);
        assert!(
            p.encoded_len() < LIMIT,
            "part {i} is {} bytes",
            p.encoded_len()
        );
        assert!(!p.events.is_empty());
        // Greedy like etcd's sendFragments: a part ends only where one more event would
        // reach the limit.
        if let Some(next) = parts.get(i + 1) {
            let mut grown = p.clone();
            grown.events.push(next.events[0].clone());
            assert!(grown.encoded_len() >= LIMIT, "part {i} ended early");
        }
    }
    let reassembled: Vec<_> = parts.iter().flat_map(|p| p.events.clone()).collect();
    let unfragmented: Vec<_> = others.iter().filter(|r| r.watch_id == whole).collect();
    assert_eq!(unfragmented.len(), 1, "without fragment, one response");
    assert!(!unfragmented[0].fragment);
    assert!(unfragmented[0].encoded_len() >= LIMIT);
    assert_eq!(reassembled, unfragmented[0].events);
    assert_eq!(reassembled.len(), KEYS);
    for (e, (key, value, rev)) in reassembled.iter().zip(&puts) {
        assert_eq!(
            e.r#type,
            oxcd::proto::mvccpb::event::EventType::Delete as i32
        );
        let kv = e.kv.as_ref().unwrap();
        assert_eq!((kv.key.as_slice(), kv.mod_revision), (key.as_bytes(), rd));
        let prev = e.prev_kv.as_ref().unwrap();
        assert_eq!(
            (prev.value.as_slice(), prev.mod_revision),
            (value.as_bytes(), *rev)
        );
    }

    // Replayed history is fragmented the same way.
    let from_first_put = pb::WatchCreateRequest {
        start_revision: puts[0].2,
        fragment: true,
        ..prefix
    };
    let (mut replay, id) = RawWatch::open(&m, from_first_put).await;
    let mut events = Vec::new();
    let mut parts = 0;
    while events.len() < 2 * KEYS {
        let (mine, _) = replay.read_whole(id).await;
        parts += mine.len();
        events.extend(mine.into_iter().flat_map(|p| p.events));
    }
    assert!(parts >= 2, "replay was not fragmented");
    let mods: Vec<i64> = events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect();
    let want: Vec<i64> = puts.iter().map(|p| p.2).chain([rd; KEYS]).collect();
    assert_eq!(mods, want);
}

#[tokio::test]
async fn watch_from_compacted_revision_is_canceled() {
    let m = Member::start();
    let mut c = m.client().await;
    let mut revs = Vec::new();
    for i in 1..=5 {
        revs.push(put(&mut c, "k", &format!("v{i}")).await);
    }
    let compact = revs[3];
    c.compact(compact, None).await.unwrap();
    let create = revs[0];

    // (start revision, events expected or None when canceled as compacted)
    let cases: [(i64, Option<Vec<Ev>>); 4] = [
        (1, None),
        (revs[2], None),
        (
            compact,
            Some(vec![
                put_ev("k", "v4", create, revs[3], 4),
                put_ev("k", "v5", create, revs[4], 5).with_prev("v4", revs[3]),
            ]),
        ),
        (
            revs[4],
            Some(vec![
                put_ev("k", "v5", create, revs[4], 5).with_prev("v4", revs[3]),
            ]),
        ),
    ];
    for (start, want) in cases {
        let mut s = c
            .watch(
                "k",
                Some(
                    WatchOptions::new()
                        .with_start_revision(start)
                        .with_prev_key(),
                ),
            )
            .await
            .unwrap();
        let id = created(&mut s).await;
        let resp = next(&mut s).await;
        assert_eq!(resp.watch_id(), id, "start {start}");
        match want {
            None => {
                assert!(resp.canceled(), "start {start}: {resp:?}");
                assert_eq!(resp.compact_revision(), compact, "start {start}");
                assert!(resp.events().is_empty());
                assert_eq!(rev_of(&resp), 0, "etcd's compaction notice has revision 0");
                // The stream itself lives on.
                s.request_progress().await.unwrap();
                assert_eq!(next(&mut s).await.watch_id(), -1);
            }
            Some(events) => {
                assert!(!resp.canceled(), "start {start}: {resp:?}");
                assert_eq!(resp.compact_revision(), 0);
                // v4's predecessor was compacted away: no prev_kv, as in etcd.
                assert_eq!(evs(&resp), events, "start {start}");
            }
        }
    }
}

#[tokio::test]
async fn txn_arrives_as_one_response() {
    let m = Member::start();
    let mut c = m.client().await;
    let mut s = c
        .watch("t/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    created(&mut s).await;
    s.watch("t/b", None).await.unwrap();
    assert_eq!(created(&mut s).await, 1);

    let txn = Txn::new().and_then(vec![
        TxnOp::put("t/a", "1", None),
        TxnOp::put("t/b", "2", None),
        TxnOp::put("outside", "x", None),
        TxnOp::put("t/c", "3", None),
    ]);
    let r = c.txn(txn).await.unwrap().header().unwrap().revision();
    let resps = read_until(&mut s, |got| got.len() == 2).await;
    let prefix = resps.iter().find(|x| x.watch_id() == 0).unwrap();
    assert_eq!(rev_of(prefix), r);
    assert_eq!(
        evs(prefix),
        vec![
            put_ev("t/a", "1", r, r, 1),
            put_ev("t/b", "2", r, r, 1),
            put_ev("t/c", "3", r, r, 1),
        ]
    );
    let single = resps.iter().find(|x| x.watch_id() == 1).unwrap();
    assert_eq!(evs(single), vec![put_ev("t/b", "2", r, r, 1)]);

    let txn = Txn::new().and_then(vec![
        TxnOp::delete("t/a", None),
        TxnOp::put("t/d", "4", None),
        TxnOp::put("t/c", "5", None),
    ]);
    let r2 = c.txn(txn).await.unwrap().header().unwrap().revision();
    let resp = next(&mut s).await;
    assert_eq!(resp.watch_id(), 0);
    assert_eq!(rev_of(&resp), r2);
    assert_eq!(
        evs(&resp),
        vec![
            del_ev("t/a", r2),
            put_ev("t/d", "4", r2, r2, 1),
            put_ev("t/c", "5", r, r2, 2),
        ]
    );
}

/// An event as (mod revision, key, value), what the slow-reader test compares.
type Write = (i64, String, String);

/// Checks a stream's events against the writes: every revision exactly once, in order.
fn check_all_writes(name: &str, got: &[Write], writes: &BTreeMap<i64, (String, String)>) {
    let want: Vec<Write> = writes
        .iter()
        .map(|(r, (k, v))| (*r, k.clone(), v.clone()))
        .collect();
    assert_eq!(got.len(), want.len(), "{name}: event count");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!("{name}: event {i} is {:?}, expected {:?}", got[i], want[i]);
    }
}

/// A watcher that does not read while thousands of revisions are written (more than the
/// hub buffers) still gets every event once, in order; one that reads keeps up.
#[tokio::test]
async fn lagging_and_busy_watchers_lose_nothing() {
    const WRITERS: usize = 16;
    const PER_WRITER: usize = 330;
    let total = WRITERS * PER_WRITER;
    let m = Member::start();
    let mut c = m.client().await;
    // The slow reader gets small HTTP/2 windows (the client's defaults would buffer about
    // 2 MiB of unread responses), so its server-side stream falls more than the hub's 4096
    // revisions behind and must catch up from history.
    let narrow = tonic::transport::Endpoint::from_shared(m.endpoint())
        .unwrap()
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(64 * 1024)
        .connect()
        .await
        .unwrap();
    let prefix = pb::WatchCreateRequest {
        key: b"lag/".to_vec(),
        range_end: b"lag0".to_vec(),
        ..Default::default()
    };
    let (mut lagging, _) = RawWatch::open_on(narrow, prefix).await;
    let mut busy = c
        .watch("lag/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    created(&mut busy).await;
    let reader = tokio::spawn(async move {
        let mut events = Vec::new();
        while events.len() < total {
            let resp = next(&mut busy).await;
            events.extend(evs(&resp).into_iter().map(|e| (e.modr, e.key, e.value)));
        }
        (events, busy)
    });

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let mut wc = m.client().await;
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for i in 0..PER_WRITER {
                let k = format!("lag/{w:02}/{i:04}");
                let v = format!("{w}-{i}-{}", "v".repeat(100));
                let rev = put(&mut wc, &k, &v).await;
                done.push((rev, (k, v)));
            }
            done
        }));
    }
    let mut writes = BTreeMap::new();
    for t in tasks {
        writes.extend(t.await.unwrap());
    }
    assert_eq!(writes.len(), total, "every write got its own revision");

    let mut events = Vec::new();
    while events.len() < total {
        let resp = lagging.next().await;
        events.extend(resp.events.into_iter().map(|e| {
            let kv = e.kv.unwrap_or_default();
            (kv.mod_revision, text(&kv.key), text(&kv.value))
        }));
    }
    check_all_writes("lagging watcher", &events, &writes);
    let (events, mut busy) = reader.await.unwrap();
    check_all_writes("busy watcher", &events, &writes);

    // Both streams are live afterwards.
    let r = put(&mut c, "lag/after", "x").await;
    assert_eq!(
        evs(&next(&mut busy).await),
        vec![put_ev("lag/after", "x", r, r, 1)]
    );
    let kv = lagging.next().await.events[0].kv.clone().unwrap();
    assert_eq!((kv.key.as_slice(), kv.mod_revision), (&b"lag/after"[..], r));
}

/// The control responses of a watch stream (creates, refusals, cancels, progress, replay,
/// compaction), as text with revisions relative to the first write.
async fn control_transcript(mut c: Client) -> Vec<String> {
    let r0 = put(&mut c, "unrelated", "x").await;
    let rel = |r: i64| {
        if r == 0 {
            "0".to_string()
        } else {
            format!("r0{:+}", r - r0)
        }
    };
    let show = |r: &WatchResponse| {
        let events: Vec<String> = evs(r)
            .iter()
            .map(|e| {
                let prev = e.prev.as_ref().map(|(v, m)| format!("{v}@{}", rel(*m)));
                format!(
                    "{} {}={} create={} mod={} ver={} prev={prev:?}",
                    if e.put { "PUT" } else { "DELETE" },
                    e.key,
                    e.value,
                    rel(e.create),
                    rel(e.modr),
                    e.version
                )
            })
            .collect();
        format!(
            "id={} created={} canceled={} compact={} reason={:?} header={} events={events:?}",
            r.watch_id(),
            r.created(),
            r.canceled(),
            if r.compact_revision() == 0 {
                "-".into()
            } else {
                rel(r.compact_revision())
            },
            r.cancel_reason(),
            rel(rev_of(r)),
        )
    };
    let mut out = Vec::new();
    let mut s = c.watch("k", None).await.unwrap();
    out.push(show(&next(&mut s).await));
    s.watch("x", None).await.unwrap();
    out.push(show(&next(&mut s).await));
    s.cancel(0).await.unwrap();
    out.push(show(&next(&mut s).await));
    s.watch("y", None).await.unwrap();
    out.push(show(&next(&mut s).await));
    s.cancel(42).await.unwrap();
    s.request_progress().await.unwrap();
    out.push(show(&next(&mut s).await));
    for opts in [
        WatchOptions::new().with_watch_id(7),
        WatchOptions::new().with_watch_id(7),
        WatchOptions::new().with_range("a"),
        WatchOptions::new(),
    ] {
        s.watch("d", Some(opts)).await.unwrap();
        out.push(show(&next(&mut s).await));
    }
    let k1 = put(&mut c, "k", "1").await;
    put(&mut c, "k", "2").await;
    c.delete("k", None).await.unwrap();
    put(&mut c, "k", "3").await;
    put(&mut c, "other", "1").await;
    // One watcher per key, so no two responses share a revision (etcd orders those freely).
    put(&mut c, "x", "1").await;
    put(&mut c, "y", "1").await;
    for _ in 0..2 {
        out.push(show(&next(&mut s).await));
    }
    let mut h = c
        .watch(
            "k",
            Some(WatchOptions::new().with_start_revision(k1).with_prev_key()),
        )
        .await
        .unwrap();
    out.push(show(&next(&mut h).await));
    out.push(show(&next(&mut h).await));
    let cur = current_rev(&mut c).await;
    c.compact(cur - 1, None).await.unwrap();
    let mut z = c
        .watch("k", Some(WatchOptions::new().with_start_revision(k1)))
        .await
        .unwrap();
    out.push(show(&next(&mut z).await));
    out.push(show(&next(&mut z).await));
    z.watch("", Some(WatchOptions::new().with_range("b")))
        .await
        .unwrap();
    out.push(show(&next(&mut z).await));
    put(&mut c, "a", "1").await;
    out.push(show(&next(&mut z).await));
    out
}

#[tokio::test]
async fn control_responses_match_etcd() {
    let etcd = oxcd_testkit::Member::start_etcd();
    let want = control_transcript(etcd.client().await).await;
    let m = Member::start();
    let got = control_transcript(m.client().await).await;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "response {i} differs from etcd's");
    }
    assert_eq!(got.len(), want.len());
}

/// `--max-concurrent-streams` caps the calls one client connection has open at once; etcd's
/// default is no cap (h2 servers commonly allow 100–200), so a client can keep hundreds of
/// watch streams on one connection.
#[tokio::test]
async fn max_concurrent_streams_caps_the_streams_of_one_connection() {
    async fn open(mut c: Client, key: String) -> WatchStream {
        let mut w = c.watch(key, None).await.unwrap();
        assert!(next(&mut w).await.created());
        w
    }

    let m = Member::start();
    let c = m.client().await;
    let opening: Vec<_> = (0..300)
        .map(|i| tokio::spawn(open(c.clone(), format!("k{i}"))))
        .collect();
    let mut streams = Vec::new();
    for o in opening {
        let w = tokio::time::timeout(TIMEOUT, o)
            .await
            .expect("every stream opens at once");
        streams.push(w.unwrap());
    }
    drop(streams);

    let m = Member::start_with(&["--max-concurrent-streams", "8"]);
    let c = m.client().await;
    let mut streams = Vec::new();
    for i in 0..8 {
        streams.push(open(c.clone(), format!("k{i}")).await);
    }
    let ninth = tokio::spawn(open(c.clone(), "k8".into()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!ninth.is_finished(), "a ninth stream waits for a free one");
    drop(streams.pop());
    tokio::time::timeout(TIMEOUT, ninth)
        .await
        .expect("the ninth stream opens once another ends")
        .unwrap();
}

/// A delete at exactly the compaction revision survives the compaction and a watch from that
/// revision, after a restart too (etcd 3.4.33+; a watch resuming at the compaction revision
/// must not miss it).
#[tokio::test]
async fn a_delete_at_the_compaction_revision_is_still_watched_from_there() {
    let mut m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "gone", "v1").await;
    let deleted = c
        .delete("gone", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    put(&mut c, "other", "x").await;
    c.compact(
        deleted,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    )
    .await
    .unwrap();
    for restarted in [false, true] {
        if restarted {
            m.stop();
            m.restart();
            c = m.client().await;
        }
        let mut s = c
            .watch(
                "gone",
                Some(WatchOptions::new().with_start_revision(deleted)),
            )
            .await
            .unwrap();
        created(&mut s).await;
        let resp = next(&mut s).await;
        assert!(!resp.canceled(), "restarted {restarted}: {resp:?}");
        let events = resp.events();
        assert_eq!(events.len(), 1, "restarted {restarted}: {resp:?}");
        assert_eq!(events[0].event_type(), etcd_client::EventType::Delete);
        assert_eq!(events[0].kv().unwrap().mod_revision(), deleted);
    }
    // Reads at the compaction revision and after still see the key as deleted.
    let at = c
        .get(
            "gone",
            Some(etcd_client::GetOptions::new().with_revision(deleted)),
        )
        .await
        .unwrap();
    assert!(at.kvs().is_empty());
}
