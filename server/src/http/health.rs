//! Health endpoints as etcd 3.5 serves them: `/health` (JSON, for load balancers and
//! `etcdctl endpoint health`), and `/livez` and `/readyz` with their named checks (plain
//! text, for Kubernetes probes; `?verbose` lists the checks, `?exclude=NAME` skips one, and
//! `/readyz/NAME` runs one).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};

use crate::error::Result;
use crate::proto::etcdserverpb::{AlarmType, RangeRequest};
use crate::v3::{Core, RequestContext};

use super::only_get;

/// The routes of this module.
pub fn routes() -> Router<Arc<Core>> {
    Router::new()
        .route("/health", only_get(get(health)))
        .route("/livez", only_get(get(livez)))
        .route("/livez/{check}", only_get(get(livez_check)))
        .route("/readyz", only_get(get(readyz)))
        .route("/readyz/{check}", only_get(get(readyz_check)))
}

/// One check of `/livez` or `/readyz`, by etcd's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// No CORRUPT alarm is active.
    DataCorruption,
    /// This member serves a read from its own state.
    SerializableRead,
    /// The cluster has a quorum: a read through the leader succeeds.
    LinearizableRead,
    /// This member is not a learner (learners serve almost nothing).
    NonLearner,
    /// The member's disk has room for writes (see `server::disk`).
    DiskSpace,
}

/// What `/livez` checks: that the process serves, whatever the cluster's state.
const LIVEZ: &[Check] = &[Check::SerializableRead];
/// What `/readyz` checks: that the member can take client traffic.
const READYZ: &[Check] = &[
    Check::DataCorruption,
    Check::SerializableRead,
    Check::LinearizableRead,
    Check::NonLearner,
    Check::DiskSpace,
];

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
            Check::NonLearner => "non_learner",
            Check::DiskSpace => "disk_space",
        }
    }

    /// Runs the check; the error says why it failed, in etcd's words.
    async fn run(self, core: &Core) -> std::result::Result<(), String> {
        match self {
            Check::DataCorruption => {
                let alarms = &core.server.state.read().kv.alarms;
                match alarms.is_active(AlarmType::Corrupt) {
                    true => Err(format!(
                        "alarm activated: {}",
                        AlarmType::Corrupt.as_str_name()
                    )),
                    false => Ok(()),
                }
            }
            Check::SerializableRead => probe_read(core, true).await.map_err(|e| e.to_string()),
            Check::LinearizableRead => probe_read(core, false).await.map_err(|e| e.to_string()),
            Check::NonLearner if core.server.is_learner() => {
                Err("not supported for learner".to_string())
            }
            Check::NonLearner => Ok(()),
            Check::DiskSpace if core.server.disk_low() => Err(format!(
                "disk space low: {} bytes free",
                core.server.disk_free()
            )),
            Check::DiskSpace => Ok(()),
        }
    }
}

/// etcd's probe: a keys-only range of one key, serializable or linearizable.
async fn probe_read(core: &Core, serializable: bool) -> Result<()> {
    let probe = RangeRequest {
        key: b"health".to_vec(),
        keys_only: true,
        limit: 1,
        serializable,
        ..RangeRequest::default()
    };
    core.range(&RequestContext::default(), probe)
        .await
        .map(|_| ())
}

/// The query parameters etcd's health handlers read.
#[derive(Debug, Default)]
struct Query {
    serializable: bool,
    verbose: bool,
    exclude: Vec<String>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Query {
        let mut query = Query::default();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "serializable" => query.serializable = value == "true",
                "verbose" => query.verbose = true,
                "exclude" if !value.is_empty() => query.exclude.push(value.into_owned()),
                _ => {}
            }
        }
        query
    }
}

/// `/health`: an alarm (unless `?exclude=`d by its name), no leader, or a failed read,
/// makes the member unhealthy. With `?serializable=true` only this member's own read counts.
async fn health(State(core): State<Arc<Core>>, RawQuery(raw): RawQuery) -> Response {
    let query = Query::parse(raw.as_deref());
    let disk_counts = !query.exclude.iter().any(|e| e == "NOSPACE");
    let reason = if let Some(alarm) = active_alarm(&core, &query.exclude) {
        Some(format!("ALARM {alarm}"))
    } else if disk_counts && core.server.disk_low() {
        Some(format!(
            "DISK SPACE LOW: {} bytes free",
            core.server.disk_free()
        ))
    } else if !query.serializable && !core.server.has_leader() {
        Some("RAFT NO LEADER".to_string())
    } else {
        probe_read(&core, query.serializable)
            .await
            .err()
            .map(|e| format!("RANGE ERROR:{e}"))
    };
    let body = serde_json::json!({
        "health": if reason.is_none() { "true" } else { "false" },
        "reason": reason.as_deref().unwrap_or_default(),
    })
    .to_string();
    match reason {
        None => plain_text(StatusCode::OK, body),
        Some(_) => go_http_error(StatusCode::SERVICE_UNAVAILABLE, &body),
    }
}

/// The first active alarm whose name is not in `excluded`, by etcd's name for it.
fn active_alarm(core: &Core, excluded: &[String]) -> Option<&'static str> {
    core.server
        .active_alarms()
        .into_iter()
        .find_map(|(_, name)| (!excluded.iter().any(|e| e == name)).then_some(name))
}

async fn livez(State(core): State<Arc<Core>>, RawQuery(raw): RawQuery) -> Response {
    run_checks(&core, LIVEZ, &Query::parse(raw.as_deref())).await
}

async fn readyz(State(core): State<Arc<Core>>, RawQuery(raw): RawQuery) -> Response {
    run_checks(&core, READYZ, &Query::parse(raw.as_deref())).await
}

async fn livez_check(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    run_named_check(&core, LIVEZ, &name, raw.as_deref()).await
}

async fn readyz_check(
    State(core): State<Arc<Core>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    run_named_check(&core, READYZ, &name, raw.as_deref()).await
}

/// `/livez/NAME` and `/readyz/NAME`: the one check of that name; an unknown name is an
/// unknown path, as in etcd's mux.
async fn run_named_check(core: &Core, checks: &[Check], name: &str, raw: Option<&str>) -> Response {
    match checks.iter().find(|c| c.name() == name) {
        Some(check) => run_checks(core, &[*check], &Query::parse(raw)).await,
        None => super::unknown_path_text(),
    }
}

/// Runs `checks` less the excluded ones. A failure answers 503 with every check's line; a
/// success answers `ok`, after the lines when `?verbose` asked for them.
async fn run_checks(core: &Core, checks: &[Check], query: &Query) -> Response {
    let mut lines = String::new();
    let mut failed = false;
    for check in checks {
        if query.exclude.iter().any(|e| e == check.name()) {
            continue;
        }
        match check.run(core).await {
            Ok(()) => lines += &format!("[+]{} ok\n", check.name()),
            Err(reason) => {
                failed = true;
                lines += &format!("[-]{} failed: {reason}\n", check.name());
            }
        }
    }
    if failed {
        // Go's http.Error adds the newline after the lines etcd passes it.
        return go_http_error(StatusCode::SERVICE_UNAVAILABLE, &lines);
    }
    let body = if query.verbose {
        lines + "ok\n"
    } else {
        "ok\n".to_string()
    };
    let mut response = plain_text(StatusCode::OK, body);
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A text/plain response, the content type Go's server sniffs for these bodies.
fn plain_text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// What Go's `http.Error` answers: the message and a newline, as plain text, not sniffed.
fn go_http_error(status: StatusCode, message: &str) -> Response {
    let mut response = plain_text(status, format!("{message}\n"));
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_read_as_etcd_reads_them() {
        let q = Query::parse(Some(
            "serializable=true&verbose&exclude=a&exclude=&exclude=b",
        ));
        assert!(q.serializable && q.verbose);
        assert_eq!(q.exclude, ["a", "b"]);
        let q = Query::parse(Some("serializable=1&verbose=false"));
        assert!(!q.serializable, "only `true` asks for a serializable check");
        assert!(
            q.verbose,
            "any `verbose` asks for the lines, as etcd's presence test"
        );
        let q = Query::parse(None);
        assert!(!q.serializable && !q.verbose && q.exclude.is_empty());
    }
}
