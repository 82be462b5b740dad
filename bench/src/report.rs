//! What a run prints: a human summary, then the same fields as one JSON line, which is
//! always the last line of stdout so scripts can take it with `tail -n1`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::driver::Measurement;

/// A run's results. Latencies are in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub workload: String,
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    /// Requests (or, for `watch`, events) that succeeded.
    pub ops: u64,
    pub errors: u64,
    pub elapsed_s: f64,
    pub ops_per_s: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Error message → count, for the first few kinds of error.
    pub error_kinds: BTreeMap<String, u64>,
    /// Workload-specific numbers (scan time, events missed, ...).
    pub extra: BTreeMap<String, f64>,
}

/// The latency percentiles of a measurement, in milliseconds: p50, p90, p99, p99.9, max, mean.
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(measured: &Measurement) -> Percentiles {
        let h = &measured.latency_us;
        let ms = |us: u64| us as f64 / 1e3;
        if h.is_empty() {
            return Percentiles {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        Percentiles {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1e3,
        }
    }
}

impl Summary {
    pub fn new(
        workload: &str,
        endpoints: &[String],
        conns: usize,
        clients: usize,
        measured: &Measurement,
    ) -> Summary {
        let elapsed_s = measured.elapsed.as_secs_f64();
        let p = Percentiles::of(measured);
        Summary {
            workload: workload.to_owned(),
            endpoints: endpoints.to_vec(),
            conns,
            clients,
            ops: measured.ok,
            errors: measured.errors,
            elapsed_s,
            ops_per_s: if elapsed_s > 0.0 {
                measured.ok as f64 / elapsed_s
            } else {
                0.0
            },
            mean_ms: p.mean,
            p50_ms: p.p50,
            p90_ms: p.p90,
            p99_ms: p.p99,
            p999_ms: p.p999,
            max_ms: p.max,
            error_kinds: measured.error_kinds.clone(),
            extra: BTreeMap::new(),
        }
    }

    pub fn with_extra(mut self, name: &str, value: f64) -> Summary {
        self.extra.insert(name.to_owned(), value);
        self
    }

    /// The human summary, several lines.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "workload    {} ({} clients over {} connections to {})",
            self.workload,
            self.clients,
            self.conns,
            self.endpoints.join(",")
        );
        let _ = writeln!(
            out,
            "requests    {} ok, {} errors in {:.2} s",
            self.ops, self.errors, self.elapsed_s
        );
        let _ = writeln!(out, "throughput  {:.1} ops/s", self.ops_per_s);
        let _ = writeln!(
            out,
            "latency ms  mean {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            self.mean_ms, self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
        );
        for (message, count) in &self.error_kinds {
            let _ = writeln!(out, "error       {count} × {message}");
        }
        for (name, value) in &self.extra {
            let _ = writeln!(out, "{name:<20} {value:.3}");
        }
        out
    }

    /// The JSON line.
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a summary is plain data")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_json_line_has_the_human_fields() {
        let mut measured = Measurement::new();
        for ms in 1..=100 {
            measured.record(Duration::from_millis(ms));
        }
        measured.record_error("boom".into());
        measured.elapsed = Duration::from_secs(2);
        let summary = Summary::new("put", &["http://127.0.0.1:2379".into()], 1, 4, &measured)
            .with_extra("scan_s", 1.5);
        let json: serde_json::Value = serde_json::from_str(&summary.json()).unwrap();
        assert_eq!(json["ops"], 100);
        assert_eq!(json["errors"], 1);
        assert_eq!(json["ops_per_s"], 50.0);
        assert!((json["p50_ms"].as_f64().unwrap() - 50.0).abs() < 0.1);
        assert!((json["max_ms"].as_f64().unwrap() - 100.0).abs() < 0.1);
        assert_eq!(json["extra"]["scan_s"], 1.5);
        assert!(!summary.json().contains('\n'));
        let human = summary.human();
        assert!(human.contains("50.0 ops/s"), "{human}");
        assert!(human.contains("1 × boom"), "{human}");
    }
}
