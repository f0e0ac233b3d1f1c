//! The client over TLS: against `HttpServer` with rustls, and against `switchboard::Server` with
//! tokio-tungstenite over tokio-rustls as a second client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use common::{echo, report, reporting_texts, TestServer, PATIENCE};
use futures_util::{SinkExt, StreamExt};
use switchboard::{CloseCode, ConnectError, WebSocket};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A self-signed certificate for 127.0.0.1, and a server config using it.
fn tls_configs() -> (
    Arc<switchboard::rustls::ServerConfig>,
    Arc<switchboard::rustls::ClientConfig>,
) {
    use switchboard::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let server = switchboard::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = switchboard::rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = switchboard::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

#[tokio::test]
async fn wss_from_our_client_to_our_server() {
    let (server_tls, client_tls) = tls_configs();
    let server = TestServer::start_tls((*server_tls).clone(), |cfg, _| {
        cfg.service(switchboard::websocket("/secure", echo));
    });
    let url = format!("wss://127.0.0.1:{}/secure", server.addr.port());
    let (on_connect, mut rx) = reporting_texts();
    let ws = WebSocket::builder(&url)
        .tls(client_tls)
        .on_connect(on_connect)
        .connect()
        .await
        .unwrap();
    ws.send("over TLS").await.unwrap();
    assert_eq!(report(&mut rx).await, "over TLS");
    assert_eq!(ws.close().await, CloseCode::NORMAL);
    // The default trust store does not know our self-signed certificate.
    let untrusted = WebSocket::connect(url).await.unwrap_err();
    assert!(matches!(untrusted, ConnectError::Tls(_)), "{untrusted}");
}

#[tokio::test]
async fn wss_on_switchboard_server_from_our_client_and_from_tokio_tungstenite() {
    let (server_tls, client_tls) = tls_configs();
    let options = common::Options {
        tls: Some((*server_tls).clone()),
        owned: true,
        ..common::Options::default()
    };
    let server = TestServer::spawn(options, |cfg, _| {
        cfg.service(switchboard::websocket("/secure", echo));
    });
    let url = format!("wss://127.0.0.1:{}/secure", server.addr.port());
    // Ours: a large message too, so that TLS records are split and buffered both ways.
    let (on_connect, mut rx) = reporting_texts();
    let ws = WebSocket::builder(&url)
        .tls(client_tls.clone())
        .on_connect(on_connect)
        .connect()
        .await
        .unwrap();
    let big = "ü".repeat(300_000);
    for text in ["over TLS", big.as_str()] {
        ws.send(text).await.unwrap();
        assert_eq!(report(&mut rx).await, text);
    }
    assert_eq!(ws.close().await, CloseCode::NORMAL);
    // tokio-tungstenite over a tokio-rustls stream.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = switchboard::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_tls)
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut client, response) = tokio_tungstenite::client_async(url.as_str(), tls).await.unwrap();
    assert_eq!(response.status(), 101);
    client.send(WsMessage::text("tungstenite over TLS")).await.unwrap();
    assert_eq!(
        tokio::time::timeout(PATIENCE, client.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        WsMessage::text("tungstenite over TLS")
    );
    client.close(None).await.unwrap();
}
