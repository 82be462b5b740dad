//! What the v2 API stores and answers: a node's record (the v3 value under its key), the
//! node as etcd prints it (`NodeExtern`), and the events writes make (`Event`).

use serde::{Deserialize, Serialize};

/// A node as stored: the v3 key's value. Indexes come from the v3 key (create and mod
/// revision), so they are not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The value of a file; `None` for a directory.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// When the node expires, in nanoseconds since the Unix epoch.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// The node's created index when it is older than the record (an update keeps it);
    /// `None` when the node was created by the write that stored this record.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
}

impl Record {
    pub fn is_dir(&self) -> bool {
        self.value.is_none()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record serializes")
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        serde_json::from_slice(bytes).ok()
    }
}

/// A node as etcd's v2 API prints it, fields in etcd's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeExtern {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dir: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ttl: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeExtern>>,
    #[serde(rename = "modifiedIndex", default, skip_serializing_if = "is_zero")]
    pub modified_index: i64,
    #[serde(rename = "createdIndex", default, skip_serializing_if = "is_zero")]
    pub created_index: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl NodeExtern {
    /// The node at `key` holding `record`, its TTL counted from `now` (ns since the epoch).
    pub fn new(key: &str, record: &Record, created: i64, modified: i64, now: i64) -> NodeExtern {
        let mut node = NodeExtern {
            key: key.to_string(),
            value: record.value.clone(),
            dir: record.is_dir(),
            created_index: created,
            modified_index: modified,
            ..NodeExtern::default()
        };
        node.set_expiry(record.expires, now);
        node
    }

    /// etcd's expiration and TTL: the TTL is the whole seconds left, rounded up.
    pub fn set_expiry(&mut self, expires: Option<i64>, now: i64) {
        if let Some(at) = expires {
            let left = at - now;
            let ttl =
                left.div_euclid(1_000_000_000) + i64::from(left.rem_euclid(1_000_000_000) > 0);
            self.expiration = Some(go_time(at));
            self.ttl = ttl;
        } else {
            self.expiration = None;
            self.ttl = 0;
        }
    }
}

/// A v2 event: what a write did (or, for `get`, what a read found).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeExtern>,
    #[serde(rename = "prevNode", default, skip_serializing_if = "Option::is_none")]
    pub prev_node: Option<NodeExtern>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh: bool,
}

impl Event {
    /// Whether a watcher of `key` (and its subtree, when `recursive`) is told of this event,
    /// as etcd's watcher hub decides: the key itself, a key below it for recursive watchers
    /// (unless hidden on the way down: a name starting with `_`), or a deleted or expired
    /// directory above it. Refreshes tell no one.
    pub fn concerns(&self, key: &str, recursive: bool) -> bool {
        let Some(node) = &self.node else { return false };
        if self.refresh {
            return false;
        }
        if node.key == key {
            return true;
        }
        let below = |parent: &str, child: &str| {
            let parent = parent.trim_end_matches('/');
            child.len() > parent.len()
                && child.starts_with(parent)
                && child.as_bytes()[parent.len()] == b'/'
        };
        if recursive
            && below(key, &node.key)
            && !node.key[key.trim_end_matches('/').len()..].contains("/_")
        {
            return true;
        }
        let removed_dir = matches!(
            self.action.as_str(),
            "delete" | "expire" | "compareAndDelete"
        ) && self.prev_node.as_ref().is_some_and(|p| p.dir);
        removed_dir && below(&node.key, key)
    }

    /// Whether the write created its node (etcd answers those with 201 Created).
    pub fn is_created(&self) -> bool {
        self.action == "create" || (self.action == "set" && self.prev_node.is_none())
    }
}

/// A Unix time in nanoseconds as Go's `time.Time` marshals to JSON in UTC (RFC 3339 with
/// the fraction's trailing zeros dropped).
pub fn go_time(ns: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_go_prints_them() {
        assert_eq!(go_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            go_time(1_500_000_000_120_000_000),
            "2017-07-14T02:40:00.12Z"
        );
        assert_eq!(
            go_time(1_500_000_000_000_000_001),
            "2017-07-14T02:40:00.000000001Z"
        );
    }

    #[test]
    fn ttl_rounds_the_time_left_up() {
        let mut n = NodeExtern::default();
        n.set_expiry(Some(5_000_000_001), 0);
        assert_eq!(n.ttl, 6);
        n.set_expiry(Some(5_000_000_000), 0);
        assert_eq!(n.ttl, 5);
        n.set_expiry(None, 0);
        assert_eq!((n.ttl, n.expiration.clone()), (0, None));
    }

    fn event(action: &str, key: &str, prev_dir: bool) -> Event {
        Event {
            action: action.into(),
            node: Some(NodeExtern {
                key: key.into(),
                ..NodeExtern::default()
            }),
            prev_node: Some(NodeExtern {
                key: key.into(),
                dir: prev_dir,
                ..NodeExtern::default()
            }),
            refresh: false,
        }
    }

    #[test]
    fn watchers_hear_of_what_etcd_tells_them() {
        let set = event("set", "/foo/bar", false);
        assert!(set.concerns("/foo/bar", false));
        assert!(!set.concerns("/foo", false));
        assert!(set.concerns("/foo", true));
        assert!(set.concerns("/", true));
        assert!(!set.concerns("/fo", true));
        let hidden = event("set", "/foo/_hidden/x", false);
        assert!(!hidden.concerns("/foo", true));
        assert!(hidden.concerns("/foo/_hidden", true));
        let rmdir = event("delete", "/foo", true);
        assert!(rmdir.concerns("/foo/bar", false));
        assert!(!event("delete", "/foo", false).concerns("/foo/bar", false));
        let mut refresh = event("update", "/foo/bar", false);
        refresh.refresh = true;
        assert!(!refresh.concerns("/foo/bar", false));
    }
}
