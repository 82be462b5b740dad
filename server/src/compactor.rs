//! Auto compaction (`--auto-compaction-mode` / `--auto-compaction-retention`), run by the
//! leader and proposed through raft like a client's Compact.
//!
//! - revision mode keeps the last N revisions: every [`REVISION_CHECK_INTERVAL`] it compacts
//!   to `current - N` when that moved;
//! - periodic mode keeps a time window: it samples the current revision every tenth of the
//!   window and compacts to the newest sample at least one window old.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::AutoCompaction;
use crate::error::Error;
use crate::proto::etcdserverpb::CompactionRequest;
use crate::proto::oxcdpb::internal_request::Request;
use crate::server::EtcdServer;

/// etcd's revision compactor checks every five minutes.
const REVISION_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// The shortest sampling step, so tiny windows do not spin.
const MIN_STEP: Duration = Duration::from_millis(100);

/// Runs until the server stops; does nothing when auto compaction is disabled.
pub async fn run(server: Arc<EtcdServer>, mode: AutoCompaction) {
    let step = match mode {
        AutoCompaction::Disabled => return,
        AutoCompaction::Revision(_) => REVISION_CHECK_INTERVAL,
        AutoCompaction::Periodic(window) => (window / 10).max(MIN_STEP),
    };
    let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
    let mut tick = tokio::time::interval(step);
    loop {
        tick.tick().await;
        let (current, compacted) = {
            let state = server.state.read();
            (state.kv.mvcc.current_rev(), state.kv.mvcc.compact_rev())
        };
        let target = match mode {
            AutoCompaction::Disabled => return,
            AutoCompaction::Revision(keep) => current - keep as i64,
            AutoCompaction::Periodic(window) => {
                let now = Instant::now();
                samples.push_back((now, current));
                let mut target = 0;
                while let Some(&(at, rev)) = samples.front() {
                    if now.duration_since(at) < window {
                        break;
                    }
                    target = rev;
                    samples.pop_front();
                }
                target
            }
        };
        if target <= compacted || server.leader() != Some(server.member_id) {
            continue;
        }
        match server
            .propose(Request::Compaction(CompactionRequest {
                revision: target,
                physical: false,
            }))
            .await
        {
            Ok(_) => tracing::info!(revision = target, "auto compaction finished"),
            Err(Error::Stopped) => return,
            Err(e) => tracing::warn!(revision = target, error = %e, "auto compaction failed"),
        }
    }
}
