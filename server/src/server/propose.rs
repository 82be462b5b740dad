//! Where requests go: proposals and linearizable reads are answered by the leader. A
//! follower forwards proposals to it over the peer port and asks it for a read index.
//!
//! During an election there is no leader to ask: requests wait for one (polling raft's
//! metrics) until the request deadline, then fail with etcd's timeout error.

use std::time::{Duration, Instant};

use openraft::ReadPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft::error::LinearizableReadError;
use prost::Message;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::metrics::METRICS;
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, CompactionResponse, DeleteRangeResponse,
    LeaseGrantResponse, LeaseRevokeResponse, PutResponse, ResponseHeader, TxnResponse,
};
use crate::proto::oxcdpb::peer_client::PeerClient;
use crate::proto::oxcdpb::{
    AuthHeader, InternalRequest, ReadIndexRequest, internal_request, internal_response,
};
use crate::raft::network::peer_channel;
use crate::typ::{self, Command, MemberNode};

use super::EtcdServer;

/// How often a request waiting for a leader looks again.
const LEADER_POLL: Duration = Duration::from_millis(20);

/// Where the leader is, as far as this member knows.
pub(super) enum Leader {
    Me,
    Other(MemberNode),
    Unknown,
}

impl EtcdServer {
    pub(super) fn leader_node(&self, leader_id: Option<u64>, node: Option<MemberNode>) -> Leader {
        match (leader_id, node) {
            (Some(id), _) if id == self.member_id => Leader::Me,
            (Some(_), Some(node)) => Leader::Other(node),
            _ => Leader::Unknown,
        }
    }

    /// A client for the peer port of `node`, reused across requests.
    pub(crate) fn peer(&self, node: &MemberNode) -> Result<PeerClient<Channel>> {
        let key = node.peer_urls.first().cloned().unwrap_or_default();
        let mut peers = self.peers.lock().expect("peer cache poisoned");
        if let Some(c) = peers.get(&key) {
            return Ok(c.clone());
        }
        let client = PeerClient::new(peer_channel(node).map_err(Error::Internal)?)
            .max_decoding_message_size(usize::MAX);
        peers.insert(key, client.clone());
        Ok(client)
    }

    /// Waits until a leader is known or `deadline` passes.
    pub(crate) async fn await_leader(&self, deadline: Instant) -> Result<()> {
        let mut metrics = self.raft.metrics();
        loop {
            if metrics.borrow_watched().current_leader.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout);
            }
            let _ = tokio::time::timeout(LEADER_POLL, metrics.changed()).await;
        }
    }

    /// Replicates a command through the leader and returns what applying it produced.
    ///
    /// As etcd's quota check: a command that would grow a database already over
    /// `--quota-backend-bytes` fails, and raises this member's NOSPACE alarm, after which
    /// every member refuses such commands until the alarm is cleared.
    pub async fn propose(
        &self,
        request: internal_request::Request,
    ) -> Result<internal_response::Response> {
        self.propose_as(None, request).await
    }

    /// [`EtcdServer::propose`] on behalf of a user: applying it checks `header`'s permissions
    /// against the auth state of that moment.
    pub async fn propose_as(
        &self,
        header: Option<AuthHeader>,
        request: internal_request::Request,
    ) -> Result<internal_response::Response> {
        if crate::apply::grows_database(&request) {
            if self.over_quota() {
                self.raise_nospace().await;
                return Err(Error::NoSpace);
            }
            if self.disk_refuses_growth() {
                return Err(Error::NoSpace);
            }
        }
        self.propose_unchecked(header, request).await
    }

    /// Raises this member's NOSPACE alarm unless it is up already. A failure is only
    /// logged: the caller's request fails with "database space exceeded" either way, and
    /// the next one over the quota tries again.
    async fn raise_nospace(&self) {
        let raised = self.state.read().kv.alarms.list(AlarmType::Nospace as i32);
        if raised.iter().any(|a| a.member_id == self.member_id) {
            return;
        }
        let alarm = internal_request::Request::Alarm(AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.member_id,
            alarm: AlarmType::Nospace as i32,
        });
        match self.propose_unchecked(None, alarm).await {
            Ok(_) => tracing::warn!(
                quota = ?self.quota_bytes,
                db_size = self.db_size(),
                "database space exceeded: NOSPACE alarm raised"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot raise the NOSPACE alarm"),
        }
    }

    /// [`EtcdServer::propose`] without the quota check.
    async fn propose_unchecked(
        &self,
        header: Option<AuthHeader>,
        request: internal_request::Request,
    ) -> Result<internal_response::Response> {
        let cmd = InternalRequest {
            request: Some(request),
            header,
        };
        if cmd.encoded_len() > self.limits.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let _pending = Pending::start();
        let deadline = Instant::now() + self.request_timeout;
        let result = loop {
            let attempt = tokio::time::timeout_at(deadline.into(), self.propose_once(&cmd));
            match attempt.await {
                Err(_) => break Err(Error::Timeout),
                Ok(Err(Error::NoLeader)) => {
                    if let Err(e) = self.pause_for_leader(deadline).await {
                        break Err(e);
                    }
                }
                Ok(result) => break result,
            }
        };
        // Failed to commit, as etcd counts them (not a request that applying refused).
        if let Err(Error::Timeout | Error::NoLeader | Error::Stopped | Error::Internal(_)) = &result
        {
            METRICS.proposals_failed.inc();
        }
        result
    }

    /// Proposes `request` and returns the response applying it produced, as the type the
    /// caller expects, with its header completed.
    pub async fn propose_expect<T: AppliedResponse>(
        &self,
        header: Option<AuthHeader>,
        request: internal_request::Request,
    ) -> Result<T> {
        let mut response = T::from_applied(self.propose_as(header, request).await?)
            .ok_or_else(|| Error::internal("unexpected apply response"))?;
        let header = response.header_mut();
        *header = self.fill_header(header.take());
        Ok(response)
    }

    /// Between attempts: waits for a leader, then a moment more, so that a member with a stale
    /// view of the leader (or a new leader whose lease is not yet established) retries at a
    /// polling pace rather than spinning. Fails once `deadline` has passed.
    pub(crate) async fn pause_for_leader(&self, deadline: Instant) -> Result<()> {
        self.await_leader(deadline).await?;
        tokio::time::sleep_until(deadline.min(Instant::now() + LEADER_POLL).into()).await;
        if Instant::now() >= deadline {
            return Err(Error::Timeout);
        }
        Ok(())
    }

    async fn propose_once(&self, cmd: &InternalRequest) -> Result<internal_response::Response> {
        let err = match self.raft.client_write(Command(cmd.clone())).await {
            Ok(resp) => return decode_apply(resp.data.0),
            Err(e) => e,
        };
        match err.api_error() {
            Some(typ::ClientWriteError::ForwardToLeader(f)) => {
                match self.leader_node(f.leader_id, f.leader_node.clone()) {
                    Leader::Other(node) => {
                        let resp = self
                            .peer(&node)?
                            .propose(cmd.clone())
                            .await
                            .map_err(forwarded_proposal_error)?
                            .into_inner();
                        // Like etcd, answer once this member has applied the entry too, so
                        // the client's next serializable read or new watch here sees it.
                        self.state.wait_applied(resp.index).await?;
                        decode_apply(resp.response.unwrap_or_default())
                    }
                    Leader::Me | Leader::Unknown => Err(Error::NoLeader),
                }
            }
            // Appended, then lost to a leader change: whether it commits is unknown.
            Some(typ::ClientWriteError::LogEntryDiscarded(_)) => Err(Error::Timeout),
            Some(other) => Err(Error::internal(other)),
            None => Err(Error::Stopped),
        }
    }

    /// A proposal forwarded by another member: served only if this member leads. Returns what
    /// applying it produced and its log index.
    pub async fn propose_local(
        &self,
        cmd: InternalRequest,
    ) -> Result<(internal_response::Response, u64)> {
        let grows = cmd
            .request
            .as_ref()
            .is_some_and(crate::apply::grows_database);
        if grows && self.disk_refuses_growth() {
            return Err(Error::NoSpace);
        }
        let write = self.raft.client_write(Command(cmd));
        match tokio::time::timeout(self.request_timeout, write).await {
            Err(_) => Err(Error::Timeout),
            Ok(Ok(resp)) => Ok((decode_apply(resp.data.0)?, resp.log_id.index)),
            Ok(Err(e)) => Err(match e.api_error() {
                Some(typ::ClientWriteError::ForwardToLeader(_)) => Error::NotLeader,
                Some(typ::ClientWriteError::LogEntryDiscarded(_)) => Error::Timeout,
                Some(other) => Error::internal(other),
                None => Error::Stopped,
            }),
        }
    }

    /// Waits until this member has applied everything committed before the call (ReadIndex).
    pub async fn read_index(&self) -> Result<()> {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let attempt = tokio::time::timeout_at(deadline.into(), self.read_index_once());
            match attempt.await {
                Err(_) => return Err(Error::Timeout),
                Ok(Err(Error::NoLeader)) => self.pause_for_leader(deadline).await?,
                Ok(result) => return result,
            }
        }
    }

    async fn read_index_once(&self) -> Result<()> {
        let err = match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        match err.api_error() {
            Some(LinearizableReadError::ForwardToLeader(f)) => {
                match self.leader_node(f.leader_id, f.leader_node.clone()) {
                    Leader::Other(node) => {
                        let index = self
                            .peer(&node)?
                            .read_index(ReadIndexRequest {})
                            .await
                            .map_err(forwarded_error)?
                            .into_inner()
                            .index;
                        self.state.wait_applied(index).await
                    }
                    Leader::Me | Leader::Unknown => Err(Error::NoLeader),
                }
            }
            Some(LinearizableReadError::QuorumNotEnough(_)) => Err(Error::NoLeader),
            None => Err(Error::Stopped),
        }
    }

    /// The read index a follower must reach, answered by the leader after confirming its
    /// leadership with a quorum.
    pub async fn leader_read_index(&self) -> Result<u64> {
        let read = self.raft.ensure_linearizable(ReadPolicy::ReadIndex);
        match tokio::time::timeout(self.request_timeout, read).await {
            Err(_) => Err(Error::Timeout),
            Ok(Ok(read_log_id)) => Ok(read_log_id.log_id().index),
            Ok(Err(e)) => Err(match e.api_error() {
                Some(LinearizableReadError::ForwardToLeader(_)) => Error::NotLeader,
                Some(_) => Error::Timeout,
                None => Error::Stopped,
            }),
        }
    }
}

/// A response that applying a command produces: one variant of the applied response.
pub trait AppliedResponse: Sized {
    fn from_applied(applied: internal_response::Response) -> Option<Self>;
    fn header_mut(&mut self) -> &mut Option<ResponseHeader>;
}

macro_rules! applied_responses {
    ($($variant:ident => $response:ty),* $(,)?) => {$(
        impl AppliedResponse for $response {
            fn from_applied(applied: internal_response::Response) -> Option<Self> {
                match applied {
                    internal_response::Response::$variant(r) => Some(r),
                    _ => None,
                }
            }
            fn header_mut(&mut self) -> &mut Option<ResponseHeader> {
                &mut self.header
            }
        }
    )*};
}

applied_responses!(
    Put => PutResponse,
    DeleteRange => DeleteRangeResponse,
    Txn => TxnResponse,
    Compaction => CompactionResponse,
    LeaseGrant => LeaseGrantResponse,
    LeaseRevoke => LeaseRevokeResponse,
    Alarm => AlarmResponse,
);

fn decode_apply(
    resp: crate::proto::oxcdpb::InternalResponse,
) -> Result<internal_response::Response> {
    if resp.error != 0 {
        return Err(Error::from_apply_code(resp.error));
    }
    resp.response
        .ok_or_else(|| Error::internal("empty apply response"))
}

/// An error from a forwarded request that is safe to repeat: the leader's etcd error as it
/// sent it, or "no leader" (so the caller waits for the next one and tries again) when the
/// member asked could not be reached or no longer leads.
pub(super) fn forwarded_error(s: tonic::Status) -> Error {
    match s.code() {
        _ if s.message() == Error::NotLeader.to_string() => Error::NoLeader,
        tonic::Code::Unavailable if !s.message().starts_with("etcdserver:") => Error::NoLeader,
        _ => Error::from(s),
    }
}

/// An error from a forwarded proposal. Repeating a proposal is only safe when the leader
/// cannot have appended it: it refused it as not leader, or the connection was never made.
/// When the connection broke mid-request the outcome is unknown, and a retry could apply
/// the command twice, so the client gets etcd's timeout (the outcome may still surface).
pub(crate) fn forwarded_proposal_error(s: tonic::Status) -> Error {
    let broke_mid_request = s.code() == tonic::Code::Unavailable
        && !s.message().starts_with("etcdserver:")
        && !never_sent(&s);
    if broke_mid_request {
        return Error::Timeout;
    }
    forwarded_error(s)
}

/// True when the call failed while connecting, so the peer never saw the request.
fn never_sent(s: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::oxcdpb::MembersRequest;

    #[tokio::test]
    async fn refused_connections_are_known_unsent() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let node = MemberNode {
            peer_urls: vec![format!("http://127.0.0.1:{port}")],
            ..Default::default()
        };
        let err = PeerClient::new(peer_channel(&node).unwrap())
            .members(MembersRequest {})
            .await
            .unwrap_err();
        assert!(never_sent(&err), "{err:?}");
        assert_eq!(forwarded_proposal_error(err), Error::NoLeader);
        assert_eq!(
            forwarded_proposal_error(tonic::Status::unavailable("connection reset")),
            Error::Timeout
        );
        assert_eq!(
            forwarded_proposal_error(Error::NotLeader.into()),
            Error::NoLeader
        );
        assert_eq!(
            forwarded_error(Error::Timeout.into()),
            Error::Remote {
                code: tonic::Code::Unavailable,
                message: Error::Timeout.to_string()
            }
        );
    }
}

/// A proposal in flight, counted in `etcd_server_proposals_pending` until dropped.
struct Pending;

impl Pending {
    fn start() -> Pending {
        METRICS.proposals_pending.inc();
        Pending
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        METRICS.proposals_pending.dec();
    }
}
