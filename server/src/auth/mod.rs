//! Users, roles and permissions, as etcd's auth store keeps and judges them. Replicated
//! state: it changes only by applying committed entries, lives in the state backend (so it
//! survives restarts and travels in raft snapshots), and every member decides the same.
//!
//! # Layout
//! - this file: the store and its rules (etcd's `auth/store.go`);
//! - [`perms`]: whether a user's permissions cover a key or a range;
//! - [`tokens`]: simple tokens (kept in memory on every member) and JWTs.

mod perms;
#[cfg(test)]
mod tests;
pub mod tokens;

use std::collections::BTreeMap;

use prost::Message;

use crate::error::{Error, Result};
use crate::proto::authpb::{Permission, Role, User, UserAddOptions, permission::Type as PermType};
use crate::proto::oxcdpb::AuthHeader;
use crate::storage::{Backend, WriteBatch};

pub use tokens::{SimpleTokens, TokenKind};

pub const ROOT_USER: &str = "root";
pub const ROOT_ROLE: &str = "root";

const AUTH_PREFIX: u8 = b'A';
const ENABLED_KEY: &[u8] = b"Ae";
const REVISION_KEY: &[u8] = b"Av";
const USER_PREFIX: &[u8] = b"Au";
const ROLE_PREFIX: &[u8] = b"Ar";

fn user_key(name: &str) -> Vec<u8> {
    [USER_PREFIX, name.as_bytes()].concat()
}

fn role_key(name: &str) -> Vec<u8> {
    [ROLE_PREFIX, name.as_bytes()].concat()
}

/// Who a request is from, as the auth store judges it: a user name and the auth revision
/// the request was authorized at (etcd's `AuthInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub username: String,
    pub revision: u64,
}

impl AuthInfo {
    pub fn header(&self) -> AuthHeader {
        AuthHeader {
            username: self.username.clone(),
            auth_revision: self.revision,
        }
    }
}

impl From<&AuthHeader> for AuthInfo {
    fn from(h: &AuthHeader) -> AuthInfo {
        AuthInfo {
            username: h.username.clone(),
            revision: h.auth_revision,
        }
    }
}

/// The auth state: whether auth is on, its revision (bumped by every change that can alter
/// a decision), users and roles.
#[derive(Debug, Default, Clone)]
pub struct AuthStore {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
}

/// The auth state as etcd's database holds it, for snapshots in etcd's format.
#[derive(Debug, Default)]
pub struct AuthRecords {
    pub enabled: bool,
    pub revision: u64,
    /// (name, encoded `authpb.User`), in name order.
    pub users: Vec<(Vec<u8>, Vec<u8>)>,
    /// (name, encoded `authpb.Role`), in name order.
    pub roles: Vec<(Vec<u8>, Vec<u8>)>,
}

impl AuthStore {
    pub fn load(backend: &dyn Backend) -> Result<AuthStore> {
        let mut store = AuthStore::default();
        for pair in backend.scan(&[AUTH_PREFIX], &[AUTH_PREFIX + 1]) {
            let (k, v) = pair?;
            if k == ENABLED_KEY {
                store.enabled = v.first() == Some(&1);
            } else if k == REVISION_KEY {
                store.revision = u64::from_be_bytes(
                    v.as_slice()
                        .try_into()
                        .map_err(|_| Error::internal("bad auth revision record"))?,
                );
            } else if let Some(name) = k.strip_prefix(USER_PREFIX) {
                let user = User::decode(v.as_slice()).map_err(Error::internal)?;
                store.users.insert(utf8(name)?, user);
            } else if let Some(name) = k.strip_prefix(ROLE_PREFIX) {
                let role = Role::decode(v.as_slice()).map_err(Error::internal)?;
                store.roles.insert(utf8(name)?, role);
            }
        }
        Ok(store)
    }

    /// The state built from etcd's buckets (a restored snapshot), as backend pairs.
    pub fn pairs_from_records(records: &AuthRecords) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut pairs = vec![
            (ENABLED_KEY.to_vec(), vec![u8::from(records.enabled)]),
            (
                REVISION_KEY.to_vec(),
                records.revision.to_be_bytes().to_vec(),
            ),
        ];
        for (name, user) in &records.users {
            User::decode(user.as_slice()).map_err(Error::internal)?;
            pairs.push(([USER_PREFIX, name].concat(), user.clone()));
        }
        for (name, role) in &records.roles {
            Role::decode(role.as_slice()).map_err(Error::internal)?;
            pairs.push(([ROLE_PREFIX, name].concat(), role.clone()));
        }
        Ok(pairs)
    }

    pub fn records(&self) -> AuthRecords {
        AuthRecords {
            enabled: self.enabled,
            revision: self.revision,
            users: self
                .users
                .iter()
                .map(|(n, u)| (n.as_bytes().to_vec(), u.encode_to_vec()))
                .collect(),
            roles: self
                .roles
                .iter()
                .map(|(n, r)| (n.as_bytes().to_vec(), r.encode_to_vec()))
                .collect(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    pub fn user_names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    pub fn role_names(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    fn bump(&mut self, batch: &mut WriteBatch) {
        self.revision += 1;
        batch.put(REVISION_KEY.to_vec(), self.revision.to_be_bytes().to_vec());
    }

    fn put_user(&mut self, name: &str, user: User, batch: &mut WriteBatch) {
        batch.put(user_key(name), user.encode_to_vec());
        self.users.insert(name.to_string(), user);
    }

    fn put_role(&mut self, name: &str, role: Role, batch: &mut WriteBatch) {
        batch.put(role_key(name), role.encode_to_vec());
        self.roles.insert(name.to_string(), role);
    }

    /// Turns auth on; the root user must exist and hold the root role.
    pub fn enable(&mut self, batch: &mut WriteBatch) -> Result<()> {
        if self.enabled {
            return Ok(());
        }
        let root = self.users.get(ROOT_USER).ok_or(Error::RootUserNotExist)?;
        if !has_root_role(root) {
            return Err(Error::RootRoleNotExist);
        }
        self.enabled = true;
        batch.put(ENABLED_KEY.to_vec(), vec![1]);
        Ok(())
    }

    /// Turns auth off; whether it changed (tokens are then dropped).
    pub fn disable(&mut self, batch: &mut WriteBatch) -> bool {
        if !self.enabled {
            return false;
        }
        self.enabled = false;
        batch.put(ENABLED_KEY.to_vec(), vec![0]);
        self.bump(batch);
        true
    }

    /// The user `name` may log in with a password (it exists and has one).
    pub fn authenticate(&self, name: &str) -> Result<()> {
        if !self.enabled {
            return Err(Error::AuthNotEnabled);
        }
        match self.users.get(name) {
            Some(u) if !no_password(u) => Ok(()),
            _ => Err(Error::AuthFailed),
        }
    }

    /// Adds a user; `password_hash` is its bcrypt hash (empty for a `no_password` user).
    pub fn user_add(
        &mut self,
        name: &str,
        password_hash: Vec<u8>,
        options: Option<UserAddOptions>,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        if name.is_empty() {
            return Err(Error::UserEmpty);
        }
        if self.users.contains_key(name) {
            return Err(Error::UserAlreadyExist);
        }
        let options = options.unwrap_or_default();
        let user = User {
            name: name.as_bytes().to_vec(),
            password: if options.no_password {
                Vec::new()
            } else {
                password_hash
            },
            roles: Vec::new(),
            options: Some(options),
        };
        self.put_user(name, user, batch);
        self.bump(batch);
        Ok(())
    }

    pub fn user_delete(&mut self, name: &str, batch: &mut WriteBatch) -> Result<()> {
        if self.enabled && name == ROOT_USER {
            return Err(Error::InvalidAuthMgmt);
        }
        if self.users.remove(name).is_none() {
            return Err(Error::UserNotFound);
        }
        batch.delete(user_key(name));
        self.bump(batch);
        Ok(())
    }

    pub fn user_change_password(
        &mut self,
        name: &str,
        password_hash: Vec<u8>,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let mut user = self.users.get(name).cloned().ok_or(Error::UserNotFound)?;
        if !no_password(&user) {
            user.password = password_hash;
        }
        self.put_user(name, user, batch);
        self.bump(batch);
        Ok(())
    }

    pub fn user_grant_role(
        &mut self,
        name: &str,
        role: &str,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let mut user = self.users.get(name).cloned().ok_or(Error::UserNotFound)?;
        if role != ROOT_ROLE && !self.roles.contains_key(role) {
            return Err(Error::RoleNotFound);
        }
        if let Err(at) = user.roles.binary_search_by(|r| r.as_str().cmp(role)) {
            user.roles.insert(at, role.to_string());
            self.put_user(name, user, batch);
            self.bump(batch);
        }
        Ok(())
    }

    pub fn user_revoke_role(
        &mut self,
        name: &str,
        role: &str,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        if self.enabled && name == ROOT_USER && role == ROOT_ROLE {
            return Err(Error::InvalidAuthMgmt);
        }
        let mut user = self.users.get(name).cloned().ok_or(Error::UserNotFound)?;
        let before = user.roles.len();
        user.roles.retain(|r| r != role);
        if user.roles.len() == before {
            return Err(Error::RoleNotGranted);
        }
        self.put_user(name, user, batch);
        self.bump(batch);
        Ok(())
    }

    pub fn role_add(&mut self, name: &str, batch: &mut WriteBatch) -> Result<()> {
        if name.is_empty() {
            return Err(Error::RoleEmpty);
        }
        if self.roles.contains_key(name) {
            return Err(Error::RoleAlreadyExist);
        }
        let role = Role {
            name: name.as_bytes().to_vec(),
            key_permission: Vec::new(),
        };
        self.put_role(name, role, batch);
        self.bump(batch);
        Ok(())
    }

    /// Deletes a role and takes it from every user that had it.
    pub fn role_delete(&mut self, name: &str, batch: &mut WriteBatch) -> Result<()> {
        if self.enabled && name == ROOT_ROLE {
            return Err(Error::InvalidAuthMgmt);
        }
        if self.roles.remove(name).is_none() {
            return Err(Error::RoleNotFound);
        }
        batch.delete(role_key(name));
        let holders: Vec<(String, User)> = self
            .users
            .iter()
            .filter(|(_, u)| u.roles.iter().any(|r| r == name))
            .map(|(n, u)| (n.clone(), u.clone()))
            .collect();
        for (user_name, mut user) in holders {
            user.roles.retain(|r| r != name);
            self.put_user(&user_name, user, batch);
        }
        self.bump(batch);
        Ok(())
    }

    /// Grants `perm` to a role, replacing the type of a permission on the same range.
    pub fn role_grant_permission(
        &mut self,
        name: &str,
        perm: Option<Permission>,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let perm = perm.ok_or(Error::PermissionNotGiven)?;
        if !perms::is_valid_range(&perm.key, &perm.range_end) {
            return Err(Error::InvalidAuthMgmt);
        }
        let mut role = self.roles.get(name).cloned().ok_or(Error::RoleNotFound)?;
        match role
            .key_permission
            .iter_mut()
            .find(|p| p.key == perm.key && p.range_end == perm.range_end)
        {
            Some(existing) => existing.perm_type = perm.perm_type,
            None => {
                role.key_permission.push(perm);
                role.key_permission.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        self.put_role(name, role, batch);
        self.bump(batch);
        Ok(())
    }

    pub fn role_revoke_permission(
        &mut self,
        name: &str,
        key: &[u8],
        range_end: &[u8],
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let mut role = self.roles.get(name).cloned().ok_or(Error::RoleNotFound)?;
        let before = role.key_permission.len();
        role.key_permission
            .retain(|p| p.key != key || p.range_end != range_end);
        if role.key_permission.len() == before {
            return Err(Error::PermissionNotGranted);
        }
        self.put_role(name, role, batch);
        self.bump(batch);
        Ok(())
    }

    /// etcd's `isOpPermitted`: `who` may do `perm` on `[key, range_end)` (one key when
    /// `range_end` is empty). Always true while auth is off.
    pub fn check(
        &self,
        who: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
        perm: PermType,
    ) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if who.revision == 0 {
            return Err(Error::UserEmpty);
        }
        if who.revision < self.revision {
            return Err(Error::AuthOldRevision);
        }
        let user = self
            .users
            .get(&who.username)
            .ok_or(Error::PermissionDenied)?;
        if has_root_role(user) {
            return Ok(());
        }
        let granted = user
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| &r.key_permission)
            .filter(|p| perms::grants(p.perm_type, perm));
        if perms::covers(granted, key, range_end) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// etcd's `IsAdminPermitted`: `who` holds the root role (always true while auth is off).
    pub fn check_admin(&self, who: &AuthInfo) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if who.username.is_empty() {
            return Err(Error::UserEmpty);
        }
        let user = self.users.get(&who.username).ok_or(Error::UserNotFound)?;
        if has_root_role(user) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// Whether user `name` has role `role`.
    pub fn has_role(&self, name: &str, role: &str) -> bool {
        self.users
            .get(name)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }
}

fn has_root_role(user: &User) -> bool {
    user.roles.iter().any(|r| r == ROOT_ROLE)
}

fn no_password(user: &User) -> bool {
    user.options.as_ref().is_some_and(|o| o.no_password)
}

fn utf8(name: &[u8]) -> Result<String> {
    String::from_utf8(name.to_vec()).map_err(|_| Error::internal("auth name is not UTF-8"))
}
