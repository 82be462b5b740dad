//! Randomized histories: a simple sequential store, written here independently of the
//! checker's model, serves clients whose requests overlap at random. Every history it
//! produces is linearizable by construction and must pass; the same history with one
//! read turned stale, or one watch response dropped, must fail.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use oxcd_e2e::checker::{
    CheckOptions, Linearizability, WatchGuarantee, check, check_linearizability,
};
use oxcd_e2e::history::{
    Event, History, KeyValue, Operation, Outcome, Request, Response, ResponseBody, Timestamp,
    TxnOpResponse, TxnRequest, WatchResponse, WatchResponseKind,
};

use crate::fixtures::{delete_event, events, ok, progress, put_event, range_body, watch_all};

const SEEDS: u64 = 40;
const STEPS: u64 = 80;
const CLIENTS: usize = 4;
const KEYS: [&str; 3] = ["a", "b", "c"];

/// A correct sequential etcd store, as small as it can be.
#[derive(Default)]
struct ReferenceStore {
    revision: i64,
    kvs: BTreeMap<String, KeyValue>,
    /// Each key's versions, with whether the write that made it was acknowledged.
    versions: BTreeMap<String, Vec<(KeyValue, bool)>>,
}

impl ReferenceStore {
    fn new() -> Self {
        ReferenceStore {
            revision: 1,
            ..Self::default()
        }
    }

    fn put(&mut self, key: &str, value: &str, acknowledged: bool) -> Event {
        self.revision += 1;
        let prev = self.kvs.get(key).cloned();
        let kv = KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: prev
                .as_ref()
                .map_or(self.revision, |prev| prev.create_revision),
            mod_revision: self.revision,
            version: prev.as_ref().map_or(0, |prev| prev.version) + 1,
            lease: 0,
        };
        self.kvs.insert(key.into(), kv.clone());
        self.versions
            .entry(key.into())
            .or_default()
            .push((kv.clone(), acknowledged));
        put_event(kv, prev)
    }

    fn delete(&mut self, key: &str) -> Option<Event> {
        let prev = self.kvs.remove(key)?;
        self.revision += 1;
        Some(delete_event(key, self.revision, Some(prev)))
    }

    /// A version of `key` older than `current`, if its current version was acknowledged.
    fn older_version(&self, key: &str, current: &KeyValue) -> Option<KeyValue> {
        let versions = self.versions.get(key)?;
        let (last, acknowledged) = versions.last()?;
        (last == current && *acknowledged && versions.len() > 1)
            .then(|| versions[versions.len() - 2].0.clone())
    }
}

/// A generated history, with the reads that a stale copy could break.
struct Generated {
    history: History,
    /// (operation index, an older version of the key it read).
    stale_candidates: Vec<(usize, KeyValue)>,
}

struct Generator {
    rng: StdRng,
    store: ReferenceStore,
    /// When each client's previous operation returned (or was given up on).
    busy_until: Vec<Timestamp>,
    generated: Generated,
    watch: Vec<WatchResponse>,
}

impl Generator {
    fn new(seed: u64, clients: usize) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            store: ReferenceStore::new(),
            busy_until: vec![0; clients],
            generated: Generated {
                history: History::default(),
                stale_candidates: Vec::new(),
            },
            watch: Vec::new(),
        }
    }

    fn run(mut self, steps: u64) -> Generated {
        for step in 0..steps {
            self.step(step);
        }
        let end = (steps + 1) * 10 + 100;
        self.watch.push(progress(end, self.store.revision));
        self.generated
            .history
            .watches
            .push(watch_all(100, 0, 2, self.watch));
        self.generated
    }

    /// One operation, taking effect at time `(step + 1) * 10` on a client that is free.
    fn step(&mut self, step: u64) {
        let effect_time = (step + 1) * 10;
        let free: Vec<usize> = (0..self.busy_until.len())
            .filter(|&c| self.busy_until[c] < effect_time)
            .collect();
        let client = if free.is_empty() {
            self.busy_until.push(0);
            self.busy_until.len() - 1
        } else {
            free[self.rng.random_range(0..free.len())]
        };
        let invoke = self.rng.random_range(
            (self.busy_until[client] + 1).max(effect_time.saturating_sub(35))..=effect_time,
        );
        let ret = effect_time + self.rng.random_range(0..35);
        self.busy_until[client] = ret;

        let key = KEYS[self.rng.random_range(0..KEYS.len())];
        let value = format!("v{step}");
        // A lost answer; for a write, half the time the write is lost too.
        let lost = self.rng.random_bool(0.15);
        let applied = !lost || self.rng.random_bool(0.5);
        let index = self.generated.history.operations.len();
        let (request, response, changes) = match self.rng.random_range(0..10) {
            0..=3 => self.get(key, index, lost),
            4..=5 if applied => {
                let event = self.store.put(key, &value, !lost);
                (
                    Request::put(key, &value),
                    Response {
                        revision: self.store.revision,
                        body: ResponseBody::Put,
                    },
                    vec![event],
                )
            }
            4..=5 => (
                Request::put(key, &value),
                Response {
                    revision: 0,
                    body: ResponseBody::Put,
                },
                vec![],
            ),
            6..=8 if applied => self.create(key, &value, !lost),
            6..=8 => (
                Request::Txn(TxnRequest::create_if_absent(key, &value)),
                Response {
                    revision: 0,
                    body: ResponseBody::Put,
                },
                vec![],
            ),
            // Deletes always get their answer: a lost delete cannot be told apart from
            // another by what later reads see, so the watch check could not place it.
            _ => {
                let event = self.store.delete(key);
                let deleted = i64::from(event.is_some());
                let response = Response {
                    revision: self.store.revision,
                    body: ResponseBody::Delete { deleted },
                };
                (Request::delete(key), response, event.into_iter().collect())
            }
        };
        let lost = lost && !matches!(request, Request::Delete(_));
        if !changes.is_empty() {
            self.watch
                .push(events(effect_time + 1, self.store.revision, changes));
        }
        let (return_time, outcome) = match (lost, self.rng.random_bool(0.5)) {
            (false, _) => (Some(ret), Outcome::Response(response)),
            (true, true) => (
                Some(ret),
                Outcome::Error("context deadline exceeded".into()),
            ),
            (true, false) => (None, Outcome::Unknown),
        };
        self.generated.history.operations.push(Operation {
            client: client as u32,
            invoke,
            return_time,
            request,
            outcome,
        });
    }

    fn get(&mut self, key: &str, index: usize, lost: bool) -> (Request, Response, Vec<Event>) {
        let found = self.store.kvs.get(key).cloned();
        let older = found
            .as_ref()
            .and_then(|current| self.store.older_version(key, current));
        if let Some(older) = older.filter(|_| !lost) {
            self.generated.stale_candidates.push((index, older));
        }
        let body = ResponseBody::Range(range_body(found.into_iter().collect()));
        (
            Request::get(key),
            Response {
                revision: self.store.revision,
                body,
            },
            vec![],
        )
    }

    fn create(
        &mut self,
        key: &str,
        value: &str,
        acknowledged: bool,
    ) -> (Request, Response, Vec<Event>) {
        let request = Request::Txn(TxnRequest::create_if_absent(key, value));
        if let Some(current) = self.store.kvs.get(key).cloned() {
            let results = vec![TxnOpResponse::Range(range_body(vec![current]))];
            let body = ResponseBody::Txn {
                succeeded: false,
                results,
            };
            return (
                request,
                Response {
                    revision: self.store.revision,
                    body,
                },
                vec![],
            );
        }
        let event = self.store.put(key, value, acknowledged);
        let body = ResponseBody::Txn {
            succeeded: true,
            results: vec![TxnOpResponse::Put],
        };
        (
            request,
            Response {
                revision: self.store.revision,
                body,
            },
            vec![event],
        )
    }
}

#[test]
fn correct_store_histories_pass() {
    for seed in 0..SEEDS {
        let generated = Generator::new(seed, CLIENTS).run(STEPS);
        let report = check(&generated.history, &CheckOptions::default());
        assert!(
            report.is_ok(),
            "seed {seed}:\n{report}\n{}",
            generated.history.to_json()
        );
    }
}

#[test]
fn a_stale_read_is_caught() {
    let mut caught = 0;
    for seed in 0..SEEDS {
        let Generated {
            mut history,
            stale_candidates,
        } = Generator::new(seed, CLIENTS).run(STEPS);
        let Some((index, older)) = stale_candidates.last().cloned() else {
            continue;
        };
        let Outcome::Response(Response { revision, .. }) = history.operations[index].outcome else {
            unreachable!()
        };
        history.operations[index].outcome =
            ok(revision, ResponseBody::Range(range_body(vec![older])));
        let verdict = check_linearizability(&history, &CheckOptions::default());
        assert!(
            verdict.is_violation(),
            "seed {seed}: a stale read of operation #{index} passed: {verdict:?}"
        );
        caught += 1;
    }
    assert!(
        caught > SEEDS / 2,
        "too few histories had a read to make stale: {caught}"
    );
}

#[test]
fn a_dropped_watch_event_is_caught() {
    for seed in 0..SEEDS {
        let Generated { mut history, .. } = Generator::new(seed, CLIENTS).run(STEPS);
        let responses = &mut history.watches[0].responses;
        let with_events: Vec<usize> = (0..responses.len())
            .filter(|&i| matches!(responses[i].kind, WatchResponseKind::Events { .. }))
            .collect();
        let mut rng = StdRng::seed_from_u64(seed);
        responses.remove(with_events[rng.random_range(0..with_events.len())]);
        let report = check(&history, &CheckOptions::default());
        assert!(
            report
                .watch
                .iter()
                .any(|violation| violation.guarantee == WatchGuarantee::Reliable),
            "seed {seed}: a dropped event passed:\n{report}"
        );
    }
}

/// Long, busy histories stay cheap: the search is cut at quiet points and revisions
/// pin most orders, so a few thousand operations take far fewer steps than the budget.
#[test]
fn long_histories_check_within_a_small_budget() {
    let options = CheckOptions {
        max_steps: 1_000_000,
        timeout: None,
        ..CheckOptions::default()
    };
    let Generated {
        mut history,
        stale_candidates,
    } = Generator::new(7, 8).run(2000);
    let report = check(&history, &options);
    assert!(report.is_ok(), "{report}");

    let (index, older) = stale_candidates[stale_candidates.len() / 2].clone();
    let Outcome::Response(Response { revision, .. }) = history.operations[index].outcome else {
        unreachable!()
    };
    history.operations[index].outcome = ok(revision, ResponseBody::Range(range_body(vec![older])));
    let Linearizability::Violation(report) = check_linearizability(&history, &options) else {
        panic!("a stale read of operation #{index} passed")
    };
    assert!(report.window.iter().any(|op| op.index == index), "{report}");
    assert!(report.window.len() < 100, "{report}");
}
