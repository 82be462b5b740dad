//! `oxcd-robustness`: the long robustness run. Loops random profile × fault scenarios on
//! fresh 3-member clusters (each fault striking again and again while its traffic lasts)
//! until the duration is spent, then prints the counts of
//! operations, faults and violations. Exits non-zero if any scenario failed; each failure
//! leaves a report directory (printed) under the temp dir.
//!
//! ```sh
//! cargo run --release -p oxcd-e2e --bin oxcd-robustness -- --duration 30m --seed 7
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use oxcd_e2e::checker::CheckOptions;
use oxcd_e2e::history::History;
use oxcd_e2e::scenario::{self, Fault, Scenario};
use oxcd_e2e::traffic::Profile;

#[derive(Debug, Parser)]
#[command(about = "Loop random oxcd robustness scenarios and check every history")]
struct Cli {
    /// How long to keep starting scenarios, e.g. 90s, 30m, 2h.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// Seed of the scenario sequence; the same seed picks the same scenarios.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Traffic per scenario, e.g. 15s.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    traffic: Duration,
    /// Only this profile (kubernetes, key-value, lease).
    #[arg(long)]
    profile: Option<Profile>,
    /// Only this fault (e.g. kill-leader, isolate-leader, crash-at-raft-before-save).
    #[arg(long)]
    fault: Option<Fault>,
    /// Check a saved history (a report's `history.json`) again instead of running.
    #[arg(long, value_name = "HISTORY_JSON")]
    check: Option<std::path::PathBuf>,
}

/// Totals over the run.
#[derive(Default)]
struct Totals {
    scenarios: usize,
    operations: usize,
    answered: usize,
    watch_responses: usize,
    faults: usize,
    violations: usize,
    problems: usize,
    errors: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = &cli.check {
        return check_saved(path);
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let totals = runtime.block_on(async {
        let mut totals = Totals::default();
        // Stopping drops the running scenario, whose cluster kills its members.
        tokio::select! {
            () = run(&cli, &mut totals) => {}
            () = stop_signal() => println!("stopped"),
        }
        totals
    });
    println!(
        "{} scenarios: {} operations ({} answered), {} watch responses, {} faults injected; \
         {} with violations, {} with other problems, {} harness errors",
        totals.scenarios,
        totals.operations,
        totals.answered,
        totals.watch_responses,
        totals.faults,
        totals.violations,
        totals.problems,
        totals.errors,
    );
    if totals.violations + totals.problems + totals.errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Checks a history a failed scenario saved; prints the verdict.
fn check_saved(path: &std::path::Path) -> ExitCode {
    let history = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|json| History::from_json(&json).map_err(|e| e.to_string()));
    match history {
        Ok(history) => {
            let report = oxcd_e2e::checker::check(&history, &CheckOptions::default());
            println!("{report}");
            if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("reading {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn run(cli: &Cli, totals: &mut Totals) {
    let mut rng = StdRng::seed_from_u64(cli.seed);
    let faults = Fault::all();
    let end = Instant::now() + cli.duration;
    while Instant::now() < end {
        let profile = cli
            .profile
            .unwrap_or_else(|| Profile::ALL[rng.random_range(0..Profile::ALL.len())]);
        let fault = cli
            .fault
            .unwrap_or_else(|| faults[rng.random_range(0..faults.len())]);
        let mut scenario = Scenario::new(profile, fault, rng.random());
        scenario.traffic.duration = cli.traffic;
        scenario.traffic.max_operations = u64::MAX;
        scenario.repeat_fault = true;
        totals.scenarios += 1;
        match scenario::run(&scenario).await {
            Ok(result) => {
                let verdict = if result.is_ok() { "ok" } else { "FAILED" };
                println!(
                    "{verdict} {}: {} operations ({} answered), {} watch responses, {} faults{}",
                    result.name,
                    result.operations,
                    result.answered,
                    result.watch_responses,
                    result.faults,
                    result
                        .report_dir
                        .as_ref()
                        .map(|dir| format!("; report in {}", dir.display()))
                        .unwrap_or_default(),
                );
                totals.operations += result.operations;
                totals.answered += result.answered;
                totals.watch_responses += result.watch_responses;
                totals.faults += result.faults;
                if result.has_violation() {
                    totals.violations += 1;
                } else if !result.is_ok() {
                    totals.problems += 1;
                }
            }
            Err(e) => {
                println!("ERROR {}: {e}", scenario.name());
                totals.errors += 1;
            }
        }
    }
}

/// Parses `500ms`, `90s`, `30m`, `2h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit (ms, s, m, h)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|e| format!("{text:?}: {e}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        "h" => Ok(Duration::from_secs(number * 3600)),
        _ => Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    }
}
