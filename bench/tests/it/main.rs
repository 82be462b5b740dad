//! The oxcd-bench tests: the load generator against a real member. Its requests reach the
//! server over its own HTTP/2 connections, unary and streaming alike, and what it counts is
//! what the server holds.

use clap::Parser;
use oxcd_bench::cli::Cli;
use oxcd_testkit::Member;

/// Runs `oxcd-bench <args>` against `endpoints` and checks that exactly `ops` requests (or
/// events) succeeded and none failed.
async fn run_expecting(endpoints: &[String], args: &str, ops: u64) {
    let line = format!(
        "oxcd-bench --endpoints={} --no-progress {args}",
        endpoints.join(",")
    );
    let cli = Cli::try_parse_from(line.split_whitespace()).unwrap();
    cli.validate().unwrap();
    let summary = oxcd_bench::run(&cli).await.unwrap();
    assert_eq!(
        (summary.ops, summary.errors),
        (ops, 0),
        "{args}: {:?}",
        summary.error_kinds
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_kind_is_served_and_counted_over_the_benchs_own_connections() {
    let member = Member::start();
    let mut client = member.client().await;
    let endpoints = vec![member.endpoint()];

    // Unary: 300 puts of distinct keys over 2 connections, all of them in the store after.
    let puts = "--conns 2 --clients 8 --total 300 put --sequential-keys --key-space-size 300 \
                --key-prefix bench/put/ --val-size 16";
    run_expecting(&endpoints, puts, 300).await;
    assert_stored(&mut client, "bench/put/", 300).await;

    let ranges = "--conns 2 --clients 4 --total 200 range --consistency s \
                  --key-space-size 300 --key-prefix bench/put/";
    run_expecting(&endpoints, ranges, 200).await;

    // Streaming both ways: 20 puts reach each of 10 watchers; lease keep-alives.
    let watch = "--conns 2 --clients 1 --total 20 --rate 200 watch --watchers 10 --streams 2";
    run_expecting(&endpoints, watch, 200).await;
    let keepalives = "--conns 1 --clients 4 --total 100 lease-keepalive";
    run_expecting(&endpoints, keepalives, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_user_every_request_carries_the_users_token() {
    let member = Member::start();
    let mut client = member.client().await;
    client.user_add("root", "rootpw", None).await.unwrap();
    client.user_grant_role("root", "root").await.unwrap();
    client.user_add("bench", "pw", None).await.unwrap();
    client.role_add("bench").await.unwrap();
    let prefix = etcd_client::Permission::read_write("bench/").with_prefix();
    client.role_grant_permission("bench", prefix).await.unwrap();
    client.user_grant_role("bench", "bench").await.unwrap();
    client.auth_enable().await.unwrap();
    let endpoints = vec![member.endpoint()];

    let puts = "--conns 2 --clients 4 --total 100 put --sequential-keys --key-space-size 100 \
                --key-prefix bench/auth/ --val-size 16";
    run_expecting(&endpoints, &format!("--user bench:pw {puts}"), 100).await;
    let ranges = "--conns 1 --clients 2 --total 50 range --consistency l --key-space-size 100 \
                  --key-prefix bench/auth/";
    run_expecting(&endpoints, &format!("--user bench:pw {ranges}"), 50).await;

    // Without the token, auth refuses every put.
    let line = format!(
        "oxcd-bench --endpoints={} --no-progress {puts}",
        endpoints.join(",")
    );
    let cli = Cli::try_parse_from(line.split_whitespace()).unwrap();
    let summary = oxcd_bench::run(&cli).await.unwrap();
    assert_eq!((summary.ops, summary.errors), (0, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_workloads_put_and_read_through_the_json_gateway() {
    let member = Member::start();
    let mut client = member.client().await;
    let endpoints = vec![member.endpoint()];
    let puts = "--conns 1 --clients 4 --total 120 gateway-put --sequential-keys \
                --key-space-size 120 --key-prefix bench/gw/ --val-size 16";
    run_expecting(&endpoints, puts, 120).await;
    assert_stored(&mut client, "bench/gw/", 120).await;
    let ranges = "--conns 1 --clients 4 --total 80 gateway-range --key-space-size 120 \
                  --key-prefix bench/gw/";
    run_expecting(&endpoints, ranges, 80).await;
}

/// Every one of the `puts` acknowledged puts under `prefix` is in the store.
async fn assert_stored(client: &mut etcd_client::Client, prefix: &str, puts: i64) {
    let options = etcd_client::GetOptions::new()
        .with_prefix()
        .with_count_only();
    let stored = client.get(prefix, Some(options)).await.unwrap();
    assert_eq!(
        stored.count(),
        puts,
        "every acknowledged put is in the store"
    );
}
