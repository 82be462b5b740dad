//! Integration tests: real `oxcd` processes on loopback ports, driven by real clients
//! (the etcd-client crate, Debian's etcdctl 3.4).

mod cluster_harness;
mod harness;

mod cluster;
mod durability;
mod errors;
mod etcdctl;
mod etcdctl_cluster;
mod kv;
mod lease;
mod modules;
mod restart;
mod startup;
mod transport;
mod txn;
mod watch;
