//! What a request learns about its connection: the port served in-process by
//! `oxcd::transport::serve` over TLS, with a route that answers the verified client
//! certificate's Common Name as `oxcd::transport::client_cert_cn` reports it.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use oxcd::tls::{PortTls, TlsSettings};
use oxcd::transport::{self, Listener, PortOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::certs::Ca;
use super::client;

/// Serves a `/cn` route on a TLS listener requiring client certificates from `ca`.
async fn serve_cn(ca: &Ca, dir: &std::path::Path) -> std::net::SocketAddr {
    let files = ca.write(dir, "server", &ca.server("server"));
    let settings = TlsSettings {
        cert_file: files.cert.clone(),
        key_file: files.key.clone(),
        trusted_ca_file: Some(files.ca.clone()),
        crl_file: None,
        client_cert_auth: true,
        self_signed: false,
        allowed_cn: None,
        allowed_hostname: None,
        versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
        cipher_suites: Vec::new(),
    };
    oxcd::tls::install_crypto_provider();
    let tls = PortTls::load(settings).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/cn",
        get(|req: http::Request<axum::body::Body>| async move {
            transport::client_cert_cn(req.extensions()).unwrap_or_else(|| "<none>".into())
        }),
    );
    let options = PortOptions {
        accept_http1: true,
        ..PortOptions::default()
    };
    let listener = Listener {
        tcp,
        tls: Some(tls),
    };
    tokio::spawn(transport::serve(
        tonic::service::Routes::from(router),
        vec![listener],
        options,
        std::future::pending(),
    ));
    addr
}

#[tokio::test]
async fn handlers_see_the_verified_client_certificates_common_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("oxcd test CA");
    let addr = serve_cn(&ca, dir.path()).await;
    let alice = ca.client("alice");
    let config = client::config(&ca.pem(), Some((&alice.cert_pem, &alice.key_pem)));
    let mut config = Arc::unwrap_or_clone(config);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /cn HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(20), tls.read_to_string(&mut response))
        .await
        .expect("an answer within 20 s")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("\r\n\r\nalice"), "{response}");
}
