//! Prometheus metrics under etcd's names, the ones its dashboards and alerts use. One set per
//! process, like etcd's (Go's default registry): the layers record into [`METRICS`] where
//! things happen (WAL fsyncs, state commits, proposals, peer round trips, gRPC calls), and
//! the gauges that describe the member's state (leader, sizes, keys) are set when scraped.
//!
//! Recording is a counter increment or a histogram observation, a few atomic operations, so
//! it costs the request path nothing measurable. `--metrics extensive` adds etcd's extensive
//! set: the gRPC handling-time histogram.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder, exponential_buckets,
};

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Whether `--metrics extensive` asked for the extensive set.
static EXTENSIVE: AtomicBool = AtomicBool::new(false);

pub struct Metrics {
    basic: Registry,
    extensive: Registry,
    pub has_leader: IntGauge,
    pub is_leader: IntGauge,
    pub is_learner: IntGauge,
    pub leader_changes: IntCounter,
    pub proposals_committed: IntGauge,
    pub proposals_applied: IntGauge,
    pub proposals_pending: IntGauge,
    pub proposals_failed: IntCounter,
    pub server_version: IntGaugeVec,
    pub wal_fsync: Histogram,
    pub backend_commit: Histogram,
    pub db_total_size: IntGauge,
    pub db_in_use: IntGauge,
    pub quota_bytes: IntGauge,
    pub keys_total: IntGauge,
    pub disk_free: IntGauge,
    pub disk_low: IntGauge,
    pub peer_round_trip: HistogramVec,
    pub grpc_started: IntCounterVec,
    pub grpc_handled: IntCounterVec,
    pub grpc_handling: HistogramVec,
}

const GRPC_LABELS: [&str; 3] = ["grpc_type", "grpc_service", "grpc_method"];

impl Metrics {
    fn new() -> Metrics {
        let basic = Registry::new();
        let extensive = Registry::new();
        let gauge = |name: &str, help: &str| registered(&basic, IntGauge::new(name, help));
        let counter = |name: &str, help: &str| registered(&basic, IntCounter::new(name, help));
        let histogram = |name: &str, help: &str, start: f64, count: usize| {
            registered(
                &basic,
                Histogram::with_opts(doubling(HistogramOpts::new(name, help), start, count)),
            )
        };
        let m = Metrics {
            has_leader: gauge(
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            ),
            is_leader: gauge(
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ),
            is_learner: gauge(
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            ),
            leader_changes: counter(
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            proposals_committed: gauge(
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            proposals_applied: gauge(
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            ),
            proposals_pending: gauge(
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            proposals_failed: counter(
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            server_version: registered(
                &basic,
                IntGaugeVec::new(
                    Opts::new(
                        "etcd_server_version",
                        "Which version is running. 1 for 'server_version' label with current version.",
                    ),
                    &["server_version"],
                ),
            ),
            wal_fsync: histogram(
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                0.001,
                14,
            ),
            backend_commit: histogram(
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
                0.001,
                14,
            ),
            db_total_size: gauge(
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_in_use: gauge(
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            ),
            quota_bytes: gauge(
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
            ),
            keys_total: gauge("etcd_debugging_mvcc_keys_total", "Total number of keys."),
            disk_free: gauge(
                "oxcd_disk_free_bytes",
                "Free bytes of the fullest filesystem holding the data dir or the WAL.",
            ),
            disk_low: gauge(
                "oxcd_disk_space_low",
                "Whether free disk space is below the reserve, so that writes growing the database are refused. 1 if it is.",
            ),
            peer_round_trip: registered(
                &basic,
                HistogramVec::new(
                    doubling(
                        HistogramOpts::new(
                            "etcd_network_peer_round_trip_time_seconds",
                            "Round-Trip-Time histogram between peers",
                        ),
                        0.0001,
                        16,
                    ),
                    &["To"],
                ),
            ),
            grpc_started: registered(
                &basic,
                IntCounterVec::new(
                    Opts::new(
                        "grpc_server_started_total",
                        "Total number of RPCs started on the server.",
                    ),
                    &GRPC_LABELS,
                ),
            ),
            grpc_handled: registered(
                &basic,
                IntCounterVec::new(
                    Opts::new(
                        "grpc_server_handled_total",
                        "Total number of RPCs completed on the server, regardless of success or failure.",
                    ),
                    &[GRPC_LABELS.as_slice(), &["grpc_code"]].concat(),
                ),
            ),
            grpc_handling: registered(
                &extensive,
                HistogramVec::new(
                    HistogramOpts::new(
                        "grpc_server_handling_seconds",
                        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                    ),
                    &GRPC_LABELS,
                ),
            ),
            basic,
            extensive,
        };
        let process = prometheus::process_collector::ProcessCollector::for_self();
        m.basic
            .register(Box::new(process))
            .expect("registered once");
        m
    }

    /// The metrics in Prometheus's text format.
    pub fn text(&self) -> String {
        let mut families = self.basic.gather();
        if extensive() {
            families.extend(self.extensive.gather());
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding into memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// `metric`, registered in `registry`.
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

/// Histogram buckets from `start` up, each twice the one before (Prometheus's
/// ExponentialBuckets, as etcd uses them).
fn doubling(opts: HistogramOpts, start: f64, count: usize) -> HistogramOpts {
    opts.buckets(exponential_buckets(start, 2.0, count).expect("valid buckets"))
}

/// Turns the extensive set on (`--metrics extensive`).
pub fn set_extensive(on: bool) {
    EXTENSIVE.store(on, Ordering::Relaxed);
}

pub fn extensive() -> bool {
    EXTENSIVE.load(Ordering::Relaxed)
}

/// Observes the seconds `f` takes into `histogram`.
pub fn timed<T>(histogram: &Histogram, f: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let out = f();
    histogram.observe(start.elapsed().as_secs_f64());
    out
}
