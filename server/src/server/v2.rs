//! What a member keeps for its v2 API (`--enable-v2`) across requests: where in the key
//! space it lives, and etcd's `/v2/stats/store` counters. The API itself is the `v2` module.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the member's v2 API keeps: where it lives and its counters.
#[derive(Debug)]
pub struct Shared {
    pub(crate) prefix: Vec<u8>,
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
            started_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0),
        }
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
    pub(crate) fn count(&self, name: &str, ok: bool) {
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
