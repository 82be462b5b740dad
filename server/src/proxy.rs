//! etcd's v2 proxy: a process with no data of its own that forwards the HTTP requests on
//! its client URLs to the cluster's members, for the v2-era deployments that put one on
//! every host. It starts with `--proxy on` (or `readonly`, which forwards only GETs), or
//! when `--discovery` finds the cluster full under `--discovery-fallback proxy`.
//!
//! It learns the cluster's peer URLs once (from `<data-dir>/proxy/cluster`, else the
//! discovery service, else `--initial-cluster`), then asks the members through their peer
//! port for the current membership every `--proxy-refresh-interval` (every second while
//! it knows no member), forwarding to their client URLs and keeping the peer URLs it last
//! saw in the cluster file for its next start. A request goes to the members in a random
//! order, the next one tried when one cannot be reached; a member that failed is left out
//! for `--proxy-failure-wait`. Answers stream back as they come, so `wait=true` long-polls
//! pass through. Like etcd's, the proxy speaks HTTP/1.1 only: gRPC clients need a member.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::seq::SliceRandom;

use crate::config::{Config, ProxyMode};
use crate::error::{Error, Result};
use crate::proto::oxcdpb::MembersRequest;
use crate::proto::oxcdpb::peer_client::PeerClient;
use crate::typ::{MemberNode, StoredMembership};

/// The file under `<data-dir>/proxy` that keeps the cluster's peer URLs.
const CLUSTER_FILE: &str = "cluster";
/// The largest request body the proxy holds to replay on another member.
const MAX_BODY: usize = 32 * 1024 * 1024;
/// Headers that belong to one connection, never forwarded (etcd's list).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// The cluster file's content, in etcd's format (`{"PeerURLs":[...]}`).
#[derive(serde::Serialize, serde::Deserialize)]
struct ClusterFile {
    #[serde(rename = "PeerURLs")]
    peer_urls: Vec<String>,
}

/// A member's client URL and, after a failed request, when it may be tried again.
#[derive(Clone)]
struct Endpoint {
    url: String,
    failed_until: Option<Instant>,
}

/// A running proxy's state.
pub struct Proxy {
    dir: PathBuf,
    readonly: bool,
    failure_wait: Duration,
    refresh_interval: Duration,
    read_timeout: Option<Duration>,
    peer_urls: Mutex<Vec<String>>,
    endpoints: Mutex<Vec<Endpoint>>,
    client: Client<HttpConnector, Body>,
}

/// The data dir's proxy directory, `<data-dir>/proxy`.
pub fn proxy_dir(cfg: &Config) -> PathBuf {
    PathBuf::from(&cfg.member.data_dir).join("proxy")
}

/// Whether the data dir belongs to a proxy (it has a cluster file), as etcd tells a
/// proxy's data dir from a member's on a restart.
pub fn is_proxy_dir(cfg: &Config) -> bool {
    proxy_dir(cfg).join(CLUSTER_FILE).exists()
}

impl Proxy {
    /// A proxy for the cluster whose peer URLs the cluster file keeps, or else
    /// `initial_peer_urls` (from the discovery service or `--initial-cluster`).
    pub fn new(cfg: &Config, initial_peer_urls: Vec<String>) -> Result<Arc<Proxy>> {
        let dir = proxy_dir(cfg);
        std::fs::create_dir_all(&dir)?;
        let peer_urls = match std::fs::read(dir.join(CLUSTER_FILE)) {
            Ok(bytes) => {
                if !cfg.clustering.discovery.is_empty() {
                    tracing::warn!(
                        "discovery token ignored since the proxy has already been initialized; valid cluster file found"
                    );
                }
                let file: ClusterFile = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Internal(format!("{}: {e}", dir.join(CLUSTER_FILE).display()))
                })?;
                file.peer_urls
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => initial_peer_urls,
            Err(e) => return Err(e.into()),
        };
        tracing::info!(?peer_urls, "v2 proxy using peer URLs");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(cfg.proxy.dial_timeout());
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(128)
            .build(connector);
        Ok(Arc::new(Proxy {
            dir,
            readonly: cfg.proxy.proxy == ProxyMode::Readonly,
            failure_wait: cfg.proxy.failure_wait(),
            refresh_interval: cfg.proxy.refresh_interval(),
            read_timeout: cfg.proxy.read_timeout(),
            peer_urls: Mutex::new(peer_urls),
            endpoints: Mutex::new(Vec::new()),
            client,
        }))
    }

    /// Asks the members for the membership every `--proxy-refresh-interval` (every second
    /// while no member is known), forever.
    pub async fn refresh_forever(self: Arc<Proxy>) {
        let interval = self.refresh_interval;
        loop {
            self.refresh().await;
            let known = !self.endpoints.lock().expect("endpoints").is_empty();
            let pause = if known {
                interval
            } else {
                interval.min(Duration::from_secs(1))
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// Asks the known peer URLs, in turn, for the membership; on an answer, forwards to its
    /// client URLs from now on and keeps its peer URLs in the cluster file.
    async fn refresh(&self) {
        let peers = self.peer_urls.lock().expect("peer urls").clone();
        for url in &peers {
            let node = MemberNode {
                name: String::new(),
                peer_urls: vec![url.clone()],
                client_urls: Vec::new(),
                promote_when_ready: false,
            };
            let Ok(channel) = crate::raft::network::peer_channel(&node) else {
                continue;
            };
            let mut peer = PeerClient::new(channel);
            let call = peer.members(MembersRequest {});
            let answer = match tokio::time::timeout(Duration::from_secs(5), call).await {
                Ok(Ok(answer)) => answer.into_inner(),
                Ok(Err(e)) => {
                    tracing::warn!("proxy: cannot get the cluster from {url}: {}", e.message());
                    continue;
                }
                Err(_) => {
                    tracing::warn!("proxy: cannot get the cluster from {url}: timed out");
                    continue;
                }
            };
            let Ok(membership) = bincode::deserialize::<StoredMembership>(&answer.membership)
            else {
                continue;
            };
            let nodes: Vec<&MemberNode> = membership.membership().nodes().map(|(_, n)| n).collect();
            let mut client_urls: Vec<String> =
                nodes.iter().flat_map(|n| n.client_urls.clone()).collect();
            let mut peer_urls: Vec<String> =
                nodes.iter().flat_map(|n| n.peer_urls.clone()).collect();
            client_urls.sort();
            peer_urls.sort();
            if let Err(e) = self.save_peer_urls(&peer_urls) {
                tracing::warn!("proxy: cannot write the cluster file: {e}");
            }
            if peer_urls != peers {
                tracing::info!(from = ?peers, to = ?peer_urls, "proxy updated peer URLs");
            }
            *self.peer_urls.lock().expect("peer urls") = peer_urls;
            let mut endpoints: Vec<Endpoint> = client_urls
                .into_iter()
                .map(|url| Endpoint {
                    url: url.trim_end_matches('/').to_string(),
                    failed_until: None,
                })
                .collect();
            endpoints.shuffle(&mut rand::rng());
            *self.endpoints.lock().expect("endpoints") = endpoints;
            return;
        }
        tracing::warn!(?peers, "proxy: failed to get the cluster from any peer");
        self.endpoints.lock().expect("endpoints").clear();
    }

    /// Writes the cluster file through a temporary file, synced, then renamed over it.
    fn save_peer_urls(&self, peer_urls: &[String]) -> Result<()> {
        let bytes = serde_json::to_vec(&ClusterFile {
            peer_urls: peer_urls.to_vec(),
        })
        .map_err(Error::internal)?;
        let path = self.dir.join(CLUSTER_FILE);
        let temp = self.dir.join(format!("{CLUSTER_FILE}.bak"));
        write_synced(&temp, &bytes)?;
        std::fs::rename(&temp, &path)?;
        Ok(())
    }

    /// The endpoints not left out for a recent failure, in their shuffled order.
    fn available(&self) -> Vec<String> {
        let now = Instant::now();
        self.endpoints
            .lock()
            .expect("endpoints")
            .iter()
            .filter(|e| e.failed_until.is_none_or(|t| t <= now))
            .map(|e| e.url.clone())
            .collect()
    }

    fn mark_failed(&self, url: &str) {
        let until = Instant::now() + self.failure_wait;
        for e in self.endpoints.lock().expect("endpoints").iter_mut() {
            if e.url == url {
                e.failed_until = Some(until);
            }
        }
    }

    /// The proxy's HTTP routes: its configuration, `/metrics`, and everything else
    /// forwarded.
    pub fn routes(self: &Arc<Proxy>) -> tonic::service::Routes {
        let router = axum::Router::new()
            .route(
                "/v2/config/local/proxy",
                crate::http::only_get(axum::routing::get(config)),
            )
            .route(
                "/metrics",
                axum::routing::get(|| async { crate::http::metrics::text() }),
            )
            .fallback(forward)
            .with_state(self.clone());
        tonic::service::Routes::from(router)
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// etcd's `httptypes.HTTPError` answer: `{"message":"..."}` with `status`.
fn http_error(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "message": format!("httpproxy: {message}") }).to_string(),
    )
        .into_response()
}

/// `GET /v2/config/local/proxy`: the endpoints requests currently go to.
async fn config(State(proxy): State<Arc<Proxy>>) -> Response {
    let body = serde_json::json!({ "endpoints": proxy.available() }).to_string() + "\n";
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Forwards `request` to the first member that answers, streaming its answer back.
async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    if proxy.readonly && request.method() != http::Method::GET {
        return StatusCode::NOT_IMPLEMENTED.into_response();
    }
    let (mut parts, body) = request.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return http_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to read request body: {e}"),
            );
        }
    };
    strip_hop_by_hop(&mut parts.headers);
    let client_ip = parts
        .extensions
        .get::<crate::transport::ConnInfo>()
        .and_then(|c| c.remote_addr)
        .map(|a| a.ip().to_string());
    if let Some(ip) = client_ip {
        let forwarded = match parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(prior) => format!("{prior}, {ip}"),
            None => ip,
        };
        if let Ok(value) = HeaderValue::from_str(&forwarded) {
            parts.headers.insert("x-forwarded-for", value);
        }
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let endpoints = proxy.available();
    if endpoints.is_empty() {
        tracing::warn!("proxy: zero endpoints currently available");
        return http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "zero endpoints currently available".into(),
        );
    }
    for endpoint in &endpoints {
        let Ok(uri) = format!("{endpoint}{path_and_query}").parse::<http::Uri>() else {
            continue;
        };
        let mut outgoing = http::Request::new(Body::from(body.clone()));
        *outgoing.method_mut() = parts.method.clone();
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = parts.headers.clone();
        outgoing.headers_mut().remove(header::HOST);
        let sent = proxy.client.request(outgoing);
        let answer = match proxy.read_timeout {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(answer) => answer.map_err(|e| e.to_string()),
                Err(_) => Err("read timed out".to_string()),
            },
            None => sent.await.map_err(|e| e.to_string()),
        };
        match answer {
            Ok(response) => {
                let (mut head, incoming) = response.into_parts();
                strip_hop_by_hop(&mut head.headers);
                return Response::from_parts(head, Body::new(incoming));
            }
            Err(e) => {
                tracing::warn!("proxy: failed to direct request to {endpoint}: {e}");
                proxy.mark_failed(endpoint);
            }
        }
    }
    http_error(
        StatusCode::BAD_GATEWAY,
        format!(
            "unable to get response from {} endpoint(s)",
            endpoints.len()
        ),
    )
}
