//! The shipped YAML: the chart through the real helm binary (lint, template), and every
//! rendered manifest and example read into its k8s-openapi (Kubernetes 1.33) or EtcdCluster
//! type and written back without losing a field: a misspelled or misplaced field fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use oxcd_operator::crd::EtcdCluster;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// helm, from `HELM` or as scripts/helm-tools installs it.
fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("HELM") {
        return path.into();
    }
    let out = Command::new(root().join("scripts/helm-tools"))
        .output()
        .expect("run scripts/helm-tools");
    assert!(
        out.status.success(),
        "scripts/helm-tools: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("helm")
}

fn run(args: &[&str]) -> String {
    let out = Command::new(helm())
        .args(args)
        .current_dir(root())
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Drops what a round trip may legitimately drop: nulls, and empty maps and lists.
fn normalized(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalized(v)))
                .filter(|(_, v)| {
                    !(v.is_null()
                        || v == &Value::Object(Default::default())
                        || v == &Value::Array(vec![]))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalized).collect()),
        other => other,
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value, what: &str) {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = normalized(serde_json::to_value(&typed).unwrap());
    let original = normalized(doc.clone());
    assert!(
        within(&original, &back),
        "{what}: a field was not understood\n  sent: {original}\n  read: {back}"
    );
}

/// Whether every field of `part` is in `whole` with the same value (a round trip may add
/// defaults, never drop or change a field).
fn within(part: &Value, whole: &Value) -> bool {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p
            .iter()
            .all(|(k, v)| w.get(k).is_some_and(|wv| within(v, wv))),
        (Value::Array(p), Value::Array(w)) => {
            p.len() == w.len() && p.iter().zip(w).all(|(a, b)| within(a, b))
        }
        (a, b) => a == b,
    }
}

fn check_document(doc: &Value, what: &str) {
    let what = format!("{what}: {} {}", doc["kind"], doc["metadata"]["name"]);
    match doc["kind"].as_str().unwrap_or_default() {
        "Namespace" => round_trip::<Namespace>(doc, &what),
        "CustomResourceDefinition" => round_trip::<CustomResourceDefinition>(doc, &what),
        "ServiceAccount" => round_trip::<ServiceAccount>(doc, &what),
        "ClusterRole" => round_trip::<ClusterRole>(doc, &what),
        "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(doc, &what),
        "Role" => round_trip::<Role>(doc, &what),
        "RoleBinding" => round_trip::<RoleBinding>(doc, &what),
        "Service" => round_trip::<Service>(doc, &what),
        "Deployment" => round_trip::<Deployment>(doc, &what),
        "CronJob" => {
            round_trip::<CronJob>(doc, &what);
            commands_parse(doc, &what);
        }
        "EtcdCluster" => {
            round_trip::<EtcdCluster>(doc, &what);
            let cluster: EtcdCluster = serde_json::from_value(doc.clone()).unwrap();
            EtcdCluster::validate_cel(&cluster).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        }
        "EtcdRestore" => round_trip::<oxcd_operator::crd::EtcdRestore>(doc, &what),
        "EtcdBackup" => round_trip::<oxcd_operator::crd::EtcdBackup>(doc, &what),
        "ServiceMonitor" => assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1", "{what}"),
        other => panic!("{what}: no check for kind {other}"),
    }
}

/// The `oxcd-operator` commands a CronJob runs take their flags: run here against endpoints
/// that do not answer, each fails for want of a cluster, never with clap's usage error (2).
fn commands_parse(doc: &Value, what: &str) {
    // TLS flags name files in the job's Secret volume: real ones here.
    let files = tempfile::tempdir().unwrap();
    let ca =
        oxcd_operator::certs::Authority::new("t", std::time::Duration::from_secs(3600)).unwrap();
    let leaf = ca
        .issue("t", &[], std::time::Duration::from_secs(3600))
        .unwrap();
    for (name, pem) in [
        ("ca.crt", &ca.cert_pem),
        ("tls.crt", &leaf.cert_pem),
        ("tls.key", &leaf.key_pem),
    ] {
        std::fs::write(files.path().join(name), pem).unwrap();
    }
    let pod = &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    for container in pod["containers"].as_array().unwrap() {
        assert_eq!(
            container["command"][0], "/usr/local/bin/oxcd-operator",
            "{what}"
        );
        let args: Vec<String> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .map(|a| match a.split_once('=') {
                Some(("--endpoints", url)) => {
                    let scheme = url.split_once("://").map_or("http", |(s, _)| s);
                    format!("--endpoints={scheme}://127.0.0.1:1")
                }
                Some((flag @ ("--cacert" | "--cert" | "--key"), path)) => {
                    let file = path.rsplit('/').next().unwrap();
                    format!("{flag}={}", files.path().join(file).display())
                }
                _ => a,
            })
            .collect();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_oxcd-operator"))
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", "example")
            .env("AWS_SECRET_ACCESS_KEY", "example")
            .env("AWS_ENDPOINT", "http://127.0.0.1:1")
            .env("AWS_ALLOW_HTTP", "true")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {args:?}\n{stderr}");
        assert!(stderr.contains("127.0.0.1:1"), "{what}: {stderr}");
    }
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

use serde::Deserialize;

#[test]
fn the_committed_crds_are_what_crdgen_prints() {
    for (file, crd) in [
        ("etcdcluster.yaml", EtcdCluster::crd()),
        ("etcdrestore.yaml", oxcd_operator::crd::EtcdRestore::crd()),
        ("etcdbackup.yaml", oxcd_operator::crd::EtcdBackup::crd()),
    ] {
        let generated = serde_yaml::to_string(&crd).unwrap();
        for dir in ["crds", "charts/oxcd-operator/crds"] {
            let path = format!("{dir}/{file}");
            let committed = std::fs::read_to_string(root().join(&path)).unwrap();
            assert!(
                committed == generated,
                "{path} is stale: run scripts/render-manifests"
            );
        }
    }
}

#[test]
fn install_yaml_and_the_examples_are_valid_kubernetes_1_33_objects() {
    let install = std::fs::read_to_string(root().join("manifests/install.yaml")).unwrap();
    let docs = documents(&install);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[..2], ["Namespace", "CustomResourceDefinition"]);
    assert!(kinds.contains(&"Deployment"));
    for doc in &docs {
        check_document(doc, "manifests/install.yaml");
    }
    let examples = std::fs::read_dir(root().join("manifests/examples")).unwrap();
    let mut seen = 0;
    for entry in examples.flatten() {
        let yaml = std::fs::read_to_string(entry.path()).unwrap();
        for doc in documents(&yaml) {
            check_document(&doc, &entry.path().display().to_string());
            seen += 1;
        }
    }
    assert!(
        seen >= 7,
        "the three clusters, two CronJobs, a restore and a backup"
    );
}

#[test]
fn the_chart_lints_and_renders_with_the_real_helm() {
    run(&["lint", "--strict", "charts/oxcd-operator"]);
    for extra in [
        &[][..],
        &[
            "--set",
            "watchNamespace=team-a",
            "--set",
            "metrics.serviceMonitor.enabled=true",
        ][..],
    ] {
        let mut args = vec![
            "template",
            "oxcd-operator",
            "charts/oxcd-operator",
            "--namespace",
            "oxcd-system",
        ];
        args.extend_from_slice(extra);
        let rendered = run(&args);
        let docs = documents(&rendered);
        for doc in &docs {
            check_document(doc, &format!("helm template {extra:?}"));
        }
        let deployment = docs
            .iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("a Deployment");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["securityContext"]["runAsNonRoot"], true);
        let args = container["args"].to_string();
        if extra.is_empty() {
            assert!(docs.iter().any(|d| d["kind"] == "ClusterRole"));
        } else {
            // One namespace watched: a Role there, and no cluster-wide rights.
            assert!(args.contains("team-a"), "{args}");
            assert!(!docs.iter().any(|d| d["kind"] == "ClusterRole"));
            assert!(docs.iter().any(|d| d["kind"] == "ServiceMonitor"));
        }
    }
    // Values outside the schema are refused.
    let out = Command::new(helm())
        .args([
            "template",
            "x",
            "charts/oxcd-operator",
            "--set",
            "logFormat=xml",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Objects the operator writes for a cluster, and install.yaml, through an offline schema
/// check for Kubernetes 1.33 (kubernetes-validate, strict: unknown fields fail).
#[test]
fn install_yaml_and_the_operators_objects_pass_a_strict_kubernetes_1_33_schema_check() {
    use oxcd_operator::act::{Guard, Launch};
    use oxcd_operator::resources;
    let example =
        std::fs::read_to_string(root().join("manifests/examples/cluster-5-members-zones.yaml"))
            .unwrap();
    let mut ec: EtcdCluster = serde_yaml::from_str(&example).unwrap();
    ec.metadata.namespace = Some("default".into());
    ec.metadata.uid = Some("0a1b2c3d-0000-4000-8000-000000000001".into());
    let launch = Launch {
        member: "zoned-3".into(),
        new_cluster: false,
        initial_cluster: vec![(
            "zoned-0".into(),
            "http://zoned-0.zoned-peers.default.svc:2380".into(),
        )],
        token: resources::cluster_token(&ec),
        guard: Guard {
            cluster_id: Some(1),
            member_id: Some(2),
            require_data: true,
        },
        version: "0.1.0".into(),
        config: resources::config_digest(&ec),
        force_new_cluster: false,
        // A seed started from a backup on a claim, with the store's credentials.
        restore: Some(oxcd_operator::act::Restore {
            args: vec![
                "--from=file:///backups/zoned".into(),
                "--name=latest".into(),
            ],
            credentials_secret: Some("zoned-s3".into()),
            volume_claim_name: Some("zoned-backups".into()),
        }),
    };
    // With TLS on both ports, from the operator's own CA.
    ec.spec.tls = serde_json::from_value(serde_json::json!({
        "client": {"auto": {}}, "peer": {"auto": {}}}))
    .unwrap();
    let pod = resources::member_pod(&ec, &launch, "ghcr.io/oxcd/oxcd");
    let inits: Vec<&str> = pod
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        inits,
        ["restore", "member-guard"],
        "restored before the guard looks"
    );
    ec.spec.backup = serde_json::from_value(serde_json::json!({
        "schedule": "0 2 * * *", "to": "file:///backups/zoned",
        "volumeClaimName": "zoned-backups", "retention": {"keep": 7}}))
    .unwrap();
    ec.spec.maintenance.defrag_schedule = Some("30 3 * * 0".into());
    ec.spec.auth = Some(Default::default());
    let jobs = oxcd_operator::jobs::wanted(&ec, "ghcr.io/oxcd/oxcd").unwrap();
    assert_eq!(jobs.len(), 2);
    let backup_args =
        serde_json::to_value(&jobs[0]).unwrap()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            ["containers"][0]["args"]
            .to_string();
    let env =
        serde_json::to_value(&jobs[0]).unwrap()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            ["containers"][0]["env"]
            .to_string();
    assert!(
        env.contains("ETCDCTL_PASSWORD") && env.contains("zoned-root"),
        "{env}"
    );
    for flag in [
        "--endpoints=https://zoned-client.default.svc:2379",
        "--cacert=/etc/oxcd/tls/operator/ca.crt",
        "--cert=/etc/oxcd/tls/operator/tls.crt",
    ] {
        assert!(backup_args.contains(flag), "{flag} in {backup_args}");
    }
    for job in &jobs {
        // Their commands take these flags (the binary is run with them).
        check_document(
            &serde_json::to_value(job).unwrap(),
            "the operator's CronJobs",
        );
    }
    let restore_step = &pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
    // With a data dir that exists, as a restarted pod's, it restores nothing and succeeds.
    let existing = tempfile::tempdir().unwrap();
    let args: Vec<String> = restore_step
        .args
        .iter()
        .flatten()
        .map(|a| match a.starts_with("--data-dir=") {
            true => format!("--data-dir={}", existing.path().display()),
            false => a.clone(),
        })
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_oxcd-operator"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore-member takes its flags: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects = [
        serde_json::to_value(&jobs[0]).unwrap(),
        serde_json::to_value(&jobs[1]).unwrap(),
        serde_json::to_value(resources::peers_service(&ec)).unwrap(),
        serde_json::to_value(resources::client_service(&ec)).unwrap(),
        serde_json::to_value(resources::config_map(&ec)).unwrap(),
        serde_json::to_value(resources::pod_disruption_budget(&ec, 5)).unwrap(),
        serde_json::to_value(resources::volume_claim(&ec, "zoned-3")).unwrap(),
        serde_json::to_value(pod).unwrap(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("operator-objects.yaml");
    let yaml: Vec<String> = objects
        .iter()
        .map(|o| serde_yaml::to_string(o).unwrap())
        .collect();
    std::fs::write(&generated, yaml.join("---\n")).unwrap();
    let out = Command::new("kubernetes-validate")
        .args(["-k", "1.33.0", "--strict"])
        .arg(root().join("manifests/install.yaml"))
        .arg(&generated)
        .output()
        .expect("kubernetes-validate (PyPI; scripts/test installs it)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert_eq!(
        report.matches("passed for resource").count(),
        11 + objects.len(),
        "{report}"
    );
}
