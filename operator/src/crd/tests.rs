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

#[test]
fn backup_defrag_and_recovery_settings_are_checked_before_the_operator_sees_them() {
    let good = cluster(serde_json::json!({"version": "0.1.0",
        "backup": {"schedule": "0 2 * * *", "to": "s3://bucket/demo",
                   "retention": {"keep": 7, "maxAge": "30d"}},
        "maintenance": {"defragSchedule": "30 3 * * 0"},
        "recovery": {"policy": "Automatic", "after": "90s"}}));
    assert_eq!(errors(EtcdCluster::validate_cel(&good)), "");
    assert_eq!(good.spec.recovery.policy, RecoveryPolicy::Automatic);
    let defaults = cluster(serde_json::json!({"version": "0.1.0"}));
    assert_eq!(defaults.spec.recovery.policy, RecoveryPolicy::Manual);
    assert_eq!(defaults.spec.recovery.after, "5m");
    for (spec, message) in [
        (
            serde_json::json!({"backup": {"schedule": "0 2 * *", "to": "s3://b/p"}}),
            "backup.schedule must be a cron expression of five fields",
        ),
        (
            serde_json::json!({"backup": {"schedule": "*/5 * * * * *", "to": "s3://b/p"}}),
            "backup.schedule must be a cron expression of five fields",
        ),
        (
            serde_json::json!({"backup": {"schedule": "0 2 * * *", "to": "/backups"}}),
            "backup.to must be an s3://, gs://, az:// or file:// URL",
        ),
        (
            serde_json::json!({"backup": {"schedule": "0 2 * * *", "to": "s3://b/p",
                               "retention": {"keep": 0, "maxAge": "a week"}}}),
            "backup.retention.keep must be at least 1",
        ),
        (
            serde_json::json!({"backup": {"schedule": "0 2 * * *", "to": "s3://b/p",
                               "retention": {"maxAge": "a week"}}}),
            "backup.retention.maxAge must be a duration such as 12h or 7d",
        ),
        (
            serde_json::json!({"maintenance": {"defragSchedule": "weekly"}}),
            "maintenance.defragSchedule must be a cron expression of five fields",
        ),
        (
            serde_json::json!({"tls": {"client": {"auto": {}, "secretName": "mine"}}}),
            "take exactly one of auto, secretName and certManager",
        ),
        (
            serde_json::json!({"tls": {"peer": {}}}),
            "take exactly one of auto, secretName and certManager",
        ),
        (
            serde_json::json!({"recovery": {"after": "5 minutes"}}),
            "recovery.after must be a duration such as 30s, 5m or 1h",
        ),
    ] {
        let mut spec = spec;
        spec["version"] = "0.1.0".into();
        let c = cluster(spec.clone());
        let found = errors(EtcdCluster::validate_cel(&c));
        assert!(found.contains(message), "{spec}: {found}");
    }
}
