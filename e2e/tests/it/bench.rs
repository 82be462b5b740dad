//! oxcd-bench against a real member: its requests reach the server over its own HTTP/2
//! connections, unary and streaming alike, and what it counts is what the server holds.

use clap::Parser;
use oxcd_e2e::bench::{self, cli::Cli};
use oxcd_e2e::harness::{Cluster, ClusterOptions};

use crate::robustness::ONE_CLUSTER_AT_A_TIME;

fn cli(endpoints: &[String], args: &str) -> Cli {
    let endpoints = format!("--endpoints={}", endpoints.join(","));
    let line = format!("oxcd-bench {endpoints} --no-progress {args}");
    let cli = Cli::try_parse_from(line.split_whitespace()).unwrap();
    cli.validate().unwrap();
    cli
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_kind_is_served_and_counted_over_the_benchs_own_connections() {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let cluster = Cluster::start(ClusterOptions {
        size: 1,
        ..ClusterOptions::default()
    })
    .await
    .unwrap();
    let endpoints = cluster.endpoints();

    // Unary: 300 puts of distinct keys over 2 connections, then each key read back.
    let put = bench::run(&cli(
        &endpoints,
        "--conns 2 --clients 8 --total 300 put --sequential-keys --key-space-size 300 \
         --key-prefix bench/put/ --val-size 16",
    ))
    .await
    .unwrap();
    assert_eq!((put.ops, put.errors), (300, 0), "{:?}", put.error_kinds);
    let mut client = cluster.client_of(&[0]).await.unwrap();
    let stored = client
        .get(
            "bench/put/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        stored.count(),
        300,
        "every acknowledged put is in the store"
    );

    let range = bench::run(&cli(
        &endpoints,
        "--conns 2 --clients 4 --total 200 range --consistency s --key-space-size 300 \
         --key-prefix bench/put/",
    ))
    .await
    .unwrap();
    assert_eq!(
        (range.ops, range.errors),
        (200, 0),
        "{:?}",
        range.error_kinds
    );

    // Streaming both ways: watch events delivered to every watcher, and lease keep-alives.
    let watch = bench::run(&cli(
        &endpoints,
        "--conns 2 --clients 1 --total 20 --rate 200 watch --watchers 10 --streams 2",
    ))
    .await
    .unwrap();
    assert_eq!(
        (watch.ops, watch.errors),
        (200, 0),
        "20 puts reach each of 10 watchers: {:?}",
        watch.error_kinds
    );

    let keepalive = bench::run(&cli(
        &endpoints,
        "--conns 1 --clients 4 --total 100 lease-keepalive",
    ))
    .await
    .unwrap();
    assert_eq!(
        (keepalive.ops, keepalive.errors),
        (100, 0),
        "{:?}",
        keepalive.error_kinds
    );
}
