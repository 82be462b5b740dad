//! Auth against real members: users, roles and permissions as etcd decides them, tokens
//! (simple with its TTL, JWT), and auth state that survives kill -9, restart and snapshot
//! restore. Every refusal is checked for etcd's exact gRPC code and message.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, Permission, Txn, TxnOp, WatchOptions,
};
use oxcd::proto::etcdserverpb as pb;
use oxcd_testkit::{Cluster, Member};
use tonic::Code;

use crate::calls::{status, text};

const DENIED: (Code, &str) = (Code::PermissionDenied, "etcdserver: permission denied");
const BAD_TOKEN: (Code, &str) = (Code::Unauthenticated, "etcdserver: invalid auth token");
const AUTH_FAILED: (Code, &str) = (
    Code::InvalidArgument,
    "etcdserver: authentication failed, invalid user ID or password",
);

fn refused<T>(r: Result<T, etcd_client::Error>) -> (Code, String) {
    match r {
        Ok(_) => panic!("the call should be refused"),
        Err(e) => status(e),
    }
}

fn is(got: (Code, String), want: (Code, &str)) {
    assert_eq!((got.0, got.1.as_str()), want);
}

async fn login(endpoint: &str, user: &str, password: &str) -> Result<Client, etcd_client::Error> {
    let opts = ConnectOptions::new().with_user(user, password);
    Client::connect([endpoint], Some(opts)).await
}

/// root (password "rootpw") with the root role, and `reader` (password "readpw") with role
/// `prefix-reader`: READ on the prefix /a/.
async fn add_users(c: &mut Client) {
    c.user_add("root", "rootpw", None).await.unwrap();
    c.user_grant_role("root", "root").await.unwrap();
    c.user_add("reader", "readpw", None).await.unwrap();
    c.role_add("prefix-reader").await.unwrap();
    c.role_grant_permission("prefix-reader", Permission::read("/a/").with_prefix())
        .await
        .unwrap();
    c.user_grant_role("reader", "prefix-reader").await.unwrap();
}

/// A member with the users of [`add_users`], the key /a/x = 1, and auth on.
async fn member_with_auth() -> Member {
    let m = Member::start();
    let mut c = m.client().await;
    add_users(&mut c).await;
    c.put("/a/x", "1", None).await.unwrap();
    c.auth_enable().await.unwrap();
    m
}

#[tokio::test]
async fn enabling_auth_needs_a_root_user_with_the_root_role() {
    let m = Member::start();
    let mut c = m.client().await;
    is(
        refused(c.auth_enable().await),
        (
            Code::FailedPrecondition,
            "etcdserver: root user does not exist",
        ),
    );
    c.user_add("root", "pw", None).await.unwrap();
    is(
        refused(c.auth_enable().await),
        (
            Code::FailedPrecondition,
            "etcdserver: root user does not have root role",
        ),
    );
    c.user_grant_role("root", "root").await.unwrap();
    c.auth_enable().await.unwrap();
    // Now the anonymous client is no one.
    is(
        refused(c.put("k", "v", None).await),
        (Code::InvalidArgument, "etcdserver: user name is empty"),
    );
    is(
        refused(c.get("k", None).await),
        (Code::InvalidArgument, "etcdserver: user name is empty"),
    );
    is(
        refused(login(&m.endpoint(), "root", "wrong").await),
        AUTH_FAILED,
    );
    is(
        refused(login(&m.endpoint(), "nobody", "pw").await),
        AUTH_FAILED,
    );
    let mut root = login(&m.endpoint(), "root", "pw").await.unwrap();
    is(
        refused(root.user_revoke_role("root", "root").await),
        (Code::InvalidArgument, "etcdserver: invalid auth management"),
    );
    is(
        refused(root.user_add("", "x", None).await),
        (Code::InvalidArgument, "etcdserver: user name is empty"),
    );
    is(
        refused(root.user_add("root", "x", None).await),
        (
            Code::FailedPrecondition,
            "etcdserver: user name already exists",
        ),
    );
    root.put("k", "v", None).await.unwrap();
    root.auth_disable().await.unwrap();
    c.put("k", "anyone", None).await.unwrap();
}

#[tokio::test]
async fn a_prefix_reader_reads_its_prefix_only_and_writes_nothing() {
    let m = Member::start();
    let mut c = m.client().await;
    add_users(&mut c).await;
    c.put("/a/x", "1", None).await.unwrap();
    c.put("/b", "2", None).await.unwrap();
    c.auth_enable().await.unwrap();
    let mut reader = login(&m.endpoint(), "reader", "readpw").await.unwrap();
    let got = reader.get("/a/x", None).await.unwrap();
    assert_eq!(text(got.kvs()[0].value()), "1");
    let prefix = reader
        .get("/a/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(prefix.kvs().len(), 1);
    is(refused(reader.put("/a/x", "no", None).await), DENIED);
    is(refused(reader.delete("/a/x", None).await), DENIED);
    is(refused(reader.get("/b", None).await), DENIED);
    is(
        refused(reader.get("/", Some(GetOptions::new().with_prefix())).await),
        DENIED,
    );
    // Admin-only services.
    is(
        refused(reader.member_add(["http://127.0.0.1:1"], None).await),
        DENIED,
    );
    is(refused(reader.hash_kv(0).await), DENIED);
    is(refused(reader.defragment().await), DENIED);
    is(refused(reader.user_list().await), DENIED);
    // A user sees its own roles, and roles it has.
    assert_eq!(
        reader.user_get("reader").await.unwrap().roles(),
        ["prefix-reader"]
    );
    assert!(reader.role_get("prefix-reader").await.is_ok());
    is(refused(reader.user_get("root").await), DENIED);
    let mut root = login(&m.endpoint(), "root", "rootpw").await.unwrap();
    let got = root.get("/a/x", None).await.unwrap();
    assert_eq!(text(got.kvs()[0].value()), "1");
}

#[tokio::test]
async fn a_txn_touching_a_forbidden_key_in_any_branch_fails_whole() {
    let m = Member::start();
    let mut c = m.client().await;
    add_users(&mut c).await;
    c.role_add("writer").await.unwrap();
    c.role_grant_permission("writer", Permission::read_write("/a/").with_prefix())
        .await
        .unwrap();
    c.user_grant_role("reader", "writer").await.unwrap();
    c.auth_enable().await.unwrap();
    let mut user = login(&m.endpoint(), "reader", "readpw").await.unwrap();
    let put_ok = || TxnOp::put("/a/ok", "1", None);
    let txns = [
        // The compare reads a forbidden key.
        Txn::new()
            .when([Compare::version("/b", CompareOp::Equal, 0)])
            .and_then([put_ok()]),
        // The branch taken is allowed, the other is not.
        Txn::new()
            .when([Compare::version("/a/ok", CompareOp::Equal, 0)])
            .and_then([put_ok()])
            .or_else([TxnOp::put("/b", "x", None)]),
        // The forbidden op is in the branch taken.
        Txn::new().and_then([put_ok(), TxnOp::delete("/b", None)]),
        // Nested.
        Txn::new().and_then([
            put_ok(),
            TxnOp::txn(Txn::new().or_else([TxnOp::get("/c", None)])),
        ]),
    ];
    for t in txns {
        is(refused(user.txn(t).await), DENIED);
    }
    assert_eq!(user.get("/a/ok", None).await.unwrap().count(), 0);
    user.txn(Txn::new().and_then([put_ok()])).await.unwrap();
    assert_eq!(user.get("/a/ok", None).await.unwrap().count(), 1);
}

#[tokio::test]
async fn a_watch_on_a_forbidden_range_is_refused() {
    let m = Member::start();
    let mut c = m.client().await;
    add_users(&mut c).await;
    c.auth_enable().await.unwrap();
    let mut reader = login(&m.endpoint(), "reader", "readpw").await.unwrap();
    let mut refused_stream = reader.watch("/b", None).await.unwrap();
    let first = refused_stream.message().await.unwrap().unwrap();
    assert!(first.created() && first.canceled(), "{first:?}");
    assert_eq!(
        first.cancel_reason(),
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    );
    let mut allowed = reader
        .watch("/a/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    let created = allowed.message().await.unwrap().unwrap();
    assert!(created.created() && !created.canceled());
    let mut root = login(&m.endpoint(), "root", "rootpw").await.unwrap();
    root.put("/a/new", "v", None).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), allowed.message())
        .await
        .expect("event")
        .unwrap()
        .unwrap();
    assert_eq!(text(event.events()[0].kv().unwrap().key()), "/a/new");
}

#[tokio::test]
async fn revoking_a_role_takes_effect_on_the_next_request() {
    let m = member_with_auth().await;
    let mut root = login(&m.endpoint(), "root", "rootpw").await.unwrap();
    let mut reader = login(&m.endpoint(), "reader", "readpw").await.unwrap();
    reader.get("/a/x", None).await.unwrap();
    root.user_revoke_role("reader", "prefix-reader")
        .await
        .unwrap();
    is(refused(reader.get("/a/x", None).await), DENIED);
    is(
        refused(root.user_revoke_role("reader", "prefix-reader").await),
        (
            Code::FailedPrecondition,
            "etcdserver: role is not granted to the user",
        ),
    );
    root.user_grant_role("reader", "prefix-reader")
        .await
        .unwrap();
    reader.get("/a/x", None).await.unwrap();
    // A deleted role goes from its users too; a changed password ends the user's tokens.
    root.role_delete("prefix-reader").await.unwrap();
    is(refused(reader.get("/a/x", None).await), DENIED);
    root.user_change_password("reader", "new").await.unwrap();
    is(refused(reader.get("/a/x", None).await), BAD_TOKEN);
    is(
        refused(login(&m.endpoint(), "reader", "readpw").await),
        AUTH_FAILED,
    );
    login(&m.endpoint(), "reader", "new").await.unwrap();
}

#[tokio::test]
async fn a_simple_token_expires_after_its_ttl_and_wrong_passwords_are_slow() {
    // A TTL long enough that the first read, right after the login, comes within it even on
    // a loaded machine.
    let m = Member::start_with(&["--auth-token-ttl", "10"]);
    let mut c = m.client().await;
    add_users(&mut c).await;
    c.auth_enable().await.unwrap();
    let mut reader = login(&m.endpoint(), "reader", "readpw").await.unwrap();
    reader.get("/a/x", None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    is(refused(reader.get("/a/x", None).await), BAD_TOKEN);

    // Three wrong passwords on one connection are answered one after another, each after a
    // pause of a second.
    let channel = tonic::transport::Endpoint::from_shared(m.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    let attempts = (0..3).map(|_| {
        let mut auth = pb::auth_client::AuthClient::new(channel.clone());
        async move {
            let r = auth
                .authenticate(pb::AuthenticateRequest {
                    name: "reader".into(),
                    password: "guess".into(),
                })
                .await;
            let e = r.expect_err("wrong password");
            (e.code(), e.message().to_string())
        }
    });
    for got in futures::future::join_all(attempts).await {
        is(got, AUTH_FAILED);
    }
    assert!(started.elapsed() >= Duration::from_secs(3));
}

/// An EC key pair in PEM files (PKCS#8 private key), made by openssl.
fn ec_keys(dir: &Path, name: &str) -> (String, String) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&private)
        .status()
        .unwrap()
        .success()
        && Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .status()
            .unwrap()
            .success();
    assert!(ok, "openssl could not make keys");
    (public.display().to_string(), private.display().to_string())
}

#[tokio::test]
async fn jwt_tokens_work_and_one_signed_with_another_key_is_refused() {
    let keys = tempfile::tempdir().unwrap();
    let (public, private) = ec_keys(keys.path(), "server");
    let spec = format!("jwt,pub-key={public},priv-key={private},sign-method=ES256,ttl=10m");
    let m = Member::start_with(&["--auth-token", &spec]);
    let mut c = m.client().await;
    add_users(&mut c).await;
    c.put("/a/x", "1", None).await.unwrap();
    c.auth_enable().await.unwrap();
    let mut reader = login(&m.endpoint(), "reader", "readpw").await.unwrap();
    reader.get("/a/x", None).await.unwrap();
    is(refused(reader.get("/b", None).await), DENIED);

    // A token for root, well formed, signed with a key the server does not know.
    let (other_public, other_private) = ec_keys(keys.path(), "other");
    let forger = oxcd::auth::TokenKind::parse(&format!(
        "jwt,pub-key={other_public},priv-key={other_private},sign-method=ES256"
    ))
    .unwrap();
    let oxcd::auth::TokenKind::Jwt(forger) = forger else {
        panic!("a JWT spec")
    };
    let forged = forger.sign("root", u64::MAX).unwrap();
    let channel = tonic::transport::Endpoint::from_shared(m.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut kv = pb::kv_client::KvClient::new(channel);
    let mut request = tonic::Request::new(pb::RangeRequest {
        key: b"/b".to_vec(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("token", forged.parse().unwrap());
    let e = kv.range(request).await.expect_err("forged token");
    is((e.code(), e.message().to_string()), BAD_TOKEN);
}

/// The checks the auth state of `users_and_roles` gives after a restart or restore.
async fn auth_state_is_there(endpoint: &str) {
    let mut anonymous = Client::connect([endpoint], None).await.unwrap();
    is(
        refused(anonymous.get("/a/x", None).await),
        (Code::InvalidArgument, "etcdserver: user name is empty"),
    );
    let mut reader = login(endpoint, "reader", "readpw").await.unwrap();
    assert_eq!(
        text(reader.get("/a/x", None).await.unwrap().kvs()[0].value()),
        "1"
    );
    is(refused(reader.get("/b", None).await), DENIED);
    let mut root = login(endpoint, "root", "rootpw").await.unwrap();
    let mut users = root.user_list().await.unwrap().users().to_vec();
    users.sort();
    assert_eq!(users, ["reader", "root"]);
}

#[tokio::test]
async fn auth_state_survives_kill_9_and_restart() {
    let mut m = member_with_auth().await;
    m.kill9();
    m.restart();
    oxcd_testkit::wait_for(Duration::from_secs(20), "the member to serve", || {
        let endpoint = m.endpoint();
        async move { login(&endpoint, "root", "rootpw").await.ok() }
    })
    .await;
    auth_state_is_there(&m.endpoint()).await;
}

#[tokio::test]
async fn auth_state_survives_snapshot_and_restore() {
    let m = member_with_auth().await;
    let mut root = login(&m.endpoint(), "root", "rootpw").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.db");
    let mut stream = root.snapshot().await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        bytes.extend_from_slice(chunk.blob());
    }
    std::fs::write(&file, bytes).unwrap();
    // A snapshot is admin-only.
    let mut reader = login(&m.endpoint(), "reader", "readpw").await.unwrap();
    is(refused(reader.snapshot().await.map(|_| ())), DENIED);

    let mut restored = Cluster::new(oxcd_testkit::binary::oxcd().unwrap(), 1, &[]).unwrap();
    let ok = Command::new(oxcd_testkit::binary::oxcd().unwrap())
        .args(["snapshot", "restore"])
        .arg(&file)
        .args(crate::snapshot::restore_args(&restored, 0))
        .status()
        .unwrap()
        .success();
    assert!(ok, "oxcd snapshot restore failed");
    restored.spawn_all().unwrap();
    let endpoint = restored.running_endpoints()[0].clone();
    oxcd_testkit::wait_for(
        Duration::from_secs(20),
        "the restored member to serve",
        || {
            let endpoint = endpoint.clone();
            async move { login(&endpoint, "root", "rootpw").await.ok() }
        },
    )
    .await;
    auth_state_is_there(&endpoint).await;
}
