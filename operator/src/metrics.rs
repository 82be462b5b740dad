//! The operator's own Prometheus metrics: reconciles by result, their durations, and the
//! members of each cluster by state.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// By result: `ok` or `error`.
    pub reconciles: IntCounterVec,
    /// Errors by kind: `kube`, `cluster`, `other`.
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
    /// Members by cluster and state: `voter`, `learner`, `healthy`, `unhealthy`.
    pub members: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "oxcd_operator_reconciles_total",
                "Reconcile passes, by result",
            ),
            &["result"],
        )
        .expect("a valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "oxcd_operator_reconcile_errors_total",
                "Failed reconcile passes, by error kind",
            ),
            &["kind"],
        )
        .expect("a valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "oxcd_operator_reconcile_duration_seconds",
                "Reconcile pass durations",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &[],
        )
        .expect("a valid metric");
        let members = IntGaugeVec::new(
            Opts::new("oxcd_operator_members", "Members of each cluster, by state"),
            &["namespace", "cluster", "state"],
        )
        .expect("a valid metric");
        for collector in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(members.clone()),
        ] {
            registry.register(collector).expect("registered once");
        }
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            members,
        }
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}
