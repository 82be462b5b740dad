//! etcd's JSON form of its responses, as etcdctl prints them with `-w json`: Go's
//! `encoding/json` of the protobuf messages. Fields come in declaration order under their
//! `json` tag names, zero values are left out (`omitempty`), bytes are base64, 64-bit
//! integers are plain numbers, and `<`, `>` and `&` in strings are escaped as Go escapes them.

use base64::Engine;
use etcd_client::proto::{
    PbAlarmResponse, PbDeleteResponse, PbEvent, PbHashKvResponse, PbKeyValue, PbLeaseGrantResponse,
    PbLeaseKeepAliveResponse, PbLeaseLeasesResponse, PbLeaseRevokeResponse,
    PbLeaseTimeToLiveResponse, PbMember, PbMemberAddResponse, PbMemberListResponse, PbPutResponse,
    PbRangeResponse, PbResponseHeader, PbResponseOp, PbStatusResponse, PbTxnOpResponse,
    PbTxnResponse, PbWatchResponse,
};

/// A JSON object written field by field, in order.
#[derive(Default)]
pub struct Obj {
    out: String,
}

impl Obj {
    pub fn new() -> Obj {
        Obj::default()
    }

    /// A field whose value is already JSON.
    pub fn raw(mut self, name: &str, json: &str) -> Obj {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        self.out.push_str(&string(name));
        self.out.push(':');
        self.out.push_str(json);
        self
    }

    pub fn int(self, name: &str, v: impl Into<i128>) -> Obj {
        let v = v.into();
        if v == 0 {
            self
        } else {
            self.raw(name, &v.to_string())
        }
    }

    pub fn boolean(self, name: &str, v: bool) -> Obj {
        if v { self.raw(name, "true") } else { self }
    }

    pub fn bytes(self, name: &str, v: &[u8]) -> Obj {
        if v.is_empty() {
            self
        } else {
            self.raw(
                name,
                &string(&base64::engine::general_purpose::STANDARD.encode(v)),
            )
        }
    }

    pub fn str(self, name: &str, v: &str) -> Obj {
        if v.is_empty() {
            self
        } else {
            self.raw(name, &string(v))
        }
    }

    /// A string, written even when empty.
    pub fn str_always(self, name: &str, v: &str) -> Obj {
        self.raw(name, &string(v))
    }

    pub fn obj(self, name: &str, v: Option<String>) -> Obj {
        match v {
            Some(v) => self.raw(name, &v),
            None => self,
        }
    }

    /// A list of JSON values, left out when empty.
    pub fn list(self, name: &str, items: Vec<String>) -> Obj {
        if items.is_empty() {
            self
        } else {
            self.raw(name, &array(items))
        }
    }

    pub fn finish(self) -> String {
        if self.out.is_empty() {
            "{}".to_string()
        } else {
            self.out + "}"
        }
    }
}

/// A JSON array of JSON values.
pub fn array(items: Vec<String>) -> String {
    format!("[{}]", items.join(","))
}

/// A JSON string, escaped as Go's `encoding/json` escapes it.
pub fn string(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("strings encode");
    quoted
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

pub fn header(h: &Option<PbResponseHeader>) -> Option<String> {
    h.as_ref().map(|h| {
        Obj::new()
            .int("cluster_id", h.cluster_id)
            .int("member_id", h.member_id)
            .int("revision", h.revision)
            .int("raft_term", h.raft_term)
            .finish()
    })
}

pub fn kv(kv: &PbKeyValue) -> String {
    Obj::new()
        .bytes("key", &kv.key)
        .int("create_revision", kv.create_revision)
        .int("mod_revision", kv.mod_revision)
        .int("version", kv.version)
        .bytes("value", &kv.value)
        .int("lease", kv.lease)
        .finish()
}

fn kvs(kvs: &[PbKeyValue]) -> Vec<String> {
    kvs.iter().map(kv).collect()
}

pub fn put(r: &PbPutResponse) -> String {
    Obj::new()
        .obj("header", header(&r.header))
        .obj("prev_kv", r.prev_kv.as_ref().map(kv))
        .finish()
}

pub fn range(r: &PbRangeResponse) -> String {
    Obj::new()
        .obj("header", header(&r.header))
        .list("kvs", kvs(&r.kvs))
        .boolean("more", r.more)
        .int("count", r.count)
        .finish()
}

pub fn delete(r: &PbDeleteResponse) -> String {
    Obj::new()
        .obj("header", header(&r.header))
        .int("deleted", r.deleted)
        .list("prev_kvs", kvs(&r.prev_kvs))
        .finish()
}

pub fn txn(r: &PbTxnResponse) -> String {
    Obj::new()
        .obj("header", header(&r.header))
        .boolean("succeeded", r.succeeded)
        .list("responses", r.responses.iter().map(response_op).collect())
        .finish()
}

/// A txn's response: Go writes the oneof as `{"Response":{"ResponsePut":{...}}}`.
fn response_op(op: &PbResponseOp) -> String {
    let inner = match &op.response {
        Some(PbTxnOpResponse::ResponseRange(r)) => Obj::new().raw("ResponseRange", &range(r)),
        Some(PbTxnOpResponse::ResponsePut(r)) => Obj::new().raw("ResponsePut", &put(r)),
        Some(PbTxnOpResponse::ResponseDeleteRange(r)) => {
            Obj::new().raw("ResponseDeleteRange", &delete(r))
        }
        Some(PbTxnOpResponse::ResponseTxn(r)) => Obj::new().raw("ResponseTxn", &txn(r)),
        None => return Obj::new().finish(),
    };
    Obj::new().raw("Response", &inner.finish()).finish()
}

pub fn event(e: &PbEvent) -> String {
    Obj::new()
        .int("type", e.r#type)
        .obj("kv", e.kv.as_ref().map(kv))
        .obj("prev_kv", e.prev_kv.as_ref().map(kv))
        .finish()
}

/// A watch response as clientv3's `WatchResponse` marshals: the header, the events, and its
/// own fields (`CompactRevision`, `Canceled`, `Created`).
pub fn watch(r: &PbWatchResponse) -> String {
    Obj::new()
        .raw(
            "Header",
            &header(&r.header).unwrap_or_else(|| Obj::new().finish()),
        )
        .raw(
            "Events",
            &if r.events.is_empty() {
                "null".to_string()
            } else {
                array(r.events.iter().map(event).collect())
            },
        )
        .raw("CompactRevision", &r.compact_revision.to_string())
        .raw("Canceled", &r.canceled.to_string())
        .raw("Created", &r.created.to_string())
        .finish()
}

/// The header's fields inline: clientv3's lease responses embed the header, so Go writes
/// its fields at the top level, and the lease's own fields under their Go names.
fn inline_header(h: &Option<PbResponseHeader>) -> Obj {
    let h = (*h).unwrap_or_default();
    Obj::new()
        .int("cluster_id", h.cluster_id)
        .int("member_id", h.member_id)
        .int("revision", h.revision)
        .int("raft_term", h.raft_term)
}

/// clientv3's LeaseGrantResponse.
pub fn lease_grant(r: &PbLeaseGrantResponse) -> String {
    inline_header(&r.header)
        .raw("ID", &r.id.to_string())
        .raw("TTL", &r.ttl.to_string())
        .str_always("Error", &r.error)
        .finish()
}

pub fn lease_revoke(r: &PbLeaseRevokeResponse) -> String {
    Obj::new().obj("header", header(&r.header)).finish()
}

/// clientv3's LeaseKeepAliveResponse.
pub fn lease_keep_alive(r: &PbLeaseKeepAliveResponse) -> String {
    inline_header(&r.header)
        .raw("ID", &r.id.to_string())
        .raw("TTL", &r.ttl.to_string())
        .finish()
}

/// clientv3's LeaseTimeToLiveResponse (no keys is Go's `null`).
pub fn lease_time_to_live(r: &PbLeaseTimeToLiveResponse) -> String {
    let keys: Vec<String> = r
        .keys
        .iter()
        .map(|k| string(&base64::engine::general_purpose::STANDARD.encode(k)))
        .collect();
    let keys = if keys.is_empty() {
        "null".to_string()
    } else {
        array(keys)
    };
    inline_header(&r.header)
        .raw("id", &r.id.to_string())
        .raw("ttl", &r.ttl.to_string())
        .raw("granted-ttl", &r.granted_ttl.to_string())
        .raw("keys", &keys)
        .finish()
}

/// clientv3's LeaseLeasesResponse.
pub fn lease_leases(r: &PbLeaseLeasesResponse) -> String {
    let leases = r
        .leases
        .iter()
        .map(|l| Obj::new().raw("id", &l.id.to_string()).finish())
        .collect();
    inline_header(&r.header)
        .raw("leases", &array(leases))
        .finish()
}

pub fn member(m: &PbMember) -> String {
    let urls = |urls: &[String]| urls.iter().map(|u| string(u)).collect();
    Obj::new()
        .int("ID", m.id)
        .str("name", &m.name)
        .list("peerURLs", urls(&m.peer_ur_ls))
        .list("clientURLs", urls(&m.client_ur_ls))
        .boolean("isLearner", m.is_learner)
        .finish()
}

fn members(ms: &[PbMember]) -> Vec<String> {
    ms.iter().map(member).collect()
}

pub fn member_list(r: &PbMemberListResponse) -> String {
    Obj::new()
        .obj("header", header(&r.header))
        .list("members", members(&r.members))
        .finish()
}

pub fn member_add(r: &PbMemberAddResponse) -> String {
    Obj::new()
        .obj("header", header(&r.header))
        .obj("member", r.member.as_ref().map(member))
        .list("members", members(&r.members))
        .finish()
}

/// A member remove, update or promote response: the header and the members.
pub fn members_changed(h: &Option<PbResponseHeader>, ms: &[PbMember]) -> String {
    Obj::new()
        .obj("header", header(h))
        .list("members", members(ms))
        .finish()
}

pub fn status(r: &PbStatusResponse) -> String {
    Obj::new()
        .obj("header", header(&r.header))
        .str("version", &r.version)
        .int("dbSize", r.db_size)
        .int("leader", r.leader)
        .int("raftIndex", r.raft_index)
        .int("raftTerm", r.raft_term)
        .int("raftAppliedIndex", r.raft_applied_index)
        .list("errors", r.errors.iter().map(|e| string(e)).collect())
        .int("dbSizeInUse", r.db_size_in_use)
        .boolean("isLearner", r.is_learner)
        .finish()
}

pub fn hash_kv(r: &PbHashKvResponse) -> String {
    Obj::new()
        .obj("header", header(&r.header))
        .int("hash", r.hash)
        .int("compact_revision", r.compact_revision)
        .finish()
}

pub fn alarm(r: &PbAlarmResponse) -> String {
    let alarms = r
        .alarms
        .iter()
        .map(|a| {
            Obj::new()
                .int("memberID", a.member_id)
                .int("alarm", a.alarm)
                .finish()
        })
        .collect();
    Obj::new()
        .obj("header", header(&r.header))
        .list("alarms", alarms)
        .finish()
}
