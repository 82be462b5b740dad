//! A traffic client: sends the history's requests through a real etcd client and records
//! each one, with its outcome, in the `Recorder`.
//!
//! A request that gets no answer within the timeout is recorded `Unknown`; one that fails
//! is recorded as the error. Either may still have taken effect, which is what the checker
//! assumes. After a failure the client moves on to the next member, as clients do when
//! their endpoint goes away.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, GetOptions, GetResponse, LeaseGrantOptions,
    PutOptions, Txn, TxnOp as EtcdTxnOp, TxnOpResponse as EtcdTxnOpResponse,
};
use oxcd_testkit::connect;

use crate::history::{
    ClientId, Compare, KeyValue, Outcome, RangeRequest, RangeResponse, Recorder, Request, Response,
    ResponseBody, TxnOp, TxnOpResponse, TxnRequest,
};

/// How long a client waits after a failed request before sending the next.
const FAILURE_BACKOFF: Duration = Duration::from_millis(100);

/// One client of the cluster, recording what it does.
pub struct RecordingClient {
    pub id: ClientId,
    endpoints: Vec<String>,
    /// The member this client talks to, as an index into `endpoints`.
    current: usize,
    client: Option<Client>,
    recorder: Arc<Recorder>,
    timeout: Duration,
}

impl RecordingClient {
    /// A client of one member at a time, starting with `endpoints[id % len]`.
    pub fn new(
        id: ClientId,
        endpoints: Vec<String>,
        recorder: Arc<Recorder>,
        timeout: Duration,
    ) -> Self {
        let current = id as usize % endpoints.len().max(1);
        RecordingClient {
            id,
            endpoints,
            current,
            client: None,
            recorder,
            timeout,
        }
    }

    /// Sends `request` and records it and its outcome.
    pub async fn execute(&mut self, request: Request) -> Outcome {
        let operation = self.recorder.invoke(self.id, request.clone());
        let outcome = match self.client().await {
            Ok(mut client) => {
                match tokio::time::timeout(self.timeout, send(&mut client, &request)).await {
                    Ok(Ok(response)) => Outcome::Response(response),
                    Ok(Err(error)) if connection_refused(&error) => {
                        Outcome::NotSent(error.to_string())
                    }
                    Ok(Err(error)) => Outcome::Error(error.to_string()),
                    Err(_) => Outcome::Unknown,
                }
            }
            Err(error) => Outcome::NotSent(error.to_string()),
        };
        self.recorder.complete(operation, outcome.clone());
        if !matches!(outcome, Outcome::Response(_)) {
            self.next_member();
            // Like real clients, back off a little before trying again.
            tokio::time::sleep(FAILURE_BACKOFF).await;
        }
        outcome
    }

    /// Sends one lease keep-alive; not recorded (the checker does not model expiry).
    /// Returns whether the lease was renewed.
    pub async fn keep_alive(&mut self, lease: i64) -> bool {
        let Ok(mut client) = self.client().await else {
            return false;
        };
        let renew = async {
            let (mut keeper, mut responses) = client.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            Ok::<_, etcd_client::Error>(responses.message().await?.is_some_and(|r| r.ttl() > 0))
        };
        let renewed = matches!(
            tokio::time::timeout(self.timeout, renew).await,
            Ok(Ok(true))
        );
        if !renewed {
            self.next_member();
        }
        renewed
    }

    async fn client(&mut self) -> crate::error::Result<Client> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let endpoint = self.endpoints[self.current].clone();
        let client = connect(&[endpoint]).await?;
        self.client = Some(client.clone());
        Ok(client)
    }

    fn next_member(&mut self) {
        self.current = (self.current + 1) % self.endpoints.len().max(1);
        self.client = None;
    }
}

/// Whether the request failed because the member refused the connection: then not a byte
/// of it was sent.
fn connection_refused(error: &etcd_client::Error) -> bool {
    // etcd_client's error does not chain its sources; start from what it wraps.
    let mut source: Option<&(dyn std::error::Error + 'static)> = match error {
        etcd_client::Error::GRpcStatus(status) => Some(status),
        etcd_client::Error::TransportError(transport) => Some(transport),
        other => Some(other),
    };
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// Sends one request and translates the answer into the history's terms.
async fn send(client: &mut Client, request: &Request) -> Result<Response, etcd_client::Error> {
    let (revision, body) = match request {
        Request::Range(range) => {
            let answer = client
                .get(range.key.as_str(), Some(get_options(range)))
                .await?;
            (
                revision(answer.header()),
                ResponseBody::Range(range_response(&answer)),
            )
        }
        Request::Put(put) => {
            let options = PutOptions::new().with_lease(put.lease);
            let answer = client
                .put(put.key.as_str(), put.value.as_str(), Some(options))
                .await?;
            (revision(answer.header()), ResponseBody::Put)
        }
        Request::Delete(delete) => {
            let answer = client.delete(delete.key.as_str(), None).await?;
            let deleted = answer.deleted();
            (revision(answer.header()), ResponseBody::Delete { deleted })
        }
        Request::Txn(txn) => {
            let answer = client.txn(etcd_txn(txn)).await?;
            let results = answer.op_responses().iter().map(txn_op_response).collect();
            let body = ResponseBody::Txn {
                succeeded: answer.succeeded(),
                results,
            };
            (revision(answer.header()), body)
        }
        Request::LeaseGrant { id, ttl } => {
            let options = LeaseGrantOptions::new().with_id(*id);
            let answer = client.lease_grant(*ttl, Some(options)).await?;
            (revision(answer.header()), ResponseBody::LeaseGrant)
        }
        Request::LeaseRevoke { id } => {
            let answer = client.lease_revoke(*id).await?;
            (revision(answer.header()), ResponseBody::LeaseRevoke)
        }
        Request::Compact { revision: at } => {
            let answer = client.compact(*at, None).await?;
            (revision(answer.header()), ResponseBody::Compact)
        }
    };
    Ok(Response { revision, body })
}

fn revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

fn get_options(range: &RangeRequest) -> GetOptions {
    let mut options = GetOptions::new();
    if range.prefix {
        options = options.with_prefix();
    }
    if range.limit > 0 {
        options = options.with_limit(range.limit);
    }
    if range.revision > 0 {
        options = options.with_revision(range.revision);
    }
    options
}

fn range_response(answer: &GetResponse) -> RangeResponse {
    RangeResponse {
        kvs: answer.kvs().iter().map(key_value).collect(),
        count: answer.count(),
    }
}

/// A wire kv in the history's terms.
pub fn key_value(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: String::from_utf8_lossy(kv.value()).into_owned(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    }
}

fn etcd_txn(txn: &TxnRequest) -> Txn {
    let compares: Vec<EtcdCompare> = txn
        .compares
        .iter()
        .map(|compare| match compare {
            Compare::ModRevision { key, equals } => {
                EtcdCompare::mod_revision(key.as_str(), CompareOp::Equal, *equals)
            }
            Compare::CreateRevision { key, equals } => {
                EtcdCompare::create_revision(key.as_str(), CompareOp::Equal, *equals)
            }
            Compare::Version { key, equals } => {
                EtcdCompare::version(key.as_str(), CompareOp::Equal, *equals)
            }
            Compare::Value { key, equals } => {
                EtcdCompare::value(key.as_str(), CompareOp::Equal, equals.as_str())
            }
        })
        .collect();
    let ops = |ops: &[TxnOp]| -> Vec<EtcdTxnOp> {
        ops.iter()
            .map(|op| match op {
                TxnOp::Range(range) => EtcdTxnOp::get(range.key.as_str(), Some(get_options(range))),
                TxnOp::Put(put) => EtcdTxnOp::put(
                    put.key.as_str(),
                    put.value.as_str(),
                    Some(PutOptions::new().with_lease(put.lease)),
                ),
                TxnOp::Delete(delete) => EtcdTxnOp::delete(delete.key.as_str(), None),
            })
            .collect()
    };
    Txn::new()
        .when(compares)
        .and_then(ops(&txn.success))
        .or_else(ops(&txn.failure))
}

fn txn_op_response(response: &EtcdTxnOpResponse) -> TxnOpResponse {
    match response {
        EtcdTxnOpResponse::Get(get) => TxnOpResponse::Range(range_response(get)),
        EtcdTxnOpResponse::Put(_) => TxnOpResponse::Put,
        EtcdTxnOpResponse::Delete(delete) => TxnOpResponse::Delete {
            deleted: delete.deleted(),
        },
        EtcdTxnOpResponse::Txn(_) => unreachable!("the traffic sends no nested transactions"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_recognised() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let options = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(2));
        let endpoint = format!("http://127.0.0.1:{port}");
        let error = match Client::connect([endpoint.as_str()], Some(options)).await {
            Err(error) => error,
            Ok(mut client) => client.get("k", None).await.expect_err("nobody listens"),
        };
        assert!(connection_refused(&error), "{error:?}");
    }
}
