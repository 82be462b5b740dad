//! Certificates the operator's code issues (`oxcd_operator::certs`), on real oxcd processes:
//! a 3-member cluster with mutual TLS on the client and peer ports serves the operator's
//! client certificate; renewed certificates and a CA rotated in two steps (a bundle of both
//! CAs, certificates from the new one, then the new CA alone) are files replaced on disk,
//! which the members pick up without restarting; a client of the dropped CA is refused.
//! Clients are Debian's etcdctl 3.4; served certificates are read with openssl.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use oxcd_operator::certs::{Authority, Issued, bundle, member_sans};
use oxcd_testkit::{Cluster, Member, binary, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);
const YEAR: Duration = Duration::from_secs(365 * 86_400);
const MONTH: Duration = Duration::from_secs(30 * 86_400);

/// Writes `contents` to `path` through a rename, as a Secret's projected files change.
fn replace(path: &Path, contents: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, contents).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// A member's files: certificate, key, trusted CAs.
struct Files {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Files {
    fn write(dir: &Path, name: &str, issued: &Issued, ca: &str) -> Files {
        let files = Files {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
            ca: dir.join(format!("{name}-ca.pem")),
        };
        files.renew(issued);
        replace(&files.ca, ca);
        files
    }

    fn renew(&self, issued: &Issued) {
        replace(&self.key, &issued.key_pem);
        replace(&self.cert, &issued.cert_pem);
    }
}

fn https_client(m: &Member) -> String {
    format!("https://127.0.0.1:{}", m.client_port)
}

/// etcdctl 3.4 against `endpoint` with `client`'s certificate, trusting `ca`.
fn etcdctl(endpoint: &str, client: &Files, ca: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--command-timeout", "5s"])
        .arg("--cacert")
        .arg(ca)
        .arg("--cert")
        .arg(&client.cert)
        .arg("--key")
        .arg(&client.key)
        .args(args)
        .output()
        .expect("etcdctl (Debian's etcd-client)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The certificate `endpoint` serves, PEM, as openssl reads it.
fn served_cert(endpoint: &str) -> String {
    let host = endpoint.trim_start_matches("https://");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {host} </dev/null 2>/dev/null | openssl x509 2>/dev/null"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until every member's client port serves the certificate `expected[i]`.
async fn serving(cluster: &Cluster, expected: &[Issued], step: &str) {
    for (m, issued) in cluster.members.iter().zip(expected) {
        let endpoint = https_client(m);
        let want = issued.cert_pem.trim().to_string();
        wait_for(
            CONVERGE,
            &format!("{} to serve its {step} certificate", m.name),
            || {
                let served = served_cert(&endpoint);
                let want = want.clone();
                async move { (served.trim() == want).then_some(()) }
            },
        )
        .await;
    }
}

/// A write through the first member read on every member, with `client` trusting `ca`.
async fn replicated(cluster: &Cluster, client: &Files, ca: &Path, key: &str) {
    let (ok, out) = etcdctl(
        &https_client(&cluster.members[0]),
        client,
        ca,
        &["put", key, "v"],
    );
    assert!(ok, "put {key}: {out}");
    for m in &cluster.members {
        let endpoint = https_client(m);
        wait_for(CONVERGE, &format!("{key} on {}", m.name), || {
            let (ok, out) = etcdctl(&endpoint, client, ca, &["get", key, "--consistency=s"]);
            async move { (ok && out.contains(key)).then_some(()) }
        })
        .await;
    }
}

/// A certificate from `ca` for every member of `cluster`.
fn issue_all(cluster: &Cluster, ca: &Authority) -> Vec<Issued> {
    cluster
        .members
        .iter()
        .map(|m| {
            ca.issue(&m.name, &member_sans("demo", "default", &m.name), MONTH)
                .unwrap()
        })
        .collect()
}

/// Waits until every member admits (`admitted`) or refuses `client`'s certificate.
async fn each_member(cluster: &Cluster, client: &Files, ca: &Path, admitted: bool, what: &str) {
    for m in &cluster.members {
        let endpoint = https_client(m);
        wait_for(CONVERGE, &format!("{} to {what}", m.name), || {
            let (ok, _) = etcdctl(&endpoint, client, ca, &["endpoint", "health"]);
            async move { (ok == admitted).then_some(()) }
        })
        .await;
    }
}

fn starts(m: &Member) -> usize {
    m.log().matches("serving client requests").count()
}

#[tokio::test]
async fn issued_certificates_renew_and_their_ca_rotates_without_restarting_a_member() {
    let old = Authority::new("demo", YEAR).unwrap();
    let mut cluster = Cluster::new(binary::oxcd().unwrap(), 3, &[]).unwrap();
    let dir = cluster.dir().to_path_buf();
    let https_peer = |m: &Member| format!("https://127.0.0.1:{}", m.peer_port);
    let initial_cluster = cluster
        .members
        .iter()
        .map(|m| format!("{}={}", m.name, https_peer(m)))
        .collect::<Vec<_>>()
        .join(",");
    let certs = issue_all(&cluster, &old);
    let mut files = Vec::new();
    for (m, issued) in cluster.members.iter_mut().zip(&certs) {
        let f = Files::write(&dir, &m.name, issued, &old.cert_pem);
        let (client, peer) = (https_client(m), https_peer(m));
        m.launch.initial_cluster = initial_cluster.clone();
        m.launch.extra_args = vec![
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--cert-file={}", f.cert.display()),
            format!("--key-file={}", f.key.display()),
            format!("--trusted-ca-file={}", f.ca.display()),
            "--client-cert-auth".into(),
            format!("--peer-cert-file={}", f.cert.display()),
            format!("--peer-key-file={}", f.key.display()),
            format!("--peer-trusted-ca-file={}", f.ca.display()),
            "--peer-client-cert-auth".into(),
        ];
        files.push(f);
    }
    cluster.spawn_all().unwrap();
    // The operator's own client certificate, from the same CA.
    let old_ca = dir.join("old-ca.pem");
    std::fs::write(&old_ca, &old.cert_pem).unwrap();
    let operator = Files::write(
        &dir,
        "operator",
        &old.issue("oxcd-operator", &[], MONTH).unwrap(),
        &old.cert_pem,
    );
    serving(&cluster, &certs, "first").await;
    replicated(&cluster, &operator, &old_ca, "before").await;

    // Renewal: new certificates from the same CA, files replaced in place.
    let renewed = issue_all(&cluster, &old);
    for (f, issued) in files.iter().zip(&renewed) {
        f.renew(issued);
    }
    serving(&cluster, &renewed, "renewed").await;
    replicated(&cluster, &operator, &old_ca, "renewed").await;

    // CA rotation, step 1: trust both CAs; a client of the new CA is admitted.
    let new = Authority::new("demo", YEAR).unwrap();
    let both = dir.join("both-ca.pem");
    std::fs::write(&both, bundle(&old.cert_pem, &new.cert_pem)).unwrap();
    let new_operator = Files::write(
        &dir,
        "operator-new",
        &new.issue("oxcd-operator", &[], MONTH).unwrap(),
        &new.cert_pem,
    );
    for f in &files {
        replace(&f.ca, &bundle(&old.cert_pem, &new.cert_pem));
    }
    each_member(
        &cluster,
        &new_operator,
        &old_ca,
        true,
        "admit the new CA's client",
    )
    .await;
    // Step 2: every member's certificate from the new CA.
    let rotated = issue_all(&cluster, &new);
    for (f, issued) in files.iter().zip(&rotated) {
        f.renew(issued);
    }
    serving(&cluster, &rotated, "new CA's").await;
    replicated(&cluster, &new_operator, &both, "rotated").await;
    // Step 3: the new CA alone. A client of the old CA is refused; the new one's is served.
    for f in &files {
        replace(&f.ca, &new.cert_pem);
    }
    let new_ca = dir.join("new-ca.pem");
    std::fs::write(&new_ca, &new.cert_pem).unwrap();
    each_member(
        &cluster,
        &operator,
        &new_ca,
        false,
        "refuse the old CA's client",
    )
    .await;
    replicated(&cluster, &new_operator, &new_ca, "after").await;
    let (ok, out) = etcdctl(
        &https_client(&cluster.members[2]),
        &new_operator,
        &new_ca,
        &["get", "before"],
    );
    assert!(ok && out.contains("before"), "{out}");
    for m in &mut cluster.members {
        assert!(m.is_running(), "{} stopped", m.name);
        assert_eq!(starts(m), 1, "{} restarted:\n{}", m.name, m.log());
    }
}

/// A client of `access` over `urls`, with the key `probe` read back.
async fn reads_through(access: &oxcd_operator::members::Access, urls: &[String]) -> bool {
    let Ok(mut c) = access.connect(urls, Duration::from_secs(5)).await else {
        return false;
    };
    c.get("probe", None).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_a_mutual_tls_cluster_through_renewal_and_a_ca_rotation() {
    use oxcd_operator::act::Workloads;
    use oxcd_operator::local::{self, Crashes, LocalWorkloads};
    use oxcd_operator::plan::Want;
    let old = Authority::new("demo", YEAR).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let w = LocalWorkloads::new(
        dir.path(),
        binary::oxcd().unwrap(),
        Box::new(oxcd_testkit::free_port),
    )
    .with_tls(old.clone())
    .unwrap();
    let want = Want::new(3, "v1", "c1");
    let drive = |step: &'static str| {
        let w = &w;
        let want = &want;
        async move {
            let timeout = Duration::from_secs(180);
            local::drive(w, "demo", "default-demo-tls", want, Crashes::Never, timeout)
                .await
                .unwrap_or_else(|last| panic!("{step}: not in sync: {last:?}\n{}", w.logs()));
        }
    };
    // Created through learners, every call of the operator's over mutual TLS.
    drive("create").await;
    let urls = w.client_urls();
    assert_eq!(urls.len(), 3);
    assert!(urls.iter().all(|u| u.starts_with("https://")), "{urls:?}");
    let before = w.access();
    let mut c = before.connect(&urls, Duration::from_secs(5)).await.unwrap();
    c.put("probe", "v", None).await.unwrap();
    assert_eq!(c.member_list().await.unwrap().members().len(), 3);
    // Without a client certificate, refused.
    let anonymous = oxcd_operator::members::Access::tls(oxcd_operator::members::ClientTls {
        ca_pem: old.cert_pem.clone(),
        cert_pem: String::new(),
        key_pem: String::new(),
    });
    assert!(!reads_through(&anonymous, &urls).await);

    // The backup and defrag commands, as the CronJobs run them, with etcdctl's TLS flags.
    let client = old.issue("backup-job", &[], MONTH).unwrap();
    let files = Files::write(dir.path(), "job", &client, &old.cert_pem);
    let tls_flags = |files: &Files| {
        vec![
            format!("--cacert={}", files.ca.display()),
            format!("--cert={}", files.cert.display()),
            format!("--key={}", files.key.display()),
        ]
    };
    let store = format!("file://{}", dir.path().join("backups").display());
    std::fs::create_dir_all(dir.path().join("backups")).unwrap();
    for args in [
        vec![
            "backup".to_string(),
            format!("--endpoints={}", urls[0]),
            format!("--to={store}"),
        ],
        vec![
            "defrag".to_string(),
            "--cluster".into(),
            format!("--endpoints={}", urls[1]),
        ],
    ] {
        // A member promoted just now may not have its client URL in every member's list yet.
        let out = wait_for(CONVERGE, &format!("{args:?} to succeed"), || {
            let out = Command::new(env!("CARGO_BIN_EXE_oxcd-operator"))
                .args(["--log-format", "text"])
                .args(&args)
                .args(tls_flags(&files))
                .output()
                .unwrap();
            if !out.status.success() {
                eprintln!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            async move { out.status.success().then_some(out) }
        })
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        if args[0] == "defrag" {
            assert_eq!(
                report["defragmented"].as_array().unwrap().len(),
                3,
                "{report}"
            );
        } else {
            assert!(report["revision"].as_i64().unwrap() > 1, "{report}");
        }
    }

    // Renewal: new certificates from the same CA, files replaced under running members.
    w.reissue_certificates(old.clone(), &old.cert_pem).unwrap();
    drive("renewal").await;
    // The CA rotation: trust both, then certificates from the new CA, then the new CA alone.
    let new = Authority::new("demo", YEAR).unwrap();
    let both = bundle(&old.cert_pem, &new.cert_pem);
    w.reissue_certificates(old.clone(), &both).unwrap();
    drive("bundle").await;
    w.reissue_certificates(new.clone(), &both).unwrap();
    drive("re-issue").await;
    let new_ca = dir.path().join("new-ca.pem");
    std::fs::write(&new_ca, &new.cert_pem).unwrap();
    for url in &urls {
        let served = dir.path().join("served.pem");
        let what = format!("{url} to serve a certificate of the new CA");
        wait_for(CONVERGE, &what, || {
            std::fs::write(&served, served_cert(url)).unwrap();
            let verified = Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(&new_ca)
                .arg(&served)
                .output()
                .is_ok_and(|o| o.status.success());
            async move { verified.then_some(()) }
        })
        .await;
    }
    w.reissue_certificates(new.clone(), &new.cert_pem).unwrap();
    drive("drop the old CA").await;
    assert!(
        reads_through(&w.access(), &urls).await,
        "the operator's new identity"
    );
    // The operator's identity from the old CA is refused once the old CA is dropped.
    wait_for(CONVERGE, "the old CA's client to be refused", || {
        let before = before.clone();
        let urls = urls.clone();
        async move { (!reads_through(&before, &urls).await).then_some(()) }
    })
    .await;
    // No member restarted.
    for name in ["demo-0", "demo-1", "demo-2"] {
        let log = std::fs::read_to_string(dir.path().join("volumes").join(name).join("member.log"))
            .unwrap();
        assert_eq!(
            log.matches("serving client requests").count(),
            1,
            "{name}:\n{log}"
        );
    }
    assert_eq!(w.client_urls(), urls);
}
