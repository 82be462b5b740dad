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

/// Connects to `endpoints` within the dial timeout, authenticating with `--user` if given.
pub async fn connect_to(global: &Global, endpoints: &[String]) -> Result<Client> {
    let urls: Vec<String> = endpoints.iter().map(|e| with_scheme(e)).collect();
    let tls = match urls.iter().any(|u| u.starts_with("https://")) {
        true => {
            Some(crate::tls::client_config(global).map_err(|e| CtlError::new(EXIT_BAD_ARGS, e))?)
        }
        false => None,
    };
    let options = ConnectOptions::new()
        .with_connect_timeout(global.dial_timeout)
        .with_keep_alive(global.keepalive_time, global.keepalive_timeout);
    let credentials = credentials(global)?;
    let dial = |options| dial(global, &urls, tls.clone(), options);
    let connecting = async {
        let Some((user, password)) = credentials else {
            return dial(options).await;
        };
        match dial(options.clone().with_user(user, password)).await {
            // As clientv3: credentials for a cluster without auth are no error.
            Err(etcd_client::Error::GRpcStatus(s))
                if s.message() == "etcdserver: authentication is not enabled" =>
            {
                dial(options).await
            }
            other => other,
        }
    };
    match tokio::time::timeout(global.dial_timeout, connecting).await {
        Ok(Ok(client)) => Ok(client),
        // Authenticating at connect failed: the server's message, as etcdctl prints it.
        Ok(Err(etcd_client::Error::GRpcStatus(s))) => {
            Err(CtlError::new(EXIT_BAD_CONNECTION, s.message()))
        }
        Ok(Err(etcd_client::Error::InvalidArgs(e))) => Err(CtlError::new(EXIT_BAD_CONNECTION, e)),
        Ok(Err(e)) => Err(CtlError::new(EXIT_BAD_CONNECTION, e.to_string())),
        Err(_) => Err(CtlError::new(
            EXIT_BAD_CONNECTION,
            "context deadline exceeded",
        )),
    }
}

/// A client of `urls` with `options`: over TLS with `tls` (to the first endpoint that
/// completes a handshake: etcdctl's balancer also talks to one endpoint at a time).
async fn dial(
    global: &Global,
    urls: &[String],
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    options: ConnectOptions,
) -> std::result::Result<Client, etcd_client::Error> {
    let Some(config) = tls else {
        return Client::connect(urls, Some(options)).await;
    };
    let mut last = String::from("context deadline exceeded");
    for url in urls {
        let endpoint = tonic::transport::Endpoint::from_shared(crate::tls::endpoint(url))?
            .connect_timeout(global.dial_timeout)
            .http2_keep_alive_interval(global.keepalive_time)
            .keep_alive_timeout(global.keepalive_timeout);
        let connector = crate::tls::Connector(config.clone());
        match endpoint.connect_with_connector(connector).await {
            Ok(channel) => {
                return Client::from_channel(etcd_client::Channel::Tonic(channel), Some(options))
                    .await;
            }
            Err(e) => last = format!("{e:?}"),
        }
    }
    Err(etcd_client::Error::InvalidArgs(last))
}

/// `--user name[:password]` and `--password`, as etcdctl takes them: the password after the
/// first colon, or from `--password`, or asked for on the terminal.
fn credentials(global: &Global) -> Result<Option<(String, String)>> {
    let Some(user) = &global.user else {
        return Ok(None);
    };
    if let Some(password) = &global.password {
        return Ok(Some((user.clone(), password.clone())));
    }
    if let Some((name, password)) = user.split_once(':') {
        return Ok(Some((name.to_string(), password.to_string())));
    }
    use std::io::{BufRead, Write};
    print!("Password: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(Some((
        user.clone(),
        line.trim_end_matches(['\r', '\n']).to_string(),
    )))
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
