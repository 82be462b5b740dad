//! The Kubernetes side against a fake API server (tower-test): a verifier walks the calls a
//! reconcile pass must make, in order, answering each as the API server would, and keeps
//! what was sent for the assertions.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use oxcd_operator::act::{Guard, Launch, Workloads};
use oxcd_operator::controller::{self, Context};
use oxcd_operator::crd::EtcdCluster;
use oxcd_operator::k8s::KubeWorkloads;
use oxcd_operator::metrics::Metrics;
use serde_json::{Value, json};
use tower_test::mock::Handle;

const UID: &str = "0a1b2c3d-0000-4000-8000-000000000001";

fn cluster(status: Value) -> Value {
    json!({
        "apiVersion": "oxcd.io/v1alpha1",
        "kind": "EtcdCluster",
        "metadata": {"name": "demo", "namespace": "default", "uid": UID, "generation": 1,
                     "resourceVersion": "1"},
        "spec": {"replicas": 3, "version": "0.1.0"},
        "status": status,
    })
}

/// The cluster with its seed's Bootstrap operation recorded, as after the first pass.
fn bootstrapping() -> EtcdCluster {
    let operation = json!({"kind": "Bootstrap", "member": "demo-0", "reason": "new cluster",
        "targetReplicas": 3, "targetVersion": "0.1.0",
        "started": "2026-12-07T00:00:00Z", "deadline": "2099-12-07T00:10:00Z"});
    serde_json::from_value(cluster(json!({"operation": operation, "nextOrdinal": 1}))).unwrap()
}

/// How the fake API server answers one call.
enum Reply {
    /// Echo the request's body, as a server-side apply or a create answers.
    Echo,
    Json(Value),
    /// A plain-text body, as a pod's log.
    Text(String),
    Status(StatusCode, &'static str),
}

struct Expect {
    method: Method,
    path: &'static str,
    reply: Reply,
}

fn expect(method: Method, path: &'static str, reply: Reply) -> Expect {
    Expect {
        method,
        path,
        reply,
    }
}

fn empty_list(kind: &str) -> Reply {
    Reply::Json(json!({"kind": kind, "apiVersion": "v1", "metadata": {}, "items": []}))
}

fn not_found() -> Reply {
    Reply::Status(StatusCode::NOT_FOUND, "NotFound")
}

/// Serves `script` in order; every request must match the next expectation. The bodies
/// sent, by path.
async fn verify(
    mut handle: Handle<Request<Body>, Response<Body>>,
    script: Vec<Expect>,
) -> Vec<(String, Value)> {
    let mut sent = Vec::new();
    for (i, e) in script.into_iter().enumerate() {
        let (request, respond) =
            tokio::time::timeout(Duration::from_secs(10), handle.next_request())
                .await
                .unwrap_or_else(|_| panic!("call {i} ({} {}) never came", e.method, e.path))
                .expect("the client is alive");
        let uri = request.uri().to_string();
        assert_eq!(request.method(), e.method, "call {i}: {uri}");
        assert!(
            uri.starts_with(e.path),
            "call {i}: expected {}, got {uri}",
            e.path
        );
        if e.method == Method::PATCH {
            assert!(
                uri.contains("fieldManager=oxcd-operator"),
                "call {i}: {uri} is no server-side apply by oxcd-operator"
            );
        }
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let response = match e.reply {
            Reply::Echo => Response::new(Body::from(serde_json::to_vec(&body).unwrap())),
            Reply::Json(v) => Response::new(Body::from(serde_json::to_vec(&v).unwrap())),
            Reply::Text(t) => Response::new(Body::from(t.into_bytes())),
            Reply::Status(code, reason) => {
                let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": format!("fake {reason}"), "reason": reason, "code": code.as_u16()});
                let mut r = Response::new(Body::from(serde_json::to_vec(&status).unwrap()));
                *r.status_mut() = code;
                r
            }
        };
        respond.send_response(response);
        sent.push((uri, body));
    }
    sent
}

fn context() -> (Arc<Context>, Handle<Request<Body>, Response<Body>>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = Context::new(
        client,
        Metrics::default(),
        "ghcr.io/oxcd/oxcd".into(),
        Some("test".into()),
    );
    (Arc::new(ctx), handle)
}

const NS: &str = "/api/v1/namespaces/default";

/// The calls every pass starts with: the Services and the ConfigMap, then the look at pods
/// and volumes.
fn opening() -> Vec<Expect> {
    vec![
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/services/demo-peers?",
            Reply::Echo,
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/services/demo-client?",
            Reply::Echo,
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/configmaps/demo-config?",
            Reply::Echo,
        ),
        expect(
            Method::GET,
            "/apis/batch/v1/namespaces/default/cronjobs?",
            empty_list("CronJobList"),
        ),
        expect(
            Method::GET,
            "/apis/oxcd.io/v1alpha1/namespaces/default/etcdrestores?",
            empty_list("EtcdRestoreList"),
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/pods?",
            empty_list("PodList"),
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/persistentvolumeclaims?",
            empty_list("PersistentVolumeClaimList"),
        ),
    ]
}

/// The status write of a pass, answered with the stored object.
fn status_write() -> Expect {
    expect(
        Method::PATCH,
        "/apis/oxcd.io/v1alpha1/namespaces/default/etcdclusters/demo/status?",
        Reply::Json(cluster(json!({}))),
    )
}

fn pdb_apply() -> Expect {
    expect(
        Method::PATCH,
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/demo?",
        Reply::Echo,
    )
}

fn event() -> Expect {
    expect(
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/default/events",
        Reply::Echo,
    )
}

fn body_of<'a>(sent: &'a [(String, Value)], path: &str) -> &'a Value {
    &sent
        .iter()
        .find(|(uri, _)| uri.starts_with(path))
        .unwrap_or_else(|| panic!("no call to {path}"))
        .1
}

#[tokio::test]
async fn a_new_cluster_gets_its_objects_and_records_the_bootstrap_before_acting() {
    let (ctx, handle) = context();
    let ec: EtcdCluster = serde_json::from_value(cluster(json!({}))).unwrap();
    let mut script = opening();
    script.extend([status_write(), pdb_apply(), event()]);
    let server = tokio::spawn(verify(handle, script));
    let action = controller::reconcile(Arc::new(ec), ctx)
        .await
        .expect("the pass succeeds");
    assert_eq!(action, Action::requeue(Duration::from_millis(500)));
    let sent = server.await.unwrap();

    let peers = body_of(&sent, &format!("{NS}/services/demo-peers"));
    assert_eq!(peers["spec"]["clusterIP"], "None");
    assert_eq!(peers["spec"]["publishNotReadyAddresses"], true);
    assert_eq!(peers["metadata"]["ownerReferences"][0]["uid"], UID);
    let config = body_of(&sent, &format!("{NS}/configmaps/demo-config"));
    assert!(config["data"]["oxcd.yaml"].is_string());
    let status = &body_of(
        &sent,
        "/apis/oxcd.io/v1alpha1/namespaces/default/etcdclusters/demo/status",
    )["status"];
    assert_eq!(status["operation"]["kind"], "Bootstrap");
    assert_eq!(status["operation"]["member"], "demo-0");
    assert_eq!(status["nextOrdinal"], 1);
    assert_eq!(status["phase"], "Creating");
    assert_eq!(
        status["selector"],
        "app.kubernetes.io/instance=demo,app.kubernetes.io/name=oxcd"
    );
    // Nothing is up yet: the PDB lets no voluntary disruption through.
    let pdb = body_of(
        &sent,
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/demo",
    );
    assert_eq!(pdb["spec"]["maxUnavailable"], 0);
    let event = body_of(&sent, "/apis/events.k8s.io/v1/namespaces/default/events");
    assert_eq!(event["reason"], "Bootstrapping");
}

#[tokio::test]
async fn the_seed_is_created_once_as_a_new_cluster_with_the_clusters_token() {
    let (ctx, handle) = context();
    let ec = bootstrapping();
    let mut script = opening();
    script.extend([
        expect(
            Method::GET,
            "/api/v1/namespaces/default/persistentvolumeclaims/demo-0",
            not_found(),
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/persistentvolumeclaims/demo-0?",
            Reply::Echo,
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/pods/demo-0",
            not_found(),
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/pods/demo-0?",
            Reply::Echo,
        ),
        status_write(),
        pdb_apply(),
    ]);
    let server = tokio::spawn(verify(handle, script));
    controller::reconcile(Arc::new(ec), ctx)
        .await
        .expect("the pass succeeds");
    let sent = server.await.unwrap();
    let claim = body_of(&sent, &format!("{NS}/persistentvolumeclaims/demo-0?"));
    assert_eq!(claim["metadata"]["labels"]["oxcd.io/cluster-uid"], UID);
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    // whenDeleted: Retain (the default): the volume is not owned, so it outlives the cluster.
    assert!(claim["metadata"].get("ownerReferences").is_none());
    let pod = body_of(&sent, &format!("{NS}/pods/demo-0?"));
    let args: Vec<&str> = pod["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--initial-cluster-state=new"), "{args:?}");
    assert!(
        args.contains(&format!("--initial-cluster-token=default-demo-{UID}").as_str()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--initial-cluster=demo-0=http://demo-0.demo-peers.default.svc:2380"),
        "{args:?}"
    );
    assert_eq!(
        pod["spec"]["initContainers"][0]["args"],
        json!(["member-guard", "--data-dir", "/var/lib/oxcd/data"])
    );
    assert_eq!(pod["spec"]["subdomain"], "demo-peers");
    // The image's non-root user can write its volume.
    assert_eq!(pod["spec"]["securityContext"]["fsGroup"], 65532);
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], UID);
}

#[tokio::test]
async fn a_joining_member_starts_as_existing_behind_its_guard_and_goes_cleanly() {
    let (ctx, handle) = context();
    let ec: EtcdCluster = serde_json::from_value(cluster(json!({}))).unwrap();
    let workloads = KubeWorkloads::new(ctx.client.clone(), &ec, "repo/oxcd".into());
    let launch = Launch {
        member: "demo-3".into(),
        new_cluster: false,
        initial_cluster: vec![
            ("demo-0".into(), workloads.peer_url("demo-0")),
            ("demo-3".into(), workloads.peer_url("demo-3")),
        ],
        token: "default-demo-x".into(),
        guard: Guard {
            cluster_id: Some(0xc1),
            member_id: Some(0xabc),
            require_data: true,
        },
        version: "0.1.0".into(),
        config: "c1".into(),
        force_new_cluster: false,
        restore: None,
    };
    let script = vec![
        expect(
            Method::GET,
            "/api/v1/namespaces/default/persistentvolumeclaims/demo-3",
            not_found(),
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/persistentvolumeclaims/demo-3?",
            Reply::Echo,
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/pods/demo-3",
            not_found(),
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/pods/demo-3?",
            Reply::Echo,
        ),
        // Removal: the pod, then the volume; gone already is fine.
        expect(
            Method::DELETE,
            "/api/v1/namespaces/default/pods/demo-3",
            not_found(),
        ),
        expect(
            Method::DELETE,
            "/api/v1/namespaces/default/persistentvolumeclaims/demo-3",
            Reply::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
        ),
    ];
    let server = tokio::spawn(verify(handle, script));
    workloads.start_member(&launch).await.unwrap();
    workloads.delete_pod("demo-3").await.unwrap();
    workloads.delete_volume("demo-3").await.unwrap();
    let sent = server.await.unwrap();
    let pod = body_of(&sent, &format!("{NS}/pods/demo-3?"));
    assert_eq!(pod["spec"]["containers"][0]["image"], "repo/oxcd:0.1.0");
    let args = pod["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--initial-cluster-state=existing"), "{args}");
    assert_eq!(
        pod["spec"]["initContainers"][0]["args"],
        json!([
            "member-guard",
            "--data-dir",
            "/var/lib/oxcd/data",
            "--cluster-id",
            "c1",
            "--member-id",
            "abc",
            "--require-data"
        ])
    );
    assert_eq!(pod["metadata"]["annotations"]["oxcd.io/member-id"], "abc");
}

#[tokio::test]
async fn conflicts_and_server_errors_requeue_with_backoff_never_panic() {
    for (code, reason) in [
        (StatusCode::CONFLICT, "Conflict"),
        (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    ] {
        let (ctx, handle) = context();
        let ec = Arc::new(serde_json::from_value::<EtcdCluster>(cluster(json!({}))).unwrap());
        // The first write fails; so does a status write on the next attempt.
        let server = tokio::spawn(verify(
            handle,
            vec![expect(
                Method::PATCH,
                "/api/v1/namespaces/default/services/demo-peers?",
                Reply::Status(code, reason),
            )],
        ));
        let error = controller::reconcile(ec.clone(), ctx.clone())
            .await
            .expect_err("the pass fails");
        server.await.unwrap();
        assert!(
            error.to_string().contains(&format!("fake {reason}")),
            "{error}"
        );
        let first = controller::error_policy(ec.clone(), &error, ctx.clone());
        let second = controller::error_policy(ec.clone(), &error, ctx.clone());
        assert_eq!(first, Action::requeue(Duration::from_secs(5)));
        assert_eq!(second, Action::requeue(Duration::from_secs(10)));
        assert!(
            ctx.metrics
                .render()
                .contains("oxcd_operator_reconcile_errors_total{kind=\"kube\"} 2")
        );
    }
    assert_eq!(controller::backoff(30), Duration::from_secs(300));
}

#[tokio::test]
async fn a_deleted_cluster_is_left_to_the_garbage_collector() {
    let (ctx, handle) = context();
    let mut doc = cluster(json!({}));
    doc["metadata"]["deletionTimestamp"] = json!("2026-12-07T00:00:00Z");
    let ec: EtcdCluster = serde_json::from_value(doc).unwrap();
    let server = tokio::spawn(verify(handle, vec![]));
    let action = controller::reconcile(Arc::new(ec), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    server.await.unwrap();
}

#[tokio::test]
async fn replicas_below_one_are_reported_not_acted_on() {
    let (ctx, handle) = context();
    let mut doc = cluster(json!({}));
    doc["spec"]["replicas"] = json!(0);
    let ec: EtcdCluster = serde_json::from_value(doc).unwrap();
    let server = tokio::spawn(verify(handle, vec![]));
    let error = controller::reconcile(Arc::new(ec), ctx)
        .await
        .expect_err("refused");
    assert!(
        error.to_string().contains("replicas must be at least 1"),
        "{error}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_volume_smaller_than_the_spec_is_grown() {
    let (ctx, handle) = context();
    let mut doc = cluster(json!({}));
    doc["spec"]["storage"] = json!({"size": "2Gi"});
    let ec: EtcdCluster = serde_json::from_value(doc).unwrap();
    let claim = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "demo-0", "namespace": "default",
                     "labels": {"oxcd.io/cluster-uid": UID, "app.kubernetes.io/instance": "demo"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    });
    let mut script = opening();
    script[6] = expect(
        Method::GET,
        "/api/v1/namespaces/default/persistentvolumeclaims?",
        Reply::Json(
            json!({"kind": "PersistentVolumeClaimList", "apiVersion": "v1",
            "metadata": {}, "items": [claim]}),
        ),
    );
    script.extend([
        status_write(),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/persistentvolumeclaims/demo-0?",
            Reply::Echo,
        ),
        pdb_apply(),
        event(),
        event(),
    ]);
    let server = tokio::spawn(verify(handle, script));
    controller::reconcile(Arc::new(ec), ctx)
        .await
        .expect("the pass succeeds");
    let sent = server.await.unwrap();
    let grown = body_of(&sent, &format!("{NS}/persistentvolumeclaims/demo-0?"));
    assert_eq!(grown["spec"]["resources"]["requests"]["storage"], "2Gi");
    assert_eq!(sent.last().unwrap().1["reason"], "VolumeResized");
}

/// An image that cannot be pulled: the pass reports it in Degraded with the kubelet's words.
#[tokio::test]
async fn a_pod_whose_image_cannot_be_pulled_is_reported_in_degraded() {
    let (ctx, handle) = context();
    let ec = bootstrapping();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "demo-0", "namespace": "default",
                     "annotations": {"oxcd.io/version": "0.1.0", "oxcd.io/config-hash": "x"}},
        "status": {"containerStatuses": [{"name": "oxcd", "ready": false, "restartCount": 0,
            "image": "ghcr.io/oxcd/oxcd:0.1.0", "imageID": "",
            "state": {"waiting": {"reason": "ImagePullBackOff",
                "message": "Back-off pulling image \"ghcr.io/oxcd/oxcd:0.1.0\""}}}]},
    });
    let mut script = opening();
    script[5] = expect(
        Method::GET,
        "/api/v1/namespaces/default/pods?",
        Reply::Json(json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [pod]})),
    );
    script.extend([status_write(), pdb_apply()]);
    let server = tokio::spawn(verify(handle, script));
    let action = controller::reconcile(Arc::new(ec), ctx)
        .await
        .expect("the pass succeeds");
    // The seed waits to start: looked at again soon, never a crash loop of the operator.
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
    let sent = server.await.unwrap();
    let status = &body_of(
        &sent,
        "/apis/oxcd.io/v1alpha1/namespaces/default/etcdclusters/demo/status",
    )["status"];
    let degraded = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap();
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "MemberPodFailing");
    let message = degraded["message"].as_str().unwrap();
    assert!(
        message.contains("demo-0") && message.contains("ImagePullBackOff"),
        "{message}"
    );
}

#[tokio::test]
async fn a_survivor_is_started_with_force_new_cluster_and_seen_as_forced_and_ready() {
    let (ctx, handle) = context();
    let ec: EtcdCluster = serde_json::from_value(cluster(json!({}))).unwrap();
    let workloads = KubeWorkloads::new(ctx.client.clone(), &ec, "repo/oxcd".into());
    let launch = Launch {
        member: "demo-2".into(),
        new_cluster: false,
        initial_cluster: vec![("demo-2".into(), workloads.peer_url("demo-2"))],
        token: "default-demo-x".into(),
        guard: Guard {
            cluster_id: Some(0xc1),
            member_id: Some(0x102),
            require_data: true,
        },
        version: "0.1.0".into(),
        config: "c1".into(),
        force_new_cluster: true,
        restore: None,
    };
    let script = vec![
        expect(
            Method::GET,
            "/api/v1/namespaces/default/persistentvolumeclaims/demo-2",
            not_found(),
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/persistentvolumeclaims/demo-2?",
            Reply::Echo,
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/pods/demo-2",
            not_found(),
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/pods/demo-2?",
            Reply::Echo,
        ),
    ];
    let server = tokio::spawn(verify(handle, script));
    workloads.start_member(&launch).await.unwrap();
    let sent = server.await.unwrap();
    let mut pod = body_of(&sent, &format!("{NS}/pods/demo-2?")).clone();
    let args = pod["spec"]["containers"][0]["args"].clone();
    assert!(
        args.as_array()
            .unwrap()
            .contains(&json!("--force-new-cluster")),
        "{args}"
    );
    assert_eq!(
        pod["spec"]["initContainers"][0]["args"]
            .as_array()
            .unwrap()
            .last(),
        Some(&json!("--require-data")),
        "the survivor's data must be there"
    );

    // Read back as the API server lists it, running and ready.
    pod["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
    let (ctx, handle) = context();
    let workloads = KubeWorkloads::new(ctx.client.clone(), &ec, "repo/oxcd".into());
    let pods = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [pod]});
    let script = vec![
        expect(
            Method::GET,
            "/api/v1/namespaces/default/pods?",
            Reply::Json(pods),
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/persistentvolumeclaims?",
            empty_list("PersistentVolumeClaimList"),
        ),
    ];
    let server = tokio::spawn(verify(handle, script));
    let seen = workloads.observe().await.unwrap();
    server.await.unwrap();
    let survivor = seen[0].pod.as_ref().unwrap();
    assert!(survivor.forced && survivor.ready, "{survivor:?}");
}

#[tokio::test]
async fn a_cluster_with_every_member_lost_reports_quorum_lost_and_forces_nothing() {
    let (ctx, handle) = context();
    let members: Vec<Value> = (0..3)
        .map(|i| json!({"name": format!("demo-{i}"), "id": format!("10{i}"), "version": "0.1.0"}))
        .collect();
    let mut ec = cluster(json!({"clusterId": "c1", "members": members, "nextOrdinal": 3}));
    ec["spec"]["recovery"] = json!({"policy": "Automatic", "after": "1s"});
    let ec: EtcdCluster = serde_json::from_value(ec).unwrap();
    // No pod and no volume is left; no member answers.
    let mut script = opening();
    script.extend([status_write(), pdb_apply()]);
    let server = tokio::spawn(verify(handle, script));
    let action = controller::reconcile(Arc::new(ec), ctx)
        .await
        .expect("the pass succeeds");
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
    let sent = server.await.unwrap();
    let status = &body_of(
        &sent,
        "/apis/oxcd.io/v1alpha1/namespaces/default/etcdclusters/demo/status",
    )["status"];
    assert!(status["quorumLostSince"].is_string(), "{status}");
    assert!(status.get("operation").is_none(), "nothing begun: {status}");
    let degraded = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap();
    assert_eq!(degraded["reason"], "QuorumLost");
    let message = degraded["message"].as_str().unwrap();
    assert!(
        message.contains("demo-0 (volume lost)")
            && message.contains("restore the cluster from a backup"),
        "{message}"
    );
}

#[tokio::test]
async fn backup_and_defrag_schedules_become_cron_jobs_and_backup_ready_follows_their_runs() {
    let (ctx, handle) = context();
    let mut doc = cluster(json!({}));
    doc["spec"]["backup"] = json!({"schedule": "*/5 * * * *", "to": "s3://backups/demo",
        "s3Endpoint": "http://minio.storage:9000", "s3Region": "us-east-1",
        "credentialsSecret": "demo-s3", "retention": {"keep": 3, "maxAge": "7d"}});
    doc["spec"]["maintenance"] = json!({"defragSchedule": "30 3 * * 0"});
    doc["spec"]["options"] = json!({"quotaBackendBytes": 8589934592_i64});
    let ec: EtcdCluster = serde_json::from_value(doc).unwrap();
    // The backup CronJob exists and its last scheduled run failed; a defrag CronJob of an
    // older spec is ours and is replaced by the apply; one named otherwise is deleted.
    let listed = json!({"kind": "CronJobList", "apiVersion": "batch/v1", "metadata": {},
        "items": [
            {"apiVersion": "batch/v1", "kind": "CronJob",
             "metadata": {"name": "demo-backup", "namespace": "default"},
             "spec": {"schedule": "*/5 * * * *", "jobTemplate": {}},
             "status": {"lastScheduleTime": "2026-12-07T10:05:00Z",
                        "lastSuccessfulTime": "2026-12-07T10:00:40Z"}},
            {"apiVersion": "batch/v1", "kind": "CronJob",
             "metadata": {"name": "demo-old", "namespace": "default"},
             "spec": {"schedule": "0 0 * * *", "jobTemplate": {}}}]});
    let mut script = opening();
    script[3] = expect(
        Method::GET,
        "/apis/batch/v1/namespaces/default/cronjobs?",
        Reply::Json(listed),
    );
    script.splice(
        4..4,
        [
            expect(
                Method::DELETE,
                "/apis/batch/v1/namespaces/default/cronjobs/demo-old",
                Reply::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
            ),
            expect(
                Method::PATCH,
                "/apis/batch/v1/namespaces/default/cronjobs/demo-backup?",
                Reply::Echo,
            ),
            expect(
                Method::PATCH,
                "/apis/batch/v1/namespaces/default/cronjobs/demo-defrag?",
                Reply::Echo,
            ),
        ],
    );
    script.extend([status_write(), pdb_apply(), event(), event()]);
    let server = tokio::spawn(verify(handle, script));
    controller::reconcile(Arc::new(ec), ctx)
        .await
        .expect("the pass succeeds");
    let sent = server.await.unwrap();
    // BackupReady turned False: a warning Event says so.
    let events: Vec<&Value> = sent
        .iter()
        .filter(|(uri, _)| uri.contains("/events"))
        .map(|(_, body)| body)
        .collect();
    let failed = events
        .iter()
        .find(|e| e["reason"] == "BackupFailed")
        .expect("a BackupFailed Event");
    assert_eq!(failed["type"], "Warning");
    let list = &sent[3].0;
    assert!(
        list.contains("app.kubernetes.io%2Fmanaged-by%3Doxcd-operator"),
        "only our CronJobs are listed: {list}"
    );
    let backup = body_of(
        &sent,
        "/apis/batch/v1/namespaces/default/cronjobs/demo-backup?",
    );
    assert_eq!(backup["spec"]["schedule"], "*/5 * * * *");
    assert_eq!(backup["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(backup["metadata"]["ownerReferences"][0]["uid"], UID);
    let pod = &backup["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "ghcr.io/oxcd/oxcd:0.1.0");
    assert_eq!(
        container["command"],
        json!(["/usr/local/bin/oxcd-operator"])
    );
    assert_eq!(
        container["args"],
        json!([
            "--log-format=json",
            "backup",
            "--endpoints=http://demo-client.default.svc:2379",
            "--to=s3://backups/demo",
            "--s3-endpoint=http://minio.storage:9000",
            "--s3-region=us-east-1",
            "--keep=3",
            "--max-age=7d"
        ])
    );
    assert_eq!(container["envFrom"][0]["secretRef"]["name"], "demo-s3");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let defrag = body_of(
        &sent,
        "/apis/batch/v1/namespaces/default/cronjobs/demo-defrag?",
    );
    assert_eq!(defrag["spec"]["schedule"], "30 3 * * 0");
    assert_eq!(
        defrag["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"],
        json!([
            "--log-format=json",
            "defrag",
            "--cluster",
            "--endpoints=http://demo-client.default.svc:2379",
            "--quota-backend-bytes=8589934592"
        ])
    );
    let status = &body_of(
        &sent,
        "/apis/oxcd.io/v1alpha1/namespaces/default/etcdclusters/demo/status",
    )["status"];
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "BackupReady")
        .expect("a BackupReady condition");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "BackupFailed");
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains("2026-12-07T10:05:00Z"), "{message}");
}

#[tokio::test]
async fn a_schedule_cron_cannot_parse_is_reported_before_anything_is_scheduled() {
    let (ctx, handle) = context();
    let mut doc = cluster(json!({}));
    doc["spec"]["maintenance"] = json!({"defragSchedule": "61 * * * *"});
    let ec: EtcdCluster = serde_json::from_value(doc).unwrap();
    let server = tokio::spawn(verify(
        handle,
        opening()[..3]
            .iter()
            .map(|e| expect(e.method.clone(), e.path, Reply::Echo))
            .collect(),
    ));
    let error = controller::reconcile(Arc::new(ec), ctx)
        .await
        .expect_err("an invalid schedule fails the pass");
    server.await.unwrap();
    assert!(
        error.to_string().contains("maintenance.defragSchedule"),
        "{error}"
    );
}

#[tokio::test]
async fn an_etcd_restore_is_recorded_with_the_old_cluster_id_and_reported_on_its_status() {
    let (ctx, handle) = context();
    let members: Vec<Value> = (0..3)
        .map(|i| json!({"name": format!("demo-{i}"), "id": format!("10{i}"), "version": "0.1.0"}))
        .collect();
    let ec: EtcdCluster = serde_json::from_value(cluster(
        json!({"clusterId": "c1", "members": members, "nextOrdinal": 3}),
    ))
    .unwrap();
    let restore = json!({"apiVersion": "oxcd.io/v1alpha1", "kind": "EtcdRestore",
        "metadata": {"name": "demo-restore", "namespace": "default",
                     "creationTimestamp": "2026-12-07T10:00:00Z"},
        "spec": {"clusterName": "demo",
                 "backup": {"from": "s3://backups/demo", "name": "latest",
                            "credentialsSecret": "demo-s3"}}});
    let done = json!({"apiVersion": "oxcd.io/v1alpha1", "kind": "EtcdRestore",
        "metadata": {"name": "old-restore", "namespace": "default",
                     "creationTimestamp": "2026-12-01T10:00:00Z"},
        "spec": {"clusterName": "demo", "backup": {"from": "s3://backups/demo"}},
        "status": {"phase": "Completed"}});
    let other = json!({"apiVersion": "oxcd.io/v1alpha1", "kind": "EtcdRestore",
        "metadata": {"name": "other", "namespace": "default",
                     "creationTimestamp": "2026-12-01T10:00:00Z"},
        "spec": {"clusterName": "another", "backup": {"from": "s3://backups/another"}}});
    let mut script = opening();
    script[4] = expect(
        Method::GET,
        "/apis/oxcd.io/v1alpha1/namespaces/default/etcdrestores?",
        Reply::Json(
            json!({"kind": "EtcdRestoreList", "apiVersion": "oxcd.io/v1alpha1",
            "metadata": {}, "items": [done, other, restore]}),
        ),
    );
    script.extend([
        status_write(),
        pdb_apply(),
        expect(
            Method::PATCH,
            "/apis/oxcd.io/v1alpha1/namespaces/default/etcdrestores/demo-restore/status?",
            Reply::Json(restore),
        ),
        event(),
    ]);
    let server = tokio::spawn(verify(handle, script));
    controller::reconcile(Arc::new(ec), ctx)
        .await
        .expect("the pass succeeds");
    let sent = server.await.unwrap();
    let status = &body_of(
        &sent,
        "/apis/oxcd.io/v1alpha1/namespaces/default/etcdclusters/demo/status",
    )["status"];
    assert_eq!(status["restore"]["name"], "demo-restore");
    assert_eq!(status["restore"]["phase"], "Stopping");
    assert_eq!(status["restore"]["oldClusterId"], "c1");
    let reported = body_of(
        &sent,
        "/apis/oxcd.io/v1alpha1/namespaces/default/etcdrestores/demo-restore/status",
    );
    assert_eq!(reported["status"]["phase"], "Stopping");
    assert_eq!(reported["status"]["oldClusterId"], "c1");
    let event = body_of(&sent, "/apis/events.k8s.io/v1/namespaces/default/events");
    assert_eq!(event["reason"], "RestoreStarted");
}

fn tls_cluster(tls: Value) -> EtcdCluster {
    let mut doc = cluster(json!({}));
    doc["spec"]["tls"] = tls;
    serde_json::from_value(doc).unwrap()
}

fn secret_data(secret: &Value, key: &str) -> String {
    let bytes: k8s_openapi::ByteString = serde_json::from_value(secret["data"][key].clone())
        .unwrap_or_else(|e| panic!("no {key}: {e}"));
    String::from_utf8(bytes.0).unwrap()
}

fn secret_json(name: &str, files: &[(&str, &str)]) -> Value {
    let data: std::collections::BTreeMap<String, k8s_openapi::ByteString> = files
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                k8s_openapi::ByteString(v.as_bytes().to_vec()),
            )
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": "default"}, "data": data})
}

/// The DNS names of a PEM certificate.
fn dns_names(pem: &str) -> Vec<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let sans = cert.subject_alternative_name().unwrap().unwrap();
    sans.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn auto_tls_makes_a_ca_once_and_the_operators_client_certificate_before_anything_else() {
    let (ctx, handle) = context();
    let ec = tls_cluster(json!({"client": {"auto": {}}, "peer": {"auto": {}}}));
    let mut script: Vec<Expect> = opening().into_iter().take(5).collect();
    script.extend([
        expect(
            Method::GET,
            "/api/v1/namespaces/default/secrets/demo-ca",
            not_found(),
        ),
        expect(
            Method::POST,
            "/api/v1/namespaces/default/secrets?",
            Reply::Echo,
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/secrets/demo-operator-tls",
            not_found(),
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/secrets/demo-operator-tls?",
            Reply::Echo,
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/secrets?",
            empty_list("SecretList"),
        ),
    ]);
    let server = tokio::spawn(verify(handle, script));
    // The fake answers nothing after the member Secrets' list; the pass stops there.
    let _ = controller::reconcile(Arc::new(ec), ctx).await;
    let sent = server.await.unwrap();
    let ca = &sent[6].1;
    assert_eq!(ca["metadata"]["name"], "demo-ca");
    let ca_pem = secret_data(ca, "ca.crt");
    assert!(secret_data(ca, "ca.key").contains("PRIVATE KEY"));
    let operator = body_of(
        &sent,
        "/api/v1/namespaces/default/secrets/demo-operator-tls?",
    );
    let authority =
        oxcd_operator::certs::Authority::from_pem(&ca_pem, &secret_data(ca, "ca.key")).unwrap();
    assert_eq!(secret_data(operator, "ca.crt"), authority.cert_pem);
    let (_, leaf) =
        x509_parser::pem::parse_x509_pem(secret_data(operator, "tls.crt").as_bytes()).unwrap();
    let leaf = leaf.parse_x509().unwrap();
    assert!(leaf.subject().to_string().contains("oxcd-operator"));
    assert_eq!(operator["metadata"]["ownerReferences"][0]["uid"], UID);
}

#[tokio::test]
async fn a_member_of_an_auto_tls_cluster_gets_its_certificate_secret_and_mounts_it() {
    let (ctx, handle) = context();
    let ec = tls_cluster(json!({"client": {"auto": {}}, "peer": {"auto": {}}}));
    let authority =
        oxcd_operator::certs::Authority::new("demo", Duration::from_secs(86_400 * 365)).unwrap();
    let prepared = oxcd_operator::tls::Prepared {
        authority: Some(authority.clone()),
        ..Default::default()
    };
    let workloads =
        KubeWorkloads::new(ctx.client.clone(), &ec, "repo/oxcd".into()).with_tls(prepared);
    assert_eq!(
        workloads.peer_url("demo-0"),
        "https://demo-0.demo-peers.default.svc:2380"
    );
    let launch = Launch {
        member: "demo-0".into(),
        new_cluster: true,
        initial_cluster: vec![("demo-0".into(), workloads.peer_url("demo-0"))],
        token: "default-demo-x".into(),
        guard: Guard::default(),
        version: "0.1.0".into(),
        config: "c1".into(),
        force_new_cluster: false,
        restore: None,
    };
    let script = vec![
        expect(
            Method::GET,
            "/api/v1/namespaces/default/persistentvolumeclaims/demo-0",
            not_found(),
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/persistentvolumeclaims/demo-0?",
            Reply::Echo,
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/secrets/demo-0-tls",
            not_found(),
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/secrets/demo-0-tls?",
            Reply::Echo,
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/pods/demo-0",
            not_found(),
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/pods/demo-0?",
            Reply::Echo,
        ),
    ];
    let server = tokio::spawn(verify(handle, script));
    workloads.start_member(&launch).await.unwrap();
    let sent = server.await.unwrap();
    let secret = body_of(&sent, "/api/v1/namespaces/default/secrets/demo-0-tls?");
    assert_eq!(secret["metadata"]["labels"]["oxcd.io/tls"], "member");
    let names = dns_names(&secret_data(secret, "tls.crt"));
    for name in [
        "demo-0.demo-peers.default.svc",
        "demo-client.default.svc",
        "localhost",
    ] {
        assert!(names.contains(&name.to_string()), "{name} in {names:?}");
    }
    let pod = body_of(&sent, "/api/v1/namespaces/default/pods/demo-0?");
    let container = &pod["spec"]["containers"][0];
    let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
    for arg in [
        "--listen-client-urls=https://0.0.0.0:2379",
        "--advertise-client-urls=https://demo-0.demo-peers.default.svc:2379",
        "--initial-advertise-peer-urls=https://demo-0.demo-peers.default.svc:2380",
        "--initial-cluster=demo-0=https://demo-0.demo-peers.default.svc:2380",
        "--cert-file=/etc/oxcd/tls/client/tls.crt",
        "--trusted-ca-file=/etc/oxcd/tls/client/ca.crt",
        "--client-cert-auth",
        "--peer-key-file=/etc/oxcd/tls/peer/tls.key",
        "--peer-client-cert-auth",
        "--listen-metrics-urls=http://0.0.0.0:2381",
    ] {
        assert!(args.contains(&arg.to_string()), "{arg} in {args:?}");
    }
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], 2381);
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "demo-0-tls")
    );
}

#[tokio::test]
async fn certificates_due_are_issued_again_in_place_and_others_are_left_alone() {
    let (ctx, handle) = context();
    let ec = tls_cluster(json!({"client": {"auto": {}}, "peer": {"auto": {}},
                                "renewBefore": "30d"}));
    let day = Duration::from_secs(86_400);
    let ca = oxcd_operator::certs::Authority::new("demo", day * 3650).unwrap();
    let sans = oxcd_operator::certs::member_sans("demo", "default", "demo-0");
    let fresh = ca.issue("demo-0", &sans, day * 90).unwrap();
    let expiring = ca.issue("demo-1", &sans, day * 10).unwrap();
    let operator = ca.issue("oxcd-operator", &[], day * 90).unwrap();
    let member_secret = |name: &str, issued: &oxcd_operator::certs::Issued| {
        let mut s = secret_json(
            name,
            &[
                ("ca.crt", &ca.cert_pem),
                ("tls.crt", &issued.cert_pem),
                ("tls.key", &issued.key_pem),
            ],
        );
        s["metadata"]["labels"] = json!({"oxcd.io/tls": "member"});
        s
    };
    let listed = json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {},
        "items": [member_secret("demo-0-tls", &fresh), member_secret("demo-1-tls", &expiring)]});
    let operator_secret = secret_json(
        "demo-operator-tls",
        &[
            ("ca.crt", &ca.cert_pem),
            ("tls.crt", &operator.cert_pem),
            ("tls.key", &operator.key_pem),
        ],
    );
    let script = vec![
        expect(
            Method::GET,
            "/api/v1/namespaces/default/secrets/demo-ca",
            Reply::Json(secret_json(
                "demo-ca",
                &[("ca.crt", &ca.cert_pem), ("ca.key", ca.key_pem())],
            )),
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/secrets/demo-operator-tls",
            Reply::Json(operator_secret),
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/secrets?",
            Reply::Json(listed),
        ),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/default/secrets/demo-1-tls?",
            Reply::Echo,
        ),
    ];
    let server = tokio::spawn(verify(handle, script));
    let prepared = oxcd_operator::tls::Tls::new(ctx.client.clone(), &ec)
        .prepare(time::OffsetDateTime::now_utc(), &mut Default::default())
        .await
        .unwrap();
    let sent = server.await.unwrap();
    let renewed = body_of(&sent, "/api/v1/namespaces/default/secrets/demo-1-tls?");
    let pem = secret_data(renewed, "tls.crt");
    assert_ne!(pem, expiring.cert_pem);
    let at = oxcd_operator::certs::renew_at(&pem, day * 30).unwrap();
    assert!(at > time::OffsetDateTime::now_utc(), "no longer due");
    assert_eq!(
        prepared
            .transitions
            .iter()
            .map(|t| t.reason)
            .collect::<Vec<_>>(),
        ["CertificateRenewed"]
    );
    assert!(prepared.authority.is_some());
}

#[tokio::test]
async fn cert_manager_tls_writes_a_certificate_and_waits_for_its_secret() {
    let (ctx, handle) = context();
    let ec = tls_cluster(
        json!({"client": {"certManager": {"issuerRef": {"name": "corp-ca",
        "kind": "ClusterIssuer"}}}}),
    );
    let script = vec![
        expect(
            Method::PATCH,
            "/apis/cert-manager.io/v1/namespaces/default/certificates/demo-client-tls?",
            Reply::Echo,
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/default/secrets/demo-client-tls",
            not_found(),
        ),
    ];
    let server = tokio::spawn(verify(handle, script));
    let error = oxcd_operator::tls::Tls::new(ctx.client.clone(), &ec)
        .prepare(time::OffsetDateTime::now_utc(), &mut Default::default())
        .await
        .expect_err("no Secret yet");
    let sent = server.await.unwrap();
    assert!(
        error
            .to_string()
            .contains("waiting for the Secret demo-client-tls"),
        "{error}"
    );
    let certificate = &sent[0].1;
    assert_eq!(certificate["kind"], "Certificate");
    assert_eq!(certificate["apiVersion"], "cert-manager.io/v1");
    assert_eq!(certificate["spec"]["secretName"], "demo-client-tls");
    assert_eq!(
        certificate["spec"]["issuerRef"],
        json!({"name": "corp-ca",
        "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
    let dns = certificate["spec"]["dnsNames"].to_string();
    assert!(dns.contains("*.demo-peers.default.svc"), "{dns}");
    assert!(dns.contains("demo-client.default.svc"), "{dns}");
    assert_eq!(certificate["metadata"]["ownerReferences"][0]["uid"], UID);
}

/// Whether `pem`'s certificate carries a signature of `ca`'s key.
fn signed_by(pem: &str, ca: &oxcd_operator::certs::Authority) -> bool {
    let (_, leaf) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let leaf = leaf.parse_x509().unwrap();
    let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca.cert_pem.as_bytes()).unwrap();
    let ca_cert = ca_pem.parse_x509().unwrap();
    leaf.verify_signature(Some(ca_cert.public_key())).is_ok()
}

/// The certificates in a PEM bundle.
fn pem_count(bundle: &str) -> usize {
    bundle.matches("BEGIN CERTIFICATE").count()
}

#[tokio::test]
async fn a_ca_rotation_goes_trust_both_then_reissued_then_done_each_after_a_pause() {
    use oxcd_operator::certs::{Authority, Issued};
    use oxcd_operator::crd::{CaRotationStep, EtcdClusterStatus};
    let day = Duration::from_secs(86_400);
    let old = Authority::new("demo", day * 3650).unwrap();
    let new = Authority::new("demo", day * 3650).unwrap();
    let both = oxcd_operator::certs::bundle(&old.cert_pem, &new.cert_pem);
    let sans = oxcd_operator::certs::member_sans("demo", "default", "demo-0");
    let member = old.issue("demo-0", &sans, day * 90).unwrap();
    let operator = old.issue("oxcd-operator", &[], day * 90).unwrap();
    let tls_secret = |name: &str, trust: &str, issued: &Issued| {
        let mut s = secret_json(
            name,
            &[
                ("ca.crt", trust),
                ("tls.crt", &issued.cert_pem),
                ("tls.key", &issued.key_pem),
            ],
        );
        if name != "demo-operator-tls" {
            s["metadata"]["labels"] = json!({"oxcd.io/tls": "member"});
        }
        s
    };
    let members = |trust: &str, issued: &Issued| {
        Reply::Json(
            json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {},
            "items": [tls_secret("demo-0-tls", trust, issued)]}),
        )
    };
    let get = |path: &'static str, reply: Reply| expect(Method::GET, path, reply);
    let patch = |path: &'static str| expect(Method::PATCH, path, Reply::Echo);
    const CA: &str = "/api/v1/namespaces/default/secrets/demo-ca";
    const OPERATOR: &str = "/api/v1/namespaces/default/secrets/demo-operator-tls";
    const MEMBER: &str = "/api/v1/namespaces/default/secrets/demo-0-tls?";
    const LIST: &str = "/api/v1/namespaces/default/secrets?";
    let mut doc = cluster(json!({}));
    doc["spec"]["tls"] = json!({"client": {"auto": {}}, "peer": {"auto": {}}});
    doc["metadata"]["annotations"] = json!({"oxcd.io/rotate-ca": "r1"});
    let ec: EtcdCluster = serde_json::from_value(doc).unwrap();
    let run = |script: Vec<Expect>, status: EtcdClusterStatus, minutes_later: i64| {
        let ec = ec.clone();
        async move {
            let (ctx, handle) = context();
            let server = tokio::spawn(verify(handle, script));
            let mut status = status;
            let now = time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes_later);
            let prepared = oxcd_operator::tls::Tls::new(ctx.client.clone(), &ec)
                .prepare(now, &mut status)
                .await
                .unwrap();
            (server.await.unwrap(), prepared, status)
        }
    };
    let ca_only = secret_json(
        "demo-ca",
        &[("ca.crt", &old.cert_pem), ("ca.key", old.key_pem())],
    );
    let ca_and_next = secret_json(
        "demo-ca",
        &[
            ("ca.crt", &old.cert_pem),
            ("ca.key", old.key_pem()),
            ("next.crt", &new.cert_pem),
            ("next.key", new.key_pem()),
        ],
    );

    // 1. Asked for: a new CA beside the old, and every Secret trusts both.
    let (sent, prepared, status) = run(
        vec![
            get(CA, Reply::Json(ca_only)),
            patch("/api/v1/namespaces/default/secrets/demo-ca?"),
            get(LIST, members(&old.cert_pem, &member)),
            patch(MEMBER),
            get(
                OPERATOR,
                Reply::Json(tls_secret("demo-operator-tls", &old.cert_pem, &operator)),
            ),
            patch("/api/v1/namespaces/default/secrets/demo-operator-tls?"),
            get(
                OPERATOR,
                Reply::Json(tls_secret("demo-operator-tls", &old.cert_pem, &operator)),
            ),
            get(LIST, members(&old.cert_pem, &member)),
        ],
        EtcdClusterStatus::default(),
        0,
    )
    .await;
    let stored_ca = &sent[1].1;
    assert!(secret_data(stored_ca, "next.crt").contains("BEGIN CERTIFICATE"));
    assert_eq!(
        secret_data(stored_ca, "ca.crt"),
        old.cert_pem,
        "the old CA stays in force"
    );
    let trusted = &sent[3].1;
    assert_eq!(pem_count(&secret_data(trusted, "ca.crt")), 2);
    assert_eq!(
        secret_data(trusted, "tls.crt"),
        member.cert_pem,
        "the certificate is kept"
    );
    let rotation = status.ca_rotation.clone().unwrap();
    assert_eq!(
        (rotation.step, rotation.trigger.as_str()),
        (CaRotationStep::TrustBoth, "r1")
    );
    assert_eq!(prepared.condition.as_ref().unwrap().2, "TrustBoth");
    assert_eq!(prepared.transitions[0].reason, "CARotationStarted");

    // Too soon for the next step: nothing is rewritten.
    let (_, prepared, same) = run(
        vec![
            get(CA, Reply::Json(ca_and_next.clone())),
            get(
                OPERATOR,
                Reply::Json(tls_secret("demo-operator-tls", &both, &operator)),
            ),
            get(LIST, members(&both, &member)),
        ],
        status.clone(),
        1,
    )
    .await;
    assert_eq!(same, status);
    assert!(prepared.transitions.is_empty());

    // 2. After the pause: every certificate from the new CA, both still trusted.
    let (sent, prepared, status) = run(
        vec![
            get(CA, Reply::Json(ca_and_next.clone())),
            get(LIST, members(&both, &member)),
            patch(MEMBER),
            patch("/api/v1/namespaces/default/secrets/demo-operator-tls?"),
            get(
                OPERATOR,
                Reply::Json(tls_secret("demo-operator-tls", &both, &operator)),
            ),
            get(LIST, members(&both, &member)),
        ],
        status,
        3,
    )
    .await;
    let reissued = &sent[2].1;
    assert!(signed_by(&secret_data(reissued, "tls.crt"), &new));
    assert_eq!(pem_count(&secret_data(reissued, "ca.crt")), 2);
    assert!(
        signed_by(&secret_data(&sent[3].1, "tls.crt"), &new),
        "the operator's too"
    );
    assert_eq!(
        status.ca_rotation.as_ref().unwrap().step,
        CaRotationStep::Reissued
    );
    assert!(signed_by(
        &prepared
            .authority
            .unwrap()
            .issue("x", &[], day)
            .unwrap()
            .cert_pem,
        &new
    ));

    // 3. The new CA alone.
    let renewed = new.issue("demo-0", &sans, day * 90).unwrap();
    let (sent, prepared, status) = run(
        vec![
            get(CA, Reply::Json(ca_and_next)),
            patch("/api/v1/namespaces/default/secrets/demo-ca?"),
            get(LIST, members(&both, &renewed)),
            patch(MEMBER),
            get(
                OPERATOR,
                Reply::Json(tls_secret("demo-operator-tls", &both, &operator)),
            ),
            patch("/api/v1/namespaces/default/secrets/demo-operator-tls?"),
            get(
                OPERATOR,
                Reply::Json(tls_secret("demo-operator-tls", &new.cert_pem, &operator)),
            ),
            get(LIST, members(&new.cert_pem, &renewed)),
        ],
        status,
        6,
    )
    .await;
    let ca = &sent[1].1;
    assert_eq!(secret_data(ca, "ca.crt"), new.cert_pem);
    assert!(ca["data"].get("next.crt").is_none(), "the old CA is gone");
    assert_eq!(secret_data(&sent[3].1, "ca.crt"), new.cert_pem);
    assert_eq!(secret_data(&sent[3].1, "tls.crt"), renewed.cert_pem);
    assert_eq!(
        status.ca_rotation.as_ref().unwrap().step,
        CaRotationStep::Done
    );
    let condition = prepared.condition.unwrap();
    assert_eq!((condition.1.as_str(), condition.2), ("False", "Done"));

    // The same annotation again starts nothing.
    let (_, prepared, after) = run(
        vec![
            get(
                CA,
                Reply::Json(secret_json(
                    "demo-ca",
                    &[("ca.crt", &new.cert_pem), ("ca.key", new.key_pem())],
                )),
            ),
            get(
                OPERATOR,
                Reply::Json(tls_secret("demo-operator-tls", &new.cert_pem, &operator)),
            ),
            get(LIST, members(&new.cert_pem, &renewed)),
        ],
        status.clone(),
        60,
    )
    .await;
    assert_eq!(after, status);
    assert!(prepared.transitions.is_empty());
}

#[tokio::test]
async fn auth_makes_root_a_random_password_secret_once_and_never_logs_it() {
    let (ctx, handle) = context();
    let mut doc = cluster(json!({}));
    doc["spec"]["auth"] = json!({});
    let ec: EtcdCluster = serde_json::from_value(doc).unwrap();
    let mut script = vec![
        expect(
            Method::GET,
            "/api/v1/namespaces/default/secrets/demo-root",
            not_found(),
        ),
        expect(
            Method::POST,
            "/api/v1/namespaces/default/secrets?",
            Reply::Echo,
        ),
    ];
    script.extend(opening());
    script.extend([status_write(), pdb_apply(), event()]);
    let server = tokio::spawn(verify(handle, script));
    controller::reconcile(Arc::new(ec), ctx)
        .await
        .expect("the pass succeeds");
    let sent = server.await.unwrap();
    let secret = &sent[1].1;
    assert_eq!(secret["metadata"]["name"], "demo-root");
    assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], UID);
    let password = secret["stringData"]["password"].as_str().unwrap();
    assert_eq!(password.len(), 48);
    assert!(password.chars().all(|c| c.is_ascii_hexdigit()));
    // Nothing else the operator sent carries it.
    for (uri, body) in &sent[2..] {
        assert!(!body.to_string().contains(password), "{uri}");
    }
}

fn etcd_backup(status: Value) -> oxcd_operator::crd::EtcdBackup {
    serde_json::from_value(json!({
        "apiVersion": "oxcd.io/v1alpha1", "kind": "EtcdBackup",
        "metadata": {"name": "nightly-1", "namespace": "default",
                     "uid": "0a1b2c3d-0000-4000-8000-0000000000bb", "resourceVersion": "1"},
        "spec": {"clusterName": "demo"},
        "status": status,
    }))
    .unwrap()
}

fn cluster_with_backup() -> Value {
    let mut doc = cluster(json!({"clusterId": "c1"}));
    doc["spec"]["backup"] = json!({"schedule": "0 2 * * *", "to": "s3://backups/demo",
        "credentialsSecret": "demo-s3", "retention": {"keep": 3}});
    doc
}

const BACKUP_STATUS: &str =
    "/apis/oxcd.io/v1alpha1/namespaces/default/etcdbackups/nightly-1/status?";

#[tokio::test]
async fn an_etcd_backup_runs_as_a_job_owned_by_it_with_the_clusters_store() {
    use kube::runtime::controller::Action;
    let (ctx, handle) = context();
    let backup = etcd_backup(json!({}));
    let script = vec![
        expect(
            Method::GET,
            "/apis/oxcd.io/v1alpha1/namespaces/default/etcdclusters/demo",
            Reply::Json(cluster_with_backup()),
        ),
        expect(
            Method::GET,
            "/apis/batch/v1/namespaces/default/jobs/nightly-1-etcdbackup",
            not_found(),
        ),
        expect(
            Method::POST,
            "/apis/batch/v1/namespaces/default/jobs?",
            Reply::Echo,
        ),
        expect(
            Method::PATCH,
            BACKUP_STATUS,
            Reply::Json(serde_json::to_value(etcd_backup(json!({}))).unwrap()),
        ),
    ];
    let server = tokio::spawn(verify(handle, script));
    let action = oxcd_operator::oneoff::reconcile(Arc::new(backup), ctx)
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));
    let sent = server.await.unwrap();
    let job = &sent[2].1;
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "EtcdBackup");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let args = container["args"].to_string();
    assert!(args.contains("--to=s3://backups/demo"), "{args}");
    assert!(
        !args.contains("--keep"),
        "no retention for a one-off: {args}"
    );
    assert_eq!(container["envFrom"][0]["secretRef"]["name"], "demo-s3");
    assert_eq!(sent[3].1["status"]["phase"], "Running");
    assert_eq!(sent[3].1["status"]["jobName"], "nightly-1-etcdbackup");
}

#[tokio::test]
async fn a_finished_backup_job_reports_its_record_and_a_failed_one_its_reason() {
    let record = json!({"name": "snapshot-20261207T100000Z.db", "location":
        "s3://backups/demo/snapshot-20261207T100000Z.db", "revision": 4242, "size": 123456,
        "sha256": "ab".repeat(32), "takenAt": "2026-12-07T10:00:00Z", "clusterId": "c1",
        "memberId": "100", "endpoint": "http://demo-client.default.svc:2379"});
    let log = format!("{{\"level\":\"INFO\",\"message\":\"snapshot streamed\"}}\n{record}\n");
    for (condition, expected) in [("Complete", "Succeeded"), ("Failed", "Failed")] {
        let (ctx, handle) = context();
        let job = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "nightly-1-etcdbackup", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": []}}},
            "status": {"conditions": [{"type": condition, "status": "True",
                "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        let pods = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "nightly-1-etcdbackup-x7", "namespace": "default"}}]});
        let mut script = vec![
            expect(
                Method::GET,
                "/apis/oxcd.io/v1alpha1/namespaces/default/etcdclusters/demo",
                Reply::Json(cluster_with_backup()),
            ),
            expect(
                Method::GET,
                "/apis/batch/v1/namespaces/default/jobs/nightly-1-etcdbackup",
                Reply::Json(job),
            ),
        ];
        if condition == "Complete" {
            script.extend([
                expect(
                    Method::GET,
                    "/api/v1/namespaces/default/pods?",
                    Reply::Json(pods),
                ),
                expect(
                    Method::GET,
                    "/api/v1/namespaces/default/pods/nightly-1-etcdbackup-x7/log",
                    Reply::Text(log.clone()),
                ),
            ]);
        }
        script.extend([
            expect(
                Method::PATCH,
                BACKUP_STATUS,
                Reply::Json(serde_json::to_value(etcd_backup(json!({}))).unwrap()),
            ),
            event(),
        ]);
        let server = tokio::spawn(verify(handle, script));
        let running = etcd_backup(json!({"phase": "Running", "jobName": "nightly-1-etcdbackup"}));
        oxcd_operator::oneoff::reconcile(Arc::new(running), ctx)
            .await
            .unwrap();
        let sent = server.await.unwrap();
        let status = &body_of(&sent, BACKUP_STATUS)["status"];
        assert_eq!(status["phase"], expected);
        let event = body_of(&sent, "/apis/events.k8s.io/v1/namespaces/default/events");
        if expected == "Succeeded" {
            assert_eq!(status["record"]["revision"], 4242);
            assert_eq!(status["record"]["size"], 123456);
            assert_eq!(event["reason"], "BackupSucceeded");
        } else {
            assert!(
                status["message"]
                    .as_str()
                    .unwrap()
                    .contains("backoff limit"),
                "{status}"
            );
            assert_eq!(event["reason"], "BackupFailed");
            assert_eq!(event["type"], "Warning");
        }
    }
    // A cluster with nowhere to back up to: failed at once.
    let (ctx, handle) = context();
    let script = vec![
        expect(
            Method::GET,
            "/apis/oxcd.io/v1alpha1/namespaces/default/etcdclusters/demo",
            Reply::Json(cluster(json!({}))),
        ),
        expect(
            Method::PATCH,
            BACKUP_STATUS,
            Reply::Json(serde_json::to_value(etcd_backup(json!({}))).unwrap()),
        ),
        event(),
    ];
    let server = tokio::spawn(verify(handle, script));
    oxcd_operator::oneoff::reconcile(Arc::new(etcd_backup(json!({}))), ctx)
        .await
        .unwrap();
    let sent = server.await.unwrap();
    let message = sent[1].1["status"]["message"].to_string();
    assert!(message.contains("has no spec.backup"), "{message}");
}
