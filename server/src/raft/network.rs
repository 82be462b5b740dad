//! The peer network: a tonic client per peer on the peer port. Raft messages travel as
//! bincode inside protobuf bytes; snapshots are streamed from their file in chunks.
//!
//! Test-only hook: when the variable `OXCD_PEER_ROUTES` is set, as
//! `peerURL=proxyURL,peerURL=proxyURL`, this member dials the proxy URL wherever it would
//! dial the peer URL (raft messages, forwarded requests, the join handshake). Robustness
//! tests route each directed link through a proxy of their own this way, to cut, delay or
//! blackhole one direction of one link. Production deployments never set it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openraft::alias::{SnapshotOf, VoteOf};
use openraft::base::{BoxFuture, BoxStream};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, stream_append_sequential};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RaftNetworkV2};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncReadExt;
use tonic::transport::{Channel, Endpoint};

use super::peer_activity::{PeerActivity, PeerStatus};
use super::state_machine::SnapshotFile;
use crate::proto::oxcdpb::peer_client::PeerClient as PeerRpc;
use crate::proto::oxcdpb::{RaftBytes, SnapshotChunk};
use crate::tls::PortTls;
use crate::tls::connector::TlsConnector;
use crate::typ::{MemberNode, TypeConfig};

/// A replication stream with requests outstanding fails once the peer has not answered for
/// this many request timeouts (openraft's is the heartbeat interval). Pipelined requests
/// queue at the peer, so an answer can take several heartbeats under load (with one, 256
/// clients' puts on 3 members restarted replication every few seconds, stalling writes for
/// hundreds of milliseconds); a peer that is gone is still noticed within a second at the
/// default heartbeat.
const STREAM_STALL_TTLS: u32 = 10;

/// Snapshot files are sent in pieces of this size.
const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// The variable naming a proxy for each peer URL; see the module doc.
pub const PEER_ROUTES_VAR: &str = "OXCD_PEER_ROUTES";

/// The peer port's TLS, which members dial each other with (`None`: plaintext only). One
/// per process, set at start like the routes below, because every channel to a peer is
/// made here, from raft's network and from the forwarding and membership code alike.
static PEER_TLS: OnceLock<Option<Arc<PortTls>>> = OnceLock::new();

/// Sets the TLS that [`peer_channel`] dials https peer URLs with; the first call wins.
pub fn use_peer_tls(tls: Option<Arc<PortTls>>) {
    let _ = PEER_TLS.set(tls);
}

/// An endpoint for another member's `url` (peer or client URL) and the connector to dial
/// it with: plaintext for http, the peer port's TLS for https.
pub fn peer_endpoint(url: &str) -> Result<(Endpoint, TlsConnector), String> {
    let tls = PEER_TLS.get().cloned().flatten().map(TlsConnector::port);
    crate::tls::connector::endpoint(url, tls)
}

/// A lazily connecting channel to the first peer URL of `node`.
pub fn peer_channel(node: &MemberNode) -> Result<Channel, String> {
    let url = node
        .peer_urls
        .first()
        .ok_or_else(|| format!("member {} has no peer URL", node.name))?;
    let url = routed(url);
    let (endpoint, connector) =
        peer_endpoint(&url).map_err(|e| format!("bad peer URL {url}: {e}"))?;
    Ok(endpoint
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .connect_with_connector_lazy(connector))
}

/// The URL to dial for the peer URL `url`: its proxy under `OXCD_PEER_ROUTES`, else itself.
fn routed(url: &str) -> String {
    static ROUTES: OnceLock<HashMap<String, String>> = OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        std::env::var(PEER_ROUTES_VAR)
            .map(|spec| parse_routes(&spec))
            .unwrap_or_default()
    });
    routes
        .get(url.trim_end_matches('/'))
        .cloned()
        .unwrap_or_else(|| url.to_owned())
}

/// Parses `peerURL=proxyURL,...`; entries without `=` are ignored.
fn parse_routes(spec: &str) -> HashMap<String, String> {
    spec.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(peer, proxy)| {
            let peer = peer.trim().trim_end_matches('/');
            (peer.to_owned(), proxy.trim().to_owned())
        })
        .collect()
}

/// Creates a client per peer.
#[derive(Clone)]
pub struct PeerNetwork {
    /// Where every client reports its peer's answers and failures.
    pub activity: Arc<PeerActivity>,
}

/// A client for one peer.
pub struct PeerClient {
    target: u64,
    /// The peer's activity, shared with its other clients (replication, heartbeats, votes).
    activity: Arc<PeerStatus>,
    rpc: Result<PeerRpc<Channel>, String>,
    /// The peer has no `StreamAppend` (an older version): replicate one request at a time.
    sequential: bool,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &MemberNode) -> PeerClient {
        let rpc = peer_channel(node).map(|c| {
            PeerRpc::new(c)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX)
        });
        PeerClient {
            target,
            activity: self.activity.peer(target),
            rpc,
            sequential: false,
        }
    }
}

fn encode<T: Serialize>(v: &T) -> Result<RaftBytes, RPCError<TypeConfig>> {
    let data =
        bincode::serialize(v).map_err(|e| RPCError::Network(NetworkError::from_string(e)))?;
    Ok(RaftBytes { data })
}

fn decode<T: DeserializeOwned>(b: RaftBytes) -> Result<T, RPCError<TypeConfig>> {
    bincode::deserialize(&b.data).map_err(|e| RPCError::Network(NetworkError::from_string(e)))
}

fn status_error(target: u64, s: tonic::Status) -> RPCError<TypeConfig> {
    let msg = format!("peer {target:x}: {} {}", s.code(), s.message());
    match reached_peer(&s) {
        false => RPCError::Unreachable(Unreachable::from_string(msg)),
        true => RPCError::Network(NetworkError::from_string(msg)),
    }
}

impl PeerClient {
    fn rpc(&self) -> Result<PeerRpc<Channel>, RPCError<TypeConfig>> {
        self.rpc
            .clone()
            .map_err(|e| RPCError::Unreachable(Unreachable::from_string(e)))
    }

    fn request<T>(msg: T, option: &RPCOption) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(option.hard_ttl());
        req
    }

    /// Reports the outcome of a call to the peer's activity. Any answer counts, even a
    /// refusal (a stale term, an unimplemented call): the link works.
    fn observe<T>(&self, result: Result<T, tonic::Status>) -> Result<T, RPCError<TypeConfig>> {
        match result {
            Ok(answer) => {
                self.activity.answered();
                Ok(answer)
            }
            Err(s) => {
                observe_status(&self.activity, &s);
                Err(status_error(self.target, s))
            }
        }
    }
}

/// Reports a failed call to the peer's activity, unless the peer itself answered it.
fn observe_status(activity: &PeerStatus, s: &tonic::Status) {
    match reached_peer(s) {
        true => activity.answered(),
        false => activity.failed(),
    }
}

/// Whether a call that failed with `s` reached the peer (it answered with an error of its
/// own) rather than failing on the way.
fn reached_peer(s: &tonic::Status) -> bool {
    !matches!(
        s.code(),
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
    )
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let started = std::time::Instant::now();
        let mut rpc_client = self.rpc()?;
        let resp = rpc_client
            .append_entries(Self::request(encode(&rpc)?, &option))
            .await;
        let resp = self.observe(resp)?;
        crate::metrics::METRICS
            .peer_round_trip
            .with_label_values(&[format!("{:x}", self.target)])
            .observe(started.elapsed().as_secs_f64());
        self.activity.round_trip(started.elapsed());
        decode(resp.into_inner())
    }

    /// Replication over one `StreamAppend` call: requests go out as raft produces them,
    /// without waiting for the answers to earlier ones (sent one by one, each waited for the
    /// answer to the one before, a round trip per request). The answers come back in order.
    /// A peer that leaves outstanding requests unanswered for [`STREAM_STALL_TTLS`] request
    /// timeouts is reported unreachable; an idle stream may stay open.
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<
            BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: tokio_stream::Stream<Item = AppendEntriesRequest<TypeConfig>>
            + OptionalSend
            + Unpin
            + 'static,
    {
        if self.sequential {
            return stream_append_sequential(self, input, option);
        }
        Box::pin(async move {
            use tokio_stream::StreamExt;

            let (target, ttl) = (self.target, option.hard_ttl());
            let stall = ttl * STREAM_STALL_TTLS;
            let outstanding = Outstanding::default();
            let sending = outstanding.clone();
            let requests = input.map_while(move |request| {
                let bytes = encode(&request).ok()?;
                sending.sent();
                Some(bytes)
            });
            let opened = tokio::time::timeout(ttl, self.rpc()?.stream_append(requests)).await;
            let activity = self.activity.clone();
            if let Ok(Err(s)) = &opened {
                observe_status(&activity, s);
            }
            let answers = match opened {
                Err(_) => {
                    activity.failed();
                    return Err(RPCError::Unreachable(Unreachable::from_string(format!(
                        "peer {target:x}: no answer to StreamAppend within {ttl:?}"
                    ))));
                }
                Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => {
                    self.sequential = true;
                    return Err(status_error(target, s));
                }
                Ok(Err(s)) => return Err(status_error(target, s)),
                Ok(Ok(answers)) => {
                    activity.answered();
                    answers.into_inner()
                }
            };
            let results = answers_in_order(target, stall, outstanding, activity, answers);
            let results: BoxStream<'s, _> = Box::pin(results);
            Ok(results)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let resp = self
            .rpc()?
            .vote(Self::request(encode(&rpc)?, &option))
            .await;
        let resp = self.observe(resp)?;
        decode(resp.into_inner())
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut rpc_client = self.rpc()?;
        let resp = rpc_client
            .transfer_leader(Self::request(encode(&req)?, &option))
            .await;
        let resp = self.observe(resp)?;
        decode(resp.into_inner())
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let header = encode(&(vote, snapshot.meta.clone()))?.data;
        snapshot
            .snapshot
            .written()
            .await
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let mut file = tokio::fs::File::open(&snapshot.snapshot.path)
            .await
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let chunks = async_stream::stream! {
            let mut header = Some(header);
            loop {
                let mut data = vec![0u8; SNAPSHOT_CHUNK_BYTES];
                let n = match file.read(&mut data).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading snapshot file failed");
                        break;
                    }
                };
                data.truncate(n);
                let first = header.take();
                if n == 0 && first.is_none() {
                    break;
                }
                yield SnapshotChunk { header: first.unwrap_or_default(), data };
                if n == 0 {
                    break;
                }
            }
        };
        let mut rpc = self.rpc()?;
        let send = rpc.install_snapshot(chunks);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            resp = send => {
                let resp = self.observe(resp).map_err(StreamingError::from)?;
                Ok(decode(resp.into_inner())?)
            }
        }
    }
}

/// The requests of a replication stream not answered yet, by when each went out. Answers come
/// in order, so each one is the oldest's: it ends that request's round trip
/// (`etcd_network_peer_round_trip_time_seconds`, which etcd measures with probes).
#[derive(Clone, Default)]
struct Outstanding(
    std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<std::time::Instant>>>,
);

impl Outstanding {
    fn times(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<std::time::Instant>> {
        self.0.lock().expect("outstanding requests lock poisoned")
    }

    fn sent(&self) {
        self.times().push_back(std::time::Instant::now());
    }

    fn answered(&self, round_trip: &prometheus::Histogram, activity: &PeerStatus) {
        let sent = self.times().pop_front();
        if let Some(sent) = sent {
            round_trip.observe(sent.elapsed().as_secs_f64());
            activity.round_trip(sent.elapsed());
        }
    }

    fn is_empty(&self) -> bool {
        self.times().is_empty()
    }
}

/// The peer's answers to a stream of append requests, in order, ending at the first failure.
/// Outstanding requests unanswered for `stall` make the peer unreachable; an idle stream may
/// stay open.
fn answers_in_order(
    target: u64,
    stall: std::time::Duration,
    outstanding: Outstanding,
    activity: Arc<PeerStatus>,
    mut answers: tonic::Streaming<RaftBytes>,
) -> impl tokio_stream::Stream<Item = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>
{
    use tokio_stream::StreamExt;
    let round_trip = crate::metrics::METRICS
        .peer_round_trip
        .with_label_values(&[format!("{target:x}")]);
    async_stream::stream! {
        loop {
            let next = match tokio::time::timeout(stall, answers.next()).await {
                Ok(next) => next,
                Err(_) if outstanding.is_empty() => continue,
                Err(_) => {
                    activity.failed();
                    yield Err(RPCError::Unreachable(Unreachable::from_string(format!(
                        "peer {target:x}: no answer to replication within {stall:?}"
                    ))));
                    break;
                }
            };
            match next {
                None => break,
                Some(Err(s)) => {
                    observe_status(&activity, &s);
                    yield Err(status_error(target, s));
                    break;
                }
                Some(Ok(bytes)) => {
                    activity.answered();
                    outstanding.answered(&round_trip, &activity);
                    let result = decode::<StreamAppendResult<TypeConfig>>(bytes);
                    let last = !matches!(result, Ok(Ok(_)));
                    yield result;
                    if last {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_routes;

    #[test]
    fn routes_map_peer_urls_to_proxies() {
        let routes = parse_routes(
            "http://127.0.0.1:2380/=http://127.0.0.1:9001, http://127.0.0.1:2480=http://127.0.0.1:9002,junk",
        );
        assert_eq!(routes.len(), 2);
        assert_eq!(routes["http://127.0.0.1:2380"], "http://127.0.0.1:9001");
        assert_eq!(routes["http://127.0.0.1:2480"], "http://127.0.0.1:9002");
    }
}
