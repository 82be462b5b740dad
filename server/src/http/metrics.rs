//! `/metrics`: the process's metrics in Prometheus's text format, with the gauges that
//! describe this member (leader, proposals, sizes, keys) read from it at each scrape.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use openraft::async_runtime::WatchReceiver;

use crate::metrics::METRICS;
use crate::server::EtcdServer;
use crate::v3::{Core, ETCD_API_VERSION};

pub async fn metrics(State(core): State<Arc<Core>>) -> Response {
    scrape(&core.server)
}

/// The metrics as of now, as an HTTP answer.
pub fn scrape(server: &EtcdServer) -> Response {
    refresh(server);
    text()
}

/// The process's metrics as they stand, as an HTTP answer.
pub fn text() -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        METRICS.text(),
    )
        .into_response()
}

fn refresh(server: &EtcdServer) {
    let raft = server.raft.metrics().borrow_watched().clone();
    let index = |l: Option<crate::typ::LogId>| l.map_or(0, |l| l.index) as i64;
    METRICS.has_leader.set(i64::from(server.has_leader()));
    METRICS
        .is_leader
        .set(i64::from(raft.current_leader == Some(server.member_id)));
    METRICS.is_learner.set(i64::from(server.is_learner()));
    METRICS.proposals_committed.set(index(raft.local_committed));
    METRICS.proposals_applied.set(index(raft.last_applied));
    let db_size = server.db_size();
    METRICS.db_total_size.set(db_size);
    METRICS.db_in_use.set(db_size);
    METRICS
        .quota_bytes
        .set(server.quota_bytes.map_or(0, |q| q as i64));
    METRICS
        .keys_total
        .set(server.state.read().kv.mvcc.key_count() as i64);
    METRICS
        .disk_free
        .set(i64::try_from(server.disk_free()).unwrap_or(i64::MAX));
    METRICS.disk_low.set(i64::from(server.disk_low()));
    METRICS
        .server_version
        .with_label_values(&[ETCD_API_VERSION])
        .set(1);
}
