//! The JSON gateway workloads, `gateway-put` and `gateway-range`: the same requests as `put`
//! and `range`, as `POST /v3/kv/put` and `POST /v3/kv/range` with JSON bodies (base64 keys
//! and values), each client on an HTTP/1.1 keep-alive connection of its own, as curl-like
//! gateway clients talk.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::cli::{Common, Consistency, PutArgs, RangeArgs};
use crate::driver::Worker;
use crate::error::Error;
use crate::keys::{KeySpace, value};
use crate::kv::run_workers;
use crate::report::Summary;

/// One client: its connection (made on its first request, on its own event loop) and what
/// it sends.
struct GatewayWorker {
    authority: String,
    path: &'static str,
    keys: KeySpace,
    /// The JSON body around the base64 key.
    body: fn(&str, &str) -> String,
    /// Base64 of the value (puts) or the read's consistency flag (ranges).
    extra: String,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

fn failed(e: impl std::fmt::Display) -> etcd_client::Error {
    etcd_client::Error::InvalidArgs(format!("gateway: {e}"))
}

impl GatewayWorker {
    async fn connection(
        &mut self,
    ) -> Result<&mut http1::SendRequest<Full<Bytes>>, etcd_client::Error> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(&self.authority).await.map_err(failed)?;
            stream.set_nodelay(true).map_err(failed)?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(failed)?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("connected"))
    }
}

impl Worker for GatewayWorker {
    async fn request(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
        let key = BASE64.encode(self.keys.pick(seq));
        let body = (self.body)(&key, &self.extra);
        let request = http::Request::post(self.path)
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(failed)?;
        let sender = self.connection().await?;
        sender.ready().await.map_err(failed)?;
        let response = sender.send_request(request).await.map_err(failed)?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(failed)?;
        if !status.is_success() {
            return Err(failed(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body.to_bytes())
            )));
        }
        Ok(())
    }
}

/// `host:port` of an `http://` endpoint.
fn authority(endpoint: &str) -> Result<String, Error> {
    endpoint
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/').to_string())
        .ok_or_else(|| Error::Connect {
            endpoint: endpoint.to_string(),
            reason: "the gateway workloads take http:// endpoints".into(),
        })
}

async fn run(
    common: &Common,
    workload: &'static str,
    path: &'static str,
    keys: KeySpace,
    body: fn(&str, &str) -> String,
    extra: String,
) -> Result<Summary, Error> {
    for endpoint in &common.endpoints {
        authority(endpoint)?;
    }
    run_workers(common, workload, |pool, i| GatewayWorker {
        authority: authority(&pool.endpoints[i % pool.endpoints.len()]).expect("checked"),
        path,
        keys: keys.clone(),
        body,
        extra: extra.clone(),
        sender: None,
    })
    .await
}

pub async fn put(common: &Common, args: &PutArgs) -> Result<Summary, Error> {
    let value = BASE64.encode(value(args.val_size));
    let body = |key: &str, value: &str| format!(r#"{{"key":"{key}","value":"{value}"}}"#);
    run(
        common,
        "gateway-put",
        "/v3/kv/put",
        KeySpace::new(&args.keys),
        body,
        value,
    )
    .await
}

pub async fn range(common: &Common, args: &RangeArgs) -> Result<Summary, Error> {
    let serializable = (args.consistency == Consistency::S).to_string();
    let body = |key: &str, serializable: &str| {
        format!(r#"{{"key":"{key}","serializable":{serializable}}}"#)
    };
    run(
        common,
        "gateway-range",
        "/v3/kv/range",
        KeySpace::new(&args.keys),
        body,
        serializable,
    )
    .await
}
