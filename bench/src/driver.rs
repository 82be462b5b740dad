//! The closed loop every request/response workload runs: `--clients` workers, each sending one
//! request at a time until the budget (`--total` or `--duration`) is spent, paced by `--rate`,
//! with every latency in a histogram.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::runtime::Handle;
use tokio::time::Instant;

use crate::cli::Common;

/// A request that takes longer than this counts as an error, so a stuck server cannot hang
/// the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Distinct error messages kept per run; the rest are only counted.
const ERROR_KINDS_KEPT: usize = 8;

/// One client's request loop.
pub trait Worker: Send + 'static {
    /// Sends the run's `seq`-th request and waits for its answer.
    fn request(&mut self, seq: u64) -> impl Future<Output = Result<(), etcd_client::Error>> + Send;
}

/// When to stop and how fast to go.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub total: Option<u64>,
    pub duration: Option<Duration>,
    /// Requests per second across all workers; 0 for no limit.
    pub rate: f64,
    pub progress: bool,
}

impl Budget {
    pub fn from_common(common: &Common) -> Budget {
        let total = match (common.total, common.duration) {
            (None, None) => Some(10_000),
            (total, _) => total,
        };
        Budget {
            total,
            duration: common.duration,
            rate: common.rate,
            progress: !common.no_progress,
        }
    }

    /// Exactly `total` requests as fast as possible, as a setup step (loading keys).
    pub fn exactly(total: u64, progress: bool) -> Budget {
        Budget {
            total: Some(total),
            duration: None,
            rate: 0.0,
            progress,
        }
    }
}

/// What a run measured: latencies in microseconds.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub ok: u64,
    pub errors: u64,
    /// Error message → how often it was seen (the first few kinds only).
    pub error_kinds: BTreeMap<String, u64>,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
}

impl Measurement {
    pub fn new() -> Measurement {
        Measurement {
            ok: 0,
            errors: 0,
            error_kinds: BTreeMap::new(),
            elapsed: Duration::ZERO,
            latency_us: new_histogram(),
        }
    }

    pub fn record(&mut self, latency: Duration) {
        self.ok += 1;
        self.latency_us
            .saturating_record(latency.as_micros().max(1) as u64);
    }

    pub fn record_error(&mut self, message: String) {
        self.errors += 1;
        let message: String = message.chars().take(160).collect();
        if self.error_kinds.len() < ERROR_KINDS_KEPT || self.error_kinds.contains_key(&message) {
            *self.error_kinds.entry(message).or_default() += 1;
        }
    }

    fn merge(&mut self, other: &Measurement) {
        self.ok += other.ok;
        self.errors += other.errors;
        for (message, count) in &other.error_kinds {
            if self.error_kinds.len() < ERROR_KINDS_KEPT || self.error_kinds.contains_key(message) {
                *self.error_kinds.entry(message.clone()).or_default() += count;
            }
        }
        self.latency_us
            .add(&other.latency_us)
            .expect("same histogram bounds");
    }
}

impl Default for Measurement {
    fn default() -> Self {
        Measurement::new()
    }
}

/// Microseconds from 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// The shared counter the workers draw request numbers from.
struct Schedule {
    budget: Budget,
    start: Instant,
    deadline: Option<Instant>,
    issued: AtomicU64,
    done: AtomicU64,
}

impl Schedule {
    /// The next request number, once its turn has come under `--rate`; `None` when the
    /// budget is spent.
    async fn next(&self) -> Option<u64> {
        let seq = self.issued.fetch_add(1, Ordering::Relaxed);
        if self.budget.total.is_some_and(|total| seq >= total) {
            return None;
        }
        if self.budget.rate > 0.0 {
            let due = self.start + Duration::from_secs_f64(seq as f64 / self.budget.rate);
            tokio::time::sleep_until(due).await;
        }
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            return None;
        }
        Some(seq)
    }
}

/// Runs every worker until the budget is spent and merges what they measured. Worker `i`
/// runs on `loops[i % loops.len()]` (see [`crate::pool::Pool::loops`]).
pub async fn run<W: Worker>(
    workers: Vec<W>,
    budget: Budget,
    label: &str,
    loops: &[Handle],
) -> Measurement {
    let start = Instant::now();
    let schedule = Arc::new(Schedule {
        budget,
        start,
        deadline: budget.duration.map(|d| start + d),
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
    });
    let progress = progress_bar(&budget, label, schedule.clone());
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, worker)| loops[i % loops.len()].spawn(work(worker, schedule.clone())))
        .collect();
    let mut total = Measurement::new();
    for task in tasks {
        match task.await {
            Ok(measured) => total.merge(&measured),
            Err(e) => total.record_error(format!("worker panicked: {e}")),
        }
    }
    total.elapsed = start.elapsed();
    if let Some((bar, ticker)) = progress {
        ticker.abort();
        bar.finish_and_clear();
    }
    total
}

async fn work<W: Worker>(mut worker: W, schedule: Arc<Schedule>) -> Measurement {
    let mut measured = Measurement::new();
    while let Some(seq) = schedule.next().await {
        let sent = Instant::now();
        match tokio::time::timeout(REQUEST_TIMEOUT, worker.request(seq)).await {
            Ok(Ok(())) => measured.record(sent.elapsed()),
            Ok(Err(e)) => measured.record_error(e.to_string()),
            Err(_) => measured.record_error(format!("no answer within {REQUEST_TIMEOUT:?}")),
        }
        schedule.done.fetch_add(1, Ordering::Relaxed);
    }
    measured
}

/// A bar on stderr, for a terminal only, ticking by requests done or by time spent.
fn progress_bar(
    budget: &Budget,
    label: &str,
    schedule: Arc<Schedule>,
) -> Option<(ProgressBar, tokio::task::JoinHandle<()>)> {
    if !budget.progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let by_time = budget.duration.is_some();
    let (length, template) = match budget.duration {
        Some(d) => (
            d.as_secs().max(1),
            "{prefix} [{bar:40}] {pos}/{len} s {msg}",
        ),
        None => (
            budget.total.unwrap_or(0),
            "{prefix} [{bar:40}] {pos}/{len} {msg}",
        ),
    };
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template(template)
            .ok()?
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    let ticking = bar.clone();
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let done = schedule.done.load(Ordering::Relaxed);
            let position = if by_time {
                schedule.start.elapsed().as_secs()
            } else {
                done
            };
            ticking.set_position(position);
            ticking.set_message(format!("{done} requests"));
        }
    });
    Some((bar, ticker))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sleeper;

    fn here() -> [Handle; 1] {
        [Handle::current()]
    }

    impl Worker for Sleeper {
        async fn request(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if seq % 10 == 9 {
                return Err(etcd_client::Error::InvalidArgs("every tenth".into()));
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_total_is_shared_by_the_workers() {
        let budget = Budget::exactly(100, false);
        let measured = run(vec![Sleeper, Sleeper, Sleeper], budget, "test", &here()).await;
        assert_eq!((measured.ok, measured.errors), (90, 10));
        assert_eq!(measured.latency_us.len(), 90);
        assert_eq!(measured.error_kinds.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_paces_the_requests() {
        let budget = Budget {
            total: Some(50),
            duration: None,
            rate: 100.0,
            progress: false,
        };
        let measured = run(vec![Sleeper, Sleeper], budget, "test", &here()).await;
        assert_eq!(measured.ok + measured.errors, 50);
        assert!(
            measured.elapsed >= Duration::from_millis(490),
            "{:?}",
            measured.elapsed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_duration_ends_the_run() {
        let budget = Budget {
            total: None,
            duration: Some(Duration::from_secs(1)),
            rate: 0.0,
            progress: false,
        };
        let measured = run(vec![Sleeper], budget, "test", &here()).await;
        assert!(
            measured.elapsed < Duration::from_millis(1100),
            "{:?}",
            measured.elapsed
        );
        assert!(measured.ok > 100);
    }
}
