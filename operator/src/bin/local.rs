//! `oxcd-operator-local`: the operator's reconcile loop over members that run as local
//! processes (module `local`, kept in files under `--dir`), until they are in sync with
//! `--replicas`. Another run on the same `--dir` takes over where the last one stopped, as a
//! restarted operator would. With `--crash-after-calls N` the process exits (code 3) right
//! after its Nth cluster call or write of a pass: tests kill it that way at every step.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use oxcd_operator::Error;
use oxcd_operator::act::CrashPoints;
use oxcd_operator::local::{self, LocalWorkloads};
use oxcd_operator::plan::{Step, Want};

#[derive(Parser)]
struct Args {
    /// Where members, their volumes and the status live.
    #[arg(long)]
    dir: PathBuf,
    /// The oxcd server binary members run.
    #[arg(long)]
    oxcd: PathBuf,
    #[arg(long)]
    replicas: usize,
    /// Exit (code 3) right after this many cluster calls or writes in one pass.
    #[arg(long)]
    crash_after_calls: Option<i64>,
    /// First loopback port for members (two each); later runs continue after the last.
    #[arg(long, default_value_t = 26_000)]
    first_port: u16,
    #[arg(long, default_value_t = 180)]
    timeout_secs: u64,
}

/// A port source that starts after `after` and skips ports something else holds.
fn ports(after: u16) -> local::PortSource {
    let next = std::sync::atomic::AtomicU16::new(after);
    Box::new(move || {
        loop {
            let port = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _ = std::fs::create_dir_all(&args.dir);
    let probe = LocalWorkloads::open(&args.dir, args.oxcd.clone(), ports(args.first_port));
    let start = probe.last_port().map_or(args.first_port, |p| p + 1);
    drop(probe);
    let w = LocalWorkloads::open(&args.dir, args.oxcd, ports(start));
    let want = Want::new(args.replicas, "local", "local");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(args.timeout_secs) {
        let crash = match args.crash_after_calls {
            Some(n) => CrashPoints::after(n),
            None => CrashPoints::disarmed(),
        };
        match local::pass(&w, "local", "local-token", &want, &crash).await {
            Ok(pass) if pass.step == Step::InSync => return ExitCode::SUCCESS,
            Ok(pass) => {
                eprintln!("{:?}", pass.step);
                if matches!(pass.step, Step::Wait { .. } | Step::Refuse { .. }) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Err(Error::Crash(after)) => {
                eprintln!("crash point after {after}");
                return ExitCode::from(3);
            }
            Err(e) => {
                eprintln!("{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    eprintln!("not in sync after {} s", args.timeout_secs);
    ExitCode::from(1)
}
