//! The `load` workload: put N keys under a prefix, then page through all of them by prefix,
//! `--page-limit` keys at a time, timing the full scan.

use std::time::Duration;

use etcd_client::{GetOptions, KvClient};
use tokio::time::Instant;

use crate::cli::{Common, Consistency, LoadArgs};
use crate::driver::{self, Budget, Measurement};
use crate::error::Error;
use crate::keys::{KeySpace, value};
use crate::kv::PutWorker;
use crate::pool::Pool;
use crate::report::{Percentiles, Summary};

/// What a full scan found and how long it took.
struct Scan {
    keys: u64,
    pages: Measurement,
}

pub async fn load(common: &Common, args: &LoadArgs) -> Result<Summary, Error> {
    let pool = Pool::connect(common).await?;
    let clients = common.clients.max(1);
    let keys = KeySpace::with(&args.key_prefix, args.key_size, args.keys, true);
    let loaded = if args.scan_only {
        None
    } else {
        let value = value(args.val_size);
        let workers = (0..clients)
            .map(|i| PutWorker::new(pool.client(i).kv_client(), keys.clone(), value.clone()))
            .collect();
        let budget = Budget::exactly(args.keys, !common.no_progress);
        Some(driver::run(workers, budget, "load", pool.loops()).await)
    };
    let scan = if args.no_scan {
        None
    } else {
        Some(scan(pool.client(0).kv_client(), args).await)
    };
    let summary = match (&loaded, &scan) {
        (Some(loaded), _) => Summary::new("load", &pool.endpoints, pool.conns(), clients, loaded),
        (None, scan) => {
            let pages = scan
                .as_ref()
                .map(|scan| scan.pages.clone())
                .unwrap_or_default();
            Summary::new("scan", &pool.endpoints, 1, 1, &pages)
        }
    };
    let summary = summary.with_extra("keys", args.keys as f64);
    Ok(match &scan {
        Some(scan) => with_scan(summary, scan),
        None => summary,
    })
}

fn with_scan(summary: Summary, scan: &Scan) -> Summary {
    let seconds = scan.pages.elapsed.as_secs_f64();
    let page = Percentiles::of(&scan.pages);
    summary
        .with_extra("scan_s", seconds)
        .with_extra("scan_keys", scan.keys as f64)
        .with_extra("scan_pages", scan.pages.ok as f64)
        .with_extra("scan_errors", scan.pages.errors as f64)
        .with_extra(
            "scan_keys_per_s",
            if seconds > 0.0 {
                scan.keys as f64 / seconds
            } else {
                0.0
            },
        )
        .with_extra("scan_page_p50_ms", page.p50)
        .with_extra("scan_page_p99_ms", page.p99)
}

/// Pages through every key under the prefix, each page starting just after the last key of
/// the one before. Stops at the first error.
async fn scan(mut kv: KvClient, args: &LoadArgs) -> Scan {
    let prefix = args.key_prefix.as_bytes().to_vec();
    let end = prefix_end(&prefix);
    let mut options = GetOptions::new()
        .with_range(end)
        .with_limit(args.page_limit);
    if args.consistency == Consistency::S {
        options = options.with_serializable();
    }
    let mut scan = Scan {
        keys: 0,
        pages: Measurement::new(),
    };
    let mut from = prefix;
    let started = Instant::now();
    loop {
        let sent = Instant::now();
        let page = tokio::time::timeout(
            Duration::from_secs(30),
            kv.get(from.clone(), Some(options.clone())),
        )
        .await;
        let page = match page {
            Ok(Ok(page)) => page,
            Ok(Err(e)) => {
                scan.pages.record_error(e.to_string());
                break;
            }
            Err(_) => {
                scan.pages
                    .record_error("page not answered within 30s".into());
                break;
            }
        };
        scan.pages.record(sent.elapsed());
        scan.keys += page.kvs().len() as u64;
        match page.kvs().last() {
            Some(last) if page.more() => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => break,
        }
    }
    scan.pages.elapsed = started.elapsed();
    scan
}

/// The end of the range of keys that start with `prefix` (etcd's `GetPrefixRangeEnd`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"bench/"), b"bench0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }
}
