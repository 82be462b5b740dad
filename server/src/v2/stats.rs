//! etcd's `/v2/stats/store` counters.

use std::sync::atomic::{AtomicU64, Ordering};

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
    pub(super) fn count(&self, name: &str, ok: bool) {
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
