//! TLS clients for the tests: etcd-client over a channel dialed with rustls, a raw
//! handshake that reports the server's certificate, and Debian's etcdctl 3.4.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client;
use oxcd::tls::connector::{TlsConnector, endpoint};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::process::Command;

/// A rustls client configuration trusting `ca_pem`, with a client certificate if given.
pub fn config(ca_pem: &str, client: Option<(&str, &str)>) -> Arc<ClientConfig> {
    oxcd::tls::install_crypto_provider();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// An etcd-client connected to `url` (https) with `config`; fails on a refused handshake.
pub async fn connect(url: &str, config: Arc<ClientConfig>) -> Result<Client, String> {
    let (endpoint, connector) = endpoint(url, Some(TlsConnector::fixed(config)))?;
    let channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    Client::from_channel(etcd_client::Channel::Tonic(channel), None)
        .await
        .map_err(|e| format!("client: {e:?}"))
}

/// A put then a get of `key` over a new connection; the error text when either fails.
pub async fn put_get(url: &str, config: Arc<ClientConfig>, key: &str) -> Result<String, String> {
    let mut c = connect(url, config).await?;
    c.put(key, "v", None)
        .await
        .map_err(|e| format!("put: {e:?}"))?;
    let got = c.get(key, None).await.map_err(|e| format!("get: {e:?}"))?;
    let kv = got.kvs().first().ok_or("no value")?;
    Ok(String::from_utf8_lossy(kv.value()).into_owned())
}

/// The certificate the server at `addr` presents to a new connection (DER).
pub async fn served_certificate(addr: &str, config: Arc<ClientConfig>) -> Option<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .ok()?;
    let certs = tls.get_ref().1.peer_certificates()?;
    Some(certs.first()?.as_ref().to_vec())
}

/// `etcdctl <args>` (v3 API) against `endpoint`; (success, stdout, stderr).
pub async fn etcdctl(endpoint: &str, args: &[&str]) -> (bool, String, String) {
    ctl(Path::new("/usr/bin/etcdctl"), endpoint, args, &[]).await
}

/// `oxcdctl <args>` against `endpoint` with `env`; (success, stdout, stderr).
pub async fn oxcdctl(
    endpoint: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let binary = oxcd_testkit::binary::oxcdctl().unwrap_or_else(|e| panic!("{e}"));
    ctl(&binary, endpoint, args, env).await
}

async fn ctl(
    binary: &Path,
    endpoint: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let out = Command::new(binary)
        .env("ETCDCTL_API", "3")
        .envs(env.iter().copied())
        .arg(format!("--endpoints={endpoint}"))
        .args(["--command-timeout=10s", "--dial-timeout=5s"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run /usr/bin/etcdctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether the server at `addr` refuses a TLS session with `config`: the handshake fails,
/// or (TLS 1.3, where the server judges the client's certificate after the client is done)
/// the server answers HTTP/2's preface with an alert or a close instead of its settings.
pub async fn refused(addr: &str, config: Arc<ClientConfig>) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let Ok(mut tls) = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
    else {
        return true;
    };
    if tls
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .is_err()
    {
        return true;
    }
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("{addr} neither answered nor refused within 10 s"),
    }
}
