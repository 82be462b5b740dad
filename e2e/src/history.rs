//! The recorded history of a robustness run: every client operation against the
//! etcd-like KV store with its timing and outcome, and every watch stream with the
//! responses it received.
//!
//! These are plain serde types, independent of any client library, so a history can be
//! saved as JSON next to a failure report and checked again offline. Keys and values are
//! `String`s: robustness traffic uses printable keys, and reports stay readable.

use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Which client issued an operation or opened a watch. Operations of one client never
/// overlap in time; watch streams of one client that share a key range are one watcher
/// resumed after breaks.
pub type ClientId = u32;

/// Nanoseconds since the start of the recording. One clock for all clients, so that
/// "returned before invoked" between two clients means real-time order.
pub type Timestamp = u64;

/// A recorded history: what the clients did and what they saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub operations: Vec<Operation>,
    pub watches: Vec<WatchStream>,
}

impl History {
    /// The history as pretty JSON, for a failure report.
    pub fn to_json(&self) -> String {
        // Every map in these types has string keys and no type has a fallible Serialize
        // impl, so serialization cannot fail.
        serde_json::to_string_pretty(self).expect("history types always serialize")
    }

    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// One client request and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub client: ClientId,
    /// When the request was sent.
    pub invoke: Timestamp,
    /// When the answer arrived; `None` when none did (timeout, connection lost). The
    /// checker ignores it for outcomes other than `Response`: an operation that failed or
    /// timed out may still take effect later.
    pub return_time: Option<Timestamp>,
    pub request: Request,
    pub outcome: Outcome,
}

/// What the client learned about an operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The store answered; the operation took effect exactly as described.
    Response(Response),
    /// The store or the transport reported an error. etcd can apply a request and still
    /// fail to answer it (leader change, timeout after commit), so a failed write may or
    /// may not have taken effect; a failed read constrains nothing.
    Error(String),
    /// No answer at all: the same as `Error` for the checker.
    Unknown,
    /// The request never left the client: no connection to a member could be made
    /// (connection refused). It certainly had no effect, so the checker leaves it out.
    NotSent(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    Range(RangeRequest),
    Put(PutRequest),
    Delete(DeleteRequest),
    Txn(TxnRequest),
    /// Leases are granted with ids the traffic generator picks, so that the model knows
    /// them before the response arrives. They are assumed not to expire during the run.
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    Compact {
        revision: i64,
    },
}

impl Request {
    pub fn get(key: impl Into<String>) -> Self {
        Request::Range(RangeRequest::get(key))
    }

    pub fn put(key: impl Into<String>, value: impl Into<String>) -> Self {
        Request::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            lease: 0,
        })
    }

    pub fn delete(key: impl Into<String>) -> Self {
        Request::Delete(DeleteRequest { key: key.into() })
    }

    /// Whether the request leaves the store unchanged, whatever the state.
    pub fn is_read_only(&self) -> bool {
        match self {
            Request::Range(_) => true,
            Request::Txn(txn) => txn
                .success
                .iter()
                .chain(&txn.failure)
                .all(TxnOp::is_read_only),
            _ => false,
        }
    }
}

/// A linearizable read of one key or of every key under a prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    pub key: String,
    /// Read every key starting with `key` (an empty key with `prefix` reads everything).
    pub prefix: bool,
    /// At most this many kvs, in key order; 0 means no limit.
    pub limit: i64,
    /// Read the state as of this revision; 0 means the current state.
    pub revision: i64,
}

impl RangeRequest {
    pub fn get(key: impl Into<String>) -> Self {
        RangeRequest {
            key: key.into(),
            prefix: false,
            limit: 0,
            revision: 0,
        }
    }

    pub fn prefix(key: impl Into<String>) -> Self {
        RangeRequest {
            prefix: true,
            ..RangeRequest::get(key)
        }
    }

    /// Whether `key` falls in the requested range.
    pub fn matches(&self, key: &str) -> bool {
        key_matches(&self.key, self.prefix, key)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    pub key: String,
    /// Robustness traffic writes a value no other request writes, so that a value seen in
    /// a read or a watch names the request that wrote it.
    pub value: String,
    /// 0 means no lease.
    pub lease: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub key: String,
}

/// An etcd transaction: if every compare holds, run `success`, else `failure`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

impl TxnRequest {
    /// Kubernetes' create: write `key` only if it does not exist, else read it.
    pub fn create_if_absent(key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        TxnRequest {
            compares: vec![Compare::ModRevision {
                key: key.clone(),
                equals: 0,
            }],
            success: vec![TxnOp::Put(PutRequest {
                key: key.clone(),
                value: value.into(),
                lease: 0,
            })],
            failure: vec![TxnOp::Range(RangeRequest::get(key))],
        }
    }

    /// Kubernetes' optimistic update: write `key` only if it was last written at
    /// `mod_revision`, else read it.
    pub fn update_if_unchanged(
        key: impl Into<String>,
        value: impl Into<String>,
        mod_revision: i64,
    ) -> Self {
        let key = key.into();
        TxnRequest {
            compares: vec![Compare::ModRevision {
                key: key.clone(),
                equals: mod_revision,
            }],
            success: vec![TxnOp::Put(PutRequest {
                key: key.clone(),
                value: value.into(),
                lease: 0,
            })],
            failure: vec![TxnOp::Range(RangeRequest::get(key))],
        }
    }
}

/// An equality compare. A missing key has mod, create revision and version 0, and no
/// value: a `Value` compare on it is false, as in etcd.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    ModRevision { key: String, equals: i64 },
    CreateRevision { key: String, equals: i64 },
    Version { key: String, equals: i64 },
    Value { key: String, equals: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOp {
    Range(RangeRequest),
    Put(PutRequest),
    Delete(DeleteRequest),
}

impl TxnOp {
    pub fn is_read_only(&self) -> bool {
        matches!(self, TxnOp::Range(_))
    }
}

/// A successful answer: the header revision and what the request returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The header revision: the store's revision right after the request was applied.
    pub revision: i64,
    pub body: ResponseBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseBody {
    Range(RangeResponse),
    Put,
    Delete {
        deleted: i64,
    },
    Txn {
        succeeded: bool,
        results: Vec<TxnOpResponse>,
    },
    LeaseGrant,
    LeaseRevoke,
    Compact,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    /// The kvs returned, in key order, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// How many keys matched, before the limit.
    pub count: i64,
}

/// The result of one operation inside a transaction's executed branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOpResponse {
    Range(RangeResponse),
    Put,
    Delete { deleted: i64 },
}

/// A key's state, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    /// 0 means no lease.
    pub lease: i64,
}

/// One watch stream: the request that opened it and every response it received, in
/// order of arrival.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchStream {
    /// Streams of one client with the same key range form one watcher: the first opened
    /// is the original, later ones resume it after a break.
    pub client: ClientId,
    pub opened: Timestamp,
    pub request: WatchRequest,
    pub responses: Vec<WatchResponse>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    pub key: String,
    /// Watch every key starting with `key`.
    pub prefix: bool,
    /// Deliver events from this revision on; 0 means from the revision after the
    /// `Created` response's header revision.
    pub start_revision: i64,
    pub prev_kv: bool,
    pub progress_notify: bool,
}

impl WatchRequest {
    /// Whether `key` falls in the watched range.
    pub fn matches(&self, key: &str) -> bool {
        key_matches(&self.key, self.prefix, key)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchResponse {
    /// When the response arrived.
    pub time: Timestamp,
    /// The header revision.
    pub revision: i64,
    pub kind: WatchResponseKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchResponseKind {
    /// The watch was accepted. With start revision 0 the header revision says where the
    /// stream starts.
    Created,
    /// A batch of events. `fragment` is set on all but the last piece of a batch too big
    /// for one message, the only case in which one revision may span responses.
    Events { events: Vec<Event>, fragment: bool },
    /// A progress notification: every event up to the header revision has been delivered.
    Progress,
    /// The server ended the watch; `compact_revision` is non-zero when the start revision
    /// was compacted.
    Canceled {
        compact_revision: i64,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// For a delete, only `key` and `mod_revision` (the deletion's revision) are set.
    pub kv: KeyValue,
    /// The key's state before this event; set only when the watch asked for it and the
    /// key existed.
    pub prev_kv: Option<KeyValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Put,
    Delete,
}

fn key_matches(range_key: &str, prefix: bool, key: &str) -> bool {
    if prefix {
        key.starts_with(range_key)
    } else {
        key == range_key
    }
}

/// Records a history from concurrent clients against one clock.
///
/// The lock is a std `Mutex`, not a Tokio one: it is held only to push or update an
/// entry, never across an await.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    history: Mutex<History>,
}

/// Names an operation between `Recorder::invoke` and `Recorder::complete`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationId(usize);

/// Names a watch stream for `Recorder::watch_response`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamId(usize);

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Recorder {
            start: Instant::now(),
            history: Mutex::new(History::default()),
        }
    }

    /// Nanoseconds since the recorder was created.
    pub fn now(&self) -> Timestamp {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Notes that `client` is about to send `request`. Until `complete` is called the
    /// outcome is `Unknown`, which is also what a client that never hears back records.
    pub fn invoke(&self, client: ClientId, request: Request) -> OperationId {
        let invoke = self.now();
        let mut history = self.lock();
        history.operations.push(Operation {
            client,
            invoke,
            return_time: None,
            request,
            outcome: Outcome::Unknown,
        });
        OperationId(history.operations.len() - 1)
    }

    /// Notes the answer to an invoked operation. `Outcome::Unknown` leaves the return
    /// time unset.
    pub fn complete(&self, id: OperationId, outcome: Outcome) {
        let now = self.now();
        let mut history = self.lock();
        let operation = &mut history.operations[id.0];
        operation.return_time = (outcome != Outcome::Unknown).then_some(now);
        operation.outcome = outcome;
    }

    /// Notes that `client` opened a watch stream.
    pub fn open_watch(&self, client: ClientId, request: WatchRequest) -> StreamId {
        let opened = self.now();
        let mut history = self.lock();
        history.watches.push(WatchStream {
            client,
            opened,
            request,
            responses: Vec::new(),
        });
        StreamId(history.watches.len() - 1)
    }

    /// Notes a response received on a watch stream, timestamped now.
    pub fn watch_response(&self, stream: StreamId, revision: i64, kind: WatchResponseKind) {
        let time = self.now();
        self.lock().watches[stream.0].responses.push(WatchResponse {
            time,
            revision,
            kind,
        });
    }

    /// The history recorded so far.
    pub fn history(&self) -> History {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        // A panic while holding the lock cannot leave a half-written entry, so a poisoned
        // lock still guards a usable history.
        self.history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
