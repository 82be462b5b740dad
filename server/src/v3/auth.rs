//! The Auth service: turning auth on and off, Authenticate, users and roles, and the checks
//! other services make with the auth store (reads, admin-only RPCs).
//!
//! Passwords are hashed (bcrypt, `--bcrypt-cost`) and checked on the blocking pool, never on
//! the request path's workers; only the hash is proposed. Authenticate answers a wrong
//! password after a pause, and one connection's attempts go one at a time, so guessing is
//! slow.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;

use crate::auth::TokenKind;
use crate::auth::tokens::new_simple_token;
use crate::error::{Error, Result};
use crate::proto::authpb::permission::Type as PermType;
use crate::proto::etcdserverpb::*;
use crate::proto::oxcdpb::internal_request::Request as Command;
use crate::proto::oxcdpb::{AuthenticateCommand, internal_response};

use super::{Core, RequestContext};

/// How long a failed Authenticate waits before it answers.
const FAILED_AUTH_PAUSE: Duration = Duration::from_secs(1);
/// bcrypt's cost bounds; etcd falls back to its default outside them.
const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;
const DEFAULT_BCRYPT_COST: u32 = 10;

/// Authenticate attempts in progress, by client connection.
#[derive(Default)]
pub(super) struct Attempts {
    by_client: Mutex<HashMap<SocketAddr, Arc<tokio::sync::Mutex<()>>>>,
}

impl Attempts {
    /// The lock one client's attempts take in turn.
    fn of(&self, client: Option<SocketAddr>) -> Arc<tokio::sync::Mutex<()>> {
        let Some(client) = client else {
            return Arc::default();
        };
        let mut by_client = self.by_client.lock().expect("attempts poisoned");
        by_client.retain(|_, lock| Arc::strong_count(lock) > 1);
        by_client.entry(client).or_default().clone()
    }
}

impl Core {
    fn auth_header(&self) -> Option<ResponseHeader> {
        Some(self.server.current_header())
    }

    /// Proposes an auth management command for the caller.
    async fn propose_auth(&self, ctx: &RequestContext, command: Command) -> Result<()> {
        match self.server.propose_as(ctx.header(), command).await? {
            internal_response::Response::Auth(_) => Ok(()),
            _ => Err(Error::internal("unexpected apply response")),
        }
    }

    /// The caller may read `[key, range_end)`.
    pub(crate) fn check_read(&self, ctx: &RequestContext, key: &[u8], end: &[u8]) -> Result<()> {
        let state = self.server.state.read();
        state.kv.auth.check(&ctx.caller(), key, end, PermType::Read)
    }

    /// The caller holds the root role (or auth is off).
    pub(crate) fn check_admin(&self, ctx: &RequestContext) -> Result<()> {
        self.server.state.read().kv.auth.check_admin(&ctx.caller())
    }

    /// The caller is someone (or auth is off).
    pub(crate) fn check_known(&self, ctx: &RequestContext) -> Result<()> {
        let enabled = self.server.state.read().kv.auth.is_enabled();
        if enabled && ctx.caller().username.is_empty() {
            return Err(Error::UserEmpty);
        }
        Ok(())
    }

    /// A bcrypt hash of `password` at `--bcrypt-cost`, base64 as commands carry it.
    async fn hash_password(&self, password: String) -> Result<String> {
        let mut cost = self.server.auth.bcrypt_cost;
        if !BCRYPT_COSTS.contains(&cost) {
            cost = DEFAULT_BCRYPT_COST;
        }
        let hash = tokio::task::spawn_blocking(move || bcrypt::hash_with_result(password, cost))
            .await
            .map_err(Error::internal)?
            .map_err(Error::internal)?;
        let text = hash.format_for_version(bcrypt::Version::TwoA);
        Ok(base64::engine::general_purpose::STANDARD.encode(text))
    }

    pub async fn auth_enable(
        &self,
        ctx: &RequestContext,
        _r: AuthEnableRequest,
    ) -> Result<AuthEnableResponse> {
        self.propose_auth(ctx, Command::AuthEnable(AuthEnableRequest {}))
            .await?;
        tracing::info!("auth enabled");
        Ok(AuthEnableResponse {
            header: self.auth_header(),
        })
    }

    pub async fn auth_disable(
        &self,
        ctx: &RequestContext,
        _r: AuthDisableRequest,
    ) -> Result<AuthDisableResponse> {
        self.propose_auth(ctx, Command::AuthDisable(AuthDisableRequest {}))
            .await?;
        tracing::info!("auth disabled");
        Ok(AuthDisableResponse {
            header: self.auth_header(),
        })
    }

    pub async fn auth_status(
        &self,
        _ctx: &RequestContext,
        _r: AuthStatusRequest,
    ) -> Result<AuthStatusResponse> {
        self.server.read_index().await?;
        let state = self.server.state.read();
        Ok(AuthStatusResponse {
            header: self.auth_header(),
            enabled: state.kv.auth.is_enabled(),
            auth_revision: state.kv.auth.revision(),
        })
    }

    /// Checks the password, then hands out a token: a simple token by applying an entry (so
    /// every member knows it), a JWT signed here.
    pub async fn authenticate(
        &self,
        ctx: &RequestContext,
        r: AuthenticateRequest,
    ) -> Result<AuthenticateResponse> {
        let turn = self.auth_attempts.of(ctx.remote);
        let _turn = turn.lock().await;
        let Some(revision) = check_password(&self.server, &r.name, r.password).await? else {
            tracing::warn!(user = %r.name, client = ?ctx.remote, "authentication failed: wrong password");
            tokio::time::sleep(FAILED_AUTH_PAUSE).await;
            return Err(Error::AuthFailed);
        };
        let token = match self.server.auth.tokens.as_ref() {
            TokenKind::Simple => {
                let token = new_simple_token();
                let command = Command::Authenticate(AuthenticateCommand {
                    name: r.name.clone(),
                    simple_token: token.clone(),
                });
                self.propose_auth(ctx, command).await?;
                token
            }
            TokenKind::Jwt(keys) => keys
                .sign(&r.name, revision)
                .ok_or_else(|| Error::internal("no JWT private key to sign tokens with"))?,
        };
        tracing::info!(user = %r.name, "authenticated");
        Ok(AuthenticateResponse {
            header: self.auth_header(),
            token,
        })
    }

    pub async fn user_add(
        &self,
        ctx: &RequestContext,
        mut r: AuthUserAddRequest,
    ) -> Result<AuthUserAddResponse> {
        if r.name.is_empty() {
            return Err(Error::UserEmpty);
        }
        self.check_admin(ctx)?;
        let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
        let password = std::mem::take(&mut r.password);
        if !no_password && r.hashed_password.is_empty() {
            r.hashed_password = self.hash_password(password).await?;
        }
        self.propose_auth(ctx, Command::UserAdd(r)).await?;
        Ok(AuthUserAddResponse {
            header: self.auth_header(),
        })
    }

    /// A user's roles: for an admin, or for the user itself.
    pub async fn user_get(
        &self,
        ctx: &RequestContext,
        r: AuthUserGetRequest,
    ) -> Result<AuthUserGetResponse> {
        self.server.read_index().await?;
        let state = self.server.state.read();
        let auth = &state.kv.auth;
        let who = ctx.caller();
        if let Err(e) = auth.check_admin(&who)
            && who.username != r.name
        {
            return Err(e);
        }
        let user = auth.user(&r.name).ok_or(Error::UserNotFound)?;
        Ok(AuthUserGetResponse {
            header: self.auth_header(),
            roles: user.roles.clone(),
        })
    }

    pub async fn user_list(
        &self,
        ctx: &RequestContext,
        _r: AuthUserListRequest,
    ) -> Result<AuthUserListResponse> {
        self.server.read_index().await?;
        self.check_admin(ctx)?;
        let users = self.server.state.read().kv.auth.user_names();
        Ok(AuthUserListResponse {
            header: self.auth_header(),
            users,
        })
    }

    pub async fn user_delete(
        &self,
        ctx: &RequestContext,
        r: AuthUserDeleteRequest,
    ) -> Result<AuthUserDeleteResponse> {
        self.propose_auth(ctx, Command::UserDelete(r)).await?;
        Ok(AuthUserDeleteResponse {
            header: self.auth_header(),
        })
    }

    pub async fn user_change_password(
        &self,
        ctx: &RequestContext,
        mut r: AuthUserChangePasswordRequest,
    ) -> Result<AuthUserChangePasswordResponse> {
        self.check_admin(ctx)?;
        let password = std::mem::take(&mut r.password);
        if r.hashed_password.is_empty() {
            r.hashed_password = self.hash_password(password).await?;
        }
        self.propose_auth(ctx, Command::UserChangePassword(r))
            .await?;
        Ok(AuthUserChangePasswordResponse {
            header: self.auth_header(),
        })
    }

    pub async fn user_grant_role(
        &self,
        ctx: &RequestContext,
        r: AuthUserGrantRoleRequest,
    ) -> Result<AuthUserGrantRoleResponse> {
        self.propose_auth(ctx, Command::UserGrantRole(r)).await?;
        Ok(AuthUserGrantRoleResponse {
            header: self.auth_header(),
        })
    }

    pub async fn user_revoke_role(
        &self,
        ctx: &RequestContext,
        r: AuthUserRevokeRoleRequest,
    ) -> Result<AuthUserRevokeRoleResponse> {
        self.propose_auth(ctx, Command::UserRevokeRole(r)).await?;
        Ok(AuthUserRevokeRoleResponse {
            header: self.auth_header(),
        })
    }

    pub async fn role_add(
        &self,
        ctx: &RequestContext,
        r: AuthRoleAddRequest,
    ) -> Result<AuthRoleAddResponse> {
        self.propose_auth(ctx, Command::RoleAdd(r)).await?;
        Ok(AuthRoleAddResponse {
            header: self.auth_header(),
        })
    }

    /// A role's permissions: for an admin, or for a user that has the role.
    pub async fn role_get(
        &self,
        ctx: &RequestContext,
        r: AuthRoleGetRequest,
    ) -> Result<AuthRoleGetResponse> {
        self.server.read_index().await?;
        let state = self.server.state.read();
        let auth = &state.kv.auth;
        let who = ctx.caller();
        if let Err(e) = auth.check_admin(&who)
            && !auth.has_role(&who.username, &r.role)
        {
            return Err(e);
        }
        let role = auth.role(&r.role).ok_or(Error::RoleNotFound)?;
        Ok(AuthRoleGetResponse {
            header: self.auth_header(),
            perm: role.key_permission.clone(),
        })
    }

    pub async fn role_list(
        &self,
        ctx: &RequestContext,
        _r: AuthRoleListRequest,
    ) -> Result<AuthRoleListResponse> {
        self.server.read_index().await?;
        self.check_admin(ctx)?;
        let roles = self.server.state.read().kv.auth.role_names();
        Ok(AuthRoleListResponse {
            header: self.auth_header(),
            roles,
        })
    }

    pub async fn role_delete(
        &self,
        ctx: &RequestContext,
        r: AuthRoleDeleteRequest,
    ) -> Result<AuthRoleDeleteResponse> {
        self.propose_auth(ctx, Command::RoleDelete(r)).await?;
        Ok(AuthRoleDeleteResponse {
            header: self.auth_header(),
        })
    }

    pub async fn role_grant_permission(
        &self,
        ctx: &RequestContext,
        r: AuthRoleGrantPermissionRequest,
    ) -> Result<AuthRoleGrantPermissionResponse> {
        self.propose_auth(ctx, Command::RoleGrantPermission(r))
            .await?;
        Ok(AuthRoleGrantPermissionResponse {
            header: self.auth_header(),
        })
    }

    pub async fn role_revoke_permission(
        &self,
        ctx: &RequestContext,
        r: AuthRoleRevokePermissionRequest,
    ) -> Result<AuthRoleRevokePermissionResponse> {
        self.propose_auth(ctx, Command::RoleRevokePermission(r))
            .await?;
        Ok(AuthRoleRevokePermissionResponse {
            header: self.auth_header(),
        })
    }
}

/// etcd's password check for user `name` (who must exist and have a password): the auth
/// revision it was checked at when `password` is theirs, `None` when it is not. bcrypt runs
/// off the runtime's threads.
pub async fn check_password(
    server: &crate::server::EtcdServer,
    name: &str,
    password: String,
) -> Result<Option<u64>> {
    let (hash, revision) = {
        let state = server.state.read();
        let auth = &state.kv.auth;
        auth.authenticate(name)?;
        let user = auth.user(name).ok_or(Error::AuthFailed)?;
        (user.password.clone(), auth.revision())
    };
    let matches = tokio::task::spawn_blocking(move || {
        let hash = String::from_utf8(hash).unwrap_or_default();
        bcrypt::verify(password, &hash).unwrap_or(false)
    })
    .await
    .map_err(Error::internal)?;
    Ok(matches.then_some(revision))
}
