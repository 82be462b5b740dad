//! Auth at apply: the permission checks etcd's auth applier makes on every command that
//! carries a user (against the auth state of the moment it is applied, so a request
//! authorized before a permission change and applied after it is refused), and the auth
//! management commands themselves.

use base64::Engine;

use crate::auth::tokens::TokenChange;
use crate::auth::{AuthInfo, AuthStore};
use crate::error::{Error, Result};
use crate::lease::LeaseTable;
use crate::proto::authpb::permission::Type as PermType;
use crate::proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op};
use crate::proto::oxcdpb::internal_request::Request as Req;
use crate::proto::oxcdpb::internal_response::Response;
use crate::proto::oxcdpb::{AuthApplied, AuthHeader};
use crate::storage::WriteBatch;

use super::{Applied, KvState};

/// etcd's auth applier checks for `req` from `header`; commands without a header are the
/// members' own (lease expiry, compaction, alarms) and pass.
pub(super) fn check(state: &KvState, header: Option<&AuthHeader>, req: &Req) -> Result<()> {
    let (Some(header), true) = (header, state.auth.is_enabled()) else {
        return Ok(());
    };
    let who = AuthInfo::from(header);
    let auth = &state.auth;
    match req {
        Req::Put(p) => check_put(auth, &state.leases, &who, p),
        Req::DeleteRange(d) => {
            auth.check(&who, &d.key, &d.range_end, PermType::Write)?;
            if d.prev_kv {
                auth.check(&who, &d.key, &d.range_end, PermType::Read)?;
            }
            Ok(())
        }
        Req::Txn(t) => check_txn(auth, &state.leases, &who, t),
        Req::LeaseRevoke(r) => check_lease_keys(auth, &state.leases, &who, r.id),
        Req::Alarm(_) | Req::Compaction(_) | Req::LeaseGrant(_) | Req::Authenticate(_) => Ok(()),
        Req::AuthEnable(_)
        | Req::AuthDisable(_)
        | Req::UserAdd(_)
        | Req::UserDelete(_)
        | Req::UserChangePassword(_)
        | Req::UserGrantRole(_)
        | Req::UserRevokeRole(_)
        | Req::RoleAdd(_)
        | Req::RoleDelete(_)
        | Req::RoleGrantPermission(_)
        | Req::RoleRevokePermission(_) => auth.check_admin(&who),
    }
}

fn check_put(auth: &AuthStore, leases: &LeaseTable, who: &AuthInfo, p: &PutRequest) -> Result<()> {
    auth.check(who, &p.key, &[], PermType::Write)?;
    check_lease_keys(auth, leases, who, p.lease)?;
    if p.prev_kv {
        auth.check(who, &p.key, &[], PermType::Read)?;
    }
    Ok(())
}

/// Every key attached to lease `id` must be writable by `who` (unless `who` is an admin).
fn check_lease_keys(auth: &AuthStore, leases: &LeaseTable, who: &AuthInfo, id: i64) -> Result<()> {
    let Some(lease) = leases.get(id) else {
        return Ok(());
    };
    if auth.check_admin(who).is_ok() {
        return Ok(());
    }
    lease
        .keys
        .iter()
        .try_for_each(|k| auth.check(who, k, &[], PermType::Write))
}

/// Every compare and every op of both branches, nested txns included: a txn touching a
/// forbidden key anywhere fails whole.
fn check_txn(auth: &AuthStore, leases: &LeaseTable, who: &AuthInfo, t: &TxnRequest) -> Result<()> {
    for c in &t.compare {
        auth.check(who, &c.key, &c.range_end, PermType::Read)?;
    }
    t.success
        .iter()
        .chain(&t.failure)
        .try_for_each(|op| check_op(auth, leases, who, op))
}

fn check_op(auth: &AuthStore, leases: &LeaseTable, who: &AuthInfo, op: &RequestOp) -> Result<()> {
    use request_op::Request as Op;
    match &op.request {
        Some(Op::RequestRange(r)) => auth.check(who, &r.key, &r.range_end, PermType::Read),
        Some(Op::RequestPut(p)) => check_put(auth, leases, who, p),
        Some(Op::RequestDeleteRange(d)) => {
            if d.prev_kv {
                auth.check(who, &d.key, &d.range_end, PermType::Read)?;
            }
            auth.check(who, &d.key, &d.range_end, PermType::Write)
        }
        Some(Op::RequestTxn(t)) => check_txn(auth, leases, who, t),
        None => Ok(()),
    }
}

/// A bcrypt hash as it travels in a command (base64, in `hashedPassword`).
fn password_hash(encoded: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| Error::InvalidAuthMgmt)
}

/// Applies an auth management command.
pub(super) fn apply(
    state: &mut KvState,
    batch: &mut WriteBatch,
    req: &Req,
    applied: &mut Applied,
) -> Result<Response> {
    let auth = &mut state.auth;
    let result = match req {
        Req::AuthEnable(_) => auth.enable(batch),
        Req::AuthDisable(_) => {
            if auth.disable(batch) {
                applied.token = Some(TokenChange::Clear);
            }
            Ok(())
        }
        Req::Authenticate(a) => auth.authenticate(&a.name).map(|()| {
            if !a.simple_token.is_empty() {
                applied.token = Some(TokenChange::Assign {
                    token: a.simple_token.clone(),
                    username: a.name.clone(),
                });
            }
        }),
        Req::UserAdd(u) => password_hash(&u.hashed_password)
            .and_then(|hash| auth.user_add(&u.name, hash, u.options, batch)),
        Req::UserDelete(u) => auth.user_delete(&u.name, batch).map(|()| {
            applied.token = Some(TokenChange::InvalidateUser(u.name.clone()));
        }),
        Req::UserChangePassword(u) => password_hash(&u.hashed_password)
            .and_then(|hash| auth.user_change_password(&u.name, hash, batch))
            .map(|()| applied.token = Some(TokenChange::InvalidateUser(u.name.clone()))),
        Req::UserGrantRole(g) => auth.user_grant_role(&g.user, &g.role, batch),
        Req::UserRevokeRole(r) => auth.user_revoke_role(&r.name, &r.role, batch),
        Req::RoleAdd(r) => auth.role_add(&r.name, batch),
        Req::RoleDelete(r) => auth.role_delete(&r.role, batch),
        Req::RoleGrantPermission(g) => auth.role_grant_permission(&g.name, g.perm.clone(), batch),
        Req::RoleRevokePermission(r) => {
            auth.role_revoke_permission(&r.role, &r.key, &r.range_end, batch)
        }
        _ => Err(Error::internal("not an auth command")),
    };
    applied.revision = state.mvcc.current_rev();
    result.map(|()| {
        Response::Auth(AuthApplied {
            auth_revision: state.auth.revision(),
        })
    })
}
