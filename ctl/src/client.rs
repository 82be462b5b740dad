//! Connecting to the cluster, and etcdctl's errors: the `Error: ...` line and the exit code.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use crate::cli::Global;

/// etcdctl's exit codes (cobrautl's).
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_BAD_CONNECTION: i32 = 2;
pub const EXIT_INVALID_INPUT: i32 = 3;
pub const EXIT_BAD_FEATURE: i32 = 4;
pub const EXIT_INTERRUPTED: i32 = 5;
pub const EXIT_IO: i32 = 6;
pub const EXIT_BAD_ARGS: i32 = 128;

/// A failed command: what `Error: ` is followed by, and the exit code.
#[derive(Debug)]
pub struct CtlError {
    pub code: i32,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, CtlError>;

impl CtlError {
    pub fn new(code: i32, message: impl Into<String>) -> CtlError {
        CtlError {
            code,
            message: message.into(),
        }
    }

    /// A usage error (exit 128).
    pub fn bad_args(message: impl Into<String>) -> CtlError {
        CtlError::new(EXIT_BAD_ARGS, message)
    }
}

impl From<etcd_client::Error> for CtlError {
    /// A request's error: the server's message, as etcd's client turns a gRPC status into
    /// an error (its description alone).
    fn from(e: etcd_client::Error) -> CtlError {
        let message = match &e {
            etcd_client::Error::GRpcStatus(status) => status.message().to_string(),
            // clientv3's ErrLeaseNotFound.
            etcd_client::Error::LeaseKeepAliveError(m) if m == "lease not found" => {
                "etcdserver: requested lease not found".to_string()
            }
            other => other.to_string(),
        };
        CtlError::new(EXIT_ERROR, message)
    }
}

impl From<std::io::Error> for CtlError {
    fn from(e: std::io::Error) -> CtlError {
        CtlError::new(EXIT_IO, e.to_string())
    }
}

/// Connects to `endpoints` within the dial timeout.
pub async fn connect_to(global: &Global, endpoints: &[String]) -> Result<Client> {
    if global.user.is_some() || global.password.is_some() {
        return Err(CtlError::new(
            EXIT_BAD_FEATURE,
            "authentication (--user, --password) is not supported by this oxcdctl build yet",
        ));
    }
    let urls: Vec<String> = endpoints.iter().map(|e| with_scheme(e)).collect();
    if urls.iter().any(|u| u.starts_with("https://")) {
        return connect_tls(global, &urls).await;
    }
    let options = ConnectOptions::new()
        .with_connect_timeout(global.dial_timeout)
        .with_keep_alive(global.keepalive_time, global.keepalive_timeout);
    let connecting = Client::connect(urls, Some(options));
    match tokio::time::timeout(global.dial_timeout, connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(CtlError::new(EXIT_BAD_CONNECTION, e.to_string())),
        Err(_) => Err(CtlError::new(
            EXIT_BAD_CONNECTION,
            "context deadline exceeded",
        )),
    }
}

/// Connects over TLS to the first of `urls` that completes a handshake (etcdctl's balancer
/// also talks to one endpoint at a time).
async fn connect_tls(global: &Global, urls: &[String]) -> Result<Client> {
    let config = crate::tls::client_config(global).map_err(|e| CtlError::new(EXIT_BAD_ARGS, e))?;
    let mut last = String::from("context deadline exceeded");
    for url in urls {
        let endpoint = tonic::transport::Endpoint::from_shared(crate::tls::endpoint(url))
            .map_err(|e| CtlError::new(EXIT_BAD_ARGS, e.to_string()))?
            .connect_timeout(global.dial_timeout)
            .http2_keep_alive_interval(global.keepalive_time)
            .keep_alive_timeout(global.keepalive_timeout);
        let connector = crate::tls::Connector(config.clone());
        let connecting = async {
            let channel = endpoint
                .connect_with_connector(connector)
                .await
                .map_err(|e| format!("{e:?}"))?;
            Client::from_channel(etcd_client::Channel::Tonic(channel), None)
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(global.dial_timeout, connecting).await {
            Ok(Ok(client)) => return Ok(client),
            Ok(Err(e)) => last = e,
            Err(_) => last = "context deadline exceeded".into(),
        }
    }
    Err(CtlError::new(EXIT_BAD_CONNECTION, last))
}

/// Connects to the `--endpoints`.
pub async fn connect(global: &Global) -> Result<Client> {
    connect_to(global, &global.endpoints).await
}

/// `host:port` as a URL (etcdctl's endpoints may leave out the scheme).
pub fn with_scheme(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// Runs `request` within the command timeout; past it, etcd's "context deadline exceeded".
pub async fn timed<T>(
    timeout: Duration,
    request: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, request).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(CtlError::new(EXIT_ERROR, "context deadline exceeded")),
    }
}
