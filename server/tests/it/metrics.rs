//! `/metrics` as Prometheus scrapes it: parsed with a Prometheus text parser, etcd's metric
//! names carry values that follow what the cluster does (a leader, proposals committed and
//! WAL fsyncs rising with writes, keys counted, gRPC calls counted by method and code), on the
//! client port and on `--listen-metrics-urls`.

use std::time::Duration;

use oxcd_testkit::{Cluster, Member, free_port, wait_for};
use prometheus_parse::{Scrape, Value};

use crate::calls::http_get;

struct Metrics(Scrape);

impl Metrics {
    /// Scrapes `path` of `endpoint`.
    fn scrape(endpoint: &str, path: &str) -> Metrics {
        let (code, body) = http_get(endpoint, path);
        assert_eq!(code, 200, "{body}");
        let lines = body.lines().map(|l| Ok(l.to_string()));
        Metrics(Scrape::parse(lines).expect("Prometheus text format"))
    }

    /// The value of the sample `name` whose labels include `labels`: a counter's or gauge's
    /// value, a histogram's count.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map_or(0.0, |b| b.count),
                Value::Summary(_) => panic!("{name} is a summary"),
            })
    }

    fn get(&self, name: &str) -> f64 {
        self.value(name, &[])
            .unwrap_or_else(|| panic!("no {name} in the scrape"))
    }
}

#[tokio::test]
async fn metrics_follow_what_the_cluster_does() {
    let mut cluster = Cluster::start_with(3, &["--metrics", "extensive"]);
    let leader = cluster.leader().await;
    let endpoint = cluster.members[leader].endpoint();
    let before = Metrics::scrape(&endpoint, "/metrics");
    for name in [
        "etcd_server_has_leader",
        "etcd_server_is_leader",
        "etcd_server_leader_changes_seen_total",
    ] {
        assert_eq!(before.get(name), 1.0, "{name}");
    }
    assert_eq!(before.get("etcd_server_quota_backend_bytes"), 2147483648.0);
    assert_eq!(before.get("etcd_server_proposals_pending"), 0.0);
    assert_eq!(before.get("etcd_server_proposals_failed_total"), 0.0);
    assert!(before.get("process_resident_memory_bytes") > 0.0);
    assert!(before.get("process_open_fds") > 0.0);
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for &i in &followers {
        let m = Metrics::scrape(&cluster.members[i].endpoint(), "/metrics");
        assert_eq!(m.get("etcd_server_has_leader"), 1.0);
        assert_eq!(m.get("etcd_server_is_leader"), 0.0);
    }

    let mut c = cluster.client(leader).await;
    for i in 0..40 {
        c.put(format!("k{i}"), "v", None).await.unwrap();
    }
    let _ = c
        .get(
            "k1",
            Some(etcd_client::GetOptions::new().with_revision(1000)),
        )
        .await;
    let after = Metrics::scrape(&endpoint, "/metrics");
    let rose = |name: &str| after.get(name) - before.get(name);
    assert!(rose("etcd_server_proposals_committed_total") >= 40.0);
    assert!(rose("etcd_server_proposals_applied_total") >= 40.0);
    assert!(rose("etcd_disk_wal_fsync_duration_seconds") >= 1.0);
    assert_eq!(after.get("etcd_debugging_mvcc_keys_total"), 40.0);
    // The database's size is measured once a second.
    let sized = || async {
        let m = Metrics::scrape(&endpoint, "/metrics");
        let total = m.get("etcd_mvcc_db_total_size_in_bytes");
        (total > 0.0).then(|| (total, m.get("etcd_mvcc_db_total_size_in_use_in_bytes")))
    };
    let (total, in_use) = wait_for(Duration::from_secs(30), "the db size", sized).await;
    assert!(in_use > 0.0 && in_use <= total);
    let put = [
        ("grpc_type", "unary"),
        ("grpc_service", "etcdserverpb.KV"),
        ("grpc_method", "Put"),
    ];
    assert!(after.value("grpc_server_started_total", &put).unwrap() >= 40.0);
    let ok = [put.as_slice(), &[("grpc_code", "OK")]].concat();
    assert!(after.value("grpc_server_handled_total", &ok).unwrap() >= 40.0);
    assert!(after.value("grpc_server_handling_seconds", &put).unwrap() >= 40.0);
    let future_rev = [("grpc_method", "Range"), ("grpc_code", "OutOfRange")];
    assert_eq!(
        after.value("grpc_server_handled_total", &future_rev),
        Some(1.0)
    );
    // The leader heard its followers answer.
    for &i in &followers {
        let to = format!("{:x}", cluster.status(i).await.unwrap().0);
        let rtt = after.value("etcd_network_peer_round_trip_time_seconds", &[("To", &to)]);
        assert!(rtt.is_some_and(|n| n > 0.0), "no round trips to {to}");
    }
}

#[tokio::test]
async fn the_metrics_port_serves_metrics_and_health() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let member = Member::start_with(&["--listen-metrics-urls", &url]);
    member.client().await.put("k", "v", None).await.unwrap();
    let m = Metrics::scrape(&url, "/metrics");
    assert_eq!(m.get("etcd_server_has_leader"), 1.0);
    // basic: no handling-time histogram.
    assert!(m.value("grpc_server_handling_seconds", &[]).is_none());
    assert_eq!(
        http_get(&url, "/health"),
        (200, r#"{"health":"true","reason":""}"#.to_string())
    );
    assert_eq!(http_get(&url, "/metrics?x=%zz").0, 200);
    assert_eq!(
        http_get(&url, "/nothing"),
        (404, "404 page not found\n".into())
    );
}
