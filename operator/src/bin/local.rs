//! `oxcd-operator-local`: the operator's reconcile loop over members that run as local
//! processes (module `local`, kept in files under `--dir`), until they are in sync with
//! `--replicas`. Another run on the same `--dir` takes over where the last one stopped, as a
//! restarted operator would. With `--crash-after-calls N` the process exits (code 3) right
//! after its Nth cluster call or write of a pass: tests kill it that way at every step.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use oxcd_operator::local::{self, Crashes, LocalWorkloads, Stopped};
use oxcd_operator::plan::Want;

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
    /// First loopback port to try for members (two each). The default lies below the ports
    /// the test kit hands out (20000 and up): a port it gave a test, not yet bound, is never
    /// taken here.
    #[arg(long, default_value_t = 12_000)]
    first_port: u16,
    #[arg(long, default_value_t = 180)]
    timeout_secs: u64,
}

/// A port source from `first` up that skips ports something else holds (the workloads
/// skip those they gave out before, members stopped included).
fn ports(first: u16) -> local::PortSource {
    let next = std::sync::atomic::AtomicU16::new(first);
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
    let w = LocalWorkloads::open(&args.dir, args.oxcd, ports(args.first_port));
    let want = Want::new(args.replicas, "local", "local");
    let crashes = match args.crash_after_calls {
        Some(n) => Crashes::StopAfterCalls(n),
        None => Crashes::Never,
    };
    let timeout = Duration::from_secs(args.timeout_secs);
    match local::drive(&w, "local", "local-token", &want, crashes, timeout).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(Stopped::Crashed(after)) => {
            eprintln!("crash point after {after}");
            ExitCode::from(3)
        }
        Err(Stopped::TimedOut(last)) => {
            eprintln!("not in sync after {} s; last: {last}", args.timeout_secs);
            ExitCode::from(1)
        }
    }
}
