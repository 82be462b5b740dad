//! The request context: who is asking and how, carried from the transport to the core, and
//! the checks etcd makes before any client RPC, in one place for every transport:
//!
//! - a learner answers "rpc not supported for learner", except Status and serializable Range
//!   (the latter checked in [`super::Core::range`], since it depends on the request body);
//! - a request carrying the `hasleader` metadata (clientv3's `WithRequireLeader`) fails at
//!   once with "etcdserver: no leader" while the member knows no leader, instead of waiting
//!   for one. Streams that asked for it also end when the leader stays lost.
//!
//! - while auth is on, the caller is who its token (metadata `token`, or the gateway's
//!   `Authorization` header) names, or with `--client-cert-auth` and no token, the common name
//!   of its verified client certificate; a token that names no one fails every RPC but
//!   Authenticate with "etcdserver: invalid auth token".

use std::net::SocketAddr;

use crate::auth::{AuthInfo, TokenKind};
use crate::error::{Error, Result};
use crate::proto::oxcdpb::AuthHeader;
use crate::server::EtcdServer;

/// The metadata key and value of clientv3's `WithRequireLeader`.
const REQUIRE_LEADER_KEY: &str = "hasleader";
const REQUIRE_LEADER_VALUE: &str = "true";

/// RPCs a learner still serves, by their gRPC method path (the gateway maps its paths to
/// these names too).
const LEARNER_RPCS: &[&str] = &["/etcdserverpb.Maintenance/Status", "/etcdserverpb.KV/Range"];

/// The metadata keys a token travels in: gRPC clients send `token`, the gateway's clients
/// `Authorization`.
const TOKEN_KEYS: &[&str] = &["token", "authorization"];

/// The RPC that works with a bad token (it is how a client gets a new one).
pub const AUTHENTICATE_RPC: &str = "/etcdserverpb.Auth/Authenticate";

/// What the core knows of a request besides its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The authenticated caller, while auth is on and the request named one.
    pub auth: Option<AuthInfo>,
    /// The token the request carried.
    pub token: Option<String>,
    /// The common name of the client's verified TLS certificate.
    pub cert_cn: Option<String>,
    /// The client's address (Authenticate's failures are paced per connection).
    pub remote: Option<SocketAddr>,
    /// The client asked (clientv3's `WithRequireLeader`) to be refused, and its streams ended,
    /// while there is no leader.
    pub require_leader: bool,
}

impl RequestContext {
    /// The context a request's headers (gRPC metadata, or the gateway's HTTP headers) give.
    pub fn from_headers(headers: &http::HeaderMap) -> RequestContext {
        RequestContext {
            token: TOKEN_KEYS
                .iter()
                .find_map(|k| headers.get(*k))
                .and_then(|v| v.to_str().ok())
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            require_leader: headers
                .get(REQUIRE_LEADER_KEY)
                .is_some_and(|v| v.as_bytes() == REQUIRE_LEADER_VALUE.as_bytes()),
            ..RequestContext::default()
        }
    }

    /// Who the request is from, as of now (etcd's `AuthInfoFromCtx`): `None` while auth is
    /// off or when the request names no one; an error for a token that names no one.
    pub fn resolve(&self, server: &EtcdServer) -> Result<Option<AuthInfo>> {
        let (enabled, revision) = {
            let state = server.state.read();
            (state.kv.auth.is_enabled(), state.kv.auth.revision())
        };
        if !enabled {
            return Ok(None);
        }
        if let Some(token) = &self.token {
            let info = match server.auth.tokens.as_ref() {
                TokenKind::Simple => server
                    .state
                    .simple_tokens
                    .user(token)
                    .map(|username| AuthInfo { username, revision }),
                TokenKind::Jwt(keys) => keys.verify(token),
            };
            return info.map(Some).ok_or(Error::InvalidAuthToken);
        }
        Ok(self
            .cert_cn
            .as_ref()
            .filter(|_| server.auth.client_cert_auth)
            .map(|cn| AuthInfo {
                username: cn.clone(),
                revision,
            }))
    }

    /// The caller as the auth store judges it: no one (an empty name) when unknown.
    pub fn caller(&self) -> AuthInfo {
        self.auth.clone().unwrap_or_default()
    }

    /// The header a proposal made for this request carries, checked again at apply.
    pub fn header(&self) -> Option<AuthHeader> {
        Some(self.caller().header())
    }
}

/// etcd's checks before serving `rpc` (a gRPC method path) to the caller in `ctx`, which
/// they complete with who the caller is.
pub fn admit(server: &EtcdServer, ctx: &mut RequestContext, rpc: &str) -> Result<()> {
    // Between learning of its removal and closing its port, a removed member answers
    // nothing: what it would say (its members, its data) is no longer the cluster's.
    if server.is_removed() {
        return Err(Error::MemberRemoved);
    }
    if !LEARNER_RPCS.contains(&rpc) && server.is_learner() {
        return Err(Error::NotSupportedForLearner);
    }
    if ctx.require_leader && !server.has_leader() {
        return Err(Error::NoLeader);
    }
    match ctx.resolve(server) {
        Ok(auth) => ctx.auth = auth,
        Err(_) if rpc == AUTHENTICATE_RPC => ctx.auth = None,
        Err(e) => return Err(e),
    }
    Ok(())
}
