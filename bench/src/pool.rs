//! The connections a run shares among its clients: `--conns` gRPC connections to the
//! `--target` endpoints, handed out round-robin, and the event-loop threads they live on.
//!
//! Like wrk's, the load generator runs one single-threaded event loop per thread
//! (`--threads`, at most one per connection), and each connection, with the clients that
//! use it, stays on one of them: a request, its connection's writes and reads, and the
//! client's next request are handled on one thread, without hand-offs between threads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Channel, Client};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tower::util::BoxCloneSyncService;

use crate::cli::{Common, Target};
use crate::error::Error;
use crate::tls::{self, Io};

/// How long to look for a leader before giving up (an election may be under way).
const LEADER_DEADLINE: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings on an idle connection, and how long one may go unanswered.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The etcd v3 methods whose requests are streams; every other request is one message.
const CLIENT_STREAMING: &[&str] = &[
    "/etcdserverpb.Watch/Watch",
    "/etcdserverpb.Lease/LeaseKeepAlive",
];

/// `--conns` connections; each [`Client`] owns one HTTP/2 connection, and its clones share it.
pub struct Pool {
    clients: Vec<Client>,
    /// The event loop each connection lives on, by connection.
    loops: Vec<Handle>,
    /// Declared after `clients`: the loops stop once the connections are dropped.
    _threads: Vec<EventLoop>,
    /// The endpoints the connections go to, for the summary.
    pub endpoints: Vec<String>,
}

impl Pool {
    pub async fn connect(common: &Common) -> Result<Pool, Error> {
        let tls = tls::client_config(common)?;
        let endpoints = match common.target {
            Target::All => common.endpoints.clone(),
            Target::Leader => vec![find_leader(&common.endpoints, tls.as_ref()).await?],
        };
        let conns = common.conns.max(1);
        let threads = (0..common.threads.clamp(1, conns))
            .map(EventLoop::start)
            .collect::<Result<Vec<_>, _>>()?;
        let loops: Vec<Handle> = (0..conns)
            .map(|i| threads[i % threads.len()].handle.clone())
            .collect();
        let token = match &common.user {
            Some(user) => Some(authenticate(&endpoints[0], tls.as_ref(), user).await?),
            None => None,
        };
        let mut clients = Vec::with_capacity(conns);
        for (i, event_loop) in loops.iter().enumerate() {
            let endpoint = endpoints[i % endpoints.len()].clone();
            let token = token.clone();
            let tls = tls.clone();
            let connected = event_loop
                .spawn(async move { connect(&endpoint, tls.as_ref(), token).await })
                .await
                .map_err(|e| Error::Cluster(format!("connecting: {e}")))??;
            clients.push(connected);
        }
        Ok(Pool {
            clients,
            loops,
            _threads: threads,
            endpoints,
        })
    }

    /// The connection for client (or stream) `i`.
    pub fn client(&self, i: usize) -> Client {
        self.clients[i % self.clients.len()].clone()
    }

    /// The event loop of client (or stream) `i`'s connection, where its work belongs.
    pub fn loop_of(&self, i: usize) -> &Handle {
        &self.loops[i % self.loops.len()]
    }

    /// The event loop of each connection, by connection: `loops()[i % conns]` is
    /// [`Pool::loop_of`] `i` (what [`crate::driver::run`] places worker `i` on).
    pub fn loops(&self) -> &[Handle] {
        &self.loops
    }

    pub fn conns(&self) -> usize {
        self.clients.len()
    }
}

/// A thread running a single-threaded tokio runtime until the value is dropped; the tasks
/// still on it (connections) end with it.
struct EventLoop {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl EventLoop {
    fn start(n: usize) -> Result<EventLoop, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("bench-loop-{n}"))
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                })
            })?;
        Ok(EventLoop {
            handle,
            _stop: stop,
        })
    }
}

/// A token for `user` (`name:password`), from `endpoint`.
async fn authenticate(
    endpoint: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    user: &str,
) -> Result<http::HeaderValue, Error> {
    let failed = |reason: String| Error::Connect {
        endpoint: endpoint.to_string(),
        reason,
    };
    let (name, password) = user
        .split_once(':')
        .ok_or_else(|| failed("--user takes name:password".into()))?;
    let client = connect(endpoint, tls, None).await?;
    let token = client
        .auth_client()
        .authenticate(name.to_string(), password.to_string())
        .await
        .map_err(|e| failed(format!("authenticate: {e}")))?;
    token
        .token()
        .parse()
        .map_err(|e| failed(format!("token: {e}")))
}

/// One HTTP/2 connection to `endpoint`, which requests use directly from the client's own
/// task; with `token`, every request carries it. `Client::connect` would put two task
/// hand-offs in front of every request (a balancing
/// buffer, then tonic's channel buffer), which costs the load generator ~5 µs of CPU per
/// request on the cores it shares with the server it measures. An https endpoint is dialed
/// with `tls`.
async fn connect(
    endpoint: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    token: Option<http::HeaderValue>,
) -> Result<Client, Error> {
    let failed = |reason: String| Error::Connect {
        endpoint: endpoint.to_string(),
        reason,
    };
    let uri: http::Uri = endpoint.parse().map_err(|e| failed(format!("{e}")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| failed("no host:port".into()))?
        .clone();
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority.as_str()))
        .await
        .map_err(|_| failed(format!("no connection within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| failed(e.to_string()))?;
    stream
        .set_nodelay(true)
        .map_err(|e| failed(e.to_string()))?;
    let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let stream: Box<dyn Io> = match (https, tls) {
        (false, _) => Box::new(stream),
        (true, Some(config)) => {
            let handshake = tls::handshake(config.clone(), authority.host(), stream);
            Box::new(
                tokio::time::timeout(CONNECT_TIMEOUT, handshake)
                    .await
                    .map_err(|_| failed(format!("no TLS session within {CONNECT_TIMEOUT:?}")))?
                    .map_err(|e| failed(format!("TLS: {e}")))?,
            )
        }
        (true, None) => return Err(failed("an https endpoint needs --cacert".into())),
    };
    let scheme = if https {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    };
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .handshake::<_, tonic::body::Body>(TokioIo::new(stream))
        .await
        .map_err(|e| failed(format!("HTTP/2 handshake: {e}")))?;
    tokio::spawn(connection);
    let service = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        let mut sender = sender.clone();
        let authority = authority.clone();
        let token = token.clone();
        let scheme = scheme.clone();
        async move {
            // tonic gives the path only; HTTP/2 needs the scheme and authority too.
            let (mut head, body) = request.into_parts();
            let mut uri = http::uri::Parts::from(head.uri);
            uri.scheme = Some(scheme.clone());
            uri.authority = Some(authority);
            head.uri = http::Uri::from_parts(uri)?;
            if let Some(token) = token {
                head.headers.insert("token", token);
            }
            let body = if CLIENT_STREAMING.contains(&head.uri.path()) {
                body
            } else {
                // The one request message in hand, so that it goes out with END_STREAM as
                // grpc-go clients send it, rather than an empty DATA frame after it.
                let message = body.collect().await?.to_bytes();
                tonic::body::Body::new(Full::new(message))
            };
            sender.ready().await?;
            let response = sender
                .send_request(http::Request::from_parts(head, body))
                .await?;
            Ok::<_, tower::BoxError>(response.map(tonic::body::Body::new))
        }
    });
    let channel = Channel::Custom(BoxCloneSyncService::new(service));
    Ok(Client::from_channel(channel, None).await?)
}

/// The endpoint whose member is the leader, asking each member for its status.
async fn find_leader(
    endpoints: &[String],
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<String, Error> {
    let deadline = Instant::now() + LEADER_DEADLINE;
    loop {
        for endpoint in endpoints {
            let Ok(mut client) = connect(endpoint, tls, None).await else {
                continue;
            };
            let Ok(status) = client.status().await else {
                continue;
            };
            let member = status.header().map(|h| h.member_id());
            if status.leader() != 0 && member == Some(status.leader()) {
                return Ok(endpoint.clone());
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Cluster(format!(
                "no member of {} reports itself as leader",
                endpoints.join(",")
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
