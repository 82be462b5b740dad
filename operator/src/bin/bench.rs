//! `oxcd-operator-bench`: the operator's member-management path timed on real oxcd
//! processes (the `local` workloads): create a 3-member cluster, load it with `--keys` keys
//! through `oxcd-bench`, then take it to 5 voting members (each added as a learner, caught
//! up, promoted) and back to 3, timing each leg. Prints one JSON line with the times and this
//! process's peak RSS (VmHWM): the operator's, since the load runs in another process.
//! bench/operator.sh runs it next to the same steps done by hand on etcd 3.4.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use oxcd_operator::local::{self, Crashes, LocalWorkloads};
use oxcd_operator::plan::Want;

#[derive(Parser)]
struct Args {
    /// The oxcd server binary members run.
    #[arg(long)]
    oxcd: PathBuf,
    /// The oxcd-bench load generator.
    #[arg(long)]
    loader: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    #[arg(long, default_value_t = 256)]
    val_size: usize,
    /// Where members keep their data (a fresh directory).
    #[arg(long)]
    dir: PathBuf,
    /// First of the loopback ports members take (two per member).
    #[arg(long, default_value_t = 24_000)]
    first_port: u16,
}

fn want(replicas: usize) -> Want {
    Want::new(replicas, "bench", "bench")
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: 0 kB");
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let next = std::sync::atomic::AtomicU16::new(args.first_port);
    let ports = Box::new(move || next.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let w = LocalWorkloads::new(&args.dir, args.oxcd.clone(), ports);
    let timeout = Duration::from_secs(1800);
    let leg = |replicas: usize| {
        let w = &w;
        async move {
            let started = Instant::now();
            local::drive(
                w,
                "bench",
                "bench-token",
                &want(replicas),
                Crashes::Never,
                timeout,
            )
            .await
            .map_err(|last| anyhow::anyhow!("not in sync at {replicas}: {last:?}\n{}", w.logs()))?;
            anyhow::Ok(started.elapsed().as_secs_f64())
        }
    };
    let create_s = leg(3).await?;
    let endpoints = w.client_urls().join(",");
    let load = std::process::Command::new(&args.loader)
        .args([
            "--endpoints",
            &endpoints,
            "--target",
            "leader",
            "--conns",
            "4",
            "--clients",
            "16",
        ])
        .args([
            "--total",
            &args.keys.to_string(),
            "put",
            "--sequential-keys",
        ])
        .args([
            "--key-space-size",
            &args.keys.to_string(),
            "--val-size",
            &args.val_size.to_string(),
        ])
        .output()
        .context("running the loader")?;
    if !load.status.success() {
        bail!("the load failed: {}", String::from_utf8_lossy(&load.stderr));
    }
    let up_s = leg(5).await?;
    let down_s = leg(3).await?;
    println!(
        "{}",
        serde_json::json!({
            "create_s": create_s, "up_s": up_s, "down_s": down_s,
            "peak_rss_kib": peak_rss_kib(),
        })
    );
    Ok(())
}
