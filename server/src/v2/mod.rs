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
mod write;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::mvcc::KeyRange;
use crate::proto::mvccpb::KeyValue;
use crate::server::EtcdServer;

pub use crate::server::v2::{Shared, Stats};
use error::{KEY_NOT_FOUND, NOT_DIR, ROOT_READ_ONLY, V2Error, V2Result};
pub use node::{Event, NodeExtern, Record, now_ns};
pub use write::{WriteOptions, event_at};

/// The v2 store of one member: its server, and what every handle on it shares.
pub struct V2Store {
    pub server: Arc<EtcdServer>,
    shared: Arc<Shared>,
}

impl std::ops::Deref for V2Store {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
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

    /// The range of keys the v2 API keeps: what a role must grant for it.
    pub fn key_range(&self) -> (Vec<u8>, Vec<u8>) {
        let start = self.key("", "");
        let mut end = start.clone();
        *end.last_mut().expect("not empty") += 1;
        (start, end)
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
