//! etcd's v2 keys API (`--enable-v2`), kept in the v3 key space under a reserved prefix
//! (`/_oxcd/v2`, or the one `--experimental-enable-v2v3` names), so it is replicated, made durable,
//! snapshotted and restored with everything else, and invisible to v3 clients that do not
//! read that prefix.
//!
//! # Layout of the prefix `P`
//! - `P/k<path>`: one key per node (`/foo/bar` at `P/k/foo/bar`), its value a [`Record`]: a
//!   file's value or a directory, its expiry, its created index. A directory's subtree is
//!   the range `P/k<path>/`; the root is implicit.
//! - `P/e`: the event log. Every v2 write puts the [`Event`] it made here in the same
//!   transaction, so the key's history is the v2 event history, and the revision of each put
//!   is the event's index (`modifiedIndex`). `wait=true` reads it ([`watch`]).
//! - `P/t<expiry><path>`: the expiry index, `<expiry>` as 16 hex digits of nanoseconds, so
//!   the leader finds due nodes with one range read ([`expiry`]). An entry outlives its node
//!   harmlessly: it is dropped when due if the node no longer carries that expiry.
//!
//! # Writes
//! A write reads the node, its ancestors and, when it needs them, its descendants, decides as
//! etcd's v2 store does, and commits a v3 transaction that compares what it read (each key's
//! mod revision, or its absence; for a subtree, that nothing in it changed since) and makes
//! the change and the event. When a concurrent write changed what it read, it reads again.
//! etcd's index is oxcd's revision: `X-Etcd-Index`, `createdIndex` and `modifiedIndex` are
//! revisions of the v3 store.

pub mod discovery;
pub mod error;
pub mod expiry;
pub mod node;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::mvcc::KeyRange;
use crate::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, compare, request_op,
};
use crate::proto::mvccpb::KeyValue;
use crate::proto::oxcdpb::internal_request::Request as Command;
use crate::server::EtcdServer;

use error::{
    DIR_NOT_EMPTY, KEY_NOT_FOUND, NODE_EXIST, NOT_DIR, NOT_FILE, RAFT_INTERNAL, ROOT_READ_ONLY,
    TEST_FAILED, V2Error, V2Result,
};
pub use node::{Event, NodeExtern, Record, now_ns};

/// How often a write reads again after concurrent writes changed what it read, before it
/// gives up with a 300 error.
const MAX_ATTEMPTS: usize = 64;

/// What a write asks besides its path.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub value: String,
    pub dir: bool,
    /// When the node expires (ns since the epoch); `None` for a permanent node.
    pub expires: Option<i64>,
    /// Only the TTL changes: the value stays, and watchers are not told.
    pub refresh: bool,
}

/// The v2 store of one member: its server, and what every handle on it shares.
pub struct V2Store {
    pub server: Arc<EtcdServer>,
    shared: Arc<Shared>,
}

/// What the member's v2 API keeps: where it lives and its counters.
#[derive(Debug)]
pub struct Shared {
    prefix: Vec<u8>,
    pub stats: Stats,
    /// When this member started (`/v2/stats/self`).
    pub started: std::time::Instant,
    pub started_ns: i64,
}

impl Shared {
    /// The v2 API kept under `prefix`.
    pub fn new(prefix: &str) -> Shared {
        Shared {
            prefix: prefix.trim_end_matches('/').as_bytes().to_vec(),
            stats: Stats::default(),
            started: std::time::Instant::now(),
            started_ns: now_ns(),
        }
    }
}

impl std::ops::Deref for V2Store {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// etcd's `/v2/stats/store` counters, for this member's requests.
#[derive(Debug, Default)]
pub struct Stats {
    pub counters: [AtomicU64; STAT_NAMES.len()],
    pub watchers: AtomicU64,
}

/// The counters `/v2/stats/store` reports, in etcd's order.
pub const STAT_NAMES: [&str; 15] = [
    "getsSuccess",
    "getsFail",
    "setsSuccess",
    "setsFail",
    "deleteSuccess",
    "deleteFail",
    "updateSuccess",
    "updateFail",
    "createSuccess",
    "createFail",
    "compareAndSwapSuccess",
    "compareAndSwapFail",
    "compareAndDeleteSuccess",
    "compareAndDeleteFail",
    "expireCount",
];

impl Stats {
    fn count(&self, name: &str, ok: bool) {
        let wanted = match (name, ok) {
            ("get", true) => "getsSuccess",
            ("get", false) => "getsFail",
            ("set", true) => "setsSuccess",
            ("set", false) => "setsFail",
            ("delete", true) => "deleteSuccess",
            ("delete", false) => "deleteFail",
            ("update", true) => "updateSuccess",
            ("update", false) => "updateFail",
            ("create", true) => "createSuccess",
            ("create", false) => "createFail",
            ("compareAndSwap", true) => "compareAndSwapSuccess",
            ("compareAndSwap", false) => "compareAndSwapFail",
            ("compareAndDelete", true) => "compareAndDeleteSuccess",
            ("compareAndDelete", false) => "compareAndDeleteFail",
            ("expire", _) => "expireCount",
            _ => return,
        };
        if let Some(i) = STAT_NAMES.iter().position(|n| *n == wanted) {
            self.counters[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters as `/v2/stats/store` prints them.
    pub fn json(&self) -> String {
        let mut fields: Vec<String> = STAT_NAMES
            .iter()
            .zip(&self.counters)
            .map(|(n, c)| format!("\"{n}\":{}", c.load(Ordering::Relaxed)))
            .collect();
        fields.push(format!(
            "\"watchers\":{}",
            self.watchers.load(Ordering::Relaxed)
        ));
        format!("{{{}}}", fields.join(","))
    }
}

/// etcd's `path.Clean(path.Join("/", p))`.
pub fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for segment in p.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The directories above `path`, outermost first (not the root).
fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = path[at + 1..].find('/') {
        at += i + 1;
        out.push(path[..at].to_string());
    }
    out
}

/// A node as read: its record and indexes.
#[derive(Debug, Clone)]
struct Stored {
    path: String,
    record: Record,
    created: i64,
    modified: i64,
}

impl Stored {
    fn from_kv(path: String, kv: &KeyValue) -> Stored {
        let record = Record::decode(&kv.value).unwrap_or_else(|| Record {
            value: Some(String::from_utf8_lossy(&kv.value).into_owned()),
            ..Record::default()
        });
        Stored {
            path,
            created: record.created.unwrap_or(kv.mod_revision),
            modified: kv.mod_revision,
            record,
        }
    }

    /// etcd's `Repr(false, false)`: the node without its children.
    fn repr(&self, now: i64) -> NodeExtern {
        NodeExtern::new(&self.path, &self.record, self.created, self.modified, now)
    }

    fn is_dir(&self) -> bool {
        self.record.is_dir()
    }
}

/// What a request read, at one revision.
#[derive(Debug)]
struct View {
    rev: i64,
    path: String,
    /// The directories above the node, outermost first, as far as they exist.
    ancestors: Vec<(String, Option<Stored>)>,
    node: Option<Stored>,
    /// Every node below, when asked for.
    below: BTreeMap<String, Stored>,
}

impl View {
    /// etcd's walk to the node's parent: a file on the way fails with 104; a missing
    /// directory fails with 100 unless `create` (it is then made).
    fn check_parents(&self, create: bool) -> V2Result<()> {
        for (path, stored) in &self.ancestors {
            match stored {
                Some(s) if !s.is_dir() => {
                    return Err(V2Error::new(NOT_DIR, path.clone(), self.rev));
                }
                Some(_) => {}
                None if create => return Ok(()),
                None => return Err(V2Error::new(KEY_NOT_FOUND, path.clone(), self.rev)),
            }
        }
        Ok(())
    }

    /// The node, which must exist.
    fn existing(&self) -> V2Result<&Stored> {
        self.check_parents(false)?;
        self.node
            .as_ref()
            .ok_or_else(|| V2Error::new(KEY_NOT_FOUND, self.path.clone(), self.rev))
    }

    fn root_read_only(&self) -> V2Result<()> {
        if self.path == "/" {
            return Err(V2Error::new(ROOT_READ_ONLY, "/", self.rev));
        }
        Ok(())
    }

    /// The node's children (hidden ones left out), each with its own when `recursive`.
    fn children(&self, dir: &str, recursive: bool, now: i64) -> Vec<NodeExtern> {
        let base = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        self.below
            .range(base.clone()..)
            .take_while(|(p, _)| p.starts_with(&base))
            .filter(|(p, _)| !p[base.len()..].contains('/') && !p[base.len()..].starts_with('_'))
            .map(|(p, s)| {
                let mut node = s.repr(now);
                if recursive && s.is_dir() {
                    let nodes = self.children(p, true, now);
                    node.nodes = (!nodes.is_empty()).then_some(nodes);
                }
                node
            })
            .collect()
    }
}

/// A write decided: what it must find unchanged, what it does, and the event it makes
/// (indexes left 0 where the write's own revision goes).
struct Plan {
    compares: Vec<Compare>,
    ops: Vec<RequestOp>,
    event: Event,
}

impl Plan {
    fn new(action: &str, node: NodeExtern, prev: Option<NodeExtern>) -> Plan {
        Plan {
            compares: Vec::new(),
            ops: Vec::new(),
            event: Event {
                action: action.to_string(),
                node: Some(node),
                prev_node: prev,
                refresh: false,
            },
        }
    }
}

/// The event as of the revision `rev` that made it: that revision is its node's
/// modified index, and its created index when the write created the node.
pub fn event_at(mut event: Event, rev: i64) -> Event {
    if let Some(node) = &mut event.node {
        node.modified_index = rev;
        if node.created_index == 0 {
            node.created_index = rev;
        }
    }
    event
}

fn put_op(key: Vec<u8>, value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key,
            value,
            ..PutRequest::default()
        })),
    }
}

fn delete_op(key: Vec<u8>, range_end: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key,
                range_end,
                ..DeleteRangeRequest::default()
            },
        )),
    }
}

impl V2Store {
    /// The v2 store of `server`, when it serves the v2 API (`--enable-v2`).
    pub fn of(server: &Arc<EtcdServer>) -> Option<Arc<V2Store>> {
        let shared = server.v2.clone()?;
        Some(Arc::new(V2Store {
            server: server.clone(),
            shared,
        }))
    }

    fn key(&self, tag: &str, rest: &str) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.push(b'/');
        k.extend_from_slice(tag.as_bytes());
        k.extend_from_slice(rest.as_bytes());
        k
    }

    fn node_key(&self, path: &str) -> Vec<u8> {
        self.key("k", path)
    }

    /// The key range of everything below `path`.
    fn subtree(&self, path: &str) -> (Vec<u8>, Vec<u8>) {
        let start = self.key("k", &format!("{}/", path.trim_end_matches('/')));
        let mut end = start.clone();
        *end.last_mut().expect("not empty") += 1;
        (start, end)
    }

    /// The event log's key.
    pub fn event_key(&self) -> Vec<u8> {
        self.key("e", "")
    }

    fn expiry_key(&self, expires: i64, path: &str) -> Vec<u8> {
        self.key("t", &format!("{:016x}{path}", expires.max(0)))
    }

    /// The path of a node key read back.
    fn path_of(&self, key: &[u8]) -> String {
        String::from_utf8_lossy(&key[self.prefix.len() + 2..]).into_owned()
    }

    /// The store's current index (revision).
    pub fn index(&self) -> i64 {
        self.server.state.read().kv.mvcc.current_rev()
    }

    /// Reads the node at `path` and its parents, and its subtree when `below`.
    fn view(&self, path: &str, below: bool) -> V2Result<View> {
        let state = self.server.state.read();
        let backend = self.server.state.backend();
        let mvcc = &state.kv.mvcc;
        let internal = |e: crate::error::Error| V2Error::internal(&e);
        let get = |p: &str| -> V2Result<Option<Stored>> {
            let r = mvcc
                .range(backend, &KeyRange::single(&self.node_key(p)), 0, 1, false)
                .map_err(internal)?;
            Ok(r.kvs.first().map(|kv| Stored::from_kv(p.to_string(), kv)))
        };
        let mut parents = Vec::new();
        for a in ancestors(path) {
            let found = get(&a)?;
            let stop = found.as_ref().is_none_or(|s| !s.is_dir());
            parents.push((a, found));
            if stop {
                break;
            }
        }
        let reachable = parents
            .iter()
            .all(|(_, s)| s.as_ref().is_some_and(Stored::is_dir));
        let node = match (path, reachable) {
            ("/", _) => None,
            (_, true) => get(path)?,
            (_, false) => None,
        };
        let mut subtree = BTreeMap::new();
        if below && (path == "/" || node.as_ref().is_some_and(Stored::is_dir)) {
            let (start, end) = self.subtree(path);
            let r = mvcc
                .range(backend, &KeyRange::from_request(&start, &end), 0, 0, false)
                .map_err(internal)?;
            for kv in &r.kvs {
                let p = self.path_of(&kv.key);
                subtree.insert(p.clone(), Stored::from_kv(p, kv));
            }
        }
        Ok(View {
            rev: mvcc.current_rev(),
            path: path.to_string(),
            ancestors: parents,
            node,
            below: subtree,
        })
    }

    /// etcd's `Get`: the node, with its children (and theirs, when `recursive`).
    pub async fn get(&self, path: &str, recursive: bool, quorum: bool) -> V2Result<(Event, i64)> {
        if quorum {
            self.server
                .read_index()
                .await
                .map_err(|e| V2Error::internal(&e))?;
        }
        let result = self.read(&clean(path), recursive);
        self.stats.count("get", result.is_ok());
        result
    }

    fn read(&self, path: &str, recursive: bool) -> V2Result<(Event, i64)> {
        let view = self.view(path, true)?;
        let now = now_ns();
        let mut node = if path == "/" {
            NodeExtern {
                dir: true,
                ..NodeExtern::default()
            }
        } else {
            view.existing()?.repr(now)
        };
        if node.dir {
            let nodes = view.children(path, recursive, now);
            node.nodes = (!nodes.is_empty()).then_some(nodes);
        }
        let event = Event {
            action: "get".into(),
            node: Some(node),
            ..Event::default()
        };
        Ok((event, view.rev))
    }

    /// Runs a write: reads, decides with `decide`, commits, and reads again when a
    /// concurrent write changed what it read. Answers the event and the store index after.
    async fn write(
        &self,
        action: &str,
        path: &str,
        below: bool,
        decide: impl Fn(&View) -> V2Result<Plan>,
    ) -> V2Result<(Event, i64)> {
        let result = self.try_write(path, below, decide).await;
        let name = result
            .as_ref()
            .map(|(e, _)| e.action.as_str())
            .unwrap_or(action);
        self.stats.count(name, result.is_ok());
        result
    }

    async fn try_write(
        &self,
        path: &str,
        below: bool,
        decide: impl Fn(&View) -> V2Result<Plan>,
    ) -> V2Result<(Event, i64)> {
        for _ in 0..MAX_ATTEMPTS {
            let view = self.view(path, below)?;
            let mut plan = decide(&view)?;
            let stored_event = serde_json::to_vec(&plan.event).expect("an event serializes");
            plan.ops.push(put_op(self.event_key(), stored_event));
            let txn = TxnRequest {
                compare: plan.compares,
                success: plan.ops,
                failure: Vec::new(),
            };
            if let Some(rev) = self.commit(txn).await? {
                return Ok((event_at(plan.event, rev), rev));
            }
        }
        Err(V2Error::new(
            RAFT_INTERNAL,
            "the key kept changing under the request",
            self.index(),
        ))
    }

    /// Proposes `txn` (as the member itself: the v2 API is outside v3 auth, as in etcd);
    /// answers its revision when its compares held.
    async fn commit(&self, txn: TxnRequest) -> V2Result<Option<i64>> {
        let resp: crate::proto::etcdserverpb::TxnResponse = self
            .server
            .propose_expect(None, Command::Txn(txn))
            .await
            .map_err(|e| V2Error::internal(&e))?;
        Ok(resp
            .succeeded
            .then(|| resp.header.map(|h| h.revision).unwrap_or_default()))
    }

    /// The compare that `stored` (or its absence) at `path` is still what was read.
    fn unchanged(&self, path: &str, stored: Option<&Stored>) -> Compare {
        let (target, union) = match stored {
            Some(s) => (
                compare::CompareTarget::Mod,
                compare::TargetUnion::ModRevision(s.modified),
            ),
            None => (
                compare::CompareTarget::Create,
                compare::TargetUnion::CreateRevision(0),
            ),
        };
        Compare {
            result: compare::CompareResult::Equal as i32,
            target: target as i32,
            key: self.node_key(path),
            range_end: Vec::new(),
            target_union: Some(union),
        }
    }

    /// The compare that nothing below `path` changed after revision `rev`.
    fn subtree_unchanged(&self, path: &str, rev: i64) -> Compare {
        let (key, range_end) = self.subtree(path);
        Compare {
            result: compare::CompareResult::Less as i32,
            target: compare::CompareTarget::Mod as i32,
            key,
            range_end,
            target_union: Some(compare::TargetUnion::ModRevision(rev + 1)),
        }
    }

    /// The compares that the node and its parents are as read, for any write.
    fn guard(&self, view: &View, plan: &mut Plan) {
        for (p, s) in &view.ancestors {
            plan.compares.push(self.unchanged(p, s.as_ref()));
        }
        plan.compares
            .push(self.unchanged(&view.path, view.node.as_ref()));
    }

    /// Stores `record` at `path` (with its expiry index entry).
    fn store(&self, plan: &mut Plan, path: &str, record: &Record) {
        plan.ops.push(put_op(self.node_key(path), record.encode()));
        if let Some(at) = record.expires {
            plan.ops.push(put_op(self.expiry_key(at, path), Vec::new()));
        }
    }

    /// Makes the parents `view` found missing, as directories.
    fn make_parents(&self, view: &View, plan: &mut Plan) {
        for (p, s) in &view.ancestors {
            if s.is_none() {
                self.store(plan, p, &Record::default());
            }
        }
        // Parents below the first missing one were not read: they are missing too.
        if let Some(last) = view.ancestors.last().filter(|(_, s)| s.is_none()) {
            for p in ancestors(&view.path)
                .into_iter()
                .filter(|p| p.len() > last.0.len())
            {
                self.store(plan, &p, &Record::default());
            }
        }
    }

    /// The node a write leaves at `path`.
    fn written(path: &str, record: &Record, created: i64, now: i64) -> NodeExtern {
        NodeExtern::new(path, record, created, 0, now)
    }

    /// A new node at `path` (etcd's `internalCreate`): `replace` lets it replace a file.
    fn create_plan(
        &self,
        view: &View,
        action: &str,
        opts: &WriteOptions,
        replace: bool,
    ) -> V2Result<Plan> {
        view.root_read_only()?;
        view.check_parents(true)?;
        let now = now_ns();
        let prev = match &view.node {
            Some(_) if !replace => {
                return Err(V2Error::new(NODE_EXIST, view.path.clone(), view.rev));
            }
            Some(n) if n.is_dir() => {
                return Err(V2Error::new(NOT_FILE, view.path.clone(), view.rev));
            }
            Some(n) => Some(n.repr(now)),
            None => None,
        };
        let record = Record {
            value: (!opts.dir).then(|| opts.value.clone()),
            expires: opts.expires,
            created: None,
        };
        let mut plan = Plan::new(action, Self::written(&view.path, &record, 0, now), prev);
        self.guard(view, &mut plan);
        self.make_parents(view, &mut plan);
        self.store(&mut plan, &view.path, &record);
        Ok(plan)
    }

    /// A change of an existing node that keeps it (update, compare-and-swap, refresh).
    fn change_plan(
        &self,
        view: &View,
        action: &str,
        n: &Stored,
        value: Option<String>,
        opts: &WriteOptions,
    ) -> Plan {
        let now = now_ns();
        let record = Record {
            value,
            expires: opts.expires,
            created: Some(n.created),
        };
        let mut plan = Plan::new(
            action,
            Self::written(&view.path, &record, n.created, now),
            Some(n.repr(now)),
        );
        plan.event.refresh = opts.refresh;
        self.guard(view, &mut plan);
        self.store(&mut plan, &view.path, &record);
        plan
    }

    /// etcd's `Set`: creates or replaces a file (or creates a directory).
    pub async fn set(&self, path: &str, opts: WriteOptions) -> V2Result<(Event, i64)> {
        self.write("set", &clean(path), false, |view| {
            let mut opts = opts.clone();
            if opts.refresh {
                view.check_parents(true)?;
                let n = view.existing()?;
                opts.value = n.record.value.clone().unwrap_or_default();
            }
            let mut plan = self.create_plan(view, "set", &opts, true)?;
            plan.event.refresh = opts.refresh;
            Ok(plan)
        })
        .await
    }

    /// etcd's `Create`: a node that must not exist yet; with `unique`, a new node below
    /// `path` named by the next index (POST's in-order keys).
    pub async fn create(
        &self,
        path: &str,
        unique: bool,
        opts: WriteOptions,
    ) -> V2Result<(Event, i64)> {
        let base = clean(path);
        if !unique {
            return self
                .write("create", &base, false, |view| {
                    self.create_plan(view, "create", &opts, false)
                })
                .await;
        }
        let mut last = Err(V2Error::new(RAFT_INTERNAL, "no attempt", 0));
        for _ in 0..MAX_ATTEMPTS {
            let name = format!("{:020}", self.index() + 1);
            let path = clean(&format!("{base}/{name}"));
            last = self
                .write("create", &path, false, |view| {
                    self.create_plan(view, "create", &opts, false)
                })
                .await;
            match &last {
                Err(e) if e.code == NODE_EXIST => continue,
                _ => return last,
            }
        }
        last
    }

    /// etcd's `Update`: changes an existing node's value (a file's) and TTL.
    pub async fn update(&self, path: &str, opts: WriteOptions) -> V2Result<(Event, i64)> {
        self.write("update", &clean(path), false, |view| {
            view.root_read_only()?;
            let n = view.existing()?;
            if n.is_dir() && !opts.value.is_empty() {
                return Err(V2Error::new(NOT_FILE, view.path.clone(), view.rev));
            }
            let value = match (&n.record.value, opts.refresh) {
                (None, _) => None,
                (Some(old), true) => Some(old.clone()),
                (Some(_), false) => Some(opts.value.clone()),
            };
            Ok(self.change_plan(view, "update", n, value, &opts))
        })
        .await
    }

    /// etcd's `CompareAndSwap`: changes a file whose value and/or index are as given.
    pub async fn compare_and_swap(
        &self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        opts: WriteOptions,
    ) -> V2Result<(Event, i64)> {
        self.write("compareAndSwap", &clean(path), false, |view| {
            view.root_read_only()?;
            let n = view.existing()?;
            if n.is_dir() {
                return Err(V2Error::new(NOT_FILE, view.path.clone(), view.rev));
            }
            compare(view, n, prev_value, prev_index)?;
            let value = if opts.refresh {
                n.record.value.clone()
            } else {
                Some(opts.value.clone())
            };
            Ok(self.change_plan(view, "compareAndSwap", n, value, &opts))
        })
        .await
    }

    /// etcd's `Delete`: a file, or with `dir` an empty directory, or with `recursive` a
    /// directory and everything in it.
    pub async fn delete(&self, path: &str, dir: bool, recursive: bool) -> V2Result<(Event, i64)> {
        let dir = dir || recursive;
        self.write("delete", &clean(path), true, |view| {
            view.root_read_only()?;
            let n = view.existing()?;
            if n.is_dir() {
                if !dir {
                    return Err(V2Error::new(NOT_FILE, view.path.clone(), view.rev));
                }
                if !view.below.is_empty() && !recursive {
                    return Err(V2Error::new(DIR_NOT_EMPTY, view.path.clone(), view.rev));
                }
            }
            Ok(self.removal_plan(view, "delete", n))
        })
        .await
    }

    /// etcd's `CompareAndDelete`: deletes a file whose value and/or index are as given.
    pub async fn compare_and_delete(
        &self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
    ) -> V2Result<(Event, i64)> {
        self.write("compareAndDelete", &clean(path), true, |view| {
            let n = view.existing()?;
            if n.is_dir() {
                return Err(V2Error::new(NOT_FILE, view.path.clone(), view.rev));
            }
            compare(view, n, prev_value, prev_index)?;
            Ok(self.removal_plan(view, "compareAndDelete", n))
        })
        .await
    }

    /// Removes the node `n` and everything below it.
    fn removal_plan(&self, view: &View, action: &str, n: &Stored) -> Plan {
        let node = NodeExtern {
            key: view.path.clone(),
            dir: n.is_dir(),
            created_index: n.created,
            ..NodeExtern::default()
        };
        let mut plan = Plan::new(action, node, Some(n.repr(now_ns())));
        self.guard(view, &mut plan);
        plan.ops
            .push(delete_op(self.node_key(&view.path), Vec::new()));
        if n.is_dir() {
            plan.compares
                .push(self.subtree_unchanged(&view.path, view.rev));
            let (start, end) = self.subtree(&view.path);
            plan.ops.push(delete_op(start, end));
        }
        plan
    }
}

/// etcd's `node.Compare` and its failure's cause.
fn compare(view: &View, n: &Stored, prev_value: &str, prev_index: u64) -> V2Result<()> {
    let value = n.record.value.as_deref().unwrap_or_default();
    let index_ok = prev_index == 0 || n.modified == prev_index as i64;
    let value_ok = prev_value.is_empty() || value == prev_value;
    let cause = match (value_ok, index_ok) {
        (true, true) => return Ok(()),
        (true, false) => format!("[{prev_index} != {}]", n.modified),
        (false, true) => format!("[{prev_value} != {value}]"),
        (false, false) => format!("[{prev_value} != {value}] [{prev_index} != {}]", n.modified),
    };
    Err(V2Error::new(TEST_FAILED, cause, view.rev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_clean_as_go_cleans_them() {
        assert_eq!(clean(""), "/");
        assert_eq!(clean("foo"), "/foo");
        assert_eq!(clean("/foo//bar/"), "/foo/bar");
        assert_eq!(clean("/foo/../bar/./baz"), "/bar/baz");
        assert_eq!(clean("/.."), "/");
    }

    #[test]
    fn ancestors_are_the_directories_above() {
        assert_eq!(ancestors("/a/b/c"), vec!["/a", "/a/b"]);
        assert!(ancestors("/a").is_empty());
        assert!(ancestors("/").is_empty());
    }
}
