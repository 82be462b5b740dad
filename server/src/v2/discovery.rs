//! etcd's v2 discovery protocol (`--discovery URL`): a new member finds its cluster's
//! founders through a discovery service that speaks the v2 keys API (an etcd or oxcd member
//! with `--enable-v2`, or discovery.etcd.io). The URL names a token directory:
//!
//! 1. the cluster's size is the value of `<token>/_config/size`;
//! 2. the member registers `<token>/<member id>` = `name=peer-url,...` with
//!    `prevExist=false` (a second registration of the same id is refused);
//! 3. it waits, watching the directory, until `size` members have registered; the first
//!    `size` registrations (by created index) are the initial cluster. A member that finds
//!    them all taken by others fails with etcd's "discovery: cluster is full".
//!
//! The discovery URL is the cluster token, as in etcd, so member and cluster ids follow
//! from the registrations alone. Unreachable services are retried with a capped backoff. An
//! https service is verified against the system's CAs, as etcd does; a proxy
//! (`--discovery-proxy`) carries http URLs only.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls_pki_types::ServerName;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The longest pause between tries of an unreachable discovery service.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// How long one request may take (etcd's client.DefaultRequestTimeout), waits excepted.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// etcd's discovery errors, worded as etcd words them.
pub const ERR_SIZE_NOT_FOUND: &str = "discovery: size key not found";
pub const ERR_BAD_SIZE_KEY: &str = "discovery: size key is bad";
pub const ERR_FULL_CLUSTER: &str = "discovery: cluster is full";
pub const ERR_DUPLICATE_ID: &str = "discovery: found duplicate id";
pub const ERR_DUPLICATE_NAME: &str = "discovery: found duplicate name";
pub const ERR_BAD_ENDPOINT: &str = "discovery: bad discovery endpoint";
pub const ERR_INVALID_URL: &str = "discovery: invalid URL";

#[derive(Debug, Clone, Deserialize)]
struct Node {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    nodes: Vec<Node>,
    #[serde(rename = "createdIndex", default)]
    created_index: u64,
    #[serde(rename = "modifiedIndex", default)]
    modified_index: u64,
}

impl Node {
    fn name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or_default()
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    action: String,
    node: Option<Node>,
    #[serde(rename = "errorCode")]
    error_code: Option<u32>,
}

/// A v2 keys client for one token directory.
struct Client {
    /// `host:port` to connect to: the service's, or the proxy's.
    connect: String,
    /// `scheme://host:port` of the service.
    origin: String,
    /// The token directory's path, `/v2/keys/...` on an etcd member.
    token: String,
    via_proxy: bool,
    /// For an https service: the TLS configuration and the name its certificate must carry.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

/// Why a request did not get an answer: worth another try, or not.
enum Failure {
    Unreachable(String),
    Fatal(Error),
}

impl Client {
    fn new(url: &str, proxy: &str) -> Result<Client> {
        let u = url::Url::parse(url).map_err(|_| Error::InvalidArgument(ERR_INVALID_URL.into()))?;
        let https = match u.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(Error::InvalidArgument(ERR_INVALID_URL.into())),
        };
        let host_port = |u: &url::Url| -> Result<String> {
            let host = u
                .host_str()
                .ok_or_else(|| Error::InvalidArgument(ERR_INVALID_URL.into()))?;
            Ok(format!(
                "{host}:{}",
                u.port_or_known_default().unwrap_or(80)
            ))
        };
        let origin = format!("{}://{}", u.scheme(), host_port(&u)?);
        let (connect, via_proxy) = match (proxy.is_empty(), https) {
            (true, _) => (host_port(&u)?, false),
            (false, false) => {
                let p = url::Url::parse(proxy).map_err(|_| {
                    Error::InvalidArgument(format!("discovery: invalid proxy URL {proxy:?}"))
                })?;
                (host_port(&p)?, true)
            }
            (false, true) => {
                return Err(Error::InvalidArgument(
                    "discovery: --discovery-proxy is supported for http discovery URLs only".into(),
                ));
            }
        };
        let tls = match https {
            false => None,
            true => {
                let host = u.host_str().unwrap_or_default().trim_matches(['[', ']']);
                let name = ServerName::try_from(host.to_string())
                    .map_err(|_| Error::InvalidArgument(ERR_INVALID_URL.into()))?;
                Some((Arc::new(crate::tls::build::public_client_config()?), name))
            }
        };
        Ok(Client {
            connect,
            origin,
            token: u.path().trim_end_matches('/').to_string(),
            via_proxy,
            tls,
        })
    }

    /// One request; `wait` requests may take as long as the service takes.
    async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        form: Option<String>,
        wait: bool,
    ) -> std::result::Result<(u16, Option<u64>, Answer), Failure> {
        let uri = if self.via_proxy {
            format!("{}{path_and_query}", self.origin)
        } else {
            path_and_query.to_string()
        };
        let host = self.origin.split_once("://").map_or("", |(_, h)| h);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::HOST, host);
        if form.is_some() {
            request = request.header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
        let request = request
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .map_err(|e| Failure::Fatal(Error::internal(e)))?;
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(&self.connect)
                .await
                .map_err(|e| e.to_string())?;
            match &self.tls {
                None => exchange(stream, request).await,
                Some((config, name)) => {
                    let stream = tokio_rustls::TlsConnector::from(config.clone())
                        .connect(name.clone(), stream)
                        .await
                        .map_err(|e| e.to_string())?;
                    exchange(stream, request).await
                }
            }
        };
        let (status, index, body) = if wait {
            exchange.await
        } else {
            match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
                Ok(result) => result,
                Err(_) => Err("request timed out".into()),
            }
        }
        .map_err(Failure::Unreachable)?;
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| Failure::Fatal(Error::InvalidArgument(ERR_BAD_ENDPOINT.into())))?;
        Ok((status, index, answer))
    }

    /// `request`, tried again (with backoff) while the service is unreachable.
    async fn retrying(
        &self,
        method: &str,
        path_and_query: &str,
        form: Option<String>,
        wait: bool,
    ) -> Result<(u16, Option<u64>, Answer)> {
        let mut backoff = Duration::from_millis(250);
        loop {
            match self
                .request(method, path_and_query, form.clone(), wait)
                .await
            {
                Ok(answer) => return Ok(answer),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Unreachable(why)) => {
                    tracing::warn!(
                        "discovery service {} unreachable ({why}); retrying in {backoff:?}",
                        self.origin
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The size and the registrations in order (etcd's `checkCluster` without its verdict),
    /// with the index read at.
    async fn roster(&self) -> Result<(Vec<Node>, usize, u64)> {
        let (_, _, size) = self
            .retrying("GET", &format!("{}/_config/size", self.token), None, false)
            .await?;
        if size.error_code == Some(100) {
            return Err(Error::InvalidArgument(ERR_SIZE_NOT_FOUND.into()));
        }
        let size: usize = size
            .node
            .and_then(|n| n.value)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::InvalidArgument(ERR_BAD_SIZE_KEY.into()))?;
        let (_, index, list) = self.retrying("GET", &self.token, None, false).await?;
        let mut nodes: Vec<Node> = list
            .node
            .map(|n| n.nodes)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.name() != "_config")
            .collect();
        nodes.sort_by_key(|n| n.created_index);
        Ok((nodes, size, index.unwrap_or(0)))
    }

    /// Watches the token directory from `index` until `size` members have registered;
    /// answers the first `size` registrations.
    async fn wait_for(
        &self,
        mut nodes: Vec<Node>,
        size: usize,
        mut index: u64,
    ) -> Result<Vec<Node>> {
        nodes.truncate(size);
        while nodes.len() < size {
            tracing::info!(
                "discovery: found {} peer(s), waiting for {} more",
                nodes.len(),
                size - nodes.len()
            );
            let (_, _, event) = self
                .retrying(
                    "GET",
                    &format!(
                        "{}?wait=true&recursive=true&waitIndex={}",
                        self.token,
                        index + 1
                    ),
                    None,
                    true,
                )
                .await?;
            let Some(node) = event.node else {
                continue;
            };
            index = index.max(node.modified_index);
            let registered = matches!(event.action.as_str(), "create" | "set")
                && node.name() != "_config"
                && !node.key.contains("/_config/")
                && !nodes.iter().any(|n| n.name() == node.name());
            if registered {
                nodes.push(node);
            }
        }
        Ok(nodes)
    }
}

/// Sends `request` over `io` (HTTP/1.1): the status, `X-Etcd-Index` and the body.
async fn exchange<IO>(
    io: IO,
    request: hyper::Request<Full<Bytes>>,
) -> std::result::Result<(u16, Option<u64>, Bytes), String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let index = response
        .headers()
        .get("x-etcd-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, index, body))
}

/// Whether the first `size` registrations are all others' than `me`'s.
fn full_without(nodes: &[Node], size: usize, me: &str) -> bool {
    let mine = nodes.iter().position(|n| n.name() == me);
    nodes.len() >= size && mine.is_none_or(|i| i >= size)
}

/// The initial cluster (`name=url,...`) of the first `size` registrations.
fn initial_cluster(nodes: Vec<Node>, size: usize) -> Result<String> {
    let cluster: Vec<String> = nodes.into_iter().filter_map(|n| n.value).collect();
    let cluster = cluster.join(",");
    let names: std::collections::BTreeSet<&str> = cluster
        .split(',')
        .filter_map(|kv| kv.split_once('=').map(|(n, _)| n))
        .collect();
    if names.len() != size {
        return Err(Error::InvalidArgument(ERR_DUPLICATE_NAME.into()));
    }
    Ok(cluster)
}

/// The initial cluster the discovery URL gathers, without registering (etcd's
/// `GetCluster`, which a proxy uses): waits until it is complete.
pub async fn get_cluster(url: &str, proxy: &str) -> Result<String> {
    let client = Client::new(url, proxy)?;
    let (nodes, size, index) = client.roster().await?;
    let nodes = client.wait_for(nodes, size, index).await?;
    initial_cluster(nodes, size)
}

/// Joins the cluster the discovery URL `url` gathers, as member `id` whose registration
/// is `me` (`name=peer-url,...`): answers the initial cluster (`name=url,...`).
pub async fn join_cluster(url: &str, proxy: &str, id: u64, me: &str) -> Result<String> {
    let client = Client::new(url, proxy)?;
    let self_name = format!("{id:x}");
    let (nodes, size, _) = client.roster().await?;
    if full_without(&nodes, size, &self_name) {
        return Err(Error::InvalidArgument(ERR_FULL_CLUSTER.into()));
    }
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("value", me)
        .finish();
    let (_, _, created) = client
        .retrying(
            "PUT",
            &format!("{}/{self_name}?prevExist=false", client.token),
            Some(form),
            false,
        )
        .await?;
    match created.error_code {
        Some(105) => return Err(Error::InvalidArgument(ERR_DUPLICATE_ID.into())),
        Some(code) => {
            return Err(Error::InvalidArgument(format!(
                "discovery: registration refused with error {code}"
            )));
        }
        None => {}
    }
    let (nodes, size, index) = client.roster().await?;
    if full_without(&nodes, size, &self_name) {
        return Err(Error::InvalidArgument(ERR_FULL_CLUSTER.into()));
    }
    let nodes = client.wait_for(nodes, size, index).await?;
    initial_cluster(nodes, size)
}
