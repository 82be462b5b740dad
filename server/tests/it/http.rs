//! The client port's HTTP endpoints: health, liveness, readiness and version, as etcd 3.5
//! answers them.

use std::time::Duration;

use oxcd_testkit::{Cluster, Member, wait_for};

use crate::calls::{http_get, http_request};

#[tokio::test]
async fn a_healthy_member_answers_every_health_endpoint_as_etcd_does() {
    let member = Member::start();
    member.client().await;
    let endpoint = member.endpoint();

    let health = http_request(&endpoint, "GET", "/health");
    assert_eq!(health.status, 200);
    assert_eq!(health.body, r#"{"health":"true","reason":""}"#);
    assert_eq!(
        http_get(&endpoint, "/health?serializable=true"),
        (200, r#"{"health":"true","reason":""}"#.to_string())
    );

    assert_eq!(http_get(&endpoint, "/livez"), (200, "ok\n".to_string()));
    assert_eq!(
        http_get(&endpoint, "/livez?verbose"),
        (200, "[+]serializable_read ok\nok\n".to_string())
    );
    let readyz = http_request(&endpoint, "GET", "/readyz?verbose");
    assert_eq!(readyz.status, 200);
    assert_eq!(readyz.header("x-content-type-options"), Some("nosniff"));
    let mut lines: Vec<&str> = readyz.body.lines().collect();
    assert_eq!(lines.pop(), Some("ok"));
    lines.sort();
    assert_eq!(
        lines,
        [
            "[+]data_corruption ok",
            "[+]disk_space ok",
            "[+]linearizable_read ok",
            "[+]non_learner ok",
            "[+]serializable_read ok"
        ]
    );
    assert_eq!(
        http_get(
            &endpoint,
            "/readyz?verbose&exclude=linearizable_read&exclude=non_learner&exclude=disk_space"
        )
        .1,
        "[+]data_corruption ok\n[+]serializable_read ok\nok\n"
    );
    assert_eq!(
        http_get(&endpoint, "/readyz/linearizable_read?verbose"),
        (200, "[+]linearizable_read ok\nok\n".to_string())
    );
    assert_eq!(
        http_get(&endpoint, "/readyz/no_such_check"),
        (404, "404 page not found\n".to_string())
    );

    let version = http_request(&endpoint, "GET", "/version");
    assert_eq!(version.status, 200);
    assert_eq!(version.header("content-type"), Some("application/json"));
    let version: serde_json::Value = serde_json::from_str(&version.body).unwrap();
    assert_eq!(
        version,
        serde_json::json!({"etcdserver": "3.5.0", "etcdcluster": "3.5.0"})
    );

    for path in ["/health", "/livez", "/readyz", "/version"] {
        let refused = http_request(&endpoint, "POST", path);
        assert_eq!(refused.status, 405, "{path}");
        assert_eq!(refused.header("allow"), Some("GET"), "{path}");
        assert_eq!(refused.body, "Method Not Allowed\n", "{path}");
    }
}

#[tokio::test]
async fn health_turns_false_when_the_member_loses_its_leader() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let survivor = (leader + 1) % 3;
    let endpoint = cluster.members[survivor].endpoint();
    assert_eq!(http_get(&endpoint, "/health").0, 200);
    for i in (0..3).filter(|i| *i != survivor) {
        cluster.members[i].kill9();
    }

    // Until its election timeout the survivor still follows the dead leader, and a check
    // then fails on the read instead ("RANGE ERROR: ... request timed out").
    let no_leader = wait_for(
        Duration::from_secs(60),
        "/health to report no leader",
        || {
            let endpoint = endpoint.clone();
            async move {
                let health =
                    tokio::task::spawn_blocking(move || http_request(&endpoint, "GET", "/health"))
                        .await
                        .unwrap();
                (health.status == 503 && health.body.contains("RAFT NO LEADER")).then_some(health)
            }
        },
    )
    .await;
    assert_eq!(
        no_leader.body,
        "{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}\n"
    );
    assert_eq!(no_leader.header("x-content-type-options"), Some("nosniff"));
    // The member itself still serves: its own reads, and so its liveness.
    assert_eq!(
        http_get(&endpoint, "/health?serializable=true"),
        (200, r#"{"health":"true","reason":""}"#.to_string())
    );
    assert_eq!(http_get(&endpoint, "/livez"), (200, "ok\n".to_string()));
    let readyz = http_request(&endpoint, "GET", "/readyz?exclude=linearizable_read");
    assert_eq!(readyz.status, 200, "{}", readyz.body);
}
