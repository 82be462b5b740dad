//! The request context: who is asking and how, carried from the transport to the core, and
//! the checks etcd makes before any client RPC, in one place for every transport:
//!
//! - a learner answers "rpc not supported for learner", except Status and serializable Range
//!   (the latter checked in [`super::Core::range`], since it depends on the request body);
//! - a request carrying the `hasleader` metadata (clientv3's `WithRequireLeader`) fails at
//!   once with "etcdserver: no leader" while the member knows no leader, instead of waiting
//!   for one. Streams that asked for it also end when the leader stays lost.
//!
//! Authentication will fill [`RequestContext::auth`] here, and [`admit`] is where it will be
//! checked for every RPC.

use crate::error::{Error, Result};
use crate::server::EtcdServer;

/// The metadata key and value of clientv3's `WithRequireLeader`.
const REQUIRE_LEADER_KEY: &str = "hasleader";
const REQUIRE_LEADER_VALUE: &str = "true";

/// RPCs a learner still serves, by their gRPC method path (the gateway maps its paths to
/// these names too).
const LEARNER_RPCS: &[&str] = &["/etcdserverpb.Maintenance/Status", "/etcdserverpb.KV/Range"];

/// Who is asking, once authentication exists; empty until then.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {}

/// What the core knows of a request besides its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The authenticated caller, if any.
    pub auth: Option<AuthInfo>,
    /// The client asked (clientv3's `WithRequireLeader`) to be refused, and its streams ended,
    /// while there is no leader.
    pub require_leader: bool,
}

impl RequestContext {
    /// The context a request's headers (gRPC metadata, or the gateway's HTTP headers) give.
    pub fn from_headers(headers: &http::HeaderMap) -> RequestContext {
        RequestContext {
            auth: None,
            require_leader: headers
                .get(REQUIRE_LEADER_KEY)
                .is_some_and(|v| v.as_bytes() == REQUIRE_LEADER_VALUE.as_bytes()),
        }
    }
}

/// etcd's checks before serving `rpc` (a gRPC method path) to the caller in `ctx`.
pub fn admit(server: &EtcdServer, ctx: &RequestContext, rpc: &str) -> Result<()> {
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
    Ok(())
}
