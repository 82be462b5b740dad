//! oxcd-operator's integration tests: the cluster-facing side against real oxcd processes
//! ([`local`] runs member "pods" as processes, "volumes" as directories), the
//! Kubernetes-facing side against a fake API server (tower-test), and the chart and
//! manifests through the real helm binary and k8s-openapi's types.

mod api;
mod backup;
mod certs;
mod maintenance;
mod manifests;
mod members;
