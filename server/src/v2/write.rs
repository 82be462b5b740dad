//! The v2 writes: each reads what it depends on ([`View`]), decides as etcd's v2 store
//! decides ([`Plan`]), and commits a transaction that compares what it read.

use crate::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, compare, request_op,
};
use crate::proto::oxcdpb::internal_request::Request as Command;

use super::error::{
    DIR_NOT_EMPTY, NODE_EXIST, NOT_FILE, RAFT_INTERNAL, TEST_FAILED, V2Error, V2Result,
};
use super::{Event, NodeExtern, Record, Stored, V2Store, View, ancestors, clean, now_ns};

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

/// A write decided: what it must find unchanged, what it does, and the event it makes
/// (indexes left 0 where the write's own revision goes).
pub(super) struct Plan {
    pub(super) compares: Vec<Compare>,
    pub(super) ops: Vec<RequestOp>,
    pub(super) event: Event,
}

impl Plan {
    pub(super) fn new(action: &str, node: NodeExtern, prev: Option<NodeExtern>) -> Plan {
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

pub(super) fn put_op(key: Vec<u8>, value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key,
            value,
            ..PutRequest::default()
        })),
    }
}

pub(super) fn delete_op(key: Vec<u8>, range_end: Vec<u8>) -> RequestOp {
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
            let (txn, event) = self.transaction(decide(&view)?);
            if let Some(rev) = self.commit(txn).await? {
                return Ok((event_at(event, rev), rev));
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
    /// The transaction that carries out `plan` and logs its event.
    pub(super) fn transaction(&self, mut plan: Plan) -> (TxnRequest, Event) {
        let logged = serde_json::to_vec(&plan.event).expect("an event serializes");
        plan.ops.push(put_op(self.event_key(), logged));
        let txn = TxnRequest {
            compare: plan.compares,
            success: plan.ops,
            failure: Vec::new(),
        };
        (txn, plan.event)
    }

    pub(super) async fn commit(&self, txn: TxnRequest) -> V2Result<Option<i64>> {
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
    pub(super) fn unchanged(&self, path: &str, stored: Option<&Stored>) -> Compare {
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
    pub(super) fn removal_plan(&self, view: &View, action: &str, n: &Stored) -> Plan {
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
