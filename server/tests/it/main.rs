//! Integration tests: real `oxcd` processes on loopback ports (started by `oxcd_testkit`),
//! driven by real clients (the etcd-client crate, Debian's etcdctl 3.4).

mod calls;

mod auth;

mod cluster;
mod corruption;
mod discovery;
mod disk_full;
mod durability;
mod errors;
mod etcdctl;
mod etcdctl_cluster;
mod force_new_cluster;
mod gateway;
mod http;
mod kv;
mod lease;
mod member_guard;
mod member_removal;
mod metrics;
mod modules;
mod oxcdctl;
mod quota;
mod recipes;
mod reconfig;
mod restart;
mod snapshot;
mod startup;
mod tls;
mod transport;
mod txn;
mod v2;
mod watch;

/// Fails listing every difference a side-by-side comparison with etcd found, if any.
fn assert_no_differences(diffs: &[String]) {
    assert!(
        diffs.is_empty(),
        "{} differ:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}
