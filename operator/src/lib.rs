//! oxcd-operator: runs oxcd clusters on Kubernetes from `EtcdCluster` resources.
//!
//! # Layout
//! - [`crd`]: the resource's types, CEL rules included; `crdgen` prints its CRD.
//! - [`plan`]: pure, from what is observed to the one next step.
//! - [`members`]: the cluster's own API (member list, status, add, promote, remove, move
//!   leader) over the etcd-client crate.
//! - [`act`]: performs a step through a [`act::Workloads`] (where member pods and volumes
//!   live) and the cluster API, one step per reconcile pass.
//! - [`resources`]: builders of the Kubernetes objects of a cluster.
//! - [`k8s`]: [`act::Workloads`] on the Kubernetes API.
//! - [`local`]: [`act::Workloads`] as local processes and directories, for tests and the
//!   benchmark.
//! - [`jobs`]: the CronJobs of scheduled backups and defragmentation.
//! - [`tls`]: `spec.tls` on Kubernetes: the CA and certificate Secrets of `auto`, their
//!   renewal, cert-manager Certificates, and the TLS of member pods.
//! - [`oneoff`]: `EtcdBackup`, a one-off backup run as a Job.
//! - [`status`]: the status and conditions derived from an observation and a step.
//! - [`controller`]: the reconcile loop, error policy and events.
//! - [`metrics`]: the operator's own Prometheus metrics.
//! - [`maintenance`]: defragmentation (followers first, never while degraded) and the
//!   NOSPACE alarm (`oxcd-operator defrag`).
//! - [`certs`]: a cluster's CA and the certificates it issues, renewal times, CA bundles.
//! - [`backup`]: snapshots streamed into object storage, checked, kept by a retention policy
//!   and taken on a schedule (also the `oxcd-operator backup` command).

pub mod act;
pub mod backup;
pub mod certs;
pub mod controller;
pub mod crd;
pub mod error;
pub mod jobs;
pub mod k8s;
pub mod local;
pub mod maintenance;
pub mod members;
pub mod metrics;
pub mod observe;
pub mod oneoff;
pub mod plan;
pub mod resources;
pub mod status;
pub mod tls;

pub use error::{Error, Result};
