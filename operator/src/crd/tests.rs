//! The CEL rules, evaluated as the API server would before the operator sees an object.

use super::*;

fn cluster(spec: serde_json::Value) -> EtcdCluster {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "oxcd.io/v1alpha1",
        "kind": "EtcdCluster",
        "metadata": {"name": "demo", "namespace": "default"},
        "spec": spec,
    }))
    .expect("a valid EtcdCluster document")
}

fn errors(result: Result<(), kube::core::cel::ValidationErrors>) -> String {
    match result {
        Ok(()) => String::new(),
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn defaults_fill_an_almost_empty_spec() {
    let c = cluster(serde_json::json!({"version": "0.1.0"}));
    assert_eq!(c.spec.replicas, 3);
    assert_eq!(c.spec.storage.size.as_deref(), Some("1Gi"));
    assert_eq!(
        c.spec.storage.retention_policy.when_scaled,
        Retention::Delete
    );
    assert_eq!(
        c.spec.storage.retention_policy.when_deleted,
        Retention::Retain
    );
    assert!(c.spec.pod_disruption_budget.enabled);
    assert_eq!(c.spec.service.type_, "ClusterIP");
    assert_eq!(errors(EtcdCluster::validate_cel(&c)), "");
}

#[test]
fn replicas_below_one_are_rejected() {
    for replicas in [0, -1] {
        let c = cluster(serde_json::json!({"version": "0.1.0", "replicas": replicas}));
        let e = errors(EtcdCluster::validate_cel(&c));
        assert!(e.contains("replicas must be at least 1"), "{replicas}: {e}");
    }
    let one = cluster(serde_json::json!({"version": "0.1.0", "replicas": 1}));
    assert_eq!(errors(EtcdCluster::validate_cel(&one)), "");
}

#[test]
fn storage_can_grow_but_not_shrink_or_change_class() {
    let old = cluster(serde_json::json!({"version": "0.1.0",
        "storage": {"size": "10Gi", "storageClassName": "fast"}}));
    let grown = cluster(serde_json::json!({"version": "0.1.0",
        "storage": {"size": "20Gi", "storageClassName": "fast"}}));
    assert_eq!(errors(EtcdCluster::validate_cel_update(&grown, &old)), "");
    let shrunk = cluster(serde_json::json!({"version": "0.1.0",
        "storage": {"size": "5Gi", "storageClassName": "fast"}}));
    let e = errors(EtcdCluster::validate_cel_update(&shrunk, &old));
    assert!(e.contains("storage.size cannot shrink"), "{e}");
    let reclassed = cluster(serde_json::json!({"version": "0.1.0",
        "storage": {"size": "10Gi", "storageClassName": "slow"}}));
    let e = errors(EtcdCluster::validate_cel_update(&reclassed, &old));
    assert!(e.contains("storage.storageClassName cannot change"), "{e}");
    let unclassed = cluster(serde_json::json!({"version": "0.1.0", "storage": {"size": "10Gi"}}));
    let e = errors(EtcdCluster::validate_cel_update(&unclassed, &old));
    assert!(e.contains("storage.storageClassName cannot change"), "{e}");
    let ephemeral = cluster(serde_json::json!({"version": "0.1.0", "storage": {"emptyDir": {}}}));
    let e = errors(EtcdCluster::validate_cel_update(&ephemeral, &old));
    assert!(e.contains("cannot switch between emptyDir"), "{e}");
}

#[test]
fn storage_size_must_be_a_quantity_and_exclusive_with_empty_dir() {
    let junk = cluster(serde_json::json!({"version": "0.1.0", "storage": {"size": "lots"}}));
    let e = errors(EtcdCluster::validate_cel(&junk));
    assert!(e.contains("storage.size must be a quantity"), "{e}");
    let both = cluster(serde_json::json!({"version": "0.1.0",
        "storage": {"size": "1Gi", "emptyDir": {}}}));
    let e = errors(EtcdCluster::validate_cel(&both));
    assert!(e.contains("either emptyDir or size"), "{e}");
}
