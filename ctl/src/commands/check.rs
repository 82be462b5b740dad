//! check perf: etcdctl's 60-second write workload at a fixed rate, judged as etcdctl judges
//! it (throughput above 90 % of the rate, slowest request under 0.5 s, standard deviation
//! under 0.1 s, no errors).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Ctx;
use crate::cli::{CheckCommand, PerfArgs};
use crate::client::{CtlError, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT, Result};

/// A workload: writes per second, concurrent clients, seconds.
struct Load {
    rate: u64,
    clients: usize,
    seconds: u64,
}

fn load(name: &str) -> Option<Load> {
    let (rate, clients) = match name {
        "s" | "small" => (150, 50),
        "m" | "medium" => (1000, 200),
        "l" | "large" => (8000, 500),
        "xl" | "xLarge" => (15000, 1000),
        _ => return None,
    };
    Some(Load {
        rate,
        clients,
        seconds: 60,
    })
}

pub async fn run(ctx: &Ctx, cmd: CheckCommand) -> Result<()> {
    let CheckCommand::Perf(a) = cmd;
    perf(ctx, a).await
}

async fn perf(ctx: &Ctx, a: PerfArgs) -> Result<()> {
    let cfg = load(&a.load).ok_or_else(|| {
        CtlError::new(EXIT_BAD_FEATURE, format!("unknown load option {}", a.load))
    })?;
    let mut c = ctx.client().await?;
    let existing = ctx
        .timed(c.get(
            a.prefix.as_bytes(),
            Some(etcd_client::GetOptions::new().with_prefix().with_limit(1)),
        ))
        .await?;
    if !existing.kvs().is_empty() {
        return Err(CtlError::new(
            EXIT_INVALID_INPUT,
            format!(
                "prefix {:?} has keys. Delete with etcdctl del --prefix {} first",
                a.prefix, a.prefix
            ),
        ));
    }
    // A handful of connections carry the clients' requests.
    let mut connections = Vec::new();
    for _ in 0..cfg.clients.min(8) {
        connections.push(ctx.client().await?);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(cfg.clients.max(1));
    // The clients take the keys from one queue; each reports its latencies and errors.
    let queue = Arc::new(tokio::sync::Mutex::new(rx));
    let started = Instant::now();
    let mut workers = Vec::new();
    for i in 0..cfg.clients {
        let mut client = connections[i % connections.len()].clone();
        let queue = queue.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = BTreeMap::<String, u64>::new();
            loop {
                let Some(key) = queue.lock().await.recv().await else {
                    return (latencies, errors);
                };
                let at = Instant::now();
                match client.put(key, vec![0u8; 1024], None).await {
                    Ok(_) => latencies.push(at.elapsed().as_secs_f64()),
                    Err(e) => *errors.entry(CtlError::from(e).message).or_default() += 1,
                }
            }
        }));
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / cfg.rate as f64));
    let deadline = started + Duration::from_secs(cfg.seconds);
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        tick.tick().await;
        n += 1;
        let mut key = a.prefix.as_bytes().to_vec();
        let mut suffix = vec![0u8; 256];
        let mixed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ started.elapsed().as_nanos() as u64;
        suffix[..8].copy_from_slice(&mixed.to_le_bytes());
        key.extend_from_slice(&suffix);
        if tx.send(key).await.is_err() {
            break;
        }
    }
    drop(tx);
    let mut latencies = Vec::new();
    let mut errors = BTreeMap::<String, u64>::new();
    for w in workers {
        if let Ok((l, e)) = w.await {
            latencies.extend(l);
            for (message, n) in e {
                *errors.entry(message).or_default() += n;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let deleted = ctx
        .timed(c.delete(
            a.prefix.as_bytes(),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        ))
        .await?;
    if a.auto_compact {
        let rev = deleted.header().map_or(0, |h| h.revision());
        ctx.timed(c.compact(rev, None)).await?;
    }
    if a.auto_defrag {
        for ep in &ctx.global.endpoints {
            let mut one = crate::client::connect_to(&ctx.global, std::slice::from_ref(ep)).await?;
            ctx.timed(one.defragment()).await?;
        }
    }
    let rps = latencies.len() as f64 / elapsed;
    let slowest = latencies.iter().copied().fold(0.0, f64::max);
    let mean = latencies.iter().sum::<f64>() / latencies.len().max(1) as f64;
    let stddev = (latencies.iter().map(|l| (l - mean).powi(2)).sum::<f64>()
        / latencies.len().max(1) as f64)
        .sqrt();
    let mut ok = true;
    if !errors.is_empty() {
        println!("FAIL: too many errors");
        for (e, n) in &errors {
            println!("FAIL: ERROR({e}) -> {n}");
        }
        ok = false;
    }
    if rps / cfg.rate as f64 <= 0.9 {
        println!("FAIL: Throughput too low: {} writes/s", rps as u64 + 1);
        ok = false;
    } else {
        println!("PASS: Throughput is {} writes/s", rps as u64 + 1);
    }
    if slowest > 0.5 {
        println!("Slowest request took too long: {slowest:.6}s");
        ok = false;
    } else {
        println!("PASS: Slowest request took {slowest:.6}s");
    }
    if stddev > 0.1 {
        println!("Stddev too high: {stddev:.6}s");
        ok = false;
    } else {
        println!("PASS: Stddev is {stddev:.6}s");
    }
    if ok {
        println!("PASS");
        Ok(())
    } else {
        println!("FAIL");
        Err(CtlError::new(EXIT_ERROR, "check perf failed"))
    }
}
