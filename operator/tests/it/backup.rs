//! Backups into a real local S3 server (moto's, from PyPI): `oxcd-operator backup` on a
//! schedule every two seconds writes objects with the expected names, sizes and sha256s,
//! which etcd 3.4's `etcdctl snapshot status` reads; retention keeps the newest two; a
//! corrupt object is caught by `verify-backup`; a one-off backup skips a dead endpoint.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use oxcd_testkit::{Member, free_port, wait_for};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(60);

/// A moto S3 server on a free port, killed when dropped.
struct LocalS3 {
    child: Child,
    url: String,
}

impl LocalS3 {
    /// A server on a free port, with an empty `bucket`.
    async fn start(bucket: &str) -> LocalS3 {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]')");
        let s3 = LocalS3 {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let url = s3.url.clone();
        wait_for(CONVERGE, "the local S3 server", || {
            let (status, _) = curl(&[&url]);
            async move { (status == 200).then_some(()) }
        })
        .await;
        assert_eq!(curl(&["-X", "PUT", &format!("{}/{bucket}", s3.url)]).0, 200);
        s3
    }

    /// The keys under `prefix` in `bucket` with their sizes.
    fn list(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let (_, body) = curl(&[&format!(
            "{}/{bucket}?list-type=2&prefix={prefix}",
            self.url
        )]);
        body.split("<Contents>")
            .skip(1)
            .map(|c| {
                let field = |name: &str| {
                    c.split(&format!("<{name}>"))
                        .nth(1)
                        .unwrap()
                        .split('<')
                        .next()
                        .unwrap()
                        .to_string()
                };
                (field("Key"), field("Size").parse().unwrap())
            })
            .collect()
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -s <args>`: the status and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap_or(0), body.to_string())
}

fn operator(args: &[&str], s3: &LocalS3) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_oxcd-operator"));
    command
        .args(["--log-format", "text"])
        .args(args)
        .args(["--s3-endpoint", &s3.url, "--s3-region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    command
}

/// A key as read: key, value, create and mod revision, version.
type KeyAt = (Vec<u8>, Vec<u8>, i64, i64, i64);

/// Runs an `oxcd-operator` command that must succeed; the JSON record it prints.
fn run_ok(args: &[&str], s3: &LocalS3) -> Value {
    let out = operator(args, s3).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn scheduled_backups_land_in_s3_verified_and_kept_by_retention() {
    let s3 = LocalS3::start("backups").await;
    let member = Member::start();
    let mut client = member.client().await;
    for i in 0..300 {
        client
            .put(format!("k{i:03}"), vec![b'v'; 256], None)
            .await
            .unwrap();
    }
    // The first endpoint is dead: the backup comes from the next healthy one.
    let endpoints = format!("http://127.0.0.1:{},{}", free_port(), member.endpoint());

    let mut scheduled = operator(
        &[
            "backup",
            "--endpoints",
            &endpoints,
            "--to",
            "s3://backups/team/c1",
            "--schedule",
            "*/2 * * * * *",
            "--keep",
            "2",
        ],
        &s3,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(scheduled.stdout.take().unwrap()).lines();
    let records: Vec<Value> = tokio::task::spawn_blocking(move || {
        (0..3)
            .map(|_| serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap())
            .collect()
    })
    .await
    .unwrap();
    // A record is printed once its backup's retention has run.
    scheduled.kill().unwrap();
    scheduled.wait().unwrap();

    for r in &records {
        let name = r["name"].as_str().unwrap();
        assert!(
            name.starts_with("snapshot-") && name.ends_with("Z.db"),
            "{r}"
        );
        assert_eq!(r["location"], format!("s3://backups/team/c1/{name}"));
        assert_eq!(r["endpoint"], member.endpoint());
        assert!(r["revision"].as_i64().unwrap() >= 301, "{r}");
    }
    let listed = s3.list("backups", "team/c1/");
    let kept: Vec<&Value> = records[1..].iter().collect();
    let mut expected: Vec<String> = kept
        .iter()
        .flat_map(|r| {
            let name = r["name"].as_str().unwrap();
            [format!("team/c1/{name}"), format!("team/c1/{name}.json")]
        })
        .collect();
    expected.sort();
    // Of the three backups printed (a fourth may have begun before the kill).
    let printed: Vec<String> = records
        .iter()
        .map(|r| format!("team/c1/{}", r["name"].as_str().unwrap()))
        .collect();
    let mut names: Vec<String> = listed
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| printed.iter().any(|p| k.starts_with(p.as_str())))
        .collect();
    names.sort();
    assert_eq!(
        names, expected,
        "the oldest was deleted, the newest two kept"
    );

    let dir = tempfile::tempdir().unwrap();
    for r in &kept {
        let name = r["name"].as_str().unwrap();
        let file = dir.path().join(name);
        let status = Command::new("curl")
            .args(["-s", "-o"])
            .arg(&file)
            .arg(format!("{}/backups/team/c1/{name}", s3.url))
            .status()
            .unwrap();
        assert!(status.success());
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(bytes.len() as u64, r["size"].as_u64().unwrap());
        assert_eq!(sha256_hex(&bytes), r["sha256"].as_str().unwrap());
        // etcd's own tool reads it as an etcd snapshot with every key.
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "-w", "json"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status["revision"], r["revision"], "{status}");
        assert!(status["totalKey"].as_u64().unwrap() >= 300, "{status}");
    }

    // A backup altered in the store is caught; an intact one verifies.
    let [intact, altered] = [kept[0], kept[1]].map(|r| r["name"].as_str().unwrap().to_string());
    let mut bytes = std::fs::read(dir.path().join(&altered)).unwrap();
    bytes[4096] ^= 0xff;
    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, &bytes).unwrap();
    // A raw body: curl's default form type makes the server parse it as a form.
    let put = curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", corrupt.display()),
        &format!("{}/backups/team/c1/{altered}", s3.url),
    ]);
    assert_eq!(put.0, 200, "{put:?}");
    let verify = |name: &str| {
        operator(
            &[
                "verify-backup",
                "--from",
                "s3://backups/team/c1",
                "--name",
                name,
            ],
            &s3,
        )
        .output()
        .unwrap()
    };
    let out = verify(&altered);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("corrupt") || stderr.contains("trailer"),
        "{stderr}"
    );
    let out = verify(&intact);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A one-off backup, as a CronJob runs it, into another prefix.
    let once = run_ok(
        &[
            "backup",
            "--endpoints",
            &member.endpoint(),
            "--to",
            "s3://backups/once",
        ],
        &s3,
    );
    let listed = s3.list("backups", "once/");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .any(|(k, size)| k.ends_with(".db") && *size == once["size"].as_u64().unwrap())
    );
}

#[tokio::test]
async fn a_three_member_cluster_restored_from_the_latest_backup_serves_every_key_with_its_revision()
{
    use etcd_client::GetOptions;
    use oxcd_testkit::Cluster;
    use oxcd_testkit::cluster::CLUSTER_TOKEN;
    let s3 = LocalS3::start("restores").await;
    let (member, original) = member_with_keys(200, 120, "k007").await;
    let all = GetOptions::new().with_prefix();
    let original_cluster = original.header().unwrap().cluster_id();
    for _ in 0..2 {
        run_ok(
            &[
                "backup",
                "--endpoints",
                &member.endpoint(),
                "--to",
                "s3://restores/demo",
            ],
            &s3,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latest.db");
    let fetched = run_ok(
        &[
            "fetch-backup",
            "--from",
            "s3://restores/demo",
            "--out",
            file.to_str().unwrap(),
        ],
        &s3,
    );
    assert_eq!(
        fetched["revision"].as_i64(),
        Some(original.header().unwrap().revision())
    );

    // Every member restored from the file, as an init step would, then started.
    let mut cluster = Cluster::new(oxcd_testkit::binary::oxcd().unwrap(), 3, &[]).unwrap();
    for m in &cluster.members {
        let out = Command::new(oxcd_testkit::binary::oxcd().unwrap())
            .args(["snapshot", "restore"])
            .arg(&file)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args([
                "--name",
                &m.name,
                "--initial-cluster",
                &m.launch.initial_cluster,
            ])
            .args(["--initial-cluster-token", CLUSTER_TOKEN])
            .args(["--initial-advertise-peer-urls", &m.peer_url()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    cluster.spawn_all().unwrap();
    cluster.leader().await;
    for i in 0..3 {
        let mut c = cluster.client(i).await;
        let restored = c.get("k", Some(all.clone())).await.unwrap();
        assert_eq!(kvs_of(&restored), kvs_of(&original), "member {i}");
        assert_ne!(restored.header().unwrap().cluster_id(), original_cluster);
        assert_eq!(c.member_list().await.unwrap().members().len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_created_from_a_backup_by_the_operator_serves_every_key_with_its_revision() {
    use etcd_client::{Client, GetOptions};
    use oxcd_operator::act::Restore;
    use oxcd_operator::plan::Want;
    let s3 = LocalS3::start("seeds").await;
    let (member, original) = member_with_keys(300, 150, "k042").await;
    let all = GetOptions::new().with_prefix();
    let taken = run_ok(
        &[
            "backup",
            "--endpoints",
            &member.endpoint(),
            "--to",
            "s3://seeds/demo",
        ],
        &s3,
    );
    drop(member);

    // The store's flags as the controller builds them from spec.bootstrap.fromBackup; the
    // credentials, which a Secret gives a pod, as store options.
    let restore = Restore {
        args: vec![
            "--from=s3://seeds/demo".into(),
            "--name=latest".into(),
            format!("--s3-endpoint={}", s3.url),
            "--s3-region=us-east-1".into(),
            "--store-option=aws_access_key_id=test".into(),
            "--store-option=aws_secret_access_key=test".into(),
        ],
        credentials_secret: None,
        volume_claim_name: None,
    };
    let mut want = Want::new(3, "v1", "c1");
    want.bootstrap_from = Some(restore);
    let dir = tempfile::tempdir().unwrap();
    let w = restoring_workloads(dir.path());
    drive_to(&w, "default-demo-seeded", &want).await;

    let urls = w.client_urls();
    assert_eq!(urls.len(), 3);
    each_member_holds(&urls, &original, None).await;
    let mut c = Client::connect(urls.clone(), None).await.unwrap();
    let got = c.get("k", Some(all)).await.unwrap();
    assert_eq!(kvs_of(&got), kvs_of(&original));
    assert!(got.header().unwrap().revision() >= taken["revision"].as_i64().unwrap());
    assert_ne!(
        got.header().unwrap().cluster_id(),
        original.header().unwrap().cluster_id(),
        "a new cluster"
    );
    assert_eq!(c.member_list().await.unwrap().members().len(), 3);
    c.put("after", "restore", None).await.expect("writes work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_place_restore_replaces_every_members_data_and_reports_both_cluster_ids() {
    use etcd_client::{Client, GetOptions};
    use oxcd_operator::crd::RestorePhase;
    use oxcd_operator::plan::Want;
    let s3 = LocalS3::start("inplace").await;
    let dir = tempfile::tempdir().unwrap();
    let w = restoring_workloads(dir.path());
    let token = "default-demo-inplace";
    let mut want = Want::new(3, "v1", "c1");
    drive_to(&w, token, &want).await;
    let old_id = w.status.lock().unwrap().cluster_id.clone().unwrap();
    let mut client = Client::connect(w.client_urls(), None).await.unwrap();
    for i in 0..120 {
        client
            .put(format!("k{:03}", i % 80), format!("v{i}"), None)
            .await
            .unwrap();
    }
    let all = GetOptions::new().with_prefix();
    let backed_up = client.get("k", Some(all.clone())).await.unwrap();
    let endpoints = w.client_urls().join(",");
    let taken = run_ok(
        &[
            "backup",
            "--endpoints",
            &endpoints,
            "--to",
            "s3://inplace/demo",
        ],
        &s3,
    );
    // Written after the backup: gone with the restore.
    client.put("k000", "later", None).await.unwrap();
    client.put("later", "x", None).await.unwrap();
    drop(client);

    want.restore = Some("demo-restore".into());
    want.bootstrap_from = Some(oxcd_operator::act::Restore {
        args: vec![
            "--from=s3://inplace/demo".into(),
            "--name=latest".into(),
            format!("--s3-endpoint={}", s3.url),
            "--s3-region=us-east-1".into(),
            "--store-option=aws_access_key_id=test".into(),
            "--store-option=aws_secret_access_key=test".into(),
        ],
        credentials_secret: None,
        volume_claim_name: None,
    });
    let events = drive_to(&w, token, &want).await;
    let reasons: Vec<&str> = events.iter().map(|t| t.reason).collect();
    assert_eq!(reasons.first(), Some(&"RestoreStarted"), "{events:#?}");
    assert_eq!(reasons.last(), Some(&"Restored"), "{events:#?}");

    let status = w.status.lock().unwrap().clone();
    let progress = status.restore.clone().expect("the restore is reported");
    assert_eq!(progress.phase, RestorePhase::Completed);
    assert_eq!(progress.old_cluster_id.as_deref(), Some(old_id.as_str()));
    let new_id = progress.new_cluster_id.clone().expect("the new cluster id");
    assert_ne!(new_id, old_id);
    assert_eq!(status.cluster_id.as_deref(), Some(new_id.as_str()));
    assert!(progress.revision.unwrap() >= taken["revision"].as_i64().unwrap());
    let names: Vec<&str> = status.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["demo-3", "demo-4", "demo-5"],
        "new members, names not reused"
    );
    // The old members' volumes are gone with their data.
    for old in ["demo-0", "demo-1", "demo-2"] {
        assert!(!dir.path().join("volumes").join(old).exists(), "{old}");
    }

    let urls = w.client_urls();
    assert_eq!(urls.len(), 3);
    each_member_holds(&urls, &backed_up, Some(&new_id)).await;
    let mut c = Client::connect(urls, None).await.unwrap();
    assert_eq!(c.get("later", None).await.unwrap().count(), 0);
    c.put("after", "restore", None).await.expect("writes work");
}

fn kvs_of(r: &etcd_client::GetResponse) -> Vec<KeyAt> {
    r.kvs()
        .iter()
        .map(|kv| {
            let key = kv.key().to_vec();
            let value = kv.value().to_vec();
            (
                key,
                value,
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_member_lost_the_cluster_comes_back_from_its_latest_backup() {
    use etcd_client::{Client, GetOptions};
    use oxcd_operator::act::Workloads;
    use oxcd_operator::plan::Want;
    let dir = tempfile::tempdir().unwrap();
    let w = restoring_workloads(dir.path());
    let token = "default-demo-lost";
    let mut want = Want::new(3, "v1", "c1");
    drive_to(&w, token, &want).await;
    let old_id = w.status.lock().unwrap().cluster_id.clone().unwrap();
    let mut client = Client::connect(w.client_urls(), None).await.unwrap();
    for i in 0..50 {
        client.put(format!("k{i:02}"), "v", None).await.unwrap();
    }
    let all = GetOptions::new().with_prefix();
    let backed_up = client.get("k", Some(all.clone())).await.unwrap();
    drop(client);
    // Backups in a directory store, as spec.backup's `to: file:///...` keeps them.
    let store = dir.path().join("backups");
    std::fs::create_dir_all(&store).unwrap();
    let to = format!("file://{}", store.display());
    let out = Command::new(env!("CARGO_BIN_EXE_oxcd-operator"))
        .args(["--log-format", "text", "backup"])
        .arg(format!("--endpoints={}", w.client_urls().join(",")))
        .arg(format!("--to={to}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every member and every volume gone.
    for member in ["demo-0", "demo-1", "demo-2"] {
        w.kill_pod(member);
        w.delete_volume(member).await.unwrap();
    }
    want.recovery.automatic = true;
    want.recovery.after = k8s_openapi::jiff::SignedDuration::from_secs(1);
    want.recovery.backup = Some(oxcd_operator::act::Restore {
        args: vec![format!("--from={to}"), "--name=latest".into()],
        credentials_secret: None,
        volume_claim_name: None,
    });
    let events = drive_to(&w, token, &want).await;
    let reasons: Vec<&str> = events.iter().map(|t| t.reason).collect();
    assert_eq!(reasons.first(), Some(&"RestoreStarted"), "{events:#?}");
    assert!(reasons.contains(&"Restored"), "{events:#?}");
    let status = w.status.lock().unwrap().clone();
    let progress = status.restore.expect("reported");
    assert!(
        progress.name.starts_with("quorum-loss-"),
        "{}",
        progress.name
    );
    assert_eq!(progress.old_cluster_id.as_deref(), Some(old_id.as_str()));
    assert_ne!(status.cluster_id.as_deref(), Some(old_id.as_str()));
    let urls = w.client_urls();
    assert_eq!(urls.len(), 3);
    let mut c = Client::connect(urls, None).await.unwrap();
    let got = c.get("k", Some(all)).await.unwrap();
    assert_eq!(kvs_of(&got), kvs_of(&backed_up));
    assert_eq!(c.member_list().await.unwrap().members().len(), 3);
}

/// Members as local processes under `dir`, whose seed can be restored from a backup (the
/// operator binary runs the restore step).
fn restoring_workloads(dir: &std::path::Path) -> oxcd_operator::local::LocalWorkloads {
    let oxcd = oxcd_testkit::binary::oxcd().unwrap();
    oxcd_operator::local::LocalWorkloads::new(dir, oxcd, Box::new(free_port))
        .with_operator(env!("CARGO_BIN_EXE_oxcd-operator").into())
}

/// Reconcile passes until the members are as `want` says; the transitions.
async fn drive_to(
    w: &oxcd_operator::local::LocalWorkloads,
    token: &str,
    want: &oxcd_operator::plan::Want,
) -> Vec<oxcd_operator::act::Transition> {
    use oxcd_operator::local::{self, Crashes};
    let timeout = Duration::from_secs(180);
    local::drive(w, "demo", token, want, Crashes::Never, timeout)
        .await
        .unwrap_or_else(|last| panic!("not in sync with {want:?}: {last:?}\n{}", w.logs()))
}

/// A single member holding `puts` writes over `keys` keys `k000..` (so most have several
/// versions) and one of them deleted: the member, and every `k` key as read.
async fn member_with_keys(
    puts: usize,
    keys: usize,
    deleted: &str,
) -> (Member, etcd_client::GetResponse) {
    let member = Member::start();
    let mut client = member.client().await;
    for i in 0..puts {
        client
            .put(format!("k{:03}", i % keys), format!("v{i}"), None)
            .await
            .unwrap();
    }
    client.delete(deleted, None).await.unwrap();
    let all = etcd_client::GetOptions::new().with_prefix();
    let keys = client.get("k", Some(all)).await.unwrap();
    (member, keys)
}

/// Waits until each member's own copy (serializable reads, once it has caught up) holds
/// exactly the `k` keys of `expected`, under the cluster id `cluster_id` if given (hex).
async fn each_member_holds(
    urls: &[String],
    expected: &etcd_client::GetResponse,
    cluster_id: Option<&str>,
) {
    let local = etcd_client::GetOptions::new()
        .with_prefix()
        .with_serializable();
    for url in urls {
        let what = format!("{url} to hold the backup's keys");
        wait_for(CONVERGE, &what, || async {
            let mut c = etcd_client::Client::connect([url.as_str()], None)
                .await
                .ok()?;
            let got = c.get("k", Some(local.clone())).await.ok()?;
            let id = format!("{:x}", got.header()?.cluster_id());
            let same_cluster = cluster_id.is_none_or(|want| want == id);
            (kvs_of(&got) == kvs_of(expected) && same_cluster).then_some(())
        })
        .await;
    }
}
