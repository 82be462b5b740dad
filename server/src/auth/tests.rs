use super::*;
use crate::storage::SledBackend;

fn perm(t: PermType, key: &[u8], end: &[u8]) -> Option<Permission> {
    Some(Permission {
        perm_type: t as i32,
        key: key.to_vec(),
        range_end: end.to_vec(),
    })
}

/// A store with auth on: root, and `alice` with role `r` (READ on prefix /a/, WRITE on /w,
/// READWRITE on [/m, /p) and [/p, /q)).
fn store(batch: &mut WriteBatch) -> AuthStore {
    let mut s = AuthStore::default();
    s.user_add(ROOT_USER, b"h".to_vec(), None, batch).unwrap();
    assert_eq!(s.enable(batch), Err(Error::RootRoleNotExist));
    s.user_grant_role(ROOT_USER, ROOT_ROLE, batch).unwrap();
    s.user_add("alice", b"h".to_vec(), None, batch).unwrap();
    s.role_add("r", batch).unwrap();
    s.role_grant_permission("r", perm(PermType::Read, b"/a/", b"/a0"), batch)
        .unwrap();
    s.role_grant_permission("r", perm(PermType::Write, b"/w", b""), batch)
        .unwrap();
    s.role_grant_permission("r", perm(PermType::Readwrite, b"/m", b"/p"), batch)
        .unwrap();
    s.role_grant_permission("r", perm(PermType::Readwrite, b"/p", b"/q"), batch)
        .unwrap();
    s.user_grant_role("alice", "r", batch).unwrap();
    s.enable(batch).unwrap();
    s
}

#[test]
fn permissions_are_judged_as_etcd_judges_them() {
    let mut batch = WriteBatch::default();
    let s = store(&mut batch);
    let alice = AuthInfo {
        username: "alice".into(),
        revision: s.revision(),
    };
    assert_eq!(s.check(&alice, b"/a/x", b"", PermType::Read), Ok(()));
    assert_eq!(
        s.check(&alice, b"/a/x", b"", PermType::Write),
        Err(Error::PermissionDenied)
    );
    assert_eq!(s.check(&alice, b"/a/", b"/a0", PermType::Read), Ok(()));
    assert_eq!(
        s.check(&alice, b"/a/", b"/b", PermType::Read),
        Err(Error::PermissionDenied)
    );
    assert_eq!(s.check(&alice, b"/w", b"", PermType::Write), Ok(()));
    assert_eq!(
        s.check(&alice, b"/w", b"/x", PermType::Write),
        Err(Error::PermissionDenied)
    );
    // Two adjacent grants cover the range across them.
    assert_eq!(s.check(&alice, b"/n", b"/pz", PermType::Write), Ok(()));
    assert_eq!(
        s.check(&alice, b"/n", b"/r", PermType::Write),
        Err(Error::PermissionDenied)
    );
    assert_eq!(
        s.check(&alice, b"/a/", b"\0", PermType::Read),
        Err(Error::PermissionDenied)
    );
    let nobody = AuthInfo::default();
    assert_eq!(
        s.check(&nobody, b"/a/x", b"", PermType::Read),
        Err(Error::UserEmpty)
    );
    let stale = AuthInfo {
        revision: s.revision() - 1,
        ..alice.clone()
    };
    assert_eq!(
        s.check(&stale, b"/a/x", b"", PermType::Read),
        Err(Error::AuthOldRevision)
    );
    let root = AuthInfo {
        username: ROOT_USER.into(),
        revision: s.revision(),
    };
    assert_eq!(s.check(&root, b"", b"\0", PermType::Write), Ok(()));
    assert_eq!(s.check_admin(&root), Ok(()));
    assert_eq!(s.check_admin(&alice), Err(Error::PermissionDenied));
    assert_eq!(s.check_admin(&nobody), Err(Error::UserEmpty));
}

#[test]
fn root_stays_root_while_auth_is_on_and_changes_bump_the_revision() {
    let mut batch = WriteBatch::default();
    let mut s = store(&mut batch);
    assert_eq!(
        s.user_revoke_role(ROOT_USER, ROOT_ROLE, &mut batch),
        Err(Error::InvalidAuthMgmt)
    );
    assert_eq!(
        s.user_delete(ROOT_USER, &mut batch),
        Err(Error::InvalidAuthMgmt)
    );
    assert_eq!(
        s.role_delete(ROOT_ROLE, &mut batch),
        Err(Error::InvalidAuthMgmt)
    );
    assert_eq!(
        s.user_add("", vec![], None, &mut batch),
        Err(Error::UserEmpty)
    );
    assert_eq!(
        s.user_add("alice", vec![], None, &mut batch),
        Err(Error::UserAlreadyExist)
    );
    assert_eq!(
        s.user_grant_role("alice", "nope", &mut batch),
        Err(Error::RoleNotFound)
    );
    assert_eq!(
        s.user_revoke_role("alice", "nope", &mut batch),
        Err(Error::RoleNotGranted)
    );
    assert_eq!(
        s.role_revoke_permission("r", b"/zz", b"", &mut batch),
        Err(Error::PermissionNotGranted)
    );
    assert_eq!(
        s.role_grant_permission("r", None, &mut batch),
        Err(Error::PermissionNotGiven)
    );
    let before = s.revision();
    s.role_delete("r", &mut batch).unwrap();
    assert_eq!(s.revision(), before + 1);
    assert!(s.user("alice").unwrap().roles.is_empty());
    assert!(s.disable(&mut batch));
    s.user_revoke_role(ROOT_USER, ROOT_ROLE, &mut batch)
        .unwrap();
    assert_eq!(s.enable(&mut batch), Err(Error::RootRoleNotExist));
}

#[test]
fn the_store_survives_a_reload_and_round_trips_etcds_records() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let backend = SledBackend::new(&db, "state").unwrap();
    let mut batch = WriteBatch::default();
    let s = store(&mut batch);
    backend.write(batch).unwrap();
    let loaded = AuthStore::load(&backend).unwrap();
    assert!(loaded.is_enabled());
    assert_eq!(loaded.revision(), s.revision());
    assert_eq!(loaded.user_names(), ["alice", "root"]);
    assert_eq!(loaded.role("r"), s.role("r"));

    let records = loaded.records();
    let db2 = sled::Config::new().temporary(true).open().unwrap();
    let backend2 = SledBackend::new(&db2, "state").unwrap();
    let mut batch = WriteBatch::default();
    for (k, v) in AuthStore::pairs_from_records(&records).unwrap() {
        batch.put(k, v);
    }
    backend2.write(batch).unwrap();
    let restored = AuthStore::load(&backend2).unwrap();
    assert_eq!(restored.user("alice"), s.user("alice"));
    assert_eq!(restored.revision(), s.revision());
}

#[test]
fn simple_tokens_go_with_their_user_and_jwt_specs_parse() {
    let tokens = SimpleTokens::new(std::time::Duration::from_secs(300));
    tokens.assign("u".into(), "bob".into());
    assert_eq!(tokens.user("u").as_deref(), Some("bob"));
    tokens.invalidate_user("bob");
    assert_eq!(tokens.user("u"), None);
    assert!(matches!(TokenKind::parse("simple"), Ok(TokenKind::Simple)));
    assert!(TokenKind::parse("jwt,sign-method=RS256").is_err());
    assert!(TokenKind::parse("bogus").is_err());
}

/// A write authorized before a permission change and applied after it is refused, as in
/// etcd: apply judges the header's auth revision against the state of that moment.
#[test]
fn a_write_authorized_before_a_permission_change_is_refused_at_apply() {
    use crate::apply::{KvState, apply};
    use crate::proto::etcdserverpb::PutRequest;
    use crate::proto::oxcdpb::{InternalRequest, internal_request::Request};

    let db = sled::Config::new().temporary(true).open().unwrap();
    let backend = SledBackend::new(&db, "state").unwrap();
    let mut batch = WriteBatch::default();
    let mut state = KvState {
        mvcc: crate::mvcc::Store::load(&backend).unwrap(),
        auth: store(&mut batch),
        ..KvState::default()
    };
    let put = |header: AuthInfo| InternalRequest {
        request: Some(Request::Put(PutRequest {
            key: b"/m/x".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })),
        header: Some(header.header()),
    };
    let alice = AuthInfo {
        username: "alice".into(),
        revision: state.auth.revision(),
    };
    let applied = apply(&mut state, &backend, &mut batch, put(alice.clone()), 1);
    assert_eq!(applied.response.error, 0);
    backend.write(std::mem::take(&mut batch)).unwrap();
    // The role changes between the request's check and its apply.
    state
        .auth
        .role_revoke_permission("r", b"/m", b"/p", &mut batch)
        .unwrap();
    let applied = apply(&mut state, &backend, &mut batch, put(alice), 1);
    assert_eq!(
        Error::from_apply_code(applied.response.error),
        Error::AuthOldRevision
    );
    // The member's own commands carry no header and are not judged.
    let mut own = put(AuthInfo::default());
    own.header = None;
    backend.write(std::mem::take(&mut batch)).unwrap();
    let applied = apply(&mut state, &backend, &mut batch, own, 1);
    assert_eq!(applied.response.error, 0);
}
